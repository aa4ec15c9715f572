// Mirrors transformers modeling_gemma.py, modeling_gemma2.py, modeling_gemma3.py (Gemma3ForCausalLM,
// text only). Shared: embeddings scaled by sqrt(hidden) (a f32 tensor cast to the weight dtype; the
// engine computes in f32), RMSNorm with (1 + w) computed in f32, GeGLU MLP with gelu_pytorch_tanh.
//   gemma    Llama layout otherwise; attention scale head_dim^-0.5
//   gemma2   post-norms on both writer outputs (post_attention_layernorm, post_feedforward_layernorm),
//            pre_feedforward_layernorm, attention and final logit soft-capping, sliding window on
//            layer_types (default: even layers slide), scale query_pre_attn_scalar^-0.5
//   gemma3   gemma2 plus q/k norms ((1 + w) RMSNorm over head_dim), per-layer-type RoPE
//            (sliding_attention: rope_local_base_freq, default; full_attention: rope_theta + rope_scaling),
//            layer_types default from sliding_window_pattern (6), no soft-capping by default

import Foundation

/// config.json of the Gemma family, as written (every field optional).
struct GemmaConfigJSON {
    var vocab_size: Int?
    var hidden_size: Int?
    var intermediate_size: Int?
    var num_hidden_layers: Int?
    var num_attention_heads: Int?
    var num_key_value_heads: Int?
    var head_dim: Int?
    var max_position_embeddings: Int?
    var rms_norm_eps: Double?
    var activation: String?
    var attention_bias: Bool?
    var tie_word_embeddings: Bool?
    var query_pre_attn_scalar: Double?
    var attn_logit_softcapping: Double??      // .some(nil): explicitly null
    var final_logit_softcapping: Double??
    var sliding_window: Int??
    var sliding_window_pattern: Int?
    var layer_types: [Bool]?
    var use_bidirectional_attention: Bool?
    var ropes: [RopeSpec]                     // [global] or [global, local]
    var eos_token_id: [Int]?
    var bos_token_id: Int?
    var dtype: String?

    init(_ c: ConfigReader, modelType: String) throws {
        func doubleOrNull(_ k: String) throws -> Double?? {
            guard let v = c.json[k] else { return nil }          // absent: class default
            if v.isNull { return .some(nil) }
            return .some(try c.double(k))
        }
        vocab_size = try c.int("vocab_size")
        hidden_size = try c.int("hidden_size")
        intermediate_size = try c.int("intermediate_size")
        num_hidden_layers = try c.int("num_hidden_layers")
        num_attention_heads = try c.int("num_attention_heads")
        num_key_value_heads = try c.int("num_key_value_heads")
        head_dim = try c.int("head_dim")
        max_position_embeddings = try c.int("max_position_embeddings")
        rms_norm_eps = try c.double("rms_norm_eps")
        // Gemma reads hidden_act; Gemma2/3 read hidden_activation.
        activation = modelType == "gemma" ? try c.string("hidden_act") : try c.string("hidden_activation")
        attention_bias = try c.bool("attention_bias")
        tie_word_embeddings = try c.bool("tie_word_embeddings")
        query_pre_attn_scalar = try c.double("query_pre_attn_scalar")
        attn_logit_softcapping = try doubleOrNull("attn_logit_softcapping")
        final_logit_softcapping = try doubleOrNull("final_logit_softcapping")
        if let v = c.json["sliding_window"] { sliding_window = v.isNull ? .some(nil) : .some(try c.int("sliding_window")) }
        sliding_window_pattern = try c.int("sliding_window_pattern")
        if let n = num_hidden_layers { layer_types = try parseLayerTypes(c, numLayers: n) }
        use_bidirectional_attention = try c.bool("use_bidirectional_attention")
        let maxPos = max_position_embeddings ?? (modelType == "gemma3_text" ? 131_072 : 8192)
        if modelType == "gemma3_text" {
            // Gemma3TextConfig.convert_rope_params_to_dict: nested rope_parameters per layer type, or the
            // legacy rope_theta / rope_local_base_freq / rope_scaling (the latter for full attention only).
            let nested = try c.object("rope_parameters")
            let full = try nested?.object("full_attention")
            let slide = try nested?.object("sliding_attention")
            let globalTheta = try c.double("rope_theta") ?? 1_000_000
            let localTheta = try c.double("rope_local_base_freq") ?? 10_000
            let global: RopeSpec
            if let full {
                global = try RopeParsing.spec(full, theta: globalTheta, partial: nil, maxPositions: maxPos, file: c.file)
            } else {
                global = try RopeParsing.spec(try c.object("rope_scaling"), theta: globalTheta, partial: nil, maxPositions: maxPos, file: c.file)
            }
            let local = try RopeParsing.spec(slide, theta: localTheta, partial: nil, maxPositions: maxPos, file: c.file)
            ropes = [global, local]
        } else {
            ropes = [try RopeParsing.single(c, defaultTheta: 10000, maxPositions: maxPos)]
        }
        eos_token_id = try c.ints("eos_token_id")
        bos_token_id = try c.int("bos_token_id")
        dtype = try c.string("dtype") ?? c.string("torch_dtype")
    }

    func resolve(modelType: String, file: String) throws -> ModelConfig {
        let H = try required(hidden_size, "hidden_size", file)
        let nH = try required(num_attention_heads, "num_attention_heads", file)
        let L = try required(num_hidden_layers, "num_hidden_layers", file)
        let hd = head_dim ?? 256
        let v2 = modelType != "gemma"      // gemma2 and gemma3_text
        if use_bidirectional_attention == true {
            throw ModelError("\(file): use_bidirectional_attention is not supported (causal decoding only)")
        }
        var sliding = [Bool](repeating: false, count: L)
        var window: Int? = nil
        if v2 {
            window = sliding_window ?? 4096
            let pattern = modelType == "gemma2" ? 2 : (sliding_window_pattern ?? 6)
            guard pattern > 0 else { throw ModelError("\(file): sliding_window_pattern must be positive, found \(pattern)") }
            sliding = layer_types ?? (0..<L).map { ($0 + 1) % pattern != 0 }
        }
        let scale: Double = v2 ? 1.0 / (query_pre_attn_scalar ?? 256).squareRoot() : 1.0 / Double(hd).squareRoot()
        let defaultAttnCap: Double? = modelType == "gemma2" ? 50 : nil
        let defaultFinalCap: Double? = modelType == "gemma2" ? 30 : nil
        let attnCap = attn_logit_softcapping ?? defaultAttnCap
        let finalCap = final_logit_softcapping ?? defaultFinalCap
        let bias = attention_bias ?? false
        let isGemma3 = modelType == "gemma3_text"
        let cfg = ModelConfig(
            modelType: modelType, family: .gemma,
            hiddenSize: H, numLayers: L,
            vocabSize: try required(vocab_size, "vocab_size", file),
            numHeads: nH, numKVHeads: num_key_value_heads ?? (modelType == "gemma" ? 16 : (isGemma3 ? 4 : 4)), headDim: hd,
            intermediateSize: try required(intermediate_size, "intermediate_size", file),
            maxPositions: max_position_embeddings ?? (isGemma3 ? 131_072 : 8192),
            norm: .rmsOffset, normEps: Float(rms_norm_eps ?? 1e-6),
            activation: try Activation.parse(activation ?? "gelu_pytorch_tanh", file: file), gatedMLP: true,
            qkvBias: bias, oBias: bias, mlpBias: false,
            qkNorm: isGemma3, postNorms: v2,
            embedScale: Float(Double(H).squareRoot()),   // torch.tensor(hidden**0.5) is f32; the engine computes in f32
            learnedPositions: false,
            attnScale: Float(scale),
            attnSoftcap: attnCap.map { Float($0) }, finalSoftcap: finalCap.map { Float($0) },
            ropes: ropes,
            layers: sliding.map { LayerSpec(slidingWindow: $0 ? window : nil, rope: ($0 && isGemma3) ? 1 : 0) },
            tieEmbeddings: tie_word_embeddings ?? true,
            eosTokenIds: eos_token_id ?? [1],
            bosTokenId: bos_token_id ?? 2,
            checkpointDType: dtype)
        return try cfg.validated(file: file)
    }
}

enum GemmaFamily: Architecture {
    static let modelTypes = ["gemma", "gemma2", "gemma3_text"]

    static func resolve(_ c: ConfigReader, modelType: String) throws -> ModelConfig {
        try GemmaConfigJSON(c, modelType: modelType).resolve(modelType: modelType, file: c.file)
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
                WeightSpec(p + "mlp.gate_proj.weight", [I, H], .gateProj(l)),
                WeightSpec(p + "mlp.up_proj.weight", [I, H], .upProj(l)),
                WeightSpec(p + "mlp.down_proj.weight", [H, I], .downProj(l)),
            ]
            if c.postNorms {
                t += [WeightSpec(p + "post_attention_layernorm.weight", [H], .postAttnNorm(l)),
                      WeightSpec(p + "pre_feedforward_layernorm.weight", [H], .mlpNorm(l)),
                      WeightSpec(p + "post_feedforward_layernorm.weight", [H], .postMlpNorm(l))]
            } else {
                t.append(WeightSpec(p + "post_attention_layernorm.weight", [H], .mlpNorm(l)))
            }
            if c.qkvBias {
                t += [WeightSpec(p + "self_attn.q_proj.bias", [qd], .qBias(l)),
                      WeightSpec(p + "self_attn.k_proj.bias", [kvd], .kBias(l)),
                      WeightSpec(p + "self_attn.v_proj.bias", [kvd], .vBias(l))]
            }
            if c.oBias { t.append(WeightSpec(p + "self_attn.o_proj.bias", [H], .oBias(l))) }
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
