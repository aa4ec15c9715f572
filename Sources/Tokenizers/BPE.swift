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

import StrictJSON

final class BPEModel {
    let vocab: [String: Int]
    let idToToken: [Int: String]
    /// (left id << 32 | right id) -> (rank, merged id)
    let merges: [UInt64: (rank: Int32, id: Int32)]
    let unkId: Int?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let prefix: String
    /// byte -> id of "<0xXX>" (when byte_fallback)
    let byteTokenIds: [Int?]

    private var cache: [String: [Int]] = [:]
    private let cacheLimit = 200_000

    init(_ v: JSONValue, _ r: JSONReader) throws {
        let entry = "model 'BPE'"
        guard let pairs = v["vocab"]?.objectPairs else { throw r.fail("\(entry): 'vocab' must be an object") }
        var vocab: [String: Int] = [:]
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
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        merges.reserveCapacity(mergeList.count)
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
            if merges[key] == nil { merges[key] = (Int32(rank), Int32(im)) }
        }
        self.merges = merges
    }

    func tokenize(_ word: String, into out: inout [Int]) {
        if word.isEmpty { return }
        if let hit = cache[word] { out.append(contentsOf: hit); return }
        let ids = compute(word)
        if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[word] = ids
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
            let s = (first || prefix.isEmpty) ? String(u) : prefix + String(u)
            first = false
            if let id = vocab[s] { syms.append(id); lastWasUnk = false; continue }
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
        if syms.count > mergeScanLimit { return mergeWithHeap(syms) }
        // Merge loop: lowest rank first, leftmost on ties.
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

    /// Words longer than this many symbols merge through a heap (O(n log n)); the scan above is
    /// O(n^2) and would take hours on a million-letter word. Same result: lowest rank first, and
    /// on ties the leftmost pair, i.e. the one whose left symbol started earliest in the word.
    var mergeScanLimit = 64

    private struct Candidate: Comparable {
        var rank: Int32, pos: Int32, left: Int32, right: Int32, merged: Int32
        static func < (a: Candidate, b: Candidate) -> Bool { (a.rank, a.pos) < (b.rank, b.pos) }
    }

    private func mergeWithHeap(_ initial: [Int]) -> [Int] {
        var ids = initial.map { Int32(truncatingIfNeeded: $0) }   // ids < 2^31: vocab ids are checked on load
        let n = ids.count
        var next = (0..<n).map { Int32($0 + 1) }                 // n marks the end
        var prev = (0..<n).map { Int32($0 - 1) }                 // -1 marks the start
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap<Candidate>()
        func push(_ p: Int32) {
            let q = next[Int(p)]
            guard q < n else { return }
            let a = ids[Int(p)], b = ids[Int(q)]
            if let m = merges[UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))] {
                heap.push(Candidate(rank: m.rank, pos: p, left: a, right: b, merged: m.id))
            }
        }
        for p in 0..<(n - 1) { push(Int32(p)) }
        while let c = heap.pop() {
            let p = Int(c.pos)
            // Stale entries: the left symbol was merged away or changed, or its right neighbour changed.
            guard alive[p], ids[p] == c.left else { continue }
            let q = Int(next[p])
            guard q < n, ids[q] == c.right else { continue }
            ids[p] = c.merged
            alive[q] = false
            let r = next[q]
            next[p] = r
            if r < n { prev[Int(r)] = Int32(p) }
            if prev[p] >= 0 { push(prev[p]) }
            push(Int32(p))
        }
        var out: [Int] = []
        var p = 0
        while p < n { out.append(Int(ids[p])); p = Int(next[p]) }
        return out
    }
}

/// A binary min-heap (the standard library has none).
struct MinHeap<T: Comparable> {
    private var items: [T] = []
    mutating func push(_ x: T) {
        items.append(x)
        var k = items.count - 1
        while k > 0 {
            let parent = (k - 1) / 2
            if items[k] < items[parent] { items.swapAt(k, parent); k = parent } else { break }
        }
    }
    mutating func pop() -> T? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var k = 0
            while true {
                let l = 2 * k + 1, r = l + 1
                var m = k
                if l < items.count && items[l] < items[m] { m = l }
                if r < items.count && items[r] < items[m] { m = r }
                if m == k { break }
                items.swapAt(k, m); k = m
            }
        }
        return top
    }
}
