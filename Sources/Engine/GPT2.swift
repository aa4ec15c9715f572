// Mirrors transformers modeling_gpt2.py (GPT2LMHeadModel): LayerNorm pre-norm blocks, learned
// position table wpe, fused c_attn, Conv1D weights stored [in, out] (y = x W + b), gelu_new MLP,
// attention scale head_dim^-0.5 (scale_attn_weights), unembedding tied to wte unless told otherwise.
// Checkpoints saved by GPT2LMHeadModel prefix names with "transformer."; the original OpenAI
// conversions do not: both load.

import Foundation

/// config.json of GPT-2, as written (every field optional).
struct GPT2ConfigJSON {
    var vocab_size: Int?
    var n_positions: Int?
    var n_embd: Int?
    var n_layer: Int?
    var n_head: Int?
    var n_inner: Int?
    var activation_function: String?
    var layer_norm_epsilon: Double?
    var scale_attn_weights: Bool?
    var scale_attn_by_inverse_layer_idx: Bool?
    var tie_word_embeddings: Bool?
    var eos_token_id: [Int]?
    var bos_token_id: Int?
    var dtype: String?

    init(_ c: ConfigReader) throws {
        vocab_size = try c.int("vocab_size")
        n_positions = try c.int("n_positions")
        n_embd = try c.int("n_embd")
        n_layer = try c.int("n_layer")
        n_head = try c.int("n_head")
        n_inner = try c.int("n_inner")
        activation_function = try c.string("activation_function")
        layer_norm_epsilon = try c.double("layer_norm_epsilon")
        scale_attn_weights = try c.bool("scale_attn_weights")
        scale_attn_by_inverse_layer_idx = try c.bool("scale_attn_by_inverse_layer_idx")
        tie_word_embeddings = try c.bool("tie_word_embeddings")
        eos_token_id = try c.ints("eos_token_id")
        bos_token_id = try c.int("bos_token_id")
        dtype = try c.string("dtype") ?? c.string("torch_dtype")
    }

    func resolve(file: String) throws -> ModelConfig {
        let H = n_embd ?? 768
        let nH = n_head ?? 12
        let L = n_layer ?? 12
        guard nH > 0, H % nH == 0 else { throw ModelError("\(file): n_embd \(H) is not a multiple of n_head \(nH)") }
        if scale_attn_by_inverse_layer_idx == true {
            throw ModelError("\(file): scale_attn_by_inverse_layer_idx is not supported")
        }
        let hd = H / nH
        let cfg = ModelConfig(
            modelType: "gpt2", family: .gpt2,
            hiddenSize: H, numLayers: L, vocabSize: vocab_size ?? 50257,
            numHeads: nH, numKVHeads: nH, headDim: hd,
            intermediateSize: n_inner ?? 4 * H, maxPositions: n_positions ?? 1024,
            norm: .layerNorm, normEps: Float(layer_norm_epsilon ?? 1e-5),
            activation: try Activation.parse(activation_function ?? "gelu_new", file: file), gatedMLP: false,
            qkvBias: true, oBias: true, mlpBias: true, qkNorm: false, postNorms: false,
            embedScale: nil, learnedPositions: true,
            attnScale: (scale_attn_weights ?? true) ? Float(1.0 / Double(hd).squareRoot()) : 1,
            attnSoftcap: nil, finalSoftcap: nil, ropes: [],
            layers: [LayerSpec](repeating: LayerSpec(slidingWindow: nil, rope: 0), count: L),
            tieEmbeddings: tie_word_embeddings ?? true,
            eosTokenIds: eos_token_id ?? [50256], bosTokenId: bos_token_id ?? 50256,
            checkpointDType: dtype)
        return try cfg.validated(file: file)
    }
}

enum GPT2: Architecture {
    static let modelTypes = ["gpt2"]

    static func resolve(_ c: ConfigReader, modelType: String) throws -> ModelConfig {
        try GPT2ConfigJSON(c).resolve(file: c.file)
    }

    static func weightTable(_ c: ModelConfig) -> [WeightSpec] {
        let H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize
        var t: [WeightSpec] = [
            WeightSpec("transformer.wte.weight", [V, H], .embed),
            WeightSpec("transformer.wpe.weight", [c.maxPositions, H], .positions),
        ]
        for l in 0..<c.numLayers {
            let p = "transformer.h.\(l)."
            t += [
                WeightSpec(p + "ln_1.weight", [H], .attnNorm(l)),
                WeightSpec(p + "ln_1.bias", [H], .attnNormBias(l)),
                WeightSpec(p + "attn.c_attn.weight", [H, 3 * H], .qkvProj(l), transposed: true),
                WeightSpec(p + "attn.c_attn.bias", [3 * H], .qkvBias(l)),
                WeightSpec(p + "attn.c_proj.weight", [H, H], .oProj(l), transposed: true),
                WeightSpec(p + "attn.c_proj.bias", [H], .oBias(l)),
                WeightSpec(p + "ln_2.weight", [H], .mlpNorm(l)),
                WeightSpec(p + "ln_2.bias", [H], .mlpNormBias(l)),
                WeightSpec(p + "mlp.c_fc.weight", [H, I], .upProj(l), transposed: true),
                WeightSpec(p + "mlp.c_fc.bias", [I], .upBias(l)),
                WeightSpec(p + "mlp.c_proj.weight", [I, H], .downProj(l), transposed: true),
                WeightSpec(p + "mlp.c_proj.bias", [H], .downBias(l)),
            ]
        }
        t += [WeightSpec("transformer.ln_f.weight", [H], .finalNorm),
              WeightSpec("transformer.ln_f.bias", [H], .finalNormBias)]
        if !c.tieEmbeddings { t.append(WeightSpec("lm_head.weight", [V, H], .lmHead)) }
        return t
    }

    /// Original OpenAI-converted checkpoints have no "transformer." prefix.
    static func checkpointName(_ name: String, in source: TensorSource) -> String {
        if source.info(name) == nil, name.hasPrefix("transformer.") {
            let bare = String(name.dropFirst("transformer.".count))
            if source.info(bare) != nil { return bare }
        }
        return name
    }
}
