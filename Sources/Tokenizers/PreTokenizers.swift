// Normalizers and pre-tokenizers of tokenizer.json, one type per `type`, built by factories.
//
// Text flows as `Piece`s: a piece is a run of text that later stages may split but never merge.
// `atStart` is true when the piece begins at offset 0 of the original input (Metaspace's
// prepend_scheme "first" only prepends there, as the `tokenizers` library does).

import Foundation
import StrictJSON

struct Piece {
    var text: String
    var atStart: Bool
}

// MARK: - normalizers

protocol Normalizer {
    func normalize(_ s: String) -> String
}

struct NFCNormalizer: Normalizer { func normalize(_ s: String) -> String { s.precomposedStringWithCanonicalMapping } }
struct NFDNormalizer: Normalizer { func normalize(_ s: String) -> String { s.decomposedStringWithCanonicalMapping } }
struct NFKCNormalizer: Normalizer { func normalize(_ s: String) -> String { s.precomposedStringWithCompatibilityMapping } }
struct NFKDNormalizer: Normalizer { func normalize(_ s: String) -> String { s.decomposedStringWithCompatibilityMapping } }

/// Per-scalar full lowercase mapping (no context rules, like Rust's `char::to_lowercase`).
struct LowercaseNormalizer: Normalizer {
    func normalize(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if u.value < 0x80 {
                out.append((u.value >= 0x41 && u.value <= 0x5A) ? Unicode.Scalar(u.value + 32)! : u) // programmer error: ASCII
            } else {
                out.append(contentsOf: u.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }
}

struct ReplaceNormalizer: Normalizer {
    let replacer: Replacer
    func normalize(_ s: String) -> String { replacer.apply(s) }
}

struct PrependNormalizer: Normalizer {
    let prepend: String
    func normalize(_ s: String) -> String { s.isEmpty ? s : prepend + s }
}

struct StripNormalizer: Normalizer {
    let left: Bool, right: Bool
    func normalize(_ s: String) -> String {
        var sc = Substring(s).unicodeScalars[...]
        if left { while let f = sc.first, f.properties.isWhitespace { sc.removeFirst() } }
        if right { while let l = sc.last, l.properties.isWhitespace { sc.removeLast() } }
        return String(String.UnicodeScalarView(sc))
    }
}

struct SequenceNormalizer: Normalizer {
    let items: [Normalizer]
    func normalize(_ s: String) -> String { items.reduce(s) { $1.normalize($0) } }
}

/// Replace with a literal string or a regex (`{"String": ...}` or `{"Regex": ...}`).
struct Replacer {
    let literal: String?
    let regex: NSRegularExpression?
    let content: String

    func apply(_ s: String) -> String {
        if let lit = literal { return lit.isEmpty ? s : s.replacingOccurrences(of: lit, with: content) }
        guard let re = regex else { return s }
        let ns = s as NSString
        return re.stringByReplacingMatches(in: s, options: [], range: NSRange(location: 0, length: ns.length),
                                           withTemplate: NSRegularExpression.escapedTemplate(for: content))
    }

    static func make(_ v: JSONValue, _ r: JSONReader, entry: String) throws -> Replacer {
        let content = try r.string(v, "content", in: entry)
        let p = v["pattern"]
        if let lit = p?["String"]?.stringValue { return Replacer(literal: lit, regex: nil, content: content) }
        if let re = p?["Regex"]?.stringValue {
            do { return Replacer(literal: nil, regex: try NSRegularExpression(pattern: re), content: content) } catch {
                throw r.fail("\(entry): regex '\(re)' is not supported by this build's regex engine")
            }
        }
        throw r.fail("\(entry): 'pattern' must be {\"String\": ...} or {\"Regex\": ...}, found \(describe(p))")
    }
}

func makeNormalizer(_ v: JSONValue?, _ r: JSONReader) throws -> Normalizer? {
    guard let v = v, !v.isNull else { return nil }
    let type = try r.string(v, "type", in: "normalizer")
    let entry = "normalizer '\(type)'"
    switch type {
    case "NFC": return NFCNormalizer()
    case "NFD": return NFDNormalizer()
    case "NFKC": return NFKCNormalizer()
    case "NFKD": return NFKDNormalizer()
    case "Lowercase": return LowercaseNormalizer()
    case "Replace": return ReplaceNormalizer(replacer: try Replacer.make(v, r, entry: entry))
    case "Prepend": return PrependNormalizer(prepend: try r.string(v, "prepend", in: entry))
    case "Strip":
        return StripNormalizer(left: try r.optBool(v, "strip_left", in: entry) ?? false,
                               right: try r.optBool(v, "strip_right", in: entry) ?? false)
    case "Sequence":
        let items = try r.array(v, "normalizers", in: entry)
        return SequenceNormalizer(items: try items.compactMap { try makeNormalizer($0, r) })
    default:
        throw r.fail("normalizer type '\(type)' is not supported")
    }
}

// MARK: - pre-tokenizers

protocol PreTokenizer {
    func split(_ pieces: [Piece]) -> [Piece]
}

/// The 256 byte -> printable character map of GPT-2's byte-level BPE.
enum ByteLevelMap {
    static let byteToChar: [Unicode.Scalar] = {
        var printable = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { printable[b] = true }
        for b in 0xA1...0xAC { printable[b] = true }
        for b in 0xAE...0xFF { printable[b] = true }
        var map = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if printable[b] { map[b] = Unicode.Scalar(UInt8(b)) } else {
                map[b] = Unicode.Scalar(next)! // programmer error: 256..<324 are valid scalars
                next += 1
            }
        }
        return map
    }()
    static let byteToString: [String] = byteToChar.map { String($0) }
    /// Scalar value -> byte, or -1.
    static let charToByte: [Int16] = {
        var t = [Int16](repeating: -1, count: 324)
        for (b, c) in byteToChar.enumerated() { t[Int(c.value)] = Int16(b) }
        return t
    }()

    static func encode(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for b in s.utf8 { out.append(byteToChar[Int(b)]) }
        return String(out)
    }
}

enum SplitBehavior: String {
    case removed, isolated, contiguous
    case mergedWithPrevious = "merged_with_previous"
    case mergedWithNext = "merged_with_next"

    static func parse(_ s: String) -> SplitBehavior? {
        switch s.lowercased() {
        case "removed": return .removed
        case "isolated": return .isolated
        case "contiguous": return .contiguous
        case "merged_with_previous", "mergedwithprevious": return .mergedWithPrevious
        case "merged_with_next", "mergedwithnext": return .mergedWithNext
        default: return nil
        }
    }
}

/// Splits each piece at the matches of `splitter` according to `behavior` (tokenizers' semantics).
func splitPieces(_ pieces: [Piece], _ splitter: RegexSplitter, _ behavior: SplitBehavior, invert: Bool) -> [Piece] {
    var out: [Piece] = []
    out.reserveCapacity(pieces.count * 4)
    for p in pieces {
        let buf = ScalarBuffer(p.text)
        let n = buf.scalars.count
        if n == 0 { continue }
        // Segments covering the piece: (scalar range, isDelimiter)
        var segs: [(Range<Int>, Bool)] = []
        var pos = 0
        for m in splitter.matches(buf.scalars) {
            if m.lowerBound > pos { segs.append((pos..<m.lowerBound, invert)) }
            segs.append((m, !invert))
            pos = m.upperBound
        }
        if pos < n { segs.append((pos..<n, invert)) }
        // Group segments into output ranges
        var ranges: [Range<Int>] = []
        switch behavior {
        case .removed:
            for (r, d) in segs where !d { ranges.append(r) }
        case .isolated:
            ranges = segs.map { $0.0 }
        case .contiguous:
            var prevDelim = false
            for (r, d) in segs {
                if d && prevDelim, let last = ranges.popLast() { ranges.append(last.lowerBound..<r.upperBound) } else { ranges.append(r) }
                prevDelim = d
            }
        case .mergedWithPrevious:
            var prevDelim = true
            for (r, d) in segs {
                if d && !prevDelim, let last = ranges.popLast() { ranges.append(last.lowerBound..<r.upperBound) } else { ranges.append(r) }
                prevDelim = d
            }
        case .mergedWithNext:
            var prevDelim = false
            for (r, d) in segs {
                if !d && prevDelim, let last = ranges.popLast() { ranges.append(last.lowerBound..<r.upperBound) } else { ranges.append(r) }
                prevDelim = d
            }
        }
        let utf8 = Array(p.text.utf8)
        for r in ranges where !r.isEmpty {
            let a = buf.offsets[r.lowerBound], b = buf.offsets[r.upperBound]
            out.append(Piece(text: String(decoding: utf8[a..<b], as: UTF8.self), atStart: p.atStart && a == 0))
        }
    }
    return out
}

struct ByteLevelPreTokenizer: PreTokenizer {
    let addPrefixSpace: Bool
    let useRegex: Bool
    static let gpt2 = KnownPatternSplitter(kind: .gpt2)

    func split(_ pieces: [Piece]) -> [Piece] {
        var ps = pieces
        if addPrefixSpace {
            for k in ps.indices where !ps[k].text.hasPrefix(" ") { ps[k].text = " " + ps[k].text }
        }
        if useRegex { ps = splitPieces(ps, Self.gpt2, .isolated, invert: false) }
        for k in ps.indices { ps[k].text = ByteLevelMap.encode(ps[k].text) }
        return ps
    }
}

struct SplitPreTokenizer: PreTokenizer {
    let splitter: RegexSplitter
    let behavior: SplitBehavior
    let invert: Bool
    func split(_ pieces: [Piece]) -> [Piece] { splitPieces(pieces, splitter, behavior, invert: invert) }
}

enum PrependScheme: String { case first, always, never }

struct MetaspacePreTokenizer: PreTokenizer {
    let replacement: Character
    let prependScheme: PrependScheme
    let splitWords: Bool

    func split(_ pieces: [Piece]) -> [Piece] {
        let rep = String(replacement)
        var out: [Piece] = []
        for p in pieces {
            var t = p.text.replacingOccurrences(of: " ", with: rep)
            if !t.isEmpty && !t.hasPrefix(rep) {
                if prependScheme == .always || (prependScheme == .first && p.atStart) { t = rep + t }
            }
            out.append(Piece(text: t, atStart: p.atStart))
        }
        guard splitWords, let u = rep.unicodeScalars.first else { return out }
        return splitPieces(out, LiteralSplitter(pattern: [u.value]), .mergedWithNext, invert: false)
    }
}

/// Digits: split runs of numeric characters (Rust `char::is_numeric`: Nd, Nl, No).
struct DigitsPreTokenizer: PreTokenizer {
    let individual: Bool
    struct NumericSplitter: RegexSplitter {
        func matches(_ s: [UInt32]) -> [Range<Int>] {
            var out: [Range<Int>] = []
            for (k, v) in s.enumerated() where CharClass.of(v) == CharClass.number { out.append(k..<(k + 1)) }
            return out
        }
    }
    func split(_ pieces: [Piece]) -> [Piece] {
        splitPieces(pieces, NumericSplitter(), individual ? .isolated : .contiguous, invert: false)
    }
}

struct SequencePreTokenizer: PreTokenizer {
    let items: [PreTokenizer]
    func split(_ pieces: [Piece]) -> [Piece] { items.reduce(pieces) { $1.split($0) } }
}

func makePreTokenizer(_ v: JSONValue?, _ r: JSONReader) throws -> PreTokenizer? {
    guard let v = v, !v.isNull else { return nil }
    let type = try r.string(v, "type", in: "pre_tokenizer")
    let entry = "pre_tokenizer '\(type)'"
    switch type {
    case "ByteLevel":
        return ByteLevelPreTokenizer(addPrefixSpace: try r.optBool(v, "add_prefix_space", in: entry) ?? true,
                                     useRegex: try r.optBool(v, "use_regex", in: entry) ?? true)
    case "Split":
        let bname = try r.string(v, "behavior", in: entry)
        guard let behavior = SplitBehavior.parse(bname) else { throw r.fail("\(entry): behavior '\(bname)' is not supported") }
        let invert = try r.optBool(v, "invert", in: entry) ?? false
        let p = v["pattern"]
        let splitter: RegexSplitter
        if let lit = p?["String"]?.stringValue {
            splitter = LiteralSplitter(pattern: lit.unicodeScalars.map { $0.value })
        } else if let re = p?["Regex"]?.stringValue {
            if let known = KnownPatternSplitter.forPattern(re) { splitter = known } else {
                do { splitter = try FoundationRegexSplitter(pattern: re) } catch {
                    throw r.fail("\(entry): regex '\(re)' is not supported by this build's regex engine")
                }
            }
        } else {
            throw r.fail("\(entry): 'pattern' must be {\"String\": ...} or {\"Regex\": ...}, found \(describe(p))")
        }
        return SplitPreTokenizer(splitter: splitter, behavior: behavior, invert: invert)
    case "Metaspace":
        let rep = try r.optString(v, "replacement", in: entry) ?? "\u{2581}"
        guard rep.count == 1, let ch = rep.first else { throw r.fail("\(entry): replacement must be one character, found '\(rep)'") }
        var scheme = PrependScheme.always
        if let s = try r.optString(v, "prepend_scheme", in: entry) {
            guard let ps = PrependScheme(rawValue: s) else { throw r.fail("\(entry): prepend_scheme '\(s)' is not one of first, always, never") }
            scheme = ps
        } else if let add = try r.optBool(v, "add_prefix_space", in: entry) {
            scheme = add ? .always : .never
        }
        return MetaspacePreTokenizer(replacement: ch, prependScheme: scheme, splitWords: try r.optBool(v, "split", in: entry) ?? true)
    case "Digits":
        return DigitsPreTokenizer(individual: try r.optBool(v, "individual_digits", in: entry) ?? false)
    case "Sequence":
        let items = try r.array(v, "pretokenizers", in: entry)
        return SequencePreTokenizer(items: try items.compactMap { try makePreTokenizer($0, r) })
    default:
        throw r.fail("pre_tokenizer type '\(type)' is not supported")
    }
}
