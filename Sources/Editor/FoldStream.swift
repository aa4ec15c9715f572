// Streaming folds: an edited tensor is read, folded and written in blocks of rows, so a bake holds
// one block (64 MB of f32 by default) instead of the whole tensor in f32 (a 128256 x 4096
// embedding is 2 GB as f32, a 70B one 4 GB). Values equal `FoldedModel.floats` for row-local
// edits; column projections (HF Linear [hidden, in] writers) take two passes: the first
// accumulates every direction's r^T W (f64, in row order as `Fold.projectColumns` does), the
// second emits W_i - sum_k s_k r_k[i] d_k block by block, where d_k = r_k^T W_(k-1) is derived from
// the first pass's r_m^T W through d_k = r_k^T W - sum_(j<k) s_j (r_k . r_j) d_j (exact algebra).

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
    public func stream(_ name: String, as dtype: DType, blockBytes: Int = 64 << 20,
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
            var block = [Float](repeating: 0, count: min(rows, rowsPerBlock) * cols)
            var i0 = 0
            while i0 < rows {
                let n = min(rowsPerBlock, rows - i0)
                block.withUnsafeMutableBufferPointer { b in
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[(i0 * cols * srcSize)..<((i0 + n) * cols * srcSize)])
                    FloatConversion.convert(bytes, dtype: si.dtype, count: n * cols, into: b.baseAddress!) // programmer error: non-empty block
                    releaseMappedPages(bytes)
                    for (m, p) in projections.enumerated() {
                        e[m].withUnsafeMutableBufferPointer { em in
                            for i in 0..<n {
                                let ri = p.r[i0 + i]
                                let row = b.baseAddress! + i * cols // programmer error: non-empty block
                                for j in 0..<cols { em[j] += ri * Double(row[j]) }
                            }
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

        // Second (or only) pass: fold each block and emit it.
        var i0 = 0
        var block = [Float](repeating: 0, count: min(rows, rowsPerBlock) * cols)
        while i0 < rows {
            let n = min(rowsPerBlock, rows - i0)
            if block.count != n * cols { block = [Float](repeating: 0, count: n * cols) }
            block.withUnsafeMutableBufferPointer { b in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[(i0 * cols * srcSize)..<((i0 + n) * cols * srcSize)])
                FloatConversion.convert(bytes, dtype: si.dtype, count: n * cols, into: b.baseAddress!) // programmer error: non-empty block
                releaseMappedPages(bytes)
            }
            switch role {
            case let .linear(_, layout) where layout == .columns:
                block.withUnsafeMutableBufferPointer { b in
                    for i in 0..<n {
                        let row = b.baseAddress! + i * cols // programmer error: non-empty block
                        for u in colUpdates {
                            let ri = u.r[i0 + i]
                            u.sd.withUnsafeBufferPointer { sd in
                                for j in 0..<cols { row[j] = Float(Double(row[j]) - sd[j] * ri) }
                            }
                        }
                    }
                }
            case let .linear(_, layout):
                Fold.applyLinear(ops, to: &block, rows: n, cols: cols, layout: layout)
            case let .affineRows(_, scale):
                guard cols == hidden else { throw EditError.badInput("\(name): expected rows of \(hidden), found \(out.shape)") }
                Fold.applyAffine(ops, toRows: &block, count: n, hidden: hidden, constantScale: scale)
            }
            let encoded: [UInt8]
            do { encoded = try block.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype) } } catch {
                throw EditError.unsupported("\(name): cannot write \(dtype.rawValue)")
            }
            try encoded.withUnsafeBytes { try emit($0) }
            i0 += n
        }
        source.releasePages(srcName)
    }
}
