// Rebuilds tokenizer.json and tokenizer_config.json from a GGUF's tokenizer metadata, the way
// transformers 5 does it (integrations/gguf/gguf_tokenizer_mapping.py), so both encode alike:
//
//  tokenizer.ggml.model "gpt2" (byte-level BPE): GPT2Tokenizer shape. Tokens spelled outside the
//    byte alphabet are respelled as the alphabet characters of their UTF-8 bytes. Merges from
//    tokenizer.ggml.merges. Pre-tokenizer: ByteLevel with the GPT-2 regex, unless
//    tokenizer.ggml.pre names a split regex (llama3 family, qwen2 family, tekken, gpt-4o family):
//    then Split(regex, Isolated) + ByteLevel(use_regex false).
//  "llama" (SentencePiece vocabulary with scores): BPE with byte fallback; merges from the file or,
//    when absent, derived from the vocabulary (every split of a token into two tokens, ordered by
//    the token's score, best first). Llama: Metaspace(prepend "first") and a Strip decoder.
//    Gemma 1/2/3: a Replace(" " -> "▁") normalizer, Split(" ", MergedWithPrevious), tokens made of
//    spaces respelled as "▁"s, merges ordered by position in the file instead of score.
//  Added tokens: type 3 (control) as special (byte-level: only when spelled in the byte
//    alphabet), type 4 (user-defined) as non-special when in the vocabulary, plus the tokenizer
//    class's default special tokens when the vocabulary has them. Tokens transformers would append
//    past the vocabulary (defaults the file lacks) are not added: the model has no row for them.
//  Post-processor: bos when tokenizer.ggml.add_bos_token (default true for "llama", false for
//    "gpt2"), eos when add_eos_token.
//
// Strings are compared as UTF-8 bytes, never as Swift `String`s (which compare by canonical
// equivalence and would merge distinct tokens such as "é" and "e\u{301}").

import Foundation
import SafeTensors

struct GGUFTokenizerFiles {
    var tokenizerJSON: JSONValue
    var tokenizerConfig: JSONValue
    var summary: String
}

enum GGUFTokenizerBuilder {
    static let splitRegexes: [String: String] = {
        let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let tekken = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let gpt4o = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let qwen35 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        var m: [String: String] = [:]
        for k in ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe"] { m[k] = llama3 }
        m["tekken"] = tekken
        for k in ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"] { m[k] = qwen2 }
        m["qwen35"] = qwen35
        for k in ["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"] { m[k] = gpt4o }
        return m
    }()

    /// GPT-2's byte -> printable character table (bytes_to_unicode).
    static let byteToChar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            table[b] = Unicode.Scalar(printable ? UInt32(b) : 256 + extra)! // programmer error: < 0x200 is valid
            if !printable { extra += 1 }
        }
        return table
    }()
    static let byteAlphabet: Set<UInt32> = Set(byteToChar.map(\.value))

    static func inByteAlphabet(_ s: String) -> Bool { s.unicodeScalars.allSatisfy { byteAlphabet.contains($0.value) } }

    static func byteSpelled(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for b in s.utf8 { out.append(byteToChar[Int(b)]) }
        return String(out)
    }

    /// An insertion-ordered map from token bytes to id with Python dict semantics: the first
    /// occurrence fixes the position, the last one the value.
    struct Vocab {
        var order: [[UInt8]] = []
        var ids: [[UInt8]: Int] = [:]
        mutating func set(_ key: [UInt8], _ id: Int) {
            if ids.updateValue(id, forKey: key) == nil { order.append(key) }
        }
    }

    static func build(_ f: GGUFFile, architecture: String, contextLength: Int?) throws -> GGUFTokenizerFiles {
        func err(_ s: String) -> ConvertError { ConvertError(.tokenizer, file: f.path, s) }
        let md = f.metadata
        guard let model = md["tokenizer.ggml.model"]?.stringValue else {
            throw err("metadata 'tokenizer.ggml.model' is missing: cannot rebuild the tokenizer")
        }
        guard let tokens = md["tokenizer.ggml.tokens"]?.stringArray, !tokens.isEmpty else {
            throw err("metadata 'tokenizer.ggml.tokens' is missing or not an array of strings")
        }
        var types: [Int] = []
        if let tv = md["tokenizer.ggml.token_type"] {
            guard let a = tv.arrayValue, a.count == tokens.count, a.allSatisfy({ $0.intValue != nil }) else {
                throw err("metadata 'tokenizer.ggml.token_type': expected \(tokens.count) integers")
            }
            types = a.map { $0.intValue! } // programmer error: checked just above
        }
        let pre = md["tokenizer.ggml.pre"]?.stringValue
        let isGemma = ["gemma", "gemma2", "gemma3"].contains(architecture)
        let byteLevel: Bool
        let defaultSpecials: [String]
        switch model {
        case "gpt2": byteLevel = true; defaultSpecials = ["<|endoftext|>"]
        case "llama": byteLevel = false; defaultSpecials = isGemma ? ["<unk>", "<bos>", "<eos>", "<pad>", "<mask>"] : ["<unk>", "<s>", "</s>"]
        default:
            throw ConvertError(.unsupported, file: f.path, "tokenizer model '\(model)' is not supported (supported: gpt2, llama)")
        }

        // 1. Vocabulary (respelled as the tokenizer class expects).
        var spelled = tokens
        if byteLevel {
            spelled = tokens.map { inByteAlphabet($0) ? $0 : byteSpelled($0) }
        } else if isGemma {
            spelled = tokens.map { t in
                t.unicodeScalars.contains(" ") && t.unicodeScalars.allSatisfy({ $0.properties.isWhitespace })
                    ? String(repeating: "\u{2581}", count: t.unicodeScalars.count) : t
            }
        }
        var vocab = Vocab()
        for (k, t) in spelled.enumerated() { vocab.set(Array(t.utf8), k) }

        // 2. Merges.
        var merges: [([UInt8], [UInt8])] = []
        if let mv = md["tokenizer.ggml.merges"] {
            guard let ms = mv.stringArray else { throw err("metadata 'tokenizer.ggml.merges' is not an array of strings") }
            merges.reserveCapacity(ms.count)
            for (k, m) in ms.enumerated() {
                let parts = m.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw err("merge #\(k) '\(m)' is not two tokens separated by one space") }
                merges.append((Array(parts[0].utf8), Array(parts[1].utf8)))
            }
        } else if byteLevel {
            throw err("metadata 'tokenizer.ggml.merges' is missing (a gpt2 BPE vocabulary needs its merges)")
        } else {
            var scores = Vocab()   // reuse the ordered map: token -> index into scoreValues
            var scoreValues: [Double] = []
            if isGemma {
                for (k, t) in spelled.enumerated() { scores.set(Array(t.utf8), scoreValues.count); scoreValues.append(Double(-k)) }
            } else {
                guard let sv = md["tokenizer.ggml.scores"]?.arrayValue, sv.count == tokens.count,
                      sv.allSatisfy({ $0.doubleValue != nil }) else {
                    throw err("metadata 'tokenizer.ggml.scores': expected \(tokens.count) numbers to derive merges from")
                }
                for (k, t) in spelled.enumerated() { scores.set(Array(t.utf8), scoreValues.count); scoreValues.append(sv[k].doubleValue!) } // programmer error: checked above
            }
            merges = deriveMerges(vocab: vocab, scores: scores, scoreValues: scoreValues)
        }

        // 3. Added tokens.
        var added: [Int: (String, Bool)] = [:]    // id -> (content, special)
        func inVocab(_ s: String) -> Int? { vocab.ids[Array(s.utf8)] }
        if !types.isEmpty {
            for (k, t) in tokens.enumerated() where types[k] == 3 && (!byteLevel || inByteAlphabet(t)) {
                if let id = inVocab(t) { added[id] = (t, true) }
            }
        }
        for s in defaultSpecials { if let id = inVocab(s) { added[id] = (s, true) } }
        if !types.isEmpty {
            for (k, t) in tokens.enumerated() where types[k] == 4 {
                if let id = inVocab(t), added[id] == nil { added[id] = (t, false) }
            }
        }
        let addedJSON: [JSONValue] = added.keys.sorted().map { id in
            let (content, special) = added[id]! // programmer error: id from keys
            return .object([("id", .int(id)), ("content", .string(content)), ("single_word", .bool(false)),
                            ("lstrip", .bool(false)), ("rstrip", .bool(false)), ("normalized", .bool(false)),
                            ("special", .bool(special))])
        }

        // 4. Pipeline stages.
        func str(_ s: String) -> JSONValue { .string(s) }
        let byteLevelStage: (Bool) -> JSONValue = { useRegex in
            .object([("type", str("ByteLevel")), ("add_prefix_space", .bool(false)), ("trim_offsets", .bool(true)), ("use_regex", .bool(useRegex))])
        }
        var normalizer: JSONValue = .null
        var preTokenizer: JSONValue
        let decoder: JSONValue
        let unkToken: JSONValue
        let replaceSpace: JSONValue = .object([("type", str("Replace")), ("pattern", .object([("String", str("\u{2581}"))])), ("content", str(" "))])
        if byteLevel {
            preTokenizer = byteLevelStage(true)
            decoder = .object([("type", str("ByteLevel")), ("add_prefix_space", .bool(true)), ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])
            unkToken = .null
        } else if isGemma {
            normalizer = .object([("type", str("Replace")), ("pattern", .object([("String", str(" "))])), ("content", str("\u{2581}"))])
            preTokenizer = .object([("type", str("Split")), ("pattern", .object([("String", str(" "))])), ("behavior", str("MergedWithPrevious")), ("invert", .bool(false))])
            decoder = .object([("type", str("Sequence")), ("decoders", .array([replaceSpace, .object([("type", str("ByteFallback"))]), .object([("type", str("Fuse"))])]))])
            unkToken = str("<unk>")
        } else {
            preTokenizer = .object([("type", str("Metaspace")), ("replacement", str("\u{2581}")), ("prepend_scheme", str("first")), ("split", .bool(false))])
            decoder = .object([("type", str("Sequence")), ("decoders", .array([replaceSpace, .object([("type", str("ByteFallback"))]), .object([("type", str("Fuse"))]),
                                                                              .object([("type", str("Strip")), ("content", str(" ")), ("start", .int(1)), ("stop", .int(0))])]))])
            unkToken = .null
        }
        if let pre, let regex = splitRegexes[pre] {
            preTokenizer = .object([("type", str("Sequence")), ("pretokenizers", .array([
                .object([("type", str("Split")), ("pattern", .object([("Regex", str(regex))])), ("behavior", str("Isolated")), ("invert", .bool(false))]),
                byteLevelStage(false)]))])
        }

        // 5. Special tokens and the post-processor.
        func tokenName(_ key: String) throws -> String? {
            guard let v = md["tokenizer.ggml.\(key)"] else { return nil }
            guard let id = v.intValue, id >= 0, id < tokens.count else {
                throw err("metadata 'tokenizer.ggml.\(key)' = \(v) is not a token id below \(tokens.count)")
            }
            return tokens[id]
        }
        let bos = try tokenName("bos_token_id"), eos = try tokenName("eos_token_id")
        let unk = try tokenName("unknown_token_id"), pad = try tokenName("padding_token_id")
        let addBos = md["tokenizer.ggml.add_bos_token"]?.boolValue ?? (model == "llama")
        let addEos = md["tokenizer.ggml.add_eos_token"]?.boolValue ?? false
        var specialTokens: [(String, JSONValue)] = []
        var single: [JSONValue] = [], pair: [JSONValue] = []
        func special(_ s: String, _ typeId: Int) -> JSONValue { .object([("SpecialToken", .object([("id", str(s)), ("type_id", .int(typeId))]))]) }
        func seq(_ s: String, _ typeId: Int) -> JSONValue { .object([("Sequence", .object([("id", str(s)), ("type_id", .int(typeId))]))]) }
        func register(_ s: String) {
            if !specialTokens.contains(where: { $0.0 == s }), let id = inVocab(s) {
                specialTokens.append((s, .object([("id", str(s)), ("ids", .array([.int(id)])), ("tokens", .array([str(s)]))])))
            }
        }
        let useBos = addBos && bos != nil, useEos = addEos && eos != nil
        if useBos, let bos { single.append(special(bos, 0)); pair.append(special(bos, 0)); register(bos) }
        single.append(seq("A", 0)); pair.append(seq("A", 0))
        if useEos, let eos { single.append(special(eos, 0)); pair.append(special(eos, 0)); register(eos) }
        if useBos, let bos { pair.append(special(bos, 1)) }
        pair.append(seq("B", 1))
        if useEos, let eos { pair.append(special(eos, 1)) }
        let post: JSONValue = .object([("type", str("TemplateProcessing")), ("single", .array(single)), ("pair", .array(pair)), ("special_tokens", .object(specialTokens))])

        func text(_ b: [UInt8]) -> JSONValue { .string(String(decoding: b, as: UTF8.self)) }
        let vocabJSON: JSONValue = .object(vocab.order.map { (String(decoding: $0, as: UTF8.self), .int(vocab.ids[$0]!)) }) // programmer error: order keys are in ids
        let mergesJSON: JSONValue = .array(merges.map { .array([text($0.0), text($0.1)]) })
        let modelJSON: JSONValue = .object([
            ("type", str("BPE")), ("dropout", .null), ("unk_token", unkToken),
            ("continuing_subword_prefix", byteLevel ? str("") : .null), ("end_of_word_suffix", byteLevel ? str("") : .null),
            ("fuse_unk", .bool(!byteLevel)), ("byte_fallback", .bool(!byteLevel)), ("ignore_merges", .bool(false)),
            ("vocab", vocabJSON), ("merges", mergesJSON)])
        let tokenizer: JSONValue = .object([
            ("version", str("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(addedJSON)),
            ("normalizer", normalizer), ("pre_tokenizer", preTokenizer), ("post_processor", post), ("decoder", decoder),
            ("model", modelJSON)])

        var config: [(String, JSONValue)] = [("add_bos_token", .bool(addBos)), ("add_eos_token", .bool(addEos))]
        for (k, v) in [("bos_token", bos), ("eos_token", eos), ("unk_token", unk), ("pad_token", pad)] {
            if let v { config.append((k, str(v))) }
        }
        config.append(("clean_up_tokenization_spaces", .bool(false)))
        if let contextLength { config.append(("model_max_length", .int(contextLength))) }
        config.append(("tokenizer_class", str("PreTrainedTokenizerFast")))
        if let tpl = md["tokenizer.chat_template"]?.stringValue { config.append(("chat_template", str(tpl))) }

        let kind = byteLevel ? "byte-level BPE (gpt2, pre \(pre ?? "none"))" : (isGemma ? "Gemma SentencePiece-as-BPE" : "SentencePiece-as-BPE (llama)")
        return GGUFTokenizerFiles(tokenizerJSON: tokenizer, tokenizerConfig: .object(config),
                                  summary: "\(kind), \(vocab.order.count) tokens, \(merges.count) merges, \(added.count) added tokens")
    }

    /// transformers' `generate_merges(vocab, vocab_scores)`: for each token (in score-map order),
    /// every split into two vocabulary tokens, sorted by (left id, right id); then all merges sorted
    /// by (score, left length, right length), best first, ties keeping that order. Lengths count
    /// Unicode scalars, as Python's len does.
    static func deriveMerges(vocab: Vocab, scores: Vocab, scoreValues: [Double]) -> [([UInt8], [UInt8])] {
        struct M { var l: ArraySlice<UInt8>; var r: ArraySlice<UInt8>; var score: Double; var ll: Int; var rl: Int; var seq: Int }
        var all: [M] = []
        for token in scores.order {
            let score = scoreValues[scores.ids[token]!] // programmer error: order keys are in ids
            var local: [(M, Int, Int)] = []
            var scalarsBefore = 0
            let total = token.reduce(0) { $0 + (($1 & 0xC0) != 0x80 ? 1 : 0) }
            for p in 1..<max(token.count, 1) where (token[p] & 0xC0) != 0x80 {
                scalarsBefore += 1
                let l = token[..<p], r = token[p...]
                if let li = vocab.ids[Array(l)], let ri = vocab.ids[Array(r)] {
                    local.append((M(l: l, r: r, score: score, ll: scalarsBefore, rl: total - scalarsBefore, seq: 0), li, ri))
                }
            }
            local.sort { ($0.1, $0.2) < ($1.1, $1.2) }
            for (m, _, _) in local { var m = m; m.seq = all.count; all.append(m) }
        }
        all.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.ll != b.ll { return a.ll > b.ll }
            if a.rl != b.rl { return a.rl > b.rl }
            return a.seq < b.seq
        }
        return all.map { (Array($0.l), Array($0.r)) }
    }
}
