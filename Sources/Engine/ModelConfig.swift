// The engine's view of a model: one plain, validated struct shared by every architecture.
// Each architecture file decodes its config.json mirror (all optionals) and resolves it into this.

import Foundation

/// Errors of model loading: unsupported model_type, bad config values, missing or misshaped tensors.
public struct ModelError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

public enum NormKind: Sendable, Equatable {
    case rms            // w * x / rms(x)                      (Llama, Mistral, Qwen2, Qwen3)
    case rmsOffset      // (1 + w) * x / rms(x), in f32        (Gemma, Gemma2, Gemma3)
    case layerNorm      // w * (x - mean) / std + b            (GPT-2)
}

public enum Activation: String, Sendable, Equatable {
    case silu                              // Llama family (gated)
    case geluTanh = "gelu_pytorch_tanh"    // Gemma (gated), GPT-2 "gelu_new"
    case gelu                              // exact erf form

    static func parse(_ s: String, file: String) throws -> Activation {
        switch s {
        case "silu", "swish": return .silu
        case "gelu_pytorch_tanh", "gelu_new", "gelu_fast", "gelu_python_tanh": return .geluTanh
        case "gelu": return .gelu
        default: throw ModelError("\(file): activation '\(s)' is not supported (silu, gelu, gelu_pytorch_tanh, gelu_new)")
        }
    }
}

public enum RopeType: Sendable, Equatable {
    case standard                                   // "default"
    case linear(factor: Double)
    case dynamic(factor: Double)                    // NTK, recomputed when the sequence outgrows maxPositions
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
}

public struct RopeSpec: Sendable, Equatable {
    public var type: RopeType
    public var theta: Double                 // e.g. 10000.0
    public var partialRotaryFactor: Double   // 1.0: rotate the whole head
}

public struct LayerSpec: Sendable, Equatable {
    public var slidingWindow: Int?   // nil: full causal attention; W: key j visible to query i when i - j < W
    public var rope: Int             // index into ModelConfig.ropes
}

public enum Family: String, Sendable {
    case llama      // llama, mistral, qwen2, qwen3
    case gemma      // gemma, gemma2, gemma3_text
    case gpt2
}

/// Resolved configuration. Example values are SmolLM2-135M's.
public struct ModelConfig: Sendable {
    public var modelType: String             // "llama"
    public var family: Family                // .llama
    public var hiddenSize: Int               // 576
    public var numLayers: Int                // 30
    public var vocabSize: Int                // 49152
    public var numHeads: Int                 // 9
    public var numKVHeads: Int               // 3
    public var headDim: Int                  // 64
    public var intermediateSize: Int         // 1536
    public var maxPositions: Int             // 8192
    public var norm: NormKind                // .rms
    public var normEps: Float                // 1e-5
    public var activation: Activation        // .silu
    public var gatedMLP: Bool                // true: down(act(gate(x)) * up(x)); false: proj(act(fc(x)))
    public var qkvBias: Bool                 // false (Qwen2: true)
    public var oBias: Bool                   // false
    public var mlpBias: Bool                 // false
    public var qkNorm: Bool                  // false (Qwen3, Gemma3: true)
    public var postNorms: Bool               // false (Gemma2/3: writer outputs are normed before the add)
    public var embedScale: Float?            // nil (Gemma: sqrt(hidden) in the model dtype)
    public var learnedPositions: Bool        // false (GPT-2: wpe)
    public var attnScale: Float              // 0.125 = head_dim^-0.5
    public var attnSoftcap: Float?           // nil (Gemma2: 50)
    public var finalSoftcap: Float?          // nil (Gemma2: 30)
    public var ropes: [RopeSpec]             // one per distinct RoPE (Gemma3: [global, local]); [] for GPT-2
    public var layers: [LayerSpec]           // per layer: window and RoPE
    public var tieEmbeddings: Bool           // true
    public var eosTokenIds: [Int]            // [2]
    public var bosTokenId: Int?              // 1
    public var checkpointDType: String?      // "float32" / "bfloat16" as config.json says

    var qkvRows: Int { (numHeads + 2 * numKVHeads) * headDim }
    var qDim: Int { numHeads * headDim }
    var kvDim: Int { numKVHeads * headDim }

    /// Checks the invariants every forward pass relies on.
    func validated(file: String) throws -> ModelConfig {
        func need(_ ok: Bool, _ what: String) throws { if !ok { throw ModelError("\(file): \(what)") } }
        try need(hiddenSize > 0, "hidden size must be positive, found \(hiddenSize)")
        try need(numLayers > 0, "number of layers must be positive, found \(numLayers)")
        try need(vocabSize > 0, "vocab_size must be positive, found \(vocabSize)")
        try need(numHeads > 0 && numKVHeads > 0, "head counts must be positive, found \(numHeads)/\(numKVHeads)")
        try need(numHeads % numKVHeads == 0, "num_attention_heads (\(numHeads)) must be a multiple of num_key_value_heads (\(numKVHeads))")
        try need(headDim > 0 && headDim % 2 == 0, "head_dim must be positive and even, found \(headDim)")
        try need(intermediateSize > 0, "intermediate size must be positive, found \(intermediateSize)")
        try need(maxPositions > 0, "max_position_embeddings must be positive, found \(maxPositions)")
        try need(normEps > 0 && normEps.isFinite, "norm epsilon must be positive, found \(normEps)")
        try need(layers.count == numLayers, "layer_types has \(layers.count) entries, expected \(numLayers)")
        for l in layers {
            if let w = l.slidingWindow { try need(w > 0, "sliding_window must be positive, found \(w)") }
            if !learnedPositions { try need(l.rope >= 0 && l.rope < ropes.count, "internal: rope index out of range") }
        }
        for r in ropes {
            try need(r.theta > 0 && r.theta.isFinite, "rope_theta must be positive, found \(r.theta)")
            let rot = Int(Double(headDim) * r.partialRotaryFactor)
            try need(rot > 0 && rot <= headDim && rot % 2 == 0, "partial_rotary_factor \(r.partialRotaryFactor) gives \(rot) rotary dims of \(headDim)")
        }
        if let c = attnSoftcap { try need(c > 0, "attn_logit_softcapping must be positive, found \(c)") }
        if let c = finalSoftcap { try need(c > 0, "final_logit_softcapping must be positive, found \(c)") }
        return self
    }
}

// MARK: - Reading config.json fields

/// Typed access to config.json fields: absent or null is nil; a present field of the wrong type is an error.
struct ConfigReader {
    let json: JSONValue
    let file: String

    init(json: JSONValue, file: String) { self.json = json; self.file = file }

    static func load(path: String) throws -> ConfigReader {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError("\(path): cannot read")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(data: [UInt8](data)) } catch {
            throw ModelError("\(path): not valid JSON: \(error)")
        }
        guard json.objectPairs != nil else { throw ModelError("\(path): expected a JSON object") }
        return ConfigReader(json: json, file: path)
    }

    private func value(_ k: String) -> JSONValue? {
        guard let v = json[k], !v.isNull else { return nil }
        return v
    }
    func int(_ k: String) throws -> Int? {
        guard let v = value(k) else { return nil }
        guard let i = v.intValue else { throw ModelError("\(file): '\(k)' must be an integer, found \(v.serialized())") }
        return i
    }
    func double(_ k: String) throws -> Double? {
        guard let v = value(k) else { return nil }
        guard let d = v.doubleValue, d.isFinite else { throw ModelError("\(file): '\(k)' must be a number, found \(v.serialized())") }
        return d
    }
    func bool(_ k: String) throws -> Bool? {
        guard let v = value(k) else { return nil }
        guard let b = v.boolValue else { throw ModelError("\(file): '\(k)' must be true or false, found \(v.serialized())") }
        return b
    }
    func string(_ k: String) throws -> String? {
        guard let v = value(k) else { return nil }
        guard let s = v.stringValue else { throw ModelError("\(file): '\(k)' must be a string, found \(v.serialized())") }
        return s
    }
    func strings(_ k: String) throws -> [String]? {
        guard let v = value(k) else { return nil }
        guard let a = v.arrayValue else { throw ModelError("\(file): '\(k)' must be a list of strings") }
        return try a.map {
            guard let s = $0.stringValue else { throw ModelError("\(file): '\(k)' must be a list of strings, found \($0.serialized())") }
            return s
        }
    }
    /// An int or a list of ints (eos_token_id).
    func ints(_ k: String) throws -> [Int]? {
        guard let v = value(k) else { return nil }
        if let i = v.intValue { return [i] }
        if let a = v.intArray { return a }
        throw ModelError("\(file): '\(k)' must be an integer or a list of integers, found \(v.serialized())")
    }
    func object(_ k: String) throws -> ConfigReader? {
        guard let v = value(k) else { return nil }
        guard v.objectPairs != nil else { throw ModelError("\(file): '\(k)' must be an object, found \(v.serialized())") }
        return ConfigReader(json: v, file: "\(file): '\(k)'")
    }
}

// MARK: - RoPE parameters (modeling_rope_utils.py)

enum RopeParsing {
    /// One rope dict in either form: transformers 5 `rope_parameters` {"rope_type", "rope_theta", ...}
    /// or the legacy `rope_scaling` {"type"/"rope_type", "factor", ...} with `rope_theta` beside it.
    static func spec(_ r: ConfigReader?, theta fallbackTheta: Double, partial fallbackPartial: Double?,
                     maxPositions: Int, file: String) throws -> RopeSpec {
        let type = try r?.string("rope_type") ?? r?.string("type") ?? "default"
        let theta = try r?.double("rope_theta") ?? fallbackTheta
        let partial = try r?.double("partial_rotary_factor") ?? fallbackPartial ?? 1.0
        func factor() throws -> Double {
            guard let f = try r?.double("factor") else { throw ModelError("\(file): rope type '\(type)' needs 'factor'") }
            guard f > 0 else { throw ModelError("\(file): rope 'factor' must be positive, found \(f)") }
            return f
        }
        let t: RopeType
        switch type {
        case "default": t = .standard
        case "linear": t = .linear(factor: try factor())
        case "dynamic": t = .dynamic(factor: try factor())
        case "llama3":
            guard let lo = try r?.double("low_freq_factor"), let hi = try r?.double("high_freq_factor") else {
                throw ModelError("\(file): rope type 'llama3' needs 'low_freq_factor' and 'high_freq_factor'")
            }
            guard hi != lo else { throw ModelError("\(file): llama3 rope needs high_freq_factor != low_freq_factor") }
            let orig = try r?.int("original_max_position_embeddings") ?? maxPositions
            t = .llama3(factor: try factor(), lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: orig)
        default:
            throw ModelError("\(file): rope type '\(type)' is not supported (supported: default, linear, dynamic, llama3)")
        }
        return RopeSpec(type: t, theta: theta, partialRotaryFactor: partial)
    }

    /// The single RoPE of a model without per-layer-type RoPE.
    static func single(_ c: ConfigReader, defaultTheta: Double, maxPositions: Int) throws -> RopeSpec {
        let theta = try c.double("rope_theta") ?? defaultTheta
        let partial = try c.double("partial_rotary_factor")
        if let p = try c.object("rope_parameters") {
            return try spec(p, theta: theta, partial: partial, maxPositions: maxPositions, file: c.file)
        }
        return try spec(try c.object("rope_scaling"), theta: theta, partial: partial, maxPositions: maxPositions, file: c.file)
    }
}

/// `layer_types` ("full_attention" / "sliding_attention") as booleans (true = sliding), checked.
func parseLayerTypes(_ c: ConfigReader, numLayers: Int) throws -> [Bool]? {
    guard let types = try c.strings("layer_types") else { return nil }
    guard types.count == numLayers else {
        throw ModelError("\(c.file): layer_types has \(types.count) entries, expected num_hidden_layers = \(numLayers)")
    }
    return try types.enumerated().map { (i, t) in
        switch t {
        case "full_attention": return false
        case "sliding_attention": return true
        default: throw ModelError("\(c.file): layer_types[\(i)] = '\(t)' is not supported (full_attention, sliding_attention)")
        }
    }
}

func required<T>(_ v: T?, _ key: String, _ file: String) throws -> T {
    guard let v else { throw ModelError("\(file): missing '\(key)'") }
    return v
}
