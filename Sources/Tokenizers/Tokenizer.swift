// A tokenizer built from tokenizer.json (+ tokenizer_config.json), as a pipeline of the stages of
// that format (huggingface `tokenizers`):
//
//   text -> added tokens (non-normalized) -> normalizer -> added tokens (normalized)
//        -> pre-tokenizer -> model (BPE) -> post-processor (BOS/EOS)        = ids
//   ids  -> token strings (special ones skipped on request) -> decoder       = text
//
// Added tokens are matched leftmost-longest on the text, with their lstrip/rstrip/single_word flags,
// before the model sees anything; `normalized` ones are matched on the normalized text.

import Foundation
import StrictJSON

public final class Tokenizer {
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: BPEModel
    let postProcessor: PostProcessor?
    let decoder: Decoder?
    let added: AddedTokens

    /// id -> token string for every id (model vocabulary and added tokens)
    private let idToTokenTable: [Int: String]
    private let tokenToIdTable: ExactStringMap<Int>
    private let specialIds: Set<Int>

    public var bosTokenId: Int?
    public var eosTokenIds: [Int]
    public var vocabSize: Int
    public var chatTemplate: ChatTemplate?
    /// Special token strings from tokenizer_config.json (bos_token, eos_token, unk_token, pad_token),
    /// available to chat templates as variables.
    public var specialTokenStrings: [String: String] = [:]

    /// Loads `tokenizer.json`, and `tokenizer_config.json`, `chat_template.jinja` and
    /// `generation_config.json` (extra eos ids) when present, from a model folder.
    public convenience init(directory: String) throws {
        let dir = URL(fileURLWithPath: directory)
        let tjPath = dir.appendingPathComponent("tokenizer.json").path
        guard FileManager.default.fileExists(atPath: tjPath) else {
            throw TokenizerError("\(directory): no tokenizer.json in this folder")
        }
        guard let tj = FileManager.default.contents(atPath: tjPath) else { throw TokenizerError("\(tjPath): cannot read the file") }
        let cfgPath = dir.appendingPathComponent("tokenizer_config.json").path
        let cfg = FileManager.default.contents(atPath: cfgPath).map { [UInt8]($0) }
        try self.init(tokenizerJSON: [UInt8](tj), configJSON: cfg)
        let jinjaPath = dir.appendingPathComponent("chat_template.jinja").path
        if let t = FileManager.default.contents(atPath: jinjaPath) {
            guard let s = String(data: t, encoding: .utf8) else { throw TokenizerError("chat_template.jinja: not valid UTF-8") }
            chatTemplate = try ChatTemplate(source: s, file: "chat_template.jinja")
        }
        let genPath = dir.appendingPathComponent("generation_config.json").path
        if let g = FileManager.default.contents(atPath: genPath) {
            let v: JSONValue
            do { v = try JSONValue.parse(data: [UInt8](g)) } catch { throw TokenizerError("generation_config.json: \(error)") }
            var extra: [Int] = []
            if let e = v["eos_token_id"] {
                if let i = e.intValue { extra = [i] } else if let a = e.intArray { extra = a } else if !e.isNull {
                    throw TokenizerError("generation_config.json: eos_token_id must be an integer or a list, found \(describe(e))")
                }
            }
            for i in extra where !eosTokenIds.contains(i) { eosTokenIds.append(i) }
        }
    }

    public init(tokenizerJSON: [UInt8], configJSON: [UInt8]?) throws {
        let r = JSONReader(file: "tokenizer.json")
        let root: JSONValue
        do { root = try JSONValue.parse(data: tokenizerJSON) } catch { throw TokenizerError("tokenizer.json: \(error)") }
        guard root.objectPairs != nil else { throw r.fail("top level must be an object") }
        guard let modelV = root["model"], !modelV.isNull else { throw r.fail("missing 'model'") }
        let mtype = try r.optString(modelV, "type", in: "model") ?? (modelV["merges"] != nil ? "BPE" : "")
        guard mtype == "BPE" else { throw r.fail("model type '\(mtype)' is not supported (only BPE)") }
        model = try BPEModel(modelV, r)
        normalizer = try makeNormalizer(root["normalizer"], r)
        preTokenizer = try makePreTokenizer(root["pre_tokenizer"], r)
        postProcessor = try makePostProcessor(root["post_processor"], r)
        decoder = try makeDecoder(root["decoder"], r)

        var addedList: [AddedToken] = []
        if let a = root["added_tokens"], !a.isNull {
            guard let arr = a.arrayValue else { throw r.fail("'added_tokens' must be an array") }
            for (k, t) in arr.enumerated() {
                let entry = "added_tokens[\(k)]"
                guard let id = try r.optInt(t, "id", in: entry), id >= 0 else { throw r.fail("\(entry): 'id' must be a non-negative integer") }
                let content = try r.string(t, "content", in: entry)
                guard !content.isEmpty else { throw r.fail("\(entry): empty 'content'") }
                addedList.append(AddedToken(id: id, content: content,
                                            singleWord: try r.optBool(t, "single_word", in: entry) ?? false,
                                            lstrip: try r.optBool(t, "lstrip", in: entry) ?? false,
                                            rstrip: try r.optBool(t, "rstrip", in: entry) ?? false,
                                            normalized: try r.optBool(t, "normalized", in: entry) ?? true,
                                            special: try r.optBool(t, "special", in: entry) ?? false))
            }
        }
        added = AddedTokens(addedList, normalizer: normalizer)

        var i2t = model.idToToken
        var t2i = model.vocab
        var specials = Set<Int>()
        for a in addedList {
            // normalized added tokens report their normalized form (as the tokenizers library does)
            i2t[a.id] = a.normalized ? (normalizer?.normalize(a.content) ?? a.content) : a.content
            t2i[a.content] = a.id
            if a.special { specials.insert(a.id) }
        }
        idToTokenTable = i2t
        tokenToIdTable = t2i
        specialIds = specials
        vocabSize = (i2t.keys.max() ?? -1) + 1
        eosTokenIds = []

        // tokenizer_config.json
        if let cfgBytes = configJSON {
            let cr = JSONReader(file: "tokenizer_config.json")
            let cfg: JSONValue
            do { cfg = try JSONValue.parse(data: cfgBytes) } catch { throw TokenizerError("tokenizer_config.json: \(error)") }
            func tokenString(_ key: String) throws -> String? {
                guard let v = cfg[key], !v.isNull else { return nil }
                if let s = v.stringValue { return s }
                if let s = v["content"]?.stringValue { return s } // {"__type": "AddedToken", "content": ...}
                throw cr.fail("'\(key)' must be a string or an AddedToken object, found \(describe(v))")
            }
            for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
                if let s = try tokenString(key) { specialTokenStrings[key] = s }
            }
            if let b = specialTokenStrings["bos_token"] {
                guard let id = t2i[b] else { throw cr.fail("bos_token '\(b)' is not in the vocabulary of tokenizer.json") }
                bosTokenId = id
            }
            if let e = specialTokenStrings["eos_token"] {
                guard let id = t2i[e] else { throw cr.fail("eos_token '\(e)' is not in the vocabulary of tokenizer.json") }
                eosTokenIds = [id]
            }
            if let ct = cfg["chat_template"], !ct.isNull {
                if let s = ct.stringValue {
                    chatTemplate = try ChatTemplate(source: s, file: "tokenizer_config.json chat_template")
                } else if let list = ct.arrayValue {
                    // [{"name": "default", "template": ...}, ...]: use "default"
                    var chosen: String?
                    for item in list where item["name"]?.stringValue == "default" { chosen = item["template"]?.stringValue }
                    guard let s = chosen else { throw cr.fail("chat_template list has no entry named 'default'") }
                    chatTemplate = try ChatTemplate(source: s, file: "tokenizer_config.json chat_template")
                } else {
                    throw cr.fail("'chat_template' must be a string or a list of {name, template}, found \(describe(ct))")
                }
            }
        }
    }

    // MARK: encoding

    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        for seg in added.split(text, normalizer: normalizer) {
            switch seg {
            case .token(let id, _): ids.append(id)
            case .text(let piece):
                var pieces = [piece]
                if let pt = preTokenizer { pieces = pt.split(pieces) }
                for p in pieces { model.tokenize(p.text, into: &ids) }
            }
        }
        if addSpecialTokens, let pp = postProcessor { ids = pp.process(ids) }
        return ids
    }

    /// Ids with their token strings as the `tokenizers` library reports them (`Encoding.tokens`):
    /// vocabulary strings for model tokens, the matched text for added tokens.
    public func encodeWithTokens(_ text: String, addSpecialTokens: Bool = true) -> (ids: [Int], tokens: [String]) {
        var ids: [Int] = []
        var toks: [String] = []
        for seg in added.split(text, normalizer: normalizer) {
            switch seg {
            case .token(let id, let matched): ids.append(id); toks.append(matched)
            case .text(let piece):
                var pieces = [piece]
                if let pt = preTokenizer { pieces = pt.split(pieces) }
                for p in pieces {
                    let before = ids.count
                    model.tokenize(p.text, into: &ids)
                    for id in ids[before...] { toks.append(idToTokenTable[id] ?? "") }
                }
            }
        }
        guard addSpecialTokens, let pp = postProcessor else { return (ids, toks) }
        let pre = pp.prefix, post = pp.suffix
        return (pre + ids + post, pre.map { idToTokenTable[$0] ?? "" } + toks + post.map { idToTokenTable[$0] ?? "" })
    }

    /// Token strings of `ids` (the vocabulary form, e.g. "Ġworld" or "▁world").
    public func tokens(_ ids: [Int]) -> [String] { ids.map { idToTokenTable[$0] ?? "" } }

    public func tokenToId(_ s: String) -> Int? { tokenToIdTable[s] }
    public func idToToken(_ id: Int) -> String? { idToTokenTable[id] }
    public func isSpecial(_ id: Int) -> Bool { specialIds.contains(id) }

    // MARK: decoding

    /// Unknown ids are skipped (as the `tokenizers` library does).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var toks: [String] = []
        toks.reserveCapacity(ids.count)
        for id in ids {
            if skipSpecialTokens && specialIds.contains(id) { continue }
            if let t = idToTokenTable[id] { toks.append(t) }
        }
        guard let d = decoder else { return toks.joined(separator: " ") }
        return d.decode(toks).joined()
    }

    // MARK: chat

    /// Renders the chat template with `messages` (each a dictionary with "role" and "content").
    public func applyChatTemplate(messages: [[String: String]], addGenerationPrompt: Bool) throws -> String {
        guard let t = chatTemplate else {
            throw TokenizerError("tokenizer_config.json: this tokenizer has no chat_template")
        }
        var vars: [String: JinjaValue] = [:]
        for (k, v) in specialTokenStrings { vars[k] = .string(v) }
        vars["add_generation_prompt"] = .bool(addGenerationPrompt)
        // transformers passes tools=None and documents=None when there are none
        vars["tools"] = JinjaValue.none
        vars["documents"] = JinjaValue.none
        // role and content first (the order Python dicts of messages usually have), then the rest
        func rank(_ k: String) -> Int { k == "role" ? 0 : (k == "content" ? 1 : 2) }
        vars["messages"] = .array(messages.map { m in
            .dict(m.sorted { (rank($0.key), $0.key) < (rank($1.key), $1.key) }.map { ($0.key, JinjaValue.string($0.value)) })
        })
        return try t.render(vars)
    }
}

// MARK: - added tokens

struct AddedToken {
    let id: Int
    let content: String
    let singleWord: Bool
    let lstrip: Bool
    let rstrip: Bool
    let normalized: Bool
    let special: Bool
}

enum Segment {
    case token(Int, String)
    case text(Piece)
}

/// Leftmost-longest matching of added tokens over UTF-8 bytes (like the aho-corasick matcher the
/// `tokenizers` library uses, with its flags).
struct AddedTokens {
    struct Pattern { let bytes: [UInt8]; let token: AddedToken }
    /// first byte -> patterns, longest first
    let raw: [[Pattern]]
    let normalized: [[Pattern]]
    let hasRaw: Bool, hasNormalized: Bool

    init(_ tokens: [AddedToken], normalizer: Normalizer?) {
        var raw = [[Pattern]](repeating: [], count: 256)
        var norm = [[Pattern]](repeating: [], count: 256)
        for t in tokens {
            if t.normalized {
                // matched against the normalized text, so normalize the content too
                let c = normalizer?.normalize(t.content) ?? t.content
                let b = Array(c.utf8)
                if !b.isEmpty { norm[Int(b[0])].append(Pattern(bytes: b, token: t)) }
            } else {
                let b = Array(t.content.utf8)
                raw[Int(b[0])].append(Pattern(bytes: b, token: t))
            }
        }
        for k in 0..<256 {
            raw[k].sort { $0.bytes.count > $1.bytes.count }
            norm[k].sort { $0.bytes.count > $1.bytes.count }
        }
        self.raw = raw
        self.normalized = norm
        hasRaw = raw.contains { !$0.isEmpty }
        hasNormalized = norm.contains { !$0.isEmpty }
    }

    func split(_ text: String, normalizer: Normalizer?) -> [Segment] {
        var out: [Segment] = []
        let first = hasRaw ? Self.match(text, raw) : [.text(Piece(original: text, atStart: true))]
        for seg in first {
            guard case .text(let p) = seg else { out.append(seg); continue }
            var n = p
            if let norm = normalizer {
                n.text = norm.normalize(p.text)
                if p.atStart, let u = p.text.unicodeScalars.first {
                    // the expansion of the first original character is aligned to offset 0
                    n.startSpan = min(n.text.utf8.count, norm.normalize(String(u)).utf8.count)
                }
            }
            if hasNormalized {
                var offset = 0
                for s in Self.match(n.text, normalized) {
                    switch s {
                    case .text(let q):
                        out.append(.text(Piece(text: q.text, startSpan: n.startSpan > offset ? n.startSpan - offset : 0)))
                        offset += q.text.utf8.count
                    case .token(_, let matched):
                        out.append(s)
                        offset += matched.utf8.count
                    }
                }
            } else { out.append(.text(n)) }
        }
        return out
    }

    static func isWordScalar(_ u: Unicode.Scalar) -> Bool {
        u == "_" || u.properties.isAlphabetic || u.properties.numericType != nil
    }

    static func match(_ text: String, _ table: [[Pattern]]) -> [Segment] {
        let b = Array(text.utf8)
        let n = b.count
        var out: [Segment] = []
        var startOffset = 0 // start of the pending text
        var i = 0
        func scalarBefore(_ k: Int) -> Unicode.Scalar? {
            guard k > 0 else { return nil }
            var s = k - 1
            while s > 0 && (b[s] & 0xC0) == 0x80 { s -= 1 }
            return String(decoding: b[s..<k], as: UTF8.self).unicodeScalars.first
        }
        func scalarAt(_ k: Int) -> Unicode.Scalar? {
            guard k < n else { return nil }
            var e = k + 1
            while e < n && (b[e] & 0xC0) == 0x80 { e += 1 }
            return String(decoding: b[k..<e], as: UTF8.self).unicodeScalars.first
        }
        while i < n {
            var found: Pattern?
            for p in table[Int(b[i])] where i + p.bytes.count <= n {
                var ok = true
                var k = 1
                while k < p.bytes.count { if b[i + k] != p.bytes[k] { ok = false; break }; k += 1 }
                if ok { found = p; break }
            }
            guard let p = found else { i += 1; continue }
            var start = i
            var stop = i + p.bytes.count
            let t = p.token
            if t.singleWord {
                let startOK = scalarBefore(start).map { !isWordScalar($0) } ?? true
                let stopOK = scalarAt(stop).map { !isWordScalar($0) } ?? true
                if !(startOK && stopOK) { i = stop; continue }
            }
            if t.lstrip {
                var s = start
                while s > startOffset, let u = scalarBefore(s), u.properties.isWhitespace { s -= UTF8.width(u) }
                start = s
            }
            if t.rstrip {
                while let u = scalarAt(stop), u.properties.isWhitespace { stop += UTF8.width(u) }
            }
            if start > startOffset {
                out.append(.text(Piece(original: String(decoding: b[startOffset..<start], as: UTF8.self), atStart: startOffset == 0)))
            }
            out.append(.token(t.id, String(decoding: b[start..<stop], as: UTF8.self)))
            startOffset = stop
            i = stop
        }
        if startOffset < n {
            out.append(.text(Piece(original: String(decoding: b[startOffset..<n], as: UTF8.self), atStart: startOffset == 0)))
        }
        return out
    }
}
