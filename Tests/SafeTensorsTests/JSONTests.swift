import XCTest
@testable import SafeTensors
final class JSONTests: XCTestCase {
    func testParsesAndKeepsOrder() throws {
        let v = try JSONValue.parse(#"{"b": 1, "a": [true, null, 2.5, "x\u00e9"]}"#)
        XCTAssertEqual(v.objectPairs?.map { $0.0 }, ["b", "a"])
        XCTAssertEqual(v["a"], .array([.bool(true), .null, .double(2.5), .string("xé")]))
    }
    func testRejectsDeepNesting() {
        XCTAssertThrowsError(try JSONValue.parse(String(repeating: "[", count: 1000)))
    }
}
