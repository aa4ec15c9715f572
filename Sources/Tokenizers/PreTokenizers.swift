// Normalizers and pre-tokenizers of tokenizer.json, one type per `type`, built by factories.
//
// Text flows as `Piece`s: a piece is a run of text that later stages may split but never merge.
// Metaspace's prepend_scheme "first" prepends only to pieces whose offset in the original input is
// 0, as the `tokenizers` library does. Normalization can expand the first character (NFKC turns
// "½" into "1⁄2", all three aligned to original offset 0), so a piece records `startSpan`: how many
// of its leading UTF-8 bytes come from the original offset 0 (0 for pieces that start later).

import Foundation
import StrictJSON

struct Piece {
    var text: String
    var startSpan: Int
    var atStart: Bool { startSpan > 0 }

    init(text: String, startSpan: Int) { self.text = text; self.startSpan = startSpan }

    /// A piece of the original input; `atStart` when it begins at offset 0.
    init(original text: String, atStart: Bool) {
        self.text = text
        self.startSpan = atStart ? (text.unicodeScalars.first.map { UTF8.width($0) } ?? 0) : 0
    }
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
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            if u.value < 0x80 {
                let v = UInt8(u.value)
                out.append(v >= 0x41 && v <= 0x5A ? v + 32 : v)
            } else {
                out.append(contentsOf: u.properties.lowercaseMapping.utf8)
            }
        }
        return String(decoding: out, as: UTF8.self)
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

/// Replaces every occurrence of `pattern` (byte comparison, no Unicode equivalence; UTF-8 is
/// self-synchronising, so byte matches of a valid pattern fall on scalar boundaries).
func replaceLiteral(_ s: String, _ pattern: String, _ with: String) -> String {
    let p = Array(pattern.utf8)
    guard let p0 = p.first else { return s }
    let w = Array(with.utf8)
    var src = s
    return src.withUTF8 { b -> String in
        var out: [UInt8] = []
        out.reserveCapacity(b.count + b.count / 2)
        var i = 0
        var changed = false
        let n = b.count
        while i < n {
            if b[i] == p0 && i + p.count <= n {
                var ok = true
                var k = 1
                while k < p.count { if b[i + k] != p[k] { ok = false; break }; k += 1 }
                if ok { out.append(contentsOf: w); i += p.count; changed = true; continue }
            }
            out.append(b[i]); i += 1
        }
        return changed ? String(decoding: out, as: UTF8.self) : s
    }
}

/// Replace with a literal string or a regex (`{"String": ...}` or `{"Regex": ...}`).
struct Replacer {
    let literal: String?
    let regex: NSRegularExpression?
    let content: String

    func apply(_ s: String) -> String {
        if let lit = literal { return replaceLiteral(s, lit, content) }
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

    /// UTF-8 of each mapped character
    static let byteToUTF8: [[UInt8]] = byteToChar.map { Array(String($0).utf8) }

    static func encode(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count * 2)
        for b in s.utf8 {
            if b >= 0x21 && b <= 0x7E { out.append(b) } else { out.append(contentsOf: byteToUTF8[Int(b)]) }
        }
        return String(decoding: out, as: UTF8.self)
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
            out.append(Piece(text: String(decoding: utf8[a..<b], as: UTF8.self), startSpan: p.startSpan > a ? p.startSpan - a : 0))
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
            for k in ps.indices where !ps[k].text.hasPrefix(" ") {
                ps[k].text = " " + ps[k].text
                if ps[k].startSpan > 0 { ps[k].startSpan += 1 }
            }
        }
        if useRegex { ps = splitPieces(ps, Self.gpt2, .isolated, invert: false) }
        for k in ps.indices {
            if ps[k].startSpan > 0 {
                ps[k].startSpan = ps[k].text.utf8.prefix(ps[k].startSpan).reduce(0) { $0 + ByteLevelMap.byteToUTF8[Int($1)].count }
            }
            ps[k].text = ByteLevelMap.encode(ps[k].text)
        }
        return ps
    }
}

struct SplitPreTokenizer: PreTokenizer {
    let splitter: RegexSplitter
    let behavior: SplitBehavior
    let invert: Bool
    var dropUnmatched = false
    func split(_ pieces: [Piece]) -> [Piece] {
        // Whitespace keeps only the matches: that is Split with the matches inverted into "removed" gaps
        if dropUnmatched { return splitPieces(pieces, splitter, .removed, invert: true) }
        return splitPieces(pieces, splitter, behavior, invert: invert)
    }
}

/// \w+|[^\w\s]+ (Rust regex \w: Alphabetic, marks, decimal digits Nd, connector punctuation,
/// Join_Control; "²" (No) is not a word character).
struct WordSplitter: RegexSplitter {
    static func isWord(_ v: UInt32) -> Bool {
        if v < 0x80 { return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F }
        guard let u = Unicode.Scalar(v) else { return false }
        let p = u.properties
        if p.isAlphabetic { return true }
        switch p.generalCategory {
        case .decimalNumber, .nonspacingMark, .spacingMark, .enclosingMark, .connectorPunctuation: return true
        default: return p.isJoinControl
        }
    }
    func matches(_ s: [UInt32]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < s.count {
            if CharClass.of(s[i]) == CharClass.space { i += 1; continue }
            let w = Self.isWord(s[i])
            var e = i + 1
            while e < s.count && CharClass.of(s[e]) != CharClass.space && Self.isWord(s[e]) == w { e += 1 }
            out.append(i..<e)
            i = e
        }
        return out
    }
}

/// Runs of whitespace (WhitespaceSplit removes them).
struct WhitespaceRunSplitter: RegexSplitter {
    func matches(_ s: [UInt32]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < s.count {
            guard CharClass.of(s[i]) == CharClass.space else { i += 1; continue }
            var e = i + 1
            while e < s.count && CharClass.of(s[e]) == CharClass.space { e += 1 }
            out.append(i..<e)
            i = e
        }
        return out
    }
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
            var t = replaceLiteral(p.text, " ", rep)
            var span = 0
            if p.startSpan > 0 {
                span = replaceLiteral(String(decoding: p.text.utf8.prefix(p.startSpan), as: UTF8.self), " ", rep).utf8.count
            }
            if !t.isEmpty && !t.hasPrefix(rep) {
                if prependScheme == .always || (prependScheme == .first && p.atStart) {
                    t = rep + t
                    if span > 0 { span += rep.utf8.count }
                }
            }
            out.append(Piece(text: t, startSpan: span))
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
    case "Whitespace":
        // \w+|[^\w\s]+ , each match a piece, the rest (whitespace) removed
        return SplitPreTokenizer(splitter: WordSplitter(), behavior: .isolated, invert: false, dropUnmatched: true)
    case "WhitespaceSplit":
        return SplitPreTokenizer(splitter: WhitespaceRunSplitter(), behavior: .removed, invert: false, dropUnmatched: false)
    case "Sequence":
        let items = try r.array(v, "pretokenizers", in: entry)
        return SequencePreTokenizer(items: try items.compactMap { try makePreTokenizer($0, r) })
    default:
        throw r.fail("pre_tokenizer type '\(type)' is not supported")
    }
}
