// Folding interventions into weights (DESIGN.md section 4), as pure functions on f32 buffers.
//
// Every foldable intervention is an affine map on the output y (a stream vector, [hidden]) of one
// residual writer:
//     project(r, s):  y <- y - s r (r . y)          (ablate; clamp's first half; r unit, f64)
//     add(c):         y <- y + c                    (add: c = scale v; clamp's second half: c = value r)
// A writer y = W x + b therefore becomes W' = P W (the linear part, constants dropped) and
// b' = f(b) (the whole affine map), applied in order. Norm-preserving projection rescales each
// written vector back to the norm it had before that projection.

import Foundation

public enum WriterOp: Sendable {
    case project(r: [Double], strength: Double, preserveNorm: Bool)
    case add([Double])

    public var isConstant: Bool { if case .add = self { return true }; return false }
}

public enum Fold {
    /// Applies the linear part of `ops` to a weight whose written vectors lie along `layout`
    /// (constants do not touch weights). `w` is row-major [rows, cols].
    public static func applyLinear(_ ops: [WriterOp], to w: inout [Float], rows: Int, cols: Int, layout: WriterLayout) {
        precondition(w.count == rows * cols) // programmer error: shapes come from the checkpoint header
        for op in ops {
            guard case let .project(r, s, keep) = op else { continue }
            switch layout {
            case .rows:
                precondition(r.count == cols) // programmer error: checked when planning
                w.withUnsafeMutableBufferPointer { p in
                    for i in 0..<rows { projectVector(p.baseAddress! + i * cols, count: cols, r: r, s: s, preserveNorm: keep) }
                }
            case .columns:
                precondition(r.count == rows) // programmer error: checked when planning
                projectColumns(&w, rows: rows, cols: cols, r: r, s: s, preserveNorm: keep)
            }
        }
    }

    /// Applies the whole affine map to each of `count` stream vectors stored as rows of `x`
    /// ([count, hidden]: a bias is one row, an embedding table or GPT-2 `wpe` many). Constants are
    /// multiplied by `constantScale` (1 / embedding scale for Gemma's table).
    public static func applyAffine(_ ops: [WriterOp], toRows x: inout [Float], count: Int, hidden: Int, constantScale: Double = 1) {
        precondition(x.count == count * hidden) // programmer error: shapes come from the checkpoint header
        x.withUnsafeMutableBufferPointer { p in
            applyAffine(ops, toRows: p.baseAddress!, count: count, hidden: hidden, constantScale: constantScale) // programmer error: count > 0 or unused
        }
    }

    /// The same on `count` rows at `x` (rows are independent: callers may split them across threads).
    public static func applyAffine(_ ops: [WriterOp], toRows x: UnsafeMutablePointer<Float>, count: Int, hidden: Int, constantScale: Double = 1) {
        for op in ops {
            switch op {
            case let .project(r, s, keep):
                for i in 0..<count { projectVector(x + i * hidden, count: hidden, r: r, s: s, preserveNorm: keep) }
            case .add(let c):
                for i in 0..<count {
                    let row = x + i * hidden
                    for j in 0..<hidden { row[j] = Float(Double(row[j]) + c[j] * constantScale) }
                }
            }
        }
    }

    /// The linear part of `ops` on `count` rows at `x` whose written vectors are the rows
    /// (embedding tables, GPT-2 Conv1D): rows are independent.
    public static func applyLinearRows(_ ops: [WriterOp], to x: UnsafeMutablePointer<Float>, count: Int, cols: Int) {
        for op in ops {
            guard case let .project(r, s, keep) = op else { continue }
            for i in 0..<count { projectVector(x + i * cols, count: cols, r: r, s: s, preserveNorm: keep) }
        }
    }

    /// y <- y - s r (r . y) for one contiguous vector, in f64 arithmetic; optionally rescaled to the old norm.
    @inline(__always)
    static func projectVector(_ y: UnsafeMutablePointer<Float>, count n: Int, r: [Double], s: Double, preserveNorm: Bool) {
        var dot = 0.0, before = 0.0
        for j in 0..<n { let v = Double(y[j]); dot += r[j] * v; before += v * v }
        let c = s * dot
        if !preserveNorm {
            for j in 0..<n { y[j] = Float(Double(y[j]) - c * r[j]) }
            return
        }
        var after = 0.0
        var tmp = [Double](repeating: 0, count: n)
        for j in 0..<n { let v = Double(y[j]) - c * r[j]; tmp[j] = v; after += v * v }
        // A vector that was (almost) all along r has no direction left to rescale: keep it projected.
        let k = after > 1e-30 * max(before, 1e-300) ? (before / after).squareRoot() : 1
        for j in 0..<n { y[j] = Float(tmp[j] * k) }
    }

    /// Projection of every column of a row-major [rows, cols] matrix (HF Linear: column j is what
    /// input unit j writes into the stream).
    static func projectColumns(_ w: inout [Float], rows: Int, cols: Int, r: [Double], s: Double, preserveNorm: Bool) {
        var dot = [Double](repeating: 0, count: cols)
        var before = [Double](repeating: 0, count: cols)
        w.withUnsafeMutableBufferPointer { p in
            for i in 0..<rows {
                let row = p.baseAddress! + i * cols
                let ri = r[i]
                for j in 0..<cols { let v = Double(row[j]); dot[j] += ri * v; before[j] += v * v }
            }
            for j in 0..<cols { dot[j] *= s }
            if !preserveNorm {
                for i in 0..<rows {
                    let row = p.baseAddress! + i * cols
                    let ri = r[i]
                    for j in 0..<cols { row[j] = Float(Double(row[j]) - dot[j] * ri) }
                }
                return
            }
            var after = [Double](repeating: 0, count: cols)
            for i in 0..<rows {
                let row = p.baseAddress! + i * cols
                let ri = r[i]
                for j in 0..<cols { let v = Double(row[j]) - dot[j] * ri; after[j] += v * v }
            }
            var k = [Double](repeating: 1, count: cols)
            for j in 0..<cols where after[j] > 1e-30 * max(before[j], 1e-300) { k[j] = (before[j] / after[j]).squareRoot() }
            for i in 0..<rows {
                let row = p.baseAddress! + i * cols
                let ri = r[i]
                for j in 0..<cols { row[j] = Float((Double(row[j]) - dot[j] * ri) * k[j]) }
            }
        }
    }
}
