// One test per validation rule of SafeTensorsFile, each from literal header bytes: the file is
// checked both in memory and through the mmap path, and the error must have the expected kind and
// name the file (and the tensor, when there is one).

import Foundation
import XCTest
@testable import SafeTensors

final class ReaderErrorTests: XCTestCase {
    private func expect(_ bytes: [UInt8], _ kind: SafeTensorsError.Kind, tensor: String? = nil,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try makeTempDir(self)
        let path = (dir as NSString).appendingPathComponent("case.safetensors")
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        for (label, open) in [("memory", { try SafeTensorsFile(bytes: bytes, name: path) }),
                              ("mmap", { try SafeTensorsFile(path: path) })] {
            do {
                _ = try open()
                XCTFail("\(label): expected \(kind), the file was accepted", file: file, line: line)
            } catch let e as SafeTensorsError {
                XCTAssertEqual(e.kind, kind, "\(label): \(e)", file: file, line: line)
                XCTAssertTrue(e.description.hasPrefix(path + ":"), "\(label): message must name the file: \(e)", file: file, line: line)
                if let tensor {
                    XCTAssertEqual(e.tensor, tensor, "\(label): \(e)", file: file, line: line)
                    XCTAssertTrue(e.description.contains("'\(tensor)'"), "\(label): message must name the tensor: \(e)", file: file, line: line)
                }
            }
        }
    }

    private let f32x2 = [UInt8](repeating: 0, count: 8)

    // Accepted shapes of the format, for contrast.
    func testMinimalFilesAreAccepted() throws {
        let empty = try SafeTensorsFile(bytes: stFile("{}"), name: "empty")
        XCTAssertEqual(empty.tensorNames, [])
        let padded = try SafeTensorsFile(bytes: stFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   "#, data: f32x2), name: "padded")
        XCTAssertEqual(padded.info("a")?.shape, [2])
        let scalar = try SafeTensorsFile(bytes: stFile(#"{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}"#, data: f32x2), name: "scalar")
        XCTAssertEqual(scalar.info("s")?.elementCount, 1)
        let zeros = try SafeTensorsFile(bytes: stFile(#"{"z":{"dtype":"BF16","shape":[0,5],"data_offsets":[0,0]},"y":{"dtype":"I8","shape":[0],"data_offsets":[0,0]}}"#), name: "zeros")
        XCTAssertEqual(try zeros.floats("z"), [])
        XCTAssertEqual(try zeros.bytes("y").count, 0)
        let nullMeta = try SafeTensorsFile(bytes: stFile(#"{"__metadata__":null}"#), name: "null metadata")
        XCTAssertEqual(nullMeta.metadata, [:])
    }

    func testHeaderTooSmall() throws {
        try expect([1, 0, 0, 0, 0], .headerTooSmall)
        try expect([], .headerTooSmall)
    }

    func testHeaderTooLarge() throws {
        try expect(stFile("{}", declaredLength: UInt64(SafeTensorsFile.headerLimit) + 1), .headerTooLarge)
        try expect(stFile("{}", declaredLength: UInt64.max), .headerTooLarge)
    }

    func testHeaderLengthPastEnd() throws {
        try expect(stFile("{}", declaredLength: 3), .invalidHeaderLength)
        try expect(stFile("{}", declaredLength: 1000), .invalidHeaderLength)
    }

    func testHeaderNotUTF8() throws {
        try expect(stFile(headerBytes: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]), .headerNotUTF8)
        try expect(stFile(headerBytes: [0x7B, 0xC3, 0x7D]), .headerNotUTF8)          // truncated sequence
        try expect(stFile(headerBytes: [0x7B, 0xED, 0xA0, 0x80, 0x7D]), .headerNotUTF8) // encoded surrogate
    }

    func testHeaderStart() throws {
        try expect(stFile(" {}"), .invalidHeaderStart)
        try expect(stFile("[]"), .invalidHeaderStart)
        try expect(stFile(""), .invalidHeaderStart)
    }

    func testHeaderNotJSON() throws {
        try expect(stFile(#"{"a":}"#), .headerNotJSON)
        try expect(stFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}x"#, data: f32x2), .headerNotJSON)
        try expect(stFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\0", data: f32x2), .headerNotJSON)
    }

    func testWrongStructure() throws {
        try expect(stFile(#"{"a":1}"#), .invalidHeader, tensor: "a")
        try expect(stFile(#"{"a":{"dtype":"F32","shape":[2]}}"#), .invalidHeader, tensor: "a")
        try expect(stFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}"#, data: f32x2), .invalidHeader, tensor: "a")
        try expect(stFile(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: f32x2), .invalidHeader, tensor: "a")
        try expect(stFile(#"{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, data: f32x2), .invalidHeader, tensor: "a")
        try expect(stFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}"#, data: f32x2), .invalidHeader, tensor: "a")
        try expect(stFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999]}}"#, data: f32x2), .invalidHeader, tensor: "a")
        try expect(stFile(#"{"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}"#, data: f32x2), .invalidHeader, tensor: "a")
        try expect(stFile(#"{"__metadata__":{"k":1}}"#), .invalidHeader)
        try expect(stFile(#"{"__metadata__":["format","pt"]}"#), .invalidHeader)
    }

    func testDuplicateNames() throws {
        let one = #""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#
        try expect(stFile("{\(one),\(one)}", data: f32x2), .duplicateName, tensor: "a")
        try expect(stFile(#"{"__metadata__":{},"__metadata__":{}}"#), .duplicateName, tensor: "__metadata__")
        try expect(stFile(#"{"__metadata__":{"k":"1","k":"2"}}"#), .duplicateName)
    }

    func testUnknownDType() throws {
        try expect(stFile(#"{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#, data: [0]), .unknownDType, tensor: "w")
        try expect(stFile(#"{"w":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}"#, data: f32x2), .unknownDType, tensor: "w")
    }

    func testShapeOverflow() throws {
        try expect(stFile(#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: f32x2), .overflow, tensor: "w")
        try expect(stFile(#"{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}"#, data: f32x2), .overflow, tensor: "w")
    }

    func testSizeMismatch() throws {
        try expect(stFile(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), .sizeMismatch, tensor: "w")
        try expect(stFile(#"{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}"#, data: f32x2), .sizeMismatch, tensor: "w")
    }

    func testOffsetsEndBeforeBegin() throws {
        try expect(stFile(#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: f32x2), .invalidOffsets, tensor: "w")
    }

    func testOverlap() throws {
        let h = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        try expect(stFile(h, data: [UInt8](repeating: 0, count: 12)), .invalidOffsets, tensor: "b")
    }

    func testGap() throws {
        let h = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        try expect(stFile(h, data: [UInt8](repeating: 0, count: 12)), .invalidOffsets, tensor: "b")
        let notAtZero = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        try expect(stFile(notAtZero, data: f32x2), .invalidOffsets, tensor: "a")
    }

    func testOffsetsPastTheData() throws {
        try expect(stFile(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: f32x2), .invalidOffsets, tensor: "a")
    }

    func testDataNotCoveringTheFile() throws {
        try expect(stFile(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: f32x2), .incompleteData)
        try expect(stFile("{}", data: [0]), .incompleteData)
    }

    func testLookupErrorsNameTheTensor() throws {
        let f = try SafeTensorsFile(bytes: stFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: f32x2), name: "x.safetensors")
        XCTAssertThrowsError(try f.floats("b")) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .missingTensor)
            XCTAssertEqual("\(e)", "x.safetensors: tensor 'b': not in this file")
        }
        var small = [Float](repeating: 0, count: 1)
        XCTAssertThrowsError(try small.withUnsafeMutableBufferPointer { try f.floats("a", into: $0) }) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .shapeMismatch)
        }
    }

    func testMissingFileAndFolder() throws {
        XCTAssertThrowsError(try SafeTensorsFile(path: "/nonexistent/x.safetensors")) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .io)
        }
        let dir = try makeTempDir(self)
        XCTAssertThrowsError(try SafeTensorsFile(path: dir)) { e in XCTAssertEqual((e as? SafeTensorsError)?.kind, .io) }
        XCTAssertThrowsError(try Checkpoint(directory: dir)) { e in XCTAssertEqual((e as? SafeTensorsError)?.kind, .io) }
    }
}
