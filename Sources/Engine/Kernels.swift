// Numeric kernels on raw pointers: BLAS-backed linear layers, norms, activations, RoPE, attention.
// Everything is f32 row-major. No allocation happens here.

import Foundation
import COpenBLAS
import CKernels

typealias FPtr = UnsafeMutablePointer<Float>
typealias CFPtr = UnsafePointer<Float>

enum Kernels {
    /// Threads for the decode matvec and the row-parallel kernels (set from LanguageModel.threads).
    nonisolated(unsafe) static var matvecThreads = 1

    /// y[N] = W[N, K] x[K], rows split across threads; four rows share each load of x.
    static func matvec(_ w: CFPtr, _ x: CFPtr, _ y: FPtr, rows N: Int, cols K: Int) {
        let nt = (N * K >= 65536) ? matvecThreads : 1
        if nt <= 1 {
            matvecRows(w, x, y, from: 0, to: N, cols: K)
        } else {
            // A job struct and a C callback (no closure context to allocate: this runs per token).
            var job = MatvecJob(w: w, x: x, y: y, rows: N, cols: K, parts: nt)
            withUnsafeMutablePointer(to: &job) { p in
                cpool_run(Int32(nt), Int32(nt), { ctx, k in
                    let j = ctx!.assumingMemoryBound(to: MatvecJob.self).pointee
                    let k = Int(k), a = (j.rows * k / j.parts) & ~3
                    let b = k == j.parts - 1 ? j.rows : (j.rows * (k + 1) / j.parts) & ~3
                    Kernels.matvecRows(j.w, j.x, j.y, from: a, to: b, cols: j.cols)
                }, p)
            }
        }
    }

    private struct MatvecJob { let w: CFPtr, x: CFPtr, y: FPtr, rows: Int, cols: Int, parts: Int }

    @inline(__always)
    static func matvecRows(_ w: CFPtr, _ x: CFPtr, _ y: FPtr, from: Int, to: Int, cols K: Int) {
        var r = from
        let K8 = K & ~7
        while r + 4 <= to {
            let w0 = w + r * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var i = 0
            while i < K8 {
                let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
                a0 = a0.addingProduct(UnsafeRawPointer(w0 + i).loadUnaligned(as: SIMD8<Float>.self), xv)
                a1 = a1.addingProduct(UnsafeRawPointer(w1 + i).loadUnaligned(as: SIMD8<Float>.self), xv)
                a2 = a2.addingProduct(UnsafeRawPointer(w2 + i).loadUnaligned(as: SIMD8<Float>.self), xv)
                a3 = a3.addingProduct(UnsafeRawPointer(w3 + i).loadUnaligned(as: SIMD8<Float>.self), xv)
                i += 8
            }
            var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
            while i < K { s0 += w0[i] * x[i]; s1 += w1[i] * x[i]; s2 += w2[i] * x[i]; s3 += w3[i] * x[i]; i += 1 }
            y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3
            r += 4
        }
        while r < to { y[r] = dot(w + r * K, x, K); r += 1 }
    }
    /// y[T, N] = x[T, K] W[N, K]^T (+ b[N]). One row uses matvec (memory-bound decode), more use sgemm.
    @inline(__always)
    static func linear(_ x: CFPtr, rows T: Int, inDim K: Int, _ w: CFPtr, outDim N: Int, bias: CFPtr?, into y: FPtr) {
        if T == 1 {
            // Own matvec: measured ~1.3x OpenBLAS sgemv here (decode is memory-bound; rows split over threads).
            matvec(w, x, y, rows: N, cols: K)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(N), Int32(K),
                        1, x, Int32(K), w, Int32(K), 0, y, Int32(N))
        }
        if let b = bias {
            for t in 0..<T { add(y + t * N, b, N) }
        }
    }

    /// y[T, N] = x[T, K] W^T (+ b) with a packed weight: CKernels' GEMM (T > 1) or matvec (T == 1),
    /// panels split across threads. Against OpenBLAS sgemm on SmolLM2's four shapes at T = 128 on
    /// this machine, alone: about 5% faster (no per-call packing of W), and in a forward pass no
    /// OpenBLAS worker threads spin beside ours.
    static func linear(_ x: CFPtr, rows T: Int, _ w: PackedWeight, bias: CFPtr?, into y: FPtr) {
        let N = w.rows
        cgemm_linear(Int32(T), Int32(N), Int32(w.cols), x, w.p, y, Int32(matvecThreads))
        if let b = bias {
            for t in 0..<T { add(y + t * N, b, N) }
        }
    }

    /// 64 floats of accumulators in eight 8-lane registers: eight independent FMA chains, enough
    /// to hide the FMA latency in the attention loops (scores over 64 keys, P V over 64 dims).
    struct Acc64 {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()

        /// self += s * r[0..<64]
        @inline(__always) mutating func add(_ s: Float, times r: UnsafeRawPointer) {
            let v = SIMD8<Float>(repeating: s)
            a0 = a0.addingProduct(v, r.loadUnaligned(as: SIMD8<Float>.self))
            a1 = a1.addingProduct(v, r.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
            a2 = a2.addingProduct(v, r.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
            a3 = a3.addingProduct(v, r.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
            a4 = a4.addingProduct(v, r.loadUnaligned(fromByteOffset: 128, as: SIMD8<Float>.self))
            a5 = a5.addingProduct(v, r.loadUnaligned(fromByteOffset: 160, as: SIMD8<Float>.self))
            a6 = a6.addingProduct(v, r.loadUnaligned(fromByteOffset: 192, as: SIMD8<Float>.self))
            a7 = a7.addingProduct(v, r.loadUnaligned(fromByteOffset: 224, as: SIMD8<Float>.self))
        }

        @inline(__always) func store(to p: FPtr) {
            let w = UnsafeMutableRawPointer(p)
            w.storeBytes(of: a0, as: SIMD8<Float>.self)
            w.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self)
            w.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self)
            w.storeBytes(of: a3, toByteOffset: 96, as: SIMD8<Float>.self)
            w.storeBytes(of: a4, toByteOffset: 128, as: SIMD8<Float>.self)
            w.storeBytes(of: a5, toByteOffset: 160, as: SIMD8<Float>.self)
            w.storeBytes(of: a6, toByteOffset: 192, as: SIMD8<Float>.self)
            w.storeBytes(of: a7, toByteOffset: 224, as: SIMD8<Float>.self)
        }
    }

    @inline(__always) static func add(_ y: FPtr, _ x: CFPtr, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            let a = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
            let b = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: a + b, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { y[i] += x[i]; i += 1 }
    }

    /// y += a * x
    @inline(__always) static func axpy(_ a: Float, _ x: CFPtr, _ y: FPtr, _ n: Int) {
        var i = 0
        let av = SIMD8<Float>(repeating: a)
        while i + 8 <= n {
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            let yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: yv.addingProduct(av, xv), as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { y[i] += a * x[i]; i += 1 }
    }

    @inline(__always) static func dot(_ a: CFPtr, _ b: CFPtr, _ n: Int) -> Float {
        var i = 0
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        while i + 16 <= n {
            let a0 = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
            let b0 = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            let a1 = UnsafeRawPointer(a + i + 8).loadUnaligned(as: SIMD8<Float>.self)
            let b1 = UnsafeRawPointer(b + i + 8).loadUnaligned(as: SIMD8<Float>.self)
            acc0 = acc0.addingProduct(a0, b0)
            acc1 = acc1.addingProduct(a1, b1)
            i += 16
        }
        while i + 8 <= n {
            let a0 = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
            let b0 = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            acc0 = acc0.addingProduct(a0, b0)
            i += 8
        }
        var s = (acc0 + acc1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// RMSNorm of each of T rows of n: out = x / sqrt(mean(x^2) + eps) * w (w already 1 + w for Gemma).
    /// The mean is accumulated in f64 (torch reduces f32 with pairwise sums; both are within an ulp or so).
    static func rmsNorm(_ x: CFPtr, _ w: CFPtr, _ out: FPtr, rows T: Int, n: Int, eps: Float) {
        parallelRows(T, cost: n) { rows in rmsNormRows(x, w, out, rows: rows, n: n, eps: eps) }
    }

    static func rmsNormRows(_ x: CFPtr, _ w: CFPtr, _ out: FPtr, rows: Range<Int>, n: Int, eps: Float) {
        for t in rows {
            let xr = x + t * n, o = out + t * n
            var ss: Double = 0
            for i in 0..<n { let v = Double(xr[i]); ss += v * v }
            let mean = Float(ss / Double(n))
            let r = 1 / (mean + eps).squareRoot()
            for i in 0..<n { o[i] = (xr[i] * r) * w[i] }
        }
    }

    /// LayerNorm (biased variance) of each of T rows of n.
    static func layerNorm(_ x: CFPtr, _ w: CFPtr, _ b: CFPtr?, _ out: FPtr, rows T: Int, n: Int, eps: Float) {
        for t in 0..<T {
            let xr = x + t * n, o = out + t * n
            var s: Double = 0
            for i in 0..<n { s += Double(xr[i]) }
            let mean = Float(s / Double(n))
            var v: Double = 0
            for i in 0..<n { let d = Double(xr[i] - mean); v += d * d }
            let r = 1 / (Float(v / Double(n)) + eps).squareRoot()
            if let b {
                for i in 0..<n { o[i] = (xr[i] - mean) * r * w[i] + b[i] }
            } else {
                for i in 0..<n { o[i] = (xr[i] - mean) * r * w[i] }
            }
        }
    }

    @inline(__always) static func activate(_ a: Activation, _ x: Float) -> Float {
        switch a {
        case .silu: return x / (1 + Foundation.exp(-x))
        case .geluTanh:
            let c: Float = 0.7978845608028654   // sqrt(2 / pi)
            return 0.5 * x * (1 + Foundation.tanh(c * (x + 0.044715 * x * x * x)))
        case .gelu: return 0.5 * x * (1 + Foundation.erf(x * 0.7071067811865476))
        }
    }

    /// body(k) for k in 0..<n on the engine's pool (CKernels' cpool: spinning workers, so the
    /// hundreds of back-to-back regions of a forward pass do not each wake a thread through the
    /// kernel as DispatchQueue.concurrentPerform did). One small heap allocation per call
    /// (withoutActuallyEscaping boxes the closure): the regions that run for every decoded token
    /// (linear, matvec) pass a job struct to a C callback instead.
    static func parallel(_ n: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { b in
            // In a concrete struct: a bare closure passed as a generic value would also get a
            // heap-allocated reabstraction thunk.
            var job = ParallelBody(run: b)
            withUnsafeMutablePointer(to: &job) { ptr in
                cpool_run(Int32(n), Int32(max(1, matvecThreads)), { ctx, i in
                    ctx!.assumingMemoryBound(to: ParallelBody.self).pointee.run(Int(i))
                }, ptr)
            }
        }
    }

    private struct ParallelBody { let run: (Int) -> Void }

    /// Runs `body` over 0..<n split in `matvecThreads` contiguous ranges at once when the work
    /// (`n * cost`, in elements) is large enough to pay for the dispatch; else inline.
    static func parallelRows(_ n: Int, cost: Int, _ body: (Range<Int>) -> Void) {
        let nt = min(matvecThreads, n)
        guard nt > 1, n * cost >= 32768 else { body(0..<n); return }
        parallel(nt) { k in body((n * k / nt)..<(n * (k + 1) / nt)) }
    }

    /// e^x for 8 lanes (Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, times 2^n),
    /// x clamped to [-87, 88]. Relative error under 1e-7 against f64 exp over that range (checked
    /// in KernelTests); the scalar libm call was most of SiLU's cost in prefill.
    @inline(__always) static func exp(_ v: SIMD8<Float>) -> SIMD8<Float> {
        let lo = SIMD8<Float>(repeating: -87), hi = SIMD8<Float>(repeating: 88)
        let x = v.replacing(with: lo, where: v .< lo).replacing(with: hi, where: v .> hi)
        // n = round(x / ln2) by adding 1.5 * 2^23: the sum's low mantissa bits hold n.
        let magic = SIMD8<Float>(repeating: 12582912)
        let t = x * SIMD8(repeating: 1.44269504088896341) + magic
        let n = t - magic
        var r = x.addingProduct(n, SIMD8(repeating: -0.693359375))
        r = r.addingProduct(n, SIMD8(repeating: 2.12194440e-4))
        let z = r * r
        var y = SIMD8<Float>(repeating: 1.9875691500e-4)
        y = y * r + 1.3981999507e-3
        y = y * r + 8.3334519073e-3
        y = y * r + 4.1665795894e-2
        y = y * r + 1.6666665459e-1
        y = y * r + 5.0000001201e-1
        y = y * z + r + 1
        let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self) &+ 127) &<< 23
        return y * unsafeBitCast(bits, to: SIMD8<Float>.self)
    }

    /// Gated: out[t, i] = act(gu[t, i]) * gu[t, I + i]; plain: out[t, i] = act(gu[t, i]).
    /// Rows are split over threads; gated SiLU runs 8 lanes at a time.
    static func mlpActivation(_ a: Activation, gated: Bool, _ gu: CFPtr, _ out: FPtr, rows T: Int, inner I: Int) {
        parallelRows(T, cost: I) { rows in
            if gated {
                for t in rows {
                    let g = gu + t * 2 * I, o = out + t * I
                    var i = 0
                    if a == .silu {
                        while i + 8 <= I {
                            let x = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
                            let u = UnsafeRawPointer(g + I + i).loadUnaligned(as: SIMD8<Float>.self)
                            UnsafeMutableRawPointer(o + i).storeBytes(of: x / (1 + exp(-x)) * u, as: SIMD8<Float>.self)
                            i += 8
                        }
                    }
                    while i < I { o[i] = activate(a, g[i]) * g[I + i]; i += 1 }
                }
            } else {
                for k in (rows.lowerBound * I)..<(rows.upperBound * I) { out[k] = activate(a, gu[k]) }
            }
        }
    }

    /// Rotate-half RoPE on `heads` heads of one row: x[i], x[i + d/2] rotated by angle of pair i,
    /// for the first `rot` dims of each head (cos/sin hold rot/2 values).
    @inline(__always)
    static func rope(_ x: FPtr, heads: Int, headDim: Int, rot: Int, cos: CFPtr, sin: CFPtr) {
        let half = rot / 2
        for h in 0..<heads {
            let p = x + h * headDim
            for i in 0..<half {
                let x1 = p[i], x2 = p[i + half]
                p[i] = x1 * cos[i] - x2 * sin[i]
                p[i + half] = x2 * cos[i] + x1 * sin[i]
            }
        }
    }
}
