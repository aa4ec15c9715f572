// Weight names, shapes and roles, and the loader that checks them and assembles the engine's
// canonical f32 layout (fused q|k|v and gate|up matrices, [out, in] row-major; the four linear
// weights of each layer are then packed once into CKernels' panels, see PackedWeight).
//
// Loading rules:
//  1. every tensor of the architecture's table must be present with exactly the listed shape
//     (error: "model.layers.3.mlp.down_proj.weight: expected [64, 128], found [128, 64]");
//  2. any float dtype is converted to f32 (f32, f16, bf16 checkpoints load alike);
//  3. tensors the table does not list are ignored (as transformers ignores e.g. GPT-2's attn.bias masks);
//  4. GPT-2 Conv1D weights are stored [in, out] and are transposed here, once.

import Foundation
import CKernels

/// What a checkpoint tensor is to the engine. Layer-indexed roles carry the 0-based layer.
public enum WeightRole: Hashable, Sendable {
    case embed                 // token embedding table [vocab, hidden]
    case positions             // GPT-2 wpe [n_positions, hidden]
    case finalNorm, finalNormBias
    case lmHead                // [vocab, hidden], absent when tied
    case attnNorm(Int), attnNormBias(Int)
    case qProj(Int), kProj(Int), vProj(Int)
    case qkvProj(Int), qkvBias(Int)          // GPT-2 c_attn (q|k|v fused)
    case qBias(Int), kBias(Int), vBias(Int)
    case oProj(Int), oBias(Int)              // attention writer
    case qNorm(Int), kNorm(Int)
    case postAttnNorm(Int)
    case mlpNorm(Int), mlpNormBias(Int)
    case gateProj(Int), gateBias(Int)
    case upProj(Int), upBias(Int)            // GPT-2 c_fc
    case downProj(Int), downBias(Int)        // MLP writer (GPT-2 mlp.c_proj)
    case postMlpNorm(Int)
}

/// One checkpoint tensor the architecture needs.
public struct WeightSpec: Sendable {
    public var name: String          // checkpoint name, e.g. "model.layers.3.mlp.down_proj.weight"
    public var shape: [Int]          // as stored in the checkpoint
    public var role: WeightRole
    public var transposed: Bool      // stored [in, out] (GPT-2 Conv1D: y = x W + b)

    public init(_ name: String, _ shape: [Int], _ role: WeightRole, transposed: Bool = false) {
        self.name = name; self.shape = shape; self.role = role; self.transposed = transposed
    }
}

/// An owned f32 buffer, allocated once; hot loops use `p` directly.
final class FloatBuffer {
    let p: UnsafeMutablePointer<Float>
    let count: Int
    init(count: Int) {
        self.count = count
        p = .allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
    }
    convenience init(_ a: [Float]) {
        self.init(count: a.count)
        a.withUnsafeBufferPointer { src in
            if let b = src.baseAddress { p.update(from: b, count: a.count) }
        }
    }
    deinit { p.deallocate() }
}

/// A linear layer's weight [rows (out), cols (in)], packed once into CKernels' panels of 24 output
/// rows (k-major inside a panel), which both the prefill GEMM and the decode matvec stream.
final class PackedWeight {
    let p: UnsafeMutablePointer<Float>
    let rows: Int, cols: Int

    init(_ w: [Float], rows: Int, cols: Int) {
        precondition(w.count == rows * cols) // programmer error: table shapes fix this
        self.rows = rows; self.cols = cols
        let count = cgemm_packed_count(Int32(rows), Int32(cols))
        p = .allocate(capacity: max(count, 1))
        w.withUnsafeBufferPointer { cgemm_pack($0.baseAddress!, Int32(rows), Int32(cols), p) }
    }
    deinit { p.deallocate() }
}

final class LayerWeights {
    var attnNorm: FloatBuffer!        // [H] (Gemma: 1 + w)
    var attnNormBias: FloatBuffer?    // [H] (LayerNorm)
    var wqkv: PackedWeight!           // [(nH + 2 nKV) hd, H]
    var bqkv: FloatBuffer?            // [(nH + 2 nKV) hd]
    var qNorm: FloatBuffer?           // [hd]
    var kNorm: FloatBuffer?           // [hd]
    var wo: PackedWeight!             // [H, nH hd]
    var bo: FloatBuffer?              // [H]
    var postAttnNorm: FloatBuffer?    // [H]
    var mlpNorm: FloatBuffer!         // [H]
    var mlpNormBias: FloatBuffer?     // [H]
    var wgu: PackedWeight!            // gated: [2 I, H] (gate rows, then up rows); else [I, H]
    var bgu: FloatBuffer?             // [2 I] or [I]
    var wdown: PackedWeight!          // [H, I]
    var bdown: FloatBuffer?           // [H]
    var postMlpNorm: FloatBuffer?     // [H]
}

final class ModelWeights {
    var embed: FloatBuffer!           // [V, H]
    var positions: FloatBuffer?       // [P, H]
    var finalNorm: FloatBuffer!       // [H]
    var finalNormBias: FloatBuffer?   // [H]
    var lmHead: FloatBuffer!          // [V, H] (the embedding table when tied)
    var layers: [LayerWeights] = []

    /// Checks the table against the source and assembles the canonical layout.
    init(config c: ModelConfig, table: [WeightSpec], source: TensorSource,
         rename: (String) -> String) throws {
        var got: [WeightRole: [Float]] = [:]
        for spec in table {
            let actual = rename(spec.name)
            guard let info = source.info(actual) else {
                throw ModelError("\(spec.name): missing from the checkpoint (model_type '\(c.modelType)' expects \(spec.shape))")
            }
            guard info.shape == spec.shape else {
                throw ModelError("\(spec.name): expected \(spec.shape), found \(info.shape)")
            }
            guard info.dtype.isFloatingPoint else {
                throw ModelError("\(spec.name): expected a float tensor, found \(info.dtype.rawValue)")
            }
            var f = try source.floats(actual)
            if spec.transposed, spec.shape.count == 2 {
                f = Self.transpose(f, rows: spec.shape[0], cols: spec.shape[1])
            }
            got[spec.role] = f
        }
        func take(_ r: WeightRole) -> [Float]? { got.removeValue(forKey: r) }
        func need(_ r: WeightRole) throws -> [Float] {
            guard let v = take(r) else { throw ModelError("internal: weight table of '\(c.modelType)' lacks \(r)") }
            return v
        }
        // Gemma norms multiply by (1 + w), computed in f32 as transformers does; fold it in once.
        func norm(_ r: WeightRole) throws -> FloatBuffer {
            let w = try need(r)
            return FloatBuffer(c.norm == .rmsOffset ? w.map { 1 + $0 } : w)
        }
        func optNorm(_ r: WeightRole) throws -> FloatBuffer? { got[r] == nil ? nil : try norm(r) }
        func opt(_ r: WeightRole) -> FloatBuffer? { take(r).map { FloatBuffer($0) } }

        embed = FloatBuffer(try need(.embed))
        positions = opt(.positions)
        finalNorm = try norm(.finalNorm)
        finalNormBias = opt(.finalNormBias)
        lmHead = c.tieEmbeddings ? embed : FloatBuffer(try need(.lmHead))
        let H = c.hiddenSize, qd = c.qDim, kvd = c.kvDim, I = c.intermediateSize
        for l in 0..<c.numLayers {
            let w = LayerWeights()
            w.attnNorm = try norm(.attnNorm(l))
            w.attnNormBias = opt(.attnNormBias(l))
            if let fused = take(.qkvProj(l)) {
                w.wqkv = PackedWeight(fused, rows: qd + 2 * kvd, cols: H)
                w.bqkv = opt(.qkvBias(l))
            } else {
                w.wqkv = PackedWeight(try need(.qProj(l)) + need(.kProj(l)) + need(.vProj(l)), rows: qd + 2 * kvd, cols: H)
                if c.qkvBias {
                    w.bqkv = FloatBuffer(try need(.qBias(l)) + need(.kBias(l)) + need(.vBias(l)))
                }
            }
            w.qNorm = try optNorm(.qNorm(l))
            w.kNorm = try optNorm(.kNorm(l))
            w.wo = PackedWeight(try need(.oProj(l)), rows: H, cols: qd)
            w.bo = opt(.oBias(l))
            w.postAttnNorm = try optNorm(.postAttnNorm(l))
            w.mlpNorm = try norm(.mlpNorm(l))
            w.mlpNormBias = opt(.mlpNormBias(l))
            if c.gatedMLP {
                w.wgu = PackedWeight(try need(.gateProj(l)) + need(.upProj(l)), rows: 2 * I, cols: H)
                if c.mlpBias { w.bgu = FloatBuffer(try need(.gateBias(l)) + need(.upBias(l))) }
            } else {
                w.wgu = PackedWeight(try need(.upProj(l)), rows: I, cols: H)
                w.bgu = opt(.upBias(l))
            }
            w.wdown = PackedWeight(try need(.downProj(l)), rows: H, cols: I)
            w.bdown = opt(.downBias(l))
            w.postMlpNorm = try optNorm(.postMlpNorm(l))
            layers.append(w)
        }
    }

    static func transpose(_ a: [Float], rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: a.count)
        for r in 0..<rows { for k in 0..<cols { out[k * rows + r] = a[r * cols + k] } }
        return out
    }
}
