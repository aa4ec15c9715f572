// Kernels that replace libm calls: the 8-lane exp (SiLU and softmax) against f64 exp, and the
// gated SiLU activation against the scalar formula.

import Foundation
import XCTest
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
}
