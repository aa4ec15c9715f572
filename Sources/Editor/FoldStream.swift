// Streaming folds: an edited tensor is read, folded and written in blocks of rows, so a bake holds
// one block (2 MB of f32 by default: it stays in cache from conversion to write) instead of the
// whole tensor in f32 (a 128256 x 4096 embedding is 2 GB as f32, a 70B one 4 GB). Values equal
// `FoldedModel.floats` for row-local edits; column projections (HF Linear [hidden, in] writers)
// take two passes: the first accumulates every direction's r^T W (f64, in row order as
// `Fold.projectColumns` does), the second emits W_i - sum_k s_k r_k[i] d_k block by block, where
// d_k = r_k^T W_(k-1) is derived from the first pass's r_m^T W through
// d_k = r_k^T W - sum_(j<k) s_j (r_k . r_j) d_j (exact algebra).

import Foundation

extension FoldedModel {
    /// Whether `stream(_:as:emit:)` can write this tensor (2-D source tensor with an edit role,
    /// no rounding for the floor, no norm-preserving column projection).
    public func canStream(_ name: String) -> Bool {
        guard roundThrough == nil, let out = info(name), out.shape.count == 2, let role = role(of: name) else { return false }
        if case let .linear(w, .columns) = role {
            for op in plan.ops[w] ?? [] { if case let .project(_, _, keep) = op, keep { return false } }
        }
        return true
    }

    /// Writes the folded tensor encoded as `dtype` through `emit`, one block of rows at a time.
    public func stream(_ name: String, as dtype: DType, blockBytes: Int = 2 << 20,
                       emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard canStream(name), let out = info(name), let role = role(of: name) else {
            throw EditError.badInput("\(name): cannot be streamed") // programmer error: callers check canStream
        }
        let srcName = sourceName(of: name)
        guard let si = source.info(srcName), si.shape.reduce(1, *) == out.shape.reduce(1, *) else {
            throw EditError.badInput("\(srcName): source tensor does not match the folded shape \(out.shape)")
        }
        let raw = try source.bytes(srcName)
        let rows = out.shape[0], cols = out.shape[1]
        let rowsPerBlock = max(1, blockBytes / max(1, cols * 4))
        let hidden = architecture.hiddenSize
        let ops = plan.ops[role.writer] ?? []
        let srcSize = si.dtype.size

        // Column projections: first pass for r_m^T W of every direction.
        var colUpdates: [(r: [Double], sd: [Double])] = []
        if case .linear(_, .columns) = role {
            let projections: [(r: [Double], s: Double)] = ops.compactMap {
                if case let .project(r, s, _) = $0 { return (r, s) } else { return nil }
            }
            guard projections.allSatisfy({ $0.r.count == rows }) else {
                throw EditError.badInput("\(name): direction size does not match \(rows) rows") // programmer error: planned
            }
            var e = [[Double]](repeating: [Double](repeating: 0, count: cols), count: projections.count)
            let base = streamScratch.floats(min(rows, rowsPerBlock) * cols)
            var i0 = 0
            while i0 < rows {
                let n = min(rowsPerBlock, rows - i0)
                convertRows(raw, from: i0, count: n, cols: cols, dtype: si.dtype, into: base)
                for (m, p) in projections.enumerated() {
                    e[m].withUnsafeMutableBufferPointer { em in
                        let acc = em.baseAddress! // programmer error: cols > 0
                        for i in 0..<n {
                            let ri = p.r[i0 + i]
                            let row = base + i * cols
                            for j in 0..<cols { acc[j] += ri * Double(row[j]) }
                        }
                    }
                }
                i0 += n
            }
            // d_k = r_k^T W_(k-1) = e_k - sum_(j<k) s_j (r_k . r_j) d_j
            var d: [[Double]] = []
            for (k, p) in projections.enumerated() {
                var dk = e[k]
                for j in 0..<k {
                    let c = projections[j].s * zip(p.r, projections[j].r).reduce(0) { $0 + $1.0 * $1.1 }
                    if c != 0 { for x in 0..<cols { dk[x] -= c * d[j][x] } }
                }
                d.append(dk)
                colUpdates.append((p.r, dk.map { $0 * p.s }))
            }
        }

        // Second (or only) pass: fold each block and emit it. The f32 block and its encoded
        // bytes live in buffers reused by every block and tensor.
        if case .affineRows = role, cols != hidden {
            throw EditError.badInput("\(name): expected rows of \(hidden), found \(out.shape)")
        }
        guard FloatConversion.encodable.contains(dtype) else { throw EditError.unsupported("\(name): cannot write \(dtype.rawValue)") }
        let base = streamScratch.floats(min(rows, rowsPerBlock) * cols)
        let encoded = streamScratch.bytes(min(rows, rowsPerBlock) * cols * dtype.size)
        var i0 = 0
        while i0 < rows {
            let n = min(rowsPerBlock, rows - i0)
            // One thread: in a first bake the source checksum runs on the other core and is the
            // longest thread; folding on two threads took CPU from it (SmolLM2 first bake 0.44
            // -> 0.41 s median serial, 15 interleaved rounds), and gained nothing in a rebake
            // (SmolLM2 0.26 s either way; 6 GB bf16 2.73 s serial vs 3.00 s on two threads).
            convertRows(raw, from: i0, count: n, cols: cols, dtype: si.dtype, into: base)
            switch role {
            case let .linear(_, layout) where layout == .columns:
                for i in 0..<n {
                    let row = base + i * cols
                    for u in colUpdates {
                        let ri = u.r[i0 + i]
                        u.sd.withUnsafeBufferPointer { sd in
                            for j in 0..<cols { row[j] = Float(Double(row[j]) - sd[j] * ri) }
                        }
                    }
                }
            case .linear:
                Fold.applyLinearRows(ops, to: base, count: n, cols: cols)
            case let .affineRows(_, scale):
                Fold.applyAffine(ops, toRows: base, count: n, hidden: hidden, constantScale: scale)
            }
            // encodable checked above
            try? FloatConversion.encode(UnsafeBufferPointer(start: base, count: n * cols), as: dtype, into: encoded)
            try emit(UnsafeRawBufferPointer(start: encoded, count: n * cols * dtype.size))
            i0 += n
        }
        source.releasePages(srcName)

        /// Converts `count` source rows starting at row `from` to f32 and drops their mapped pages.
        func convertRows(_ raw: UnsafeRawBufferPointer, from: Int, count: Int, cols: Int, dtype: DType, into out: UnsafeMutablePointer<Float>) {
            let bytes = UnsafeRawBufferPointer(rebasing: raw[(from * cols * srcSize)..<((from + count) * cols * srcSize)])
            FloatConversion.convert(bytes, dtype: dtype, count: count * cols, into: out)
            releaseMappedPages(bytes)
        }
    }
}

/// The buffers of `FoldedModel.stream`, grown on demand and kept for the model's lifetime: a bake
/// streams tensor after tensor, and fresh pages cost ~1-2 s per GiB on first touch here (a new
/// 64 MB block per tensor and a new array per encoded block were most of a bf16 bake's system
/// time). One stream at a time (bake writes tensors in sequence).
final class StreamScratch: @unchecked Sendable {
    private let block = Growable(), encoded = Growable()

    /// The f32 block: room for `n` floats.
    func floats(_ n: Int) -> UnsafeMutablePointer<Float> { block.bytes(4 * n).bindMemory(to: Float.self, capacity: n) }
    /// The encoded block: room for `n` bytes.
    func bytes(_ n: Int) -> UnsafeMutableRawPointer { encoded.bytes(n) }

    /// One buffer, reallocated only when asked for more than it holds.
    private final class Growable {
        private var p = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64)
        private var capacity = 1
        func bytes(_ n: Int) -> UnsafeMutableRawPointer {
            if n > capacity {
                p.deallocate()
                p = .allocate(byteCount: n, alignment: 64)
                capacity = n
            }
            return p
        }
        deinit { p.deallocate() }
    }
}
