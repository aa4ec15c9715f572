// Residual writers per architecture: the one place that says which tensors write into the
// residual stream, in which layout, and which bias slot (if any) the loader honours for them.
//
// Mirrors transformers 5.x: modeling_llama.py, modeling_mistral.py, modeling_qwen2.py,
// modeling_qwen3.py, modeling_gemma.py, modeling_gemma2.py, modeling_gemma3.py, modeling_gpt2.py.

import Foundation

/// How a weight matrix lays out the vectors it writes into the stream.
public enum WriterLayout: Sendable, Equatable {
    /// Rows are stream vectors: embedding tables [vocab, hidden], GPT-2 `Conv1D` [in, hidden] (y = x W + b).
    case rows
    /// Columns are stream vectors: HF `nn.Linear` [hidden, in] (y = W x + b).
    case columns
}

public enum WriterFamily: String, Sendable {
    case llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3, gpt2

    /// Post-norm blocks: the writer output is normalised before the residual add.
    public var postNorm: Bool { self == .gemma2 || self == .gemma3 }
    /// Families the loader can only give bias slots by re-expressing the model as Llama (gotcha 2).
    public var needsLlamaForBias: Bool { self == .qwen2 || self == .mistral }
    /// Embedding output multiplied by sqrt(hidden) (cast to the weight dtype), as Gemma*ScaledWordEmbedding does.
    public var scaledEmbedding: Bool { self == .gemma || self == .gemma2 || self == .gemma3 }
}

/// Where a writer's output can take a constant: its own bias, a bias slot switched on by a config
/// flag, or nowhere.
public enum BiasSlot: Sendable, Equatable {
    case present                                   // the checkpoint already has the bias
    case configFlag(key: String, siblings: [String]) // flag switches on biases for every sibling projection
    case none(reason: String)
}

public struct ModelArchitecture: Sendable {
    public var family: WriterFamily
    public var modelType: String          // as in config.json
    public var hiddenSize: Int            // e.g. 576
    public var numLayers: Int             // e.g. 30
    public var tiedEmbeddings: Bool       // lm_head shares the token embedding table
    public var embedding: String          // "model.embed_tokens.weight" [vocab, hidden]
    public var positional: String?       // GPT-2 "transformer.wpe.weight" [positions, hidden]

    public init(config: JSONValue, names: Set<String>, file: String) throws {
        guard let mt = config["model_type"]?.stringValue else {
            throw EditError.badInput("\(file): config.json has no model_type")
        }
        modelType = mt
        switch mt {
        case "llama": family = .llama
        case "mistral": family = .mistral
        case "qwen2": family = .qwen2
        case "qwen3": family = .qwen3
        case "gemma": family = .gemma
        case "gemma2": family = .gemma2
        case "gemma3_text": family = .gemma3
        case "gpt2": family = .gpt2
        case "gemma3":
            throw EditError.unsupported("\(file): model_type gemma3 (multimodal) is not supported by bake; extract the text model (Gemma3ForCausalLM, model_type gemma3_text)")
        default:
            throw EditError.unsupported("\(file): model_type '\(mt)' is not supported by bake (supported: llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, gpt2)")
        }
        func int(_ k: String) throws -> Int {
            guard let v = config[k]?.intValue, v > 0 else { throw EditError.badInput("\(file): config.json: '\(k)' missing or not a positive integer") }
            return v
        }
        if family == .gpt2 {
            hiddenSize = try int("n_embd"); numLayers = try int("n_layer")
            let prefix = names.contains("transformer.wte.weight") ? "transformer." : ""
            embedding = prefix + "wte.weight"; positional = prefix + "wpe.weight"
            gpt2Prefix = prefix
        } else {
            hiddenSize = try int("hidden_size"); numLayers = try int("num_hidden_layers")
            embedding = "model.embed_tokens.weight"; positional = nil
            gpt2Prefix = ""
        }
        let defaultTied: Bool
        switch family {
        case .gpt2, .gemma, .gemma2, .gemma3: defaultTied = true
        default: defaultTied = false
        }
        tiedEmbeddings = config["tie_word_embeddings"]?.boolValue ?? defaultTied
        self.config = config
    }

    private var gpt2Prefix: String
    private var config: JSONValue

    /// Attention output projection of layer L and its bias name.
    public func attnOut(_ l: Int) -> (weight: String, bias: String, layout: WriterLayout) {
        if family == .gpt2 { return ("\(gpt2Prefix)h.\(l).attn.c_proj.weight", "\(gpt2Prefix)h.\(l).attn.c_proj.bias", .rows) }
        return ("model.layers.\(l).self_attn.o_proj.weight", "model.layers.\(l).self_attn.o_proj.bias", .columns)
    }

    /// MLP down projection of layer L and its bias name.
    public func mlpOut(_ l: Int) -> (weight: String, bias: String, layout: WriterLayout) {
        if family == .gpt2 { return ("\(gpt2Prefix)h.\(l).mlp.c_proj.weight", "\(gpt2Prefix)h.\(l).mlp.c_proj.bias", .rows) }
        return ("model.layers.\(l).mlp.down_proj.weight", "model.layers.\(l).mlp.down_proj.bias", .columns)
    }

    /// Post-norm weight applied to a writer's output (Gemma2/3), whose scale is (1 + w).
    public func postNormWeight(attention: Bool, layer l: Int) -> String? {
        guard family.postNorm else { return nil }
        return attention ? "model.layers.\(l).post_attention_layernorm.weight" : "model.layers.\(l).post_feedforward_layernorm.weight"
    }

    /// Projections whose biases one config flag switches on together (the flag's siblings).
    func attentionProjections(_ l: Int) -> [String] {
        ["q_proj", "k_proj", "v_proj", "o_proj"].map { "model.layers.\(l).self_attn.\($0)" }
    }
    func mlpProjections(_ l: Int) -> [String] {
        ["gate_proj", "up_proj", "down_proj"].map { "model.layers.\(l).mlp.\($0)" }
    }

    /// The bias slot for constants written by the attention (or MLP) output of a layer.
    /// Llama here also stands for Qwen2/Mistral re-expressed as Llama.
    public func biasSlot(attention: Bool, names: Set<String>, asLlama: Bool) -> BiasSlot {
        let bias = attention ? attnOut(0).bias : mlpOut(0).bias
        if names.contains(bias) { return .present }
        let fam: WriterFamily = asLlama ? .llama : family
        switch (fam, attention) {
        case (.gpt2, _): return .present
        case (.llama, true): return .configFlag(key: "attention_bias", siblings: ["q_proj", "k_proj", "v_proj", "o_proj"])
        case (.llama, false): return .configFlag(key: "mlp_bias", siblings: ["gate_proj", "up_proj", "down_proj"])
        case (.qwen3, true), (.gemma, true): return .configFlag(key: "attention_bias", siblings: ["q_proj", "k_proj", "v_proj", "o_proj"])
        case (.qwen3, false), (.gemma, false):
            return .none(reason: "\(modelType) has no MLP bias slot (transformers ignores mlp_bias for it) and cannot be re-expressed as Llama (\(family == .qwen3 ? "q/k norms" : "scaled embeddings, (1+w) norms"))")
        case (.gemma2, _), (.gemma3, _):
            return .none(reason: "\(modelType) normalises the writer output after the projection (post-norm block), so a constant added before the norm is not a constant in the stream")
        case (.qwen2, _), (.mistral, _):
            return .none(reason: "\(modelType) ignores attention_bias/mlp_bias on load (a bias written there would be dropped)")
        }
    }

    /// Sliding-window attention that Llama cannot express, if any (Mistral defaults to 4096 when the key is absent).
    public var slidingWindowBlockingLlama: String? {
        switch family {
        case .mistral:
            let w: Int? = config["sliding_window"].map { $0.isNull ? nil : $0.intValue } ?? 4096
            guard let w else { return nil }
            let maxPos = config["max_position_embeddings"]?.intValue ?? Int.max
            return w < maxPos ? "sliding_window \(w) (Llama has no sliding window; the re-expressed model is exact only for sequences up to \(w) tokens)" : nil
        case .qwen2:
            if config["use_sliding_window"]?.boolValue == true, let w = config["sliding_window"]?.intValue {
                return "use_sliding_window with sliding_window \(w) (Llama has no sliding window; exact only for sequences up to \(w) tokens)"
            }
            return nil
        default: return nil
        }
    }

    /// Embedding scale as transformers computes it: sqrt(hidden) as f32, cast to the weight dtype.
    public func embeddingScale(dtype: DType) -> Double {
        guard family.scaledEmbedding else { return 1 }
        let s = Float(Double(hiddenSize).squareRoot())
        switch dtype {
        case .BF16: return Double(FloatConversion.bf16ToFloat(FloatConversion.floatToBF16(s)))
        case .F16: return Double(Float(Float16(s)))
        default: return Double(s)
        }
    }
}
