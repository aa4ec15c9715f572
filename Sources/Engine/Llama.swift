// Mirrors transformers modeling_llama.py, modeling_mistral.py, modeling_qwen2.py, modeling_qwen3.py:
// pre-norm decoder, RMSNorm (w * x / rms), rotate-half RoPE, GQA attention, SiLU-gated MLP.
// Differences inside the family:
//   llama    attention_bias (q, k, v, o biases), mlp_bias (gate, up, down biases)
//   mistral  no biases; every layer sliding when sliding_window is set (config default 4096)
//   qwen2    q/k/v biases always, o none; sliding layers only with use_sliding_window (layer_types)
//   qwen3    q/k RMSNorm over head_dim before RoPE; explicit head_dim (default 128); attention_bias on q,k,v,o

import Foundation

/// config.json of the Llama family, as written (every field optional).
struct LlamaConfigJSON {
    var vocab_size: Int?
    var hidden_size: Int?
    var intermediate_size: Int?
    var num_hidden_layers: Int?
    var num_attention_heads: Int?
    var num_key_value_heads: Int?
    var head_dim: Int?
    var max_position_embeddings: Int?
    var rms_norm_eps: Double?
    var hidden_act: String?
    var attention_bias: Bool?
    var mlp_bias: Bool?
    var tie_word_embeddings: Bool?
    var sliding_window: Int?
    var use_sliding_window: Bool?
    var max_window_layers: Int?
    var layer_types: [Bool]?              // true = sliding_attention
    var rope: RopeSpec
    var eos_token_id: [Int]?
    var bos_token_id: Int?
    var dtype: String?

    init(_ c: ConfigReader, modelType: String) throws {
        vocab_size = try c.int("vocab_size")
        hidden_size = try c.int("hidden_size")
        intermediate_size = try c.int("intermediate_size")
        num_hidden_layers = try c.int("num_hidden_layers")
        num_attention_heads = try c.int("num_attention_heads")
        num_key_value_heads = try c.int("num_key_value_heads")
        head_dim = try c.int("head_dim")
        max_position_embeddings = try c.int("max_position_embeddings")
        rms_norm_eps = try c.double("rms_norm_eps")
        hidden_act = try c.string("hidden_act")
        attention_bias = try c.bool("attention_bias")
        mlp_bias = try c.bool("mlp_bias")
        tie_word_embeddings = try c.bool("tie_word_embeddings")
        // Mistral's default window applies when the key is absent; an explicit null turns it off.
        if modelType == "mistral", c.json["sliding_window"] == nil {
            sliding_window = 4096
        } else {
            sliding_window = try c.int("sliding_window")
        }
        use_sliding_window = try c.bool("use_sliding_window")
        max_window_layers = try c.int("max_window_layers")
        if let n = num_hidden_layers { layer_types = try parseLayerTypes(c, numLayers: n) }
        let maxPos = max_position_embeddings ?? LlamaFamily.defaultMaxPositions(modelType)
        rope = try RopeParsing.single(c, defaultTheta: 10000, maxPositions: maxPos)
        eos_token_id = try c.ints("eos_token_id")
        bos_token_id = try c.int("bos_token_id")
        dtype = try c.string("dtype") ?? c.string("torch_dtype")
    }

    func resolve(modelType: String, file: String) throws -> ModelConfig {
        let H = try required(hidden_size, "hidden_size", file)
        let nH = try required(num_attention_heads, "num_attention_heads", file)
        let L = try required(num_hidden_layers, "num_hidden_layers", file)
        guard nH > 0 else { throw ModelError("\(file): num_attention_heads must be positive, found \(nH)") }
        let isQwen = modelType == "qwen2" || modelType == "qwen3"
        let nKV = num_key_value_heads ?? (modelType == "mistral" ? 8 : (isQwen ? 32 : nH))
        let hd = head_dim ?? (modelType == "qwen3" ? 128 : H / max(nH, 1))
        guard modelType == "qwen3" || head_dim != nil || H % nH == 0 else {
            throw ModelError("\(file): hidden_size \(H) is not a multiple of num_attention_heads \(nH) and head_dim is not given")
        }
        // Which layers slide (masking_utils sliding_window_overlay: key j visible from query i when i - j < W).
        var sliding = [Bool](repeating: false, count: L)
        var window: Int? = nil
        switch modelType {
        case "mistral":
            window = sliding_window
            if window != nil { sliding = [Bool](repeating: true, count: L) }
        case "qwen2", "qwen3":
            if use_sliding_window == true, let w = sliding_window {
                window = w
                sliding = layer_types ?? (0..<L).map { $0 >= (max_window_layers ?? 28) }
            }
        default:
            break   // Llama has no sliding window
        }
        let attnBias = attention_bias ?? false
        let cfg = ModelConfig(
            modelType: modelType, family: .llama,
            hiddenSize: H, numLayers: L,
            vocabSize: try required(vocab_size, "vocab_size", file),
            numHeads: nH, numKVHeads: nKV, headDim: hd,
            intermediateSize: try required(intermediate_size, "intermediate_size", file),
            maxPositions: max_position_embeddings ?? LlamaFamily.defaultMaxPositions(modelType),
            norm: .rms, normEps: Float(rms_norm_eps ?? 1e-6),
            activation: try Activation.parse(hidden_act ?? "silu", file: file), gatedMLP: true,
            qkvBias: modelType == "qwen2" ? true : ((modelType == "llama" || modelType == "qwen3") && attnBias),
            oBias: (modelType == "llama" || modelType == "qwen3") && attnBias,
            mlpBias: modelType == "llama" && (mlp_bias ?? false),
            qkNorm: modelType == "qwen3", postNorms: false, embedScale: nil, learnedPositions: false,
            attnScale: Float(1.0 / Double(hd).squareRoot()), attnSoftcap: nil, finalSoftcap: nil,
            ropes: [rope],
            layers: sliding.map { LayerSpec(slidingWindow: $0 ? window : nil, rope: 0) },
            tieEmbeddings: tie_word_embeddings ?? false,
            eosTokenIds: eos_token_id ?? (isQwen ? [] : [2]),
            bosTokenId: bos_token_id ?? (isQwen ? nil : 1),
            checkpointDType: dtype)
        return try cfg.validated(file: file)
    }
}

enum LlamaFamily: Architecture {
    static let modelTypes = ["llama", "mistral", "qwen2", "qwen3"]

    static func defaultMaxPositions(_ modelType: String) -> Int {
        switch modelType {
        case "mistral": return 4096 * 32
        case "qwen2", "qwen3": return 32768
        default: return 2048
        }
    }

    static func resolve(_ c: ConfigReader, modelType: String) throws -> ModelConfig {
        try LlamaConfigJSON(c, modelType: modelType).resolve(modelType: modelType, file: c.file)
    }

    static func weightTable(_ c: ModelConfig) -> [WeightSpec] {
        let H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize, hd = c.headDim
        let qd = c.qDim, kvd = c.kvDim
        var t: [WeightSpec] = [WeightSpec("model.embed_tokens.weight", [V, H], .embed)]
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            t += [
                WeightSpec(p + "input_layernorm.weight", [H], .attnNorm(l)),
                WeightSpec(p + "self_attn.q_proj.weight", [qd, H], .qProj(l)),
                WeightSpec(p + "self_attn.k_proj.weight", [kvd, H], .kProj(l)),
                WeightSpec(p + "self_attn.v_proj.weight", [kvd, H], .vProj(l)),
                WeightSpec(p + "self_attn.o_proj.weight", [H, qd], .oProj(l)),
                WeightSpec(p + "post_attention_layernorm.weight", [H], .mlpNorm(l)),
                WeightSpec(p + "mlp.gate_proj.weight", [I, H], .gateProj(l)),
                WeightSpec(p + "mlp.up_proj.weight", [I, H], .upProj(l)),
                WeightSpec(p + "mlp.down_proj.weight", [H, I], .downProj(l)),
            ]
            if c.qkvBias {
                t += [WeightSpec(p + "self_attn.q_proj.bias", [qd], .qBias(l)),
                      WeightSpec(p + "self_attn.k_proj.bias", [kvd], .kBias(l)),
                      WeightSpec(p + "self_attn.v_proj.bias", [kvd], .vBias(l))]
            }
            if c.oBias { t.append(WeightSpec(p + "self_attn.o_proj.bias", [H], .oBias(l))) }
            if c.mlpBias {
                t += [WeightSpec(p + "mlp.gate_proj.bias", [I], .gateBias(l)),
                      WeightSpec(p + "mlp.up_proj.bias", [I], .upBias(l)),
                      WeightSpec(p + "mlp.down_proj.bias", [H], .downBias(l))]
            }
            if c.qkNorm {
                t += [WeightSpec(p + "self_attn.q_norm.weight", [hd], .qNorm(l)),
                      WeightSpec(p + "self_attn.k_norm.weight", [hd], .kNorm(l))]
            }
        }
        t.append(WeightSpec("model.norm.weight", [H], .finalNorm))
        if !c.tieEmbeddings { t.append(WeightSpec("lm_head.weight", [V, H], .lmHead)) }
        return t
    }
}
