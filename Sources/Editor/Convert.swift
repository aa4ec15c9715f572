// `convert`: a GGUF model -> a Hugging Face folder (config.json, f32 safetensors with HF names,
// tokenizer.json, tokenizer_config.json, generation_config.json), for llama, qwen2, qwen3,
// gemma, gemma2 and gemma3 (transformers' GGUF loader is the reference: same names, same config
// values, same weights).
//
// Weight fixes (both undo what llama.cpp's convert_hf_to_gguf.py does):
//  1. llama: q_proj and k_proj rows were permuted per head (HF's rotate-half layout -> GGML's
//     interleaved pairs): GGUF row h*2*half + i*2 + j holds HF row h*2*half + j*half + i
//     (half = head_dim / 2, j in {0, 1}); k uses the kv head count. Biases likewise.
//  2. gemma*: every "*norm.weight" was stored as 1 + w (HF Gemma norms compute x * (1 + w)):
//     subtract 1.
// The output is streamed (one dequantized tensor in memory at a time) into a temporary folder
// beside the target, renamed into place when complete.

import Foundation
import SafeTensors

public struct ConvertError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable { case io, targetExists, unsupported, missingMetadata, unknownTensor, missingTensor, tokenizer, shape }
    public var kind: Kind
    public var file: String
    public var detail: String
    public init(_ kind: Kind, file: String, _ detail: String) { self.kind = kind; self.file = file; self.detail = detail }
    public var description: String { "\(file): \(detail)" }
}

public struct ConvertOptions: Sendable {
    public var force = false
    /// Shards are cut at this many bytes (as `save_pretrained`'s default of 5 GB).
    public var maxShardBytes = 5_000_000_000
    public init(force: Bool = false) { self.force = force }
}

public struct ConvertReport: Sendable {
    public var architecture: String        // GGUF general.architecture, e.g. "llama"
    public var modelType: String           // HF model_type, e.g. "llama", "gemma3_text"
    public var tensorCount: Int
    public var parameterCount: Int
    public var files: [String]
    public var tokenizer: String
    public var seconds: Double
}

/// One output tensor: where it comes from and what to do to it.
struct ConvertedTensor {
    enum Fix: Equatable { case none, unpermute(heads: Int), minusOne }
    var gguf: String
    var hf: String
    var shape: [Int]
    var fix: Fix
}

public enum GGUFConverter {
    public static let supportedArchitectures = ["llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3"]

    /// Converts `ggufPath` into a Hugging Face folder at `outDir`.
    public static func convert(gguf ggufPath: String, to outDir: String, options: ConvertOptions = ConvertOptions(),
                               progress: ((String) -> Void)? = nil) throws -> ConvertReport {
        let start = Date()
        let f = try GGUFFile(path: ggufPath)
        let plan = try makePlan(f)
        // The tokenizer files are serialized right away so the (large) JSON trees are freed before
        // the tensors are written.
        var tokenizerSummary = ""
        var tokenizerFiles: [(String, [UInt8])] = []
        do {
            let tok = try GGUFTokenizerBuilder.build(f, architecture: plan.architecture, contextLength: plan.contextLength)
            tokenizerSummary = tok.summary
            tokenizerFiles = [("tokenizer.json", Array((tok.tokenizerJSON.serialized(pretty: false) + "\n").utf8)),
                              ("tokenizer_config.json", Array((tok.tokenizerConfig.serialized(pretty: true) + "\n").utf8))]
        }
        // Check every tensor can be dequantized before any work starts.
        for t in plan.tensors {
            guard let info = f.tensorInfo(t.gguf), info.type.canDequantize else {
                throw ConvertError(.unsupported, file: ggufPath, "tensor '\(t.gguf)': ggml type \(f.tensorInfo(t.gguf)?.type.name ?? "?") cannot be dequantized by this build")
            }
        }
        let source = GGUFHFSource(file: f, plan: plan)
        // Streaming, atomic output: SafeTensors' CheckpointWriter calls each producer during
        // commit, so one dequantized tensor is in memory at a time.
        let writer = try CheckpointWriter(target: outDir, force: options.force, maxShardSize: options.maxShardBytes,
                                          sources: [URL(fileURLWithPath: ggufPath).standardizedFileURL.path])
        if let progress { writer.onTensorWritten = { name, done, total in progress("\(done)/\(total) \(name)") } }
        do {
            for (k, t) in plan.tensors.enumerated() {
                let count = t.shape.reduce(1, *)
                try writer.add(TensorRecord(name: t.hf, dtype: .F32, shape: t.shape, source: .produce {
                    var bytes = [UInt8](repeating: 0, count: count * 4)
                    try bytes.withUnsafeMutableBytes { raw in
                        try source.fill(k, into: UnsafeMutableBufferPointer(start: raw.baseAddress!.bindMemory(to: Float.self, capacity: count), count: count)) // programmer error: count > 0 checked in the plan
                    }
                    return bytes
                }))
            }
            try writer.addFile(name: "config.json", contents: Array((plan.config.serialized(pretty: true) + "\n").utf8))
            try writer.addFile(name: "generation_config.json", contents: Array((plan.generationConfig.serialized(pretty: true) + "\n").utf8))
            for (name, bytes) in tokenizerFiles { try writer.addFile(name: name, contents: bytes) }
            tokenizerFiles = []
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
        var files = writer.shardFileNames
        if files.count > 1 { files.append("model.safetensors.index.json") }
        files += ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]
        return ConvertReport(architecture: plan.architecture, modelType: plan.modelType, tensorCount: plan.tensors.count,
                             parameterCount: plan.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }, files: files,
                             tokenizer: tokenizerSummary, seconds: Date().timeIntervalSince(start))
    }

    /// Inverse of llama.cpp's Q/K permutation on the rows of a row-major [rows, cols] tensor
    /// (cols = 1 for a bias): out[h, j, i] = in[h, i, j] with rows viewed as [heads, 2, half].
    static func unpermuteRows(_ src: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>, shape: [Int],
                              heads: Int, name: String, file: String) throws {
        let rows = shape[0], cols = shape.count > 1 ? shape[1...].reduce(1, *) : 1
        guard heads > 0, rows % (2 * heads) == 0 else {
            throw ConvertError(.shape, file: file, "tensor '\(name)': \(rows) rows cannot be split into \(heads) heads of even size")
        }
        let half = rows / heads / 2
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<half {
                    let dst = (h * 2 * half + j * half + i) * cols
                    let s = (h * 2 * half + i * 2 + j) * cols
                    for c in 0..<cols { out[dst + c] = src[s + c] }
                }
            }
        }
    }

    /// llama.cpp stores Llama 3.x rope scaling as per-frequency divisors (`rope_freqs.weight`, one
    /// per rotary pair) computed by convert_hf_to_gguf.py from (factor, low_freq_factor,
    /// high_freq_factor, original_max_position_embeddings): with freq_i = theta^(-2i/dim) and
    /// wavelen = 2 pi / freq_i, the divisor is 1 when wavelen < orig/high, factor when
    /// wavelen > orig/low, else 1 / ((1 - s)/factor + s) with s = (orig/wavelen - low)/(high - low).
    /// We recover the parameters: factor is the largest divisor; the others are searched among the
    /// values Llama 3.x uses and accepted only when they reproduce every stored divisor.
    static func inferLlama3RopeScaling(_ stored: [Float], theta: Double, dim: Int, file: String) throws -> JSONValue {
        guard stored.count == dim / 2, let factor = stored.max().map(Double.init), factor >= 1 else {
            throw ConvertError(.unsupported, file: file, "tensor 'rope_freqs.weight': \(stored.count) values for head_dim \(dim), or no factor >= 1")
        }
        for orig in [8192.0, 4096, 2048, 16384, 32768, 131072] {
            for low in [1.0, 2, 0.5] {
                for high in [4.0, 8, 2, 16] where high > low {
                    let ok = stored.indices.allSatisfy { i in
                        let freq = 1 / pow(theta, Double(2 * i) / Double(dim))
                        let wavelen = 2 * Double.pi / freq
                        let want: Double
                        if wavelen < orig / high { want = 1 }
                        else if wavelen > orig / low { want = factor }
                        else {
                            let smooth = (orig / wavelen - low) / (high - low)
                            want = 1 / ((1 - smooth) / factor + smooth)
                        }
                        return abs(Double(stored[i]) - want) <= 1e-5 * max(1, abs(want))
                    }
                    if ok {
                        return .object([("rope_type", .string("llama3")), ("factor", .double(factor)), ("low_freq_factor", .double(low)),
                                        ("high_freq_factor", .double(high)), ("original_max_position_embeddings", .int(Int(orig)))])
                    }
                }
            }
        }
        throw ConvertError(.unsupported, file: file, "tensor 'rope_freqs.weight' does not match llama3 rope scaling with any usual parameters (factor \(factor))")
    }

    // MARK: plan: config and tensor names

    struct Plan {
        var architecture: String
        var modelType: String
        var config: JSONValue
        var generationConfig: JSONValue
        var tensors: [ConvertedTensor]
        var contextLength: Int?
    }

    static func makePlan(_ f: GGUFFile) throws -> Plan {
        let path = f.path
        guard let arch = f.architecture else {
            throw ConvertError(.missingMetadata, file: path, "metadata 'general.architecture' is missing")
        }
        guard supportedArchitectures.contains(arch) else {
            throw ConvertError(.unsupported, file: path, "architecture '\(arch)' is not supported (supported: \(supportedArchitectures.joined(separator: ", ")))")
        }
        let md = f.metadata
        func int(_ key: String) throws -> Int {
            guard let v = md["\(arch).\(key)"] else { throw ConvertError(.missingMetadata, file: path, "metadata '\(arch).\(key)' is missing") }
            guard let i = v.intValue, i > 0 else { throw ConvertError(.missingMetadata, file: path, "metadata '\(arch).\(key)' = \(v), expected a positive integer") }
            return i
        }
        func optInt(_ key: String) throws -> Int? { md["\(arch).\(key)"] == nil ? nil : try int(key) }
        func float(_ key: String) throws -> Double? {
            guard let v = md["\(arch).\(key)"] else { return nil }
            guard let d = v.doubleValue, d.isFinite else { throw ConvertError(.missingMetadata, file: path, "metadata '\(arch).\(key)' = \(v), expected a number") }
            return d
        }
        let hidden = try int("embedding_length")
        let layers = try int("block_count")
        let ff = try int("feed_forward_length")
        let heads = try int("attention.head_count")
        let kvHeads = try optInt("attention.head_count_kv") ?? heads
        let context = try optInt("context_length")
        let keyLength = try optInt("attention.key_length")
        let ropeDim = try optInt("rope.dimension_count")
        let headDim = keyLength ?? ropeDim ?? hidden / heads
        guard let eps = try float("attention.layer_norm_rms_epsilon") else {
            throw ConvertError(.missingMetadata, file: path, "metadata '\(arch).attention.layer_norm_rms_epsilon' is missing")
        }
        let ropeTheta = try float("rope.freq_base") ?? 10000.0
        let tokenCount = md["tokenizer.ggml.tokens"]?.arrayValue?.count
        guard let vocab = try optInt("vocab_size") ?? tokenCount ?? f.tensorInfo("token_embd.weight")?.shape.first else {
            throw ConvertError(.missingMetadata, file: path, "cannot tell the vocabulary size (no '\(arch).vocab_size', tokens or token_embd.weight)")
        }
        if md["\(arch).rope.scaling.type"] != nil, let t = md["\(arch).rope.scaling.type"]?.stringValue, t != "none", arch != "gemma3" {
            throw ConvertError(.unsupported, file: path, "rope scaling '\(t)' is not supported by convert yet")
        }
        var ropeScaling: JSONValue?
        if f.tensorInfo("rope_freqs.weight") != nil {
            guard arch == "llama" else {
                throw ConvertError(.unsupported, file: path, "tensor 'rope_freqs.weight' is only understood for llama (llama3 rope scaling)")
            }
            ropeScaling = try inferLlama3RopeScaling(f.floats("rope_freqs.weight"), theta: ropeTheta, dim: ropeDim ?? headDim, file: path)
        }
        let tied = f.tensorInfo("output.weight") == nil
        let isGemma = arch.hasPrefix("gemma")

        // Tensor names.
        var tensors: [ConvertedTensor] = []
        let blockNames: [String: String] = [
            "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
            "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
            "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
            "attn_norm": "input_layernorm",
            "ffn_norm": (arch == "gemma2" || arch == "gemma3") ? "pre_feedforward_layernorm" : "post_attention_layernorm",
            "post_attention_norm": "post_attention_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
        ]
        var hasAttnBias = false
        var seenHF = Set<String>()
        for info in f.tensors {
            let name = info.name
            var hf: String
            var fix = ConvertedTensor.Fix.none
            if name == "rope_freqs.weight" { continue }   // folded into config.json's rope_scaling above
            switch name {
            case "token_embd.weight": hf = "model.embed_tokens.weight"
            case "output_norm.weight": hf = "model.norm.weight"
            case "output.weight": hf = "lm_head.weight"
            default:
                let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0, layer < layers,
                      String(layer) == parts[1], let base = blockNames[parts[2]], parts[3] == "weight" || parts[3] == "bias" else {
                    throw ConvertError(.unknownTensor, file: path, "tensor '\(name)' has no Hugging Face counterpart known to convert (architecture \(arch))")
                }
                hf = "model.layers.\(layer).\(base).\(parts[3])"
                if parts[3] == "bias" && ["attn_q", "attn_k", "attn_v", "attn_output"].contains(parts[2]) { hasAttnBias = true }
                if arch == "llama" && parts[2] == "attn_q" { fix = .unpermute(heads: heads) }
                if arch == "llama" && parts[2] == "attn_k" { fix = .unpermute(heads: kvHeads) }
            }
            if isGemma && name.hasSuffix("norm.weight") { fix = .minusOne }
            guard seenHF.insert(hf).inserted else {
                throw ConvertError(.unknownTensor, file: path, "two GGUF tensors map to '\(hf)'")
            }
            guard info.elementCount > 0 else {
                throw ConvertError(.shape, file: path, "tensor '\(name)' is empty")
            }
            tensors.append(ConvertedTensor(gguf: name, hf: hf, shape: info.shape, fix: fix))
        }
        for required in ["model.embed_tokens.weight", "model.norm.weight"] where !seenHF.contains(required) {
            throw ConvertError(.missingTensor, file: path, "no tensor for \(required)")
        }

        // config.json
        let (archName, modelType): (String, String) = {
            switch arch {
            case "llama": return ("LlamaForCausalLM", "llama")
            case "qwen2": return ("Qwen2ForCausalLM", "qwen2")
            case "qwen3": return ("Qwen3ForCausalLM", "qwen3")
            case "gemma": return ("GemmaForCausalLM", "gemma")
            case "gemma2": return ("Gemma2ForCausalLM", "gemma2")
            default: return ("Gemma3ForCausalLM", "gemma3_text")
            }
        }()
        var c: [(String, JSONValue)] = [
            ("architectures", .array([.string(archName)])), ("model_type", .string(modelType)),
            ("hidden_size", .int(hidden)), ("intermediate_size", .int(ff)), ("num_hidden_layers", .int(layers)),
            ("num_attention_heads", .int(heads)), ("num_key_value_heads", .int(kvHeads)), ("head_dim", .int(headDim)),
            ("rms_norm_eps", .double(eps)), ("rope_theta", .double(ropeTheta)),
        ]
        if let context { c.append(("max_position_embeddings", .int(context))) }
        c.append(("vocab_size", .int(vocab)))
        c.append(("tie_word_embeddings", .bool(tied)))
        switch arch {
        case "llama":
            c += [("hidden_act", .string("silu")), ("attention_bias", .bool(hasAttnBias)), ("mlp_bias", .bool(false))]
            if let ropeScaling { c.append(("rope_scaling", ropeScaling)) }
        case "qwen2":
            c += [("hidden_act", .string("silu")), ("use_sliding_window", .bool(false))]
        case "qwen3":
            c += [("hidden_act", .string("silu")), ("attention_bias", .bool(hasAttnBias))]
        default: // gemma family
            c += [("hidden_activation", .string("gelu_pytorch_tanh")), ("attention_bias", .bool(hasAttnBias))]
            if arch != "gemma" {
                // llama.cpp's rule (its 27B models scale queries by hidden/heads, others by head_dim).
                let is27B = (arch == "gemma2" && layers == 46) || (arch == "gemma3" && layers == 62)
                c.append(("query_pre_attn_scalar", .int(is27B ? hidden / heads : headDim)))
                // Sliding-window layers: llama.cpp uses every layer but each 2nd (gemma2) / 6th (gemma3);
                // an explicit attention.sliding_window_pattern (period, or one bool per layer, true =
                // sliding) overrides that; a gemma3 file without a sliding window is all global.
                let window = try optInt("attention.sliding_window")
                var sliding: [Bool] = (0..<layers).map { ($0 + 1) % (arch == "gemma2" ? 2 : 6) != 0 }
                if let p = md["\(arch).attention.sliding_window_pattern"] {
                    if let period = p.intValue, period > 0 {
                        sliding = (0..<layers).map { ($0 + 1) % period != 0 }
                    } else if let a = p.arrayValue, a.count == layers, a.allSatisfy({ $0.boolValue != nil }) {
                        sliding = a.map { $0.boolValue! } // programmer error: checked above
                    } else {
                        throw ConvertError(.missingMetadata, file: path, "metadata '\(arch).attention.sliding_window_pattern' = \(p), expected a period or \(layers) booleans")
                    }
                }
                if window == nil { sliding = sliding.map { _ in false } }
                c.append(("sliding_window", window.map { .int($0) } ?? .null))
                c.append(("layer_types", .array(sliding.map { .string($0 ? "sliding_attention" : "full_attention") })))
            }
            if arch == "gemma2" {
                // llama.cpp's defaults (50, 30) when the keys are absent, as transformers' Gemma2Config.
                c.append(("attn_logit_softcapping", .double(try float("attn_logit_softcapping") ?? 50.0)))
                c.append(("final_logit_softcapping", .double(try float("final_logit_softcapping") ?? 30.0)))
            }
            if arch == "gemma3" {
                c.append(("final_logit_softcapping", try float("final_logit_softcapping").map { .double($0) } ?? .null))
                c.append(("rope_local_base_freq", .double(10000.0)))
                if let t = md["gemma3.rope.scaling.type"]?.stringValue, t != "none" {
                    guard t == "linear", let factor = try float("rope.scaling.factor") else {
                        throw ConvertError(.unsupported, file: path, "gemma3 rope scaling '\(t)' is not supported by convert yet")
                    }
                    c.append(("rope_scaling", .object([("rope_type", .string("linear")), ("factor", .double(factor))])))
                }
            }
        }
        var gen: [(String, JSONValue)] = []
        for (key, hfKey) in [("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"), ("padding_token_id", "pad_token_id")] {
            if let v = md["tokenizer.ggml.\(key)"] {
                guard let id = v.intValue, id >= 0 else {
                    throw ConvertError(.missingMetadata, file: path, "metadata 'tokenizer.ggml.\(key)' = \(v), expected a token id")
                }
                c.append((hfKey, .int(id)))
                gen.append((hfKey, .int(id)))
            }
        }
        c.append(("torch_dtype", .string("float32")))
        return Plan(architecture: arch, modelType: modelType, config: .object(c), generationConfig: .object(gen),
                    tensors: tensors, contextLength: context)
    }
}
