// Hand-written matchers for the pre-tokenizer regexes that real checkpoints use (GPT-2, Llama-3,
// Qwen2), plus an NSRegularExpression fallback for any other pattern.
//
// The known patterns are matched with the same leftmost-first alternation semantics as Oniguruma
// (what the `tokenizers` library uses):
//   GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   Llama-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   Qwen2:   the Llama-3 pattern with \p{N} instead of \p{N}{1,3}
// A matcher works on the Unicode scalars of a piece and returns match ranges in UTF-8 byte offsets.

import Foundation

/// Character classes used by the patterns: \p{L}, \p{N}, \s (Unicode White_Space).
enum CharClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4

    /// Classes of every scalar below 0x30000, computed once.
    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 0x30000)
        for v in 0..<0x30000 {
            if let u = Unicode.Scalar(UInt32(v)) { t[v] = compute(u) }
        }
        return t
    }()

    static func compute(_ u: Unicode.Scalar) -> UInt8 {
        let p = u.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return 0
        }
    }

    @inline(__always) static func of(_ v: UInt32) -> UInt8 {
        if v < 0x80 {
            // ASCII fast path
            if (v >= 0x61 && v <= 0x7A) || (v >= 0x41 && v <= 0x5A) { return letter }
            if v >= 0x30 && v <= 0x39 { return number }
            if v == 0x20 || (v >= 0x09 && v <= 0x0D) { return space }
            return 0
        }
        if v < 0x30000 { return table[Int(v)] }
        if let u = Unicode.Scalar(v) { return compute(u) }
        return 0
    }
}

/// Decoded scalars of a UTF-8 string with their byte offsets (offsets has count+1 entries).
struct ScalarBuffer {
    var scalars: [UInt32] = []
    var offsets: [Int] = []
    init(_ s: String) {
        scalars.reserveCapacity(s.utf8.count)
        offsets.reserveCapacity(s.utf8.count + 1)
        var off = 0
        for u in s.unicodeScalars {
            scalars.append(u.value)
            offsets.append(off)
            off += UTF8.width(u)
        }
        offsets.append(off)
    }
}

protocol RegexSplitter {
    /// Match ranges (in scalar indices, ascending, non-overlapping) over `s`.
    func matches(_ s: [UInt32]) -> [Range<Int>]
}

/// The three known patterns share most of their structure; `kind` picks the variant.
struct KnownPatternSplitter: RegexSplitter {
    enum Kind { case gpt2, llama3, qwen2 }
    let kind: Kind

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    static func forPattern(_ p: String) -> KnownPatternSplitter? {
        switch p {
        case gpt2Pattern: return KnownPatternSplitter(kind: .gpt2)
        case llama3Pattern: return KnownPatternSplitter(kind: .llama3)
        case qwen2Pattern: return KnownPatternSplitter(kind: .qwen2)
        default: return nil
        }
    }

    /// Length of a contraction ('s 't 're 've 'm 'll 'd) at i, or 0.
    @inline(__always) func contraction(_ s: [UInt32], _ i: Int, caseInsensitive: Bool) -> Int {
        let n = s.count
        guard s[i] == 0x27, i + 1 < n else { return 0 }
        func lower(_ c: UInt32) -> UInt32 {
            if caseInsensitive && c >= 0x41 && c <= 0x5A { return c + 32 }
            return c
        }
        let c1 = lower(s[i + 1])
        switch c1 {
        case 0x73, 0x74, 0x6D, 0x64: return 2 // s t m d
        case 0x72, 0x76: // r v -> 're 've
            if i + 2 < n && lower(s[i + 2]) == 0x65 { return 3 }
            return 0
        case 0x6C: // l -> 'll
            if i + 2 < n && lower(s[i + 2]) == 0x6C { return 3 }
            return 0
        default: return 0
        }
    }

    func matches(_ s: [UInt32]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(s.count / 3 + 1)
        let n = s.count
        var i = 0
        @inline(__always) func cls(_ k: Int) -> UInt8 { CharClass.of(s[k]) }
        @inline(__always) func isOther(_ k: Int) -> Bool { cls(k) == 0 }
        @inline(__always) func isCRLF(_ k: Int) -> Bool { s[k] == 0x0D || s[k] == 0x0A }
        while i < n {
            let start = i
            var end = -1
            // 1. contractions
            let c = contraction(s, i, caseInsensitive: kind != .gpt2)
            if c > 0 { end = i + c }
            if end < 0 {
                switch kind {
                case .gpt2:
                    let j = s[i] == 0x20 ? i + 1 : i
                    if j < n {
                        let k = cls(j)
                        if k == CharClass.letter || k == CharClass.number {
                            var e = j + 1
                            while e < n && cls(e) == k { e += 1 }
                            end = e
                        } else if k == 0 {
                            var e = j + 1
                            while e < n && isOther(e) { e += 1 }
                            end = e
                        }
                    }
                case .llama3, .qwen2:
                    let k0 = cls(i)
                    // [^\r\n\p{L}\p{N}]?\p{L}+
                    if k0 == CharClass.letter {
                        var e = i + 1
                        while e < n && cls(e) == CharClass.letter { e += 1 }
                        end = e
                    } else if k0 != CharClass.number && !isCRLF(i) && i + 1 < n && cls(i + 1) == CharClass.letter {
                        var e = i + 2
                        while e < n && cls(e) == CharClass.letter { e += 1 }
                        end = e
                    } else if k0 == CharClass.number {
                        // \p{N}{1,3} or \p{N}
                        let maxRun = kind == .llama3 ? 3 : 1
                        var e = i + 1
                        while e < n && e - i < maxRun && cls(e) == CharClass.number { e += 1 }
                        end = e
                    } else {
                        //  ?[^\s\p{L}\p{N}]+[\r\n]*
                        let j = s[i] == 0x20 ? i + 1 : i
                        if j < n && isOther(j) {
                            var e = j + 1
                            while e < n && isOther(e) { e += 1 }
                            while e < n && isCRLF(e) { e += 1 }
                            end = e
                        }
                    }
                }
            }
            if end < 0 {
                // whitespace alternatives; here s[i] must be whitespace (every other scalar matched above)
                var e = i
                while e < n && cls(e) == CharClass.space { e += 1 }
                if e == i {
                    // cannot happen for these patterns (all classes are covered); take one scalar
                    end = i + 1
                } else {
                    if kind != .gpt2 {
                        // \s*[\r\n]+ : ends right after the last CR/LF of the run
                        var lastNL = -1
                        for k in i..<e where isCRLF(k) { lastNL = k }
                        if lastNL >= 0 { end = lastNL + 1 }
                    }
                    if end < 0 {
                        if e == n { end = e }            // \s+(?!\S) at the end of the text
                        else if e - i > 1 { end = e - 1 } // leave the last space for the next word
                        else { end = e }                  // \s+
                    }
                }
            }
            out.append(start..<end)
            i = end
        }
        return out
    }
}

/// Any other pattern: NSRegularExpression (ICU syntax, close to Oniguruma for usual patterns).
final class FoundationRegexSplitter: RegexSplitter {
    let regex: NSRegularExpression
    init(pattern: String) throws {
        regex = try NSRegularExpression(pattern: pattern, options: [])
    }
    func matches(_ s: [UInt32]) -> [Range<Int>] {
        var str = String.UnicodeScalarView()
        for v in s { if let u = Unicode.Scalar(v) { str.append(u) } }
        let text = String(str)
        let ns = text as NSString
        // UTF-16 offsets -> scalar indices
        var utf16ToScalar = [Int](repeating: 0, count: ns.length + 1)
        var u16 = 0
        for (k, v) in s.enumerated() {
            utf16ToScalar[u16] = k
            u16 += v > 0xFFFF ? 2 : 1
        }
        utf16ToScalar[u16] = s.count
        var out: [Range<Int>] = []
        regex.enumerateMatches(in: text, options: [], range: NSRange(location: 0, length: ns.length)) { m, _, _ in
            guard let r = m?.range, r.length > 0 else { return }
            out.append(utf16ToScalar[r.location]..<utf16ToScalar[r.location + r.length])
        }
        return out
    }
}

/// Literal string pattern (Split with {"String": " "}).
struct LiteralSplitter: RegexSplitter {
    let pattern: [UInt32]
    func matches(_ s: [UInt32]) -> [Range<Int>] {
        guard !pattern.isEmpty, s.count >= pattern.count else { return [] }
        var out: [Range<Int>] = []
        var i = 0
        while i + pattern.count <= s.count {
            var ok = s[i] == pattern[0]
            if ok { for k in 1..<pattern.count where s[i + k] != pattern[k] { ok = false; break } }
            if ok {
                out.append(i..<(i + pattern.count)); i += pattern.count
            } else { i += 1 }
        }
        return out
    }
}
