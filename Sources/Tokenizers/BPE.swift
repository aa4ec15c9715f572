// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}).
//
// Rules, as in the `tokenizers` library:
// 1. A word (one pre-tokenized piece) starts as one symbol per Unicode scalar. A scalar missing from
//    the vocabulary becomes its UTF-8 bytes as <0xXX> tokens when byte_fallback is on, else the unk
//    token (consecutive unks fused into one when fuse_unk), else it is dropped.
// 2. With ignore_merges, a word that is itself in the vocabulary is one token.
// 3. Otherwise the adjacent pair with the lowest merge rank is merged (leftmost on ties) until no
//    pair has a merge.
// 4. continuing_subword_prefix: symbols after the first carry the prefix; a merge of (a, b) makes
//    a + b-without-prefix.

import Foundation
import StrictJSON

final class BPEModel {
    let vocab: ExactStringMap<Int>
    let idToToken: [Int: String]
    /// (left id << 32 | right id) -> (rank, merged id)
    let merges: MergeTable
    /// single-scalar tokens (without prefix): scalar value -> id
    let scalarIds: [UInt32: Int32]
    /// the same for scalars below 0x3000, as a flat table (-1 = not a token)
    let lowScalarIds: [Int32]
    let unkId: Int?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let prefix: String
    /// byte -> id of "<0xXX>" (when byte_fallback)
    let byteTokenIds: [Int?]

    private var cache = ExactStringMap<[Int]>()
    private let cacheLimit = 200_000

    init(_ v: JSONValue, _ r: JSONReader) throws {
        let entry = "model 'BPE'"
        guard let pairs = v["vocab"]?.objectPairs else { throw r.fail("\(entry): 'vocab' must be an object") }
        var vocab = ExactStringMap<Int>()
        vocab.reserveCapacity(pairs.count)
        var rev: [Int: String] = [:]
        rev.reserveCapacity(pairs.count)
        for (tok, idv) in pairs {
            guard let id = idv.intValue, id >= 0, id < Int(Int32.max) else { throw r.fail("\(entry): vocab entry '\(tok)' has id \(describe(idv)), expected an integer in 0..<2^31") }
            vocab[tok] = id
            rev[id] = tok
        }
        self.vocab = vocab
        self.idToToken = rev
        if let d = v["dropout"], !d.isNull, let x = d.doubleValue, x > 0 {
            throw r.fail("\(entry): dropout \(x) is not supported (inference needs dropout null)")
        }
        if let s = try r.optString(v, "end_of_word_suffix", in: entry), !s.isEmpty {
            throw r.fail("\(entry): end_of_word_suffix '\(s)' is not supported")
        }
        prefix = try r.optString(v, "continuing_subword_prefix", in: entry) ?? ""
        if let unk = try r.optString(v, "unk_token", in: entry) {
            guard let id = vocab[unk] else { throw r.fail("\(entry): unk_token '\(unk)' is not in the vocabulary") }
            unkId = id
        } else { unkId = nil }
        fuseUnk = try r.optBool(v, "fuse_unk", in: entry) ?? false
        byteFallback = try r.optBool(v, "byte_fallback", in: entry) ?? false
        ignoreMerges = try r.optBool(v, "ignore_merges", in: entry) ?? false
        var bt = [Int?](repeating: nil, count: 256)
        if byteFallback {
            for b in 0..<256 {
                let hex = String(b, radix: 16, uppercase: true)
                bt[b] = vocab["<0x" + (hex.count == 1 ? "0" + hex : hex) + ">"]
            }
        }
        byteTokenIds = bt

        let mergeList = try r.array(v, "merges", in: entry)
        var merges = MergeTable(capacityFor: mergeList.count)
        for (rank, m) in mergeList.enumerated() {
            let a: String, b: String
            if let s = m.stringValue {
                // "a b": split at the first space (tokens never contain a space in this format)
                guard let sp = s.firstIndex(of: " ") else { throw r.fail("\(entry): merge \(rank) '\(s)' is not two tokens separated by a space") }
                a = String(s[..<sp]); b = String(s[s.index(after: sp)...])
            } else if let arr = m.arrayValue, arr.count == 2, let x = arr[0].stringValue, let y = arr[1].stringValue {
                a = x; b = y
            } else {
                throw r.fail("\(entry): merge \(rank) must be \"a b\" or [\"a\", \"b\"], found \(describe(m))")
            }
            guard let ia = vocab[a] else { throw r.fail("\(entry): merge \(rank) uses '\(a)', which is not in the vocabulary") }
            guard let ib = vocab[b] else { throw r.fail("\(entry): merge \(rank) uses '\(b)', which is not in the vocabulary") }
            let merged = a + (prefix.isEmpty || !b.hasPrefix(prefix) ? b : String(b.dropFirst(prefix.count)))
            guard let im = vocab[merged] else { throw r.fail("\(entry): merge \(rank) makes '\(merged)', which is not in the vocabulary") }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if merges[key] == nil { merges.insert(key, rank: Int32(rank), id: Int32(im)) }
        }
        self.merges = merges
        var sids: [UInt32: Int32] = [:]
        var low = [Int32](repeating: -1, count: 0x3000)
        for (tok, id) in vocab.pairs {
            var it = tok.unicodeScalars.makeIterator()
            if let u = it.next(), it.next() == nil {
                sids[u.value] = Int32(id)
                if u.value < 0x3000 { low[Int(u.value)] = Int32(id) }
            }
        }
        scalarIds = sids
        lowScalarIds = low
    }

    /// The word cache is shared, so a Tokenizer may be used from several threads.
    private let cacheLock = NSLock()

    func tokenize(_ word: String, into out: inout [Int]) {
        if word.isEmpty { return }
        let cacheable = word.utf8.count <= 256
        if cacheable {
            cacheLock.lock()
            let hit = cache[word]
            cacheLock.unlock()
            if let h = hit { out.append(contentsOf: h); return }
        }
        let ids = compute(word)
        if cacheable {
            cacheLock.lock()
            if cache.count >= cacheLimit { cache.removeAll() }
            cache[word] = ids
            cacheLock.unlock()
        }
        out.append(contentsOf: ids)
    }

    private func compute(_ word: String) -> [Int] {
        if ignoreMerges, let id = vocab[word] { return [id] }
        // Initial symbols; -1 marks "no merge possible" (byte-fallback and unk symbols never merge
        // through the vocabulary since their strings are not in merge pairs; they are real ids though).
        var syms: [Int] = []
        syms.reserveCapacity(word.utf8.count)
        var first = true
        var lastWasUnk = false
        for u in word.unicodeScalars {
            if first || prefix.isEmpty {
                let v = u.value
                let id = v < 0x3000 ? lowScalarIds[Int(v)] : (scalarIds[v] ?? -1)
                first = false
                if id >= 0 { syms.append(Int(id)); lastWasUnk = false; continue }
            } else if let id = vocab[prefix + String(u)] { syms.append(id); lastWasUnk = false; continue }
            if byteFallback {
                var allFound = true
                var ids: [Int] = []
                for b in String(u).utf8 { if let id = byteTokenIds[Int(b)] { ids.append(id) } else { allFound = false } }
                if allFound { syms.append(contentsOf: ids); lastWasUnk = false; continue }
            }
            if let unk = unkId {
                if !(fuseUnk && lastWasUnk) { syms.append(unk) }
                lastWasUnk = true
            }
        }
        if syms.count < 2 { return syms }
        if syms.count <= 24 { return mergeSmall(syms) }
        return mergeLarge(syms)
    }

    /// Short words: rescan for the best pair after each merge.
    private func mergeSmall(_ input: [Int]) -> [Int] {
        var syms = input
        while true {
            var bestRank = Int32.max, bestAt = -1, bestId: Int32 = 0
            var k = 0
            while k + 1 < syms.count {
                if let m = merges[UInt64(syms[k]) << 32 | UInt64(syms[k + 1])], m.rank < bestRank {
                    bestRank = m.rank; bestAt = k; bestId = m.id
                }
                k += 1
            }
            if bestAt < 0 { break }
            syms[bestAt] = Int(bestId)
            syms.remove(at: bestAt + 1)
            if syms.count < 2 { break }
        }
        return syms
    }

    /// Long words (e.g. whole lines when there is no pre-tokenizer): a heap of candidate merges over
    /// a linked list of symbols, O(n log n). Candidates are ordered by (rank, position of the left
    /// symbol), which is the same order as the rescanning loop: lowest rank, leftmost first.
    private func mergeLarge(_ input: [Int]) -> [Int] {
        let n = input.count
        var ids = input
        var prev = [Int](0..<n).map { $0 - 1 }
        var next = [Int](0..<n).map { $0 + 1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        func push(_ i: Int) {
            let j = next[i]
            guard j < n, let m = merges[UInt64(ids[i]) << 32 | UInt64(ids[j])] else { return }
            heap.push(MergeCandidate(rank: m.rank, pos: Int32(i), left: Int32(ids[i]), right: Int32(ids[j]), merged: m.id))
        }
        for i in 0..<(n - 1) { push(i) }
        while let c = heap.pop() {
            let i = Int(c.pos)
            guard alive[i], ids[i] == Int(c.left) else { continue }
            let j = next[i]
            guard j < n, alive[j], ids[j] == Int(c.right) else { continue }
            ids[i] = Int(c.merged)
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0 { push(prev[i]) }
            push(i)
        }
        var out: [Int] = []
        var k = 0
        while k < n { out.append(ids[k]); k = next[k] }
        return out
    }
}

/// Open-addressing hash table from a pair key to (rank, merged id): the hottest lookup of encoding.
struct MergeTable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private let mask: Int
    private let shift: UInt64
    static let empty = UInt64.max

    init(capacityFor n: Int) {
        var cap = 16
        var bits: UInt64 = 4
        while cap < n * 2 + 16 { cap <<= 1; bits += 1 }
        keys = [UInt64](repeating: MergeTable.empty, count: cap)
        values = [UInt64](repeating: 0, count: cap)
        mask = cap - 1
        shift = 64 - bits
    }

    @inline(__always) private func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    mutating func insert(_ key: UInt64, rank: Int32, id: Int32) {
        var k = slot(key)
        while keys[k] != MergeTable.empty && keys[k] != key { k = (k + 1) & mask }
        keys[k] = key
        values[k] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: id))
    }

    @inline(__always) subscript(key: UInt64) -> (rank: Int32, id: Int32)? {
        var k = slot(key)
        while true {
            let x = keys[k]
            if x == key {
                let v = values[k]
                return (Int32(bitPattern: UInt32(truncatingIfNeeded: v >> 32)), Int32(bitPattern: UInt32(truncatingIfNeeded: v)))
            }
            if x == MergeTable.empty { return nil }
            k = (k + 1) & mask
        }
    }
}

struct MergeCandidate {
    let rank: Int32
    let pos: Int32
    let left: Int32
    let right: Int32
    let merged: Int32
    @inline(__always) static func < (a: MergeCandidate, b: MergeCandidate) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos
    }
}

/// A binary min-heap of merge candidates.
struct MergeHeap {
    private var a: [MergeCandidate] = []
    mutating func push(_ x: MergeCandidate) {
        a.append(x)
        var k = a.count - 1
        while k > 0 {
            let p = (k - 1) / 2
            if a[k] < a[p] { a.swapAt(k, p); k = p } else { break }
        }
    }
    mutating func pop() -> MergeCandidate? {
        guard let top = a.first else { return nil }
        let last = a.removeLast()
        if !a.isEmpty {
            a[0] = last
            var k = 0
            while true {
                let l = 2 * k + 1, r = l + 1
                var m = k
                if l < a.count && a[l] < a[m] { m = l }
                if r < a.count && a[r] < a[m] { m = r }
                if m == k { break }
                a.swapAt(k, m); k = m
            }
        }
        return top
    }
}
