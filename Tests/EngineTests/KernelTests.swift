// Kernels that replace libm calls: the 8-lane exp (SiLU and softmax) against f64 exp, and the
// gated SiLU activation against the scalar formula. CKernels: the packed GEMM/matvec against an
// f64 reference on shapes that leave every remainder (rows % 4, outputs % 24, k blocks of 256),
// the pool's index coverage (also after its workers went to sleep, and nested), and forward
// passes that split their work over threads against one thread (the same arithmetic per
// residual element, so the same bits).

import Foundation
import XCTest
import CKernels
@testable import Engine

final class KernelTests: XCTestCase {
    func testExpRelativeError() {
        var worst = 0.0, worstAt: Float = 0
        var x: Float = -87
        while x <= 88 {
            let lanes = SIMD8<Float>((0..<8).map { x + Float($0) * 0.0001 })
            let got = Kernels.exp(lanes)
            for k in 0..<8 {
                let want = Foundation.exp(Double(lanes[k]))
                let rel = abs(Double(got[k]) - want) / want
                if rel > worst { worst = rel; worstAt = lanes[k] }
            }
            x += 0.00731
        }
        XCTAssertLessThan(worst, 2e-7, "worst at \(worstAt)")
        // Clamped outside [-87, 88]: finite, positive, monotone at the ends.
        let ends = Kernels.exp(SIMD8<Float>(-1000, -100, -87, 0, 1, 88, 100, .infinity))
        for k in 0..<8 { XCTAssertTrue(ends[k].isFinite && ends[k] > 0, "lane \(k): \(ends[k])") }
        XCTAssertEqual(ends[3], 1)
    }

    func testGatedSiLUMatchesScalar() {
        let T = 3, I = 37   // not a multiple of 8: the tail takes the scalar path
        var rng = SystemRandomNumberGenerator()
        let gu = (0..<(T * 2 * I)).map { _ in Float.random(in: -20...20, using: &rng) }
        var out = [Float](repeating: 0, count: T * I)
        gu.withUnsafeBufferPointer { g in
            out.withUnsafeMutableBufferPointer { o in
                Kernels.mlpActivation(.silu, gated: true, g.baseAddress!, o.baseAddress!, rows: T, inner: I)
            }
        }
        for t in 0..<T {
            for i in 0..<I {
                let x = Double(gu[t * 2 * I + i]), u = Double(gu[t * 2 * I + I + i])
                let want = x / (1 + Foundation.exp(-x)) * u
                XCTAssertEqual(Double(out[t * I + i]), want, accuracy: 2e-6 * max(1, abs(want)), "[\(t), \(i)]")
            }
        }
    }

    func testPackedLinearMatchesFloat64Reference() {
        var rng = SystemRandomNumberGenerator()
        let saved = Kernels.matvecThreads
        defer { Kernels.matvecThreads = saved; cgemm_set_portable(0) }
        var checked = 0
        // Threads 1-3 with the AVX2 kernels where this CPU has them, then the portable loops.
        for (threads, portable) in [(1, false), (2, false), (3, false), (2, true)] {
            Kernels.matvecThreads = threads
            cgemm_set_portable(portable ? 1 : 0)
            for (T, N, K) in [(1, 1, 1), (1, 50, 300), (2, 24, 8), (3, 25, 17), (4, 47, 256), (5, 48, 257),
                              (7, 5, 3), (9, 96, 520), (13, 73, 64), (128, 120, 100)] {
                let x = (0..<(T * K)).map { _ in Float.random(in: -1...1, using: &rng) }
                let w = (0..<(N * K)).map { _ in Float.random(in: -1...1, using: &rng) }
                let b = (0..<N).map { _ in Float.random(in: -1...1, using: &rng) }
                let packed = PackedWeight(w, rows: N, cols: K)
                var y = [Float](repeating: .nan, count: T * N)
                x.withUnsafeBufferPointer { xp in
                    b.withUnsafeBufferPointer { bp in
                        y.withUnsafeMutableBufferPointer { yp in
                            Kernels.linear(xp.baseAddress!, rows: T, packed, bias: bp.baseAddress!, into: yp.baseAddress!)
                        }
                    }
                }
                for t in 0..<T {
                    for n in 0..<N {
                        var want = Double(b[n])
                        for k in 0..<K { want += Double(x[t * K + k]) * Double(w[n * K + k]) }
                        XCTAssertEqual(Double(y[t * N + n]), want, accuracy: 1e-5 * Double(K).squareRoot() + 1e-6,
                                       "threads \(threads) portable \(portable) T \(T) N \(N) K \(K) at [\(t), \(n)]")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }

    func testPoolRunsEveryIndexOnce() {
        let saved = Kernels.matvecThreads
        defer { Kernels.matvecThreads = saved }
        // A million back-to-back regions of changing sizes (about a second): a claim racing the
        // next region's setup once ran an index twice about once in 30,000 regions, which this
        // caught in two runs of three at 200,000.
        // Now and then the workers are left to reach their sleep (they spin for 2 ms first).
        for (threads, rounds) in [(1, 200), (2, 1_000_000), (3, 200), (5, 200)] {
            Kernels.matvecThreads = threads
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: 9)
            defer { hits.deallocate() }
            var failures = 0
            for round in 0..<rounds {
                let n = 1 + round % 9
                hits.initialize(repeating: 0, count: n)
                Kernels.parallel(n) { k in hits[k] += 1 }
                if (0..<n).contains(where: { hits[$0] != 1 }) {
                    failures += 1
                    if failures <= 3 {
                        XCTFail("threads \(threads) round \(round): \(Array(UnsafeBufferPointer(start: hits, count: n)))")
                    }
                }
                if round % 50 == 49 && round < 1000 { usleep(5000) }
            }
            XCTAssertEqual(failures, 0, "threads \(threads): regions with an index not run exactly once")
        }
        // A region inside a region runs on the calling thread.
        Kernels.matvecThreads = 2
        let cells = UnsafeMutablePointer<Int>.allocate(capacity: 9)
        cells.initialize(repeating: 0, count: 9)
        Kernels.parallel(3) { i in Kernels.parallel(3) { j in cells[i * 3 + j] += 1 } }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: cells, count: 9)), [Int](repeating: 1, count: 9))
        cells.deallocate()
    }

    /// Long enough sequences that the GEMMs, the attention and the row kernels split over threads:
    /// every element of the residual stream is computed by the same arithmetic whichever thread
    /// runs it.
    func testThreadsDoNotChangeLogits() throws {
        let saved = LanguageModel.threads
        defer { LanguageModel.threads = saved }
        for name in ["llama", "qwen3", "gemma2", "gemma3", "gpt2"] {
            let m = try LanguageModel.load(path: Fixtures.path(name))
            let n = min(m.config.maxPositions, 64)
            let tokens = (0..<n).map { ($0 * 7919 + 11) % m.config.vocabSize }
            let last = HookPoint.residPost(m.config.numLayers - 1)
            LanguageModel.threads = 1
            let one = try m.logits(tokens: tokens, capture: [last])
            LanguageModel.threads = 3      // as many as this machine has, up to 3
            let three = try m.logits(tokens: tokens, capture: [last])
            let many = LanguageModel.threads
            XCTAssertEqual(one.logits.count, n * m.config.vocabSize)
            let d = zip(one.logits, three.logits).map { abs($0 - $1) }.max() ?? 0
            XCTAssertTrue(one.captured[last] == three.captured[last], "\(name): last residual differs between 1 and \(many) threads")
            // The unembedding of all rows is OpenBLAS's sgemm, whose blocking (not ours) follows the
            // thread count: a few ulps apart.
            XCTAssertLessThan(d, 1e-5, "\(name): logits differ between 1 and \(many) threads")
        }
    }
}
