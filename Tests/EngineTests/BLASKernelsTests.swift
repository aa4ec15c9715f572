// The OpenBLAS kernel override of Engine/BLASKernels.swift: asked for only when OpenBLAS chose AVX2
// kernels on a CPU that lists every AVX-512 subset the SkylakeX kernels need.

import XCTest
@testable import Engine

final class BLASKernelsTests: XCTestCase {
    let zen4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512vbmi sha_ni\n"
    let haswell = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c\n"
    let partial = "flags\t\t: avx2 avx512f avx512cd\n"

    func testOverrideOnlyForUnrecognisedAVX512() {
        XCTAssertEqual(BLASKernels.betterCoreType(current: "Haswell", cpuinfo: zen4), "SkylakeX")
        XCTAssertEqual(BLASKernels.betterCoreType(current: "Zen", cpuinfo: zen4), "SkylakeX")
        XCTAssertNil(BLASKernels.betterCoreType(current: "SkylakeX", cpuinfo: zen4), "OpenBLAS already uses AVX-512")
        XCTAssertNil(BLASKernels.betterCoreType(current: "Cooperlake", cpuinfo: zen4))
        XCTAssertNil(BLASKernels.betterCoreType(current: "Haswell", cpuinfo: haswell), "no AVX-512")
        XCTAssertNil(BLASKernels.betterCoreType(current: "Haswell", cpuinfo: partial), "AVX-512 without BW/DQ/VL")
        XCTAssertNil(BLASKernels.betterCoreType(current: "Haswell", cpuinfo: ""))
    }

    func testCurrentIsNamed() {
        XCTAssertFalse(BLASKernels.current.isEmpty)
        XCTAssertNotEqual(BLASKernels.current, "unknown")
    }
}
