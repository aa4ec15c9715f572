// The SIMD F16/BF16 loops against the scalar definitions, on every bit pattern and at every
// tail length; F8 decoding against the format definitions.

import XCTest
import TestSupport
@testable import SafeTensors

final class FloatConversionTests: XCTestCase {
    func testF16AndBF16EveryBitPattern() {
        let all = (0...0xFFFF).map { UInt16($0) }
        for dtype in [DType.F16, .BF16] {
            let got = all.withUnsafeBytes { FloatConversion.toFloat32($0, dtype: dtype, count: all.count) }
            for (k, h) in all.enumerated() {
                let want = dtype == .F16 ? Float(Float16(bitPattern: h)) : Float(bitPattern: UInt32(h) << 16)
                if !sameFloat(got[k], want) { XCTFail("\(dtype) 0x\(String(h, radix: 16)): \(got[k]) vs \(want)"); return }
            }
        }
    }

    func testUnalignedAndTailLengths() {
        var rng = SeededRandom(seed: 5)
        let raw = (0..<80).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for dtype in [DType.F16, .BF16, .F32, .F64, .I32, .I16, .I64] {
            for offset in 0..<3 {
                for count in 0...((80 - offset) / dtype.size) {
                    let got = raw.withUnsafeBytes { FloatConversion.toFloat32(UnsafeRawBufferPointer(rebasing: $0[offset...]), dtype: dtype, count: count) }
                    for k in 0..<count {
                        let b = Array(raw[(offset + k * dtype.size)..<(offset + (k + 1) * dtype.size)])
                        let want: Float = b.withUnsafeBytes { p in
                            switch dtype {
                            case .F16: return Float(p.loadUnaligned(as: Float16.self))
                            case .BF16: return Float(bitPattern: UInt32(p.loadUnaligned(as: UInt16.self)) << 16)
                            case .F32: return p.loadUnaligned(as: Float.self)
                            case .F64: return Float(p.loadUnaligned(as: Double.self))
                            case .I32: return Float(p.loadUnaligned(as: Int32.self))
                            case .I16: return Float(p.loadUnaligned(as: Int16.self))
                            default: return Float(p.loadUnaligned(as: Int64.self))
                            }
                        }
                        XCTAssertTrue(sameFloat(got[k], want), "\(dtype) offset \(offset) count \(count) [\(k)]")
                    }
                }
            }
        }
    }

    func testEncodeRoundsToNearestEven() throws {
        var rng = SeededRandom(seed: 9)
        let xs: [Float] = (0..<1003).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng)) } + [1 + 0x1p-8, 1 + 3 * 0x1p-8, .nan, -.infinity]
        let bf = try xs.withUnsafeBufferPointer { try FloatConversion.encode($0, as: .BF16) }
        let hf = try xs.withUnsafeBufferPointer { try FloatConversion.encode($0, as: .F16) }
        for (k, x) in xs.enumerated() {
            let b = UInt16(bf[2 * k]) | UInt16(bf[2 * k + 1]) << 8
            let h = UInt16(hf[2 * k]) | UInt16(hf[2 * k + 1]) << 8
            XCTAssertEqual(b, FloatConversion.floatToBF16(x), "bf16 of \(x)")
            XCTAssertTrue(sameFloat(Float(Float16(bitPattern: h)), Float(Float16(x))), "f16 of \(x)")
        }
        XCTAssertEqual(FloatConversion.floatToBF16(1 + 0x1p-8), 0x3F80, "tie rounds to even (down)")
        XCTAssertEqual(FloatConversion.floatToBF16(1 + 3 * 0x1p-8), 0x3F82, "tie rounds to even (up)")
        XCTAssertThrowsError(try [Float(1)].withUnsafeBufferPointer { try FloatConversion.encode($0, as: .I8) })
    }

    func testF8Definitions() {
        XCTAssertEqual(FloatConversion.f8e4m3ToFloat(0x7E), 448)          // max normal
        XCTAssertEqual(FloatConversion.f8e4m3ToFloat(0x01), 0x1p-9)       // min subnormal
        XCTAssertEqual(FloatConversion.f8e4m3ToFloat(0x38), 1)
        XCTAssertEqual(FloatConversion.f8e4m3ToFloat(0xB8), -1)
        XCTAssertTrue(FloatConversion.f8e4m3ToFloat(0x7F).isNaN)
        XCTAssertTrue(FloatConversion.f8e4m3ToFloat(0xFF).isNaN)
        XCTAssertEqual(FloatConversion.f8e5m2ToFloat(0x7C), .infinity)
        XCTAssertEqual(FloatConversion.f8e5m2ToFloat(0x7B), 57344)
        XCTAssertEqual(FloatConversion.f8e5m2ToFloat(0x3C), 1)
    }
}
