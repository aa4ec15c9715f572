// The kernel name `edit-cli bench` reports comes from OpenBLAS itself.

import XCTest
@testable import Engine

final class BLASKernelsTests: XCTestCase {
    func testCurrentIsNamed() {
        XCTAssertFalse(BLASKernels.current.isEmpty)
        XCTAssertNotEqual(BLASKernels.current, "unknown")
    }
}
