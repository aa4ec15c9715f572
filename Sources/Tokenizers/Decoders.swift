// Decoders and post-processors of tokenizer.json.
//
// A decoder maps the list of token strings to a list of strings (joined at the end), like the
// `tokenizers` library's decode_chain, so that Sequence can chain them.

import StrictJSON

protocol Decoder {
    func decode(_ tokens: [String]) -> [String]
}

/// Bytes of every token, through the GPT-2 char -> byte map; a token with a character outside the
/// map contributes its own UTF-8 bytes. Invalid UTF-8 becomes U+FFFD.
struct ByteLevelDecoder: Decoder {
    func decode(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        for t in tokens {
            let start = bytes.count
            var ok = true
            for u in t.unicodeScalars {
                let v = Int(u.value)
                if v < ByteLevelMap.charToByte.count, ByteLevelMap.charToByte[v] >= 0 {
                    bytes.append(UInt8(ByteLevelMap.charToByte[v]))
                } else { ok = false; break }
            }
            if !ok { bytes.removeSubrange(start...); bytes.append(contentsOf: t.utf8) }
        }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

struct MetaspaceDecoder: Decoder {
    let replacement: Character
    let prependScheme: PrependScheme
    func decode(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { (i, t) in
            var s = ""
            for c in t {
                if c == replacement {
                    if i == 0 && prependScheme != .never { continue }
                    s.append(" ")
                } else { s.append(c) }
            }
            return s
        }
    }
}

/// Runs of <0xXX> tokens become their bytes when those are valid UTF-8, else one U+FFFD per byte.
struct ByteFallbackDecoder: Decoder {
    static func byteValue(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }
    func decode(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var pending: [UInt8] = []
        func flush() {
            if pending.isEmpty { return }
            if let s = String(validating: pending, as: UTF8.self) { out.append(s) } else {
                for _ in pending { out.append("\u{FFFD}") }
            }
            pending.removeAll()
        }
        for t in tokens {
            if let b = Self.byteValue(t) { pending.append(b) } else { flush(); out.append(t) }
        }
        flush()
        return out
    }
}

struct FuseDecoder: Decoder {
    func decode(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

struct StripDecoder: Decoder {
    let content: Character
    let start: Int, stop: Int
    func decode(_ tokens: [String]) -> [String] {
        tokens.map { t in
            var s = Substring(t)
            var k = 0
            while k < start, s.first == content { s.removeFirst(); k += 1 }
            k = 0
            while k < stop, s.last == content { s.removeLast(); k += 1 }
            return String(s)
        }
    }
}

struct ReplaceDecoder: Decoder {
    let replacer: Replacer
    func decode(_ tokens: [String]) -> [String] { tokens.map { replacer.apply($0) } }
}

struct SequenceDecoder: Decoder {
    let items: [Decoder]
    func decode(_ tokens: [String]) -> [String] { items.reduce(tokens) { $1.decode($0) } }
}

func makeDecoder(_ v: JSONValue?, _ r: JSONReader) throws -> Decoder? {
    guard let v = v, !v.isNull else { return nil }
    let type = try r.string(v, "type", in: "decoder")
    let entry = "decoder '\(type)'"
    switch type {
    case "ByteLevel": return ByteLevelDecoder()
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
        return MetaspaceDecoder(replacement: ch, prependScheme: scheme)
    case "ByteFallback": return ByteFallbackDecoder()
    case "Fuse": return FuseDecoder()
    case "Strip":
        let c = try r.string(v, "content", in: entry)
        guard c.count == 1, let ch = c.first else { throw r.fail("\(entry): content must be one character, found '\(c)'") }
        return StripDecoder(content: ch, start: try r.optInt(v, "start", in: entry) ?? 0, stop: try r.optInt(v, "stop", in: entry) ?? 0)
    case "Replace": return ReplaceDecoder(replacer: try Replacer.make(v, r, entry: entry))
    case "Sequence":
        let items = try r.array(v, "decoders", in: entry)
        return SequenceDecoder(items: try items.compactMap { try makeDecoder($0, r) })
    default:
        throw r.fail("decoder type '\(type)' is not supported")
    }
}

// MARK: - post-processors

/// What a post-processor adds around a single sequence when add_special_tokens is on. Every
/// supported post-processor wraps the sequence: prefix + ids + suffix.
protocol PostProcessor {
    var prefix: [Int] { get }
    var suffix: [Int] { get }
}

extension PostProcessor {
    func process(_ ids: [Int]) -> [Int] { prefix + ids + suffix }
}

/// TemplateProcessing (single template), RobertaProcessing/BertProcessing (cls, sep), ByteLevel (none).
struct WrapPostProcessor: PostProcessor {
    let prefix: [Int], suffix: [Int]
}

struct SequencePostProcessor: PostProcessor {
    let items: [PostProcessor]
    var prefix: [Int] { items.reduce([]) { $1.prefix + $0 } }
    var suffix: [Int] { items.reduce([]) { $0 + $1.suffix } }
}

func makePostProcessor(_ v: JSONValue?, _ r: JSONReader) throws -> PostProcessor? {
    guard let v = v, !v.isNull else { return nil }
    let type = try r.string(v, "type", in: "post_processor")
    let entry = "post_processor '\(type)'"
    switch type {
    case "ByteLevel": return WrapPostProcessor(prefix: [], suffix: [])
    case "TemplateProcessing":
        let single = try r.array(v, "single", in: entry)
        let specials = v["special_tokens"]
        var prefix: [Int] = [], suffix: [Int] = []
        var seenSequence = false
        for it in single {
            if let seq = it["Sequence"] {
                let which = try r.string(seq, "id", in: "\(entry) single")
                guard which == "A", !seenSequence else { throw r.fail("\(entry): single template uses sequence '\(which)', expected one 'A'") }
                seenSequence = true
            } else if let sp = it["SpecialToken"] {
                let name = try r.string(sp, "id", in: "\(entry) single")
                guard let def = specials?[name] else { throw r.fail("\(entry): special token '\(name)' is not in special_tokens") }
                guard let ids = def["ids"]?.intArray else { throw r.fail("\(entry): special_tokens '\(name)' has no integer 'ids'") }
                if seenSequence { suffix += ids } else { prefix += ids }
            } else {
                throw r.fail("\(entry): template item must be Sequence or SpecialToken, found \(describe(it))")
            }
        }
        guard seenSequence else { throw r.fail("\(entry): single template has no Sequence 'A'") }
        return WrapPostProcessor(prefix: prefix, suffix: suffix)
    case "RobertaProcessing", "BertProcessing":
        func idOf(_ key: String) throws -> Int {
            guard let a = v[key]?.arrayValue, a.count == 2, let id = a[1].intValue else {
                throw r.fail("\(entry): '\(key)' must be [token, id]")
            }
            return id
        }
        return WrapPostProcessor(prefix: [try idOf("cls")], suffix: [try idOf("sep")])
    case "Sequence":
        let items = try r.array(v, "processors", in: entry)
        return SequencePostProcessor(items: try items.compactMap { try makePostProcessor($0, r) })
    default:
        throw r.fail("post_processor type '\(type)' is not supported")
    }
}
