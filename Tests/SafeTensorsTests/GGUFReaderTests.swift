import XCTest
import Foundation
@testable import SafeTensors

let ggufFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/gguf").path

/// Writes bytes to a fresh temporary file and returns its path.
func tempFile(_ bytes: [UInt8], name: String = "t.gguf") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let p = dir.appendingPathComponent(name).path
    try Data(bytes).write(to: URL(fileURLWithPath: p))
    ggufTempDirs.append(dir.path)
    return p
}

nonisolated(unsafe) var ggufTempDirs: [String] = []

final class GGUFReaderTests: XCTestCase {
    override func tearDown() {
        for d in ggufTempDirs { try? FileManager.default.removeItem(atPath: d) }
        ggufTempDirs = []
    }

    // MARK: against gguf-py

    func testMetadataOfEveryValueType() throws {
        let f = try GGUFFile(path: ggufFixtures + "/quant_types.gguf")
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.architecture, "fixture")
        XCTAssertEqual(f.metadata["test.u8"], .uint8(200))
        XCTAssertEqual(f.metadata["test.i8"], .int8(-100))
        XCTAssertEqual(f.metadata["test.u16"], .uint16(60000))
        XCTAssertEqual(f.metadata["test.i16"], .int16(-30000))
        XCTAssertEqual(f.metadata["test.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(f.metadata["test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(f.metadata["test.f32"], .float32(0.25))
        XCTAssertEqual(f.metadata["test.u64"], .uint64(10_000_000_000_000_000_000))
        XCTAssertEqual(f.metadata["test.i64"], .int64(-9_000_000_000_000_000_000))
        XCTAssertEqual(f.metadata["test.f64"], .float64(-1.5))
        XCTAssertEqual(f.metadata["test.bool"], .bool(true))
        XCTAssertEqual(f.metadata["test.string"], .string("héllo ✓"))
        XCTAssertEqual(f.metadata["test.array_i32"], .array(.int32, [.int32(1), .int32(-2), .int32(3)]))
        XCTAssertEqual(f.metadata["test.array_str"]?.stringArray, ["a", "bc", ""])
        XCTAssertEqual(f.metadata["test.array_nested"],
                       .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [.int32(3)])]))
        XCTAssertEqual(f.metadataKeys.first, "general.architecture")
        XCTAssertEqual(f.alignment, 32)
    }

    func testDequantizationMatchesGGUFPyBitForBit() throws {
        let f = try GGUFFile(path: ggufFixtures + "/quant_types.gguf")
        let want = try SafeTensorsFile(path: ggufFixtures + "/quant_types.safetensors")
        let types: [GGMLType] = [.F32, .F16, .BF16, .Q8_0, .Q4_0, .Q4_1, .Q5_0, .Q5_1, .Q2_K, .Q3_K, .Q4_K, .Q5_K, .Q6_K]
        for t in types {
            let name = "t.\(t.name)"
            XCTAssertEqual(f.tensorInfo(name)?.type, t)
            XCTAssertEqual(f.info(name)?.shape, [4, 512], name)
            let got = try f.floats(name), exp = try want.floats(name)
            XCTAssertEqual(got.count, exp.count, name)
            var mismatches = 0
            for k in 0..<min(got.count, exp.count) where got[k].bitPattern != exp[k].bitPattern {
                if mismatches < 3 { XCTFail("\(name)[\(k)]: got \(got[k]), gguf-py \(exp[k])") }
                mismatches += 1
            }
            XCTAssertEqual(mismatches, 0, name)
        }
        XCTAssertEqual(f.tensorInfo("t.cube")?.dims, [32, 3, 2])
        XCTAssertEqual(f.info("t.cube")?.shape, [2, 3, 32])
        XCTAssertEqual(try f.floats("t.cube"), try want.floats("t.cube"))
        XCTAssertEqual(f.tensorNames.count, 14)
    }

    // MARK: writer round trip

    func testWriterRoundTripWithEmptyAndNestedArrays() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("x"))
        w.set("a.empty", .array(.string, []))
        w.set("a.nested", .array(.array, [.array(.string, [.string("p"), .string("q")])]))
        w.set("a.f64", .float64(3.5))
        w.tensors.append(.init(name: "v", f32: [1, 2, 3, 4, 5, 6], shape: [2, 3]))
        w.tensors.append(.init(name: "s", f32: [7], shape: [1]))
        let p = try tempFile(w.serialized())
        let f = try GGUFFile(path: p)
        XCTAssertEqual(f.metadata["a.empty"], .array(.string, []))
        XCTAssertEqual(f.metadata["a.nested"], .array(.array, [.array(.string, [.string("p"), .string("q")])]))
        XCTAssertEqual(f.metadata["a.f64"]?.doubleValue, 3.5)
        XCTAssertEqual(f.info("v")?.shape, [2, 3])
        XCTAssertEqual(try f.floats("v"), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try f.floats("s"), [7])
        XCTAssertEqual(f.tensorNames, ["v", "s"])
    }

    func testNonDefaultAlignment() throws {
        var w = GGUFWriter()
        w.alignment = 64
        w.set("general.architecture", .string("x"))
        w.tensors = [.init(name: "a", f32: [1, 2, 3], shape: [3]), .init(name: "b", f32: [4, 5], shape: [2])]
        let f = try GGUFFile(path: try tempFile(w.serialized()))
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.dataOffset % 64, 0)
        XCTAssertEqual(f.tensorInfo("b")?.offset, 64)
        XCTAssertEqual(try f.floats("b"), [4, 5])
    }

    /// Truncations and byte flips of a valid file either parse or throw a GGUFError: never crash.
    func testCorruptedFilesThrowOrParseButNeverCrash() throws {
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ggufFixtures + "/quant_types.gguf")))
        var rng = SystemRandomNumberGenerator()
        var thrown = 0, parsed = 0
        let headerEnd = try GGUFFile(path: ggufFixtures + "/quant_types.gguf").dataOffset
        for trial in 0..<300 {
            var b = good
            if trial % 3 == 0 {
                b = Array(b.prefix(Int.random(in: 0..<good.count, using: &rng)))
            } else {
                for _ in 0..<(1 + trial % 4) { b[Int.random(in: 0..<headerEnd, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            }
            let p = try tempFile(b)
            defer { try? FileManager.default.removeItem(atPath: (p as NSString).deletingLastPathComponent) }
            do {
                let f = try GGUFFile(path: p)
                for n in f.tensorNames where f.tensorInfo(n)!.type.canDequantize { _ = try f.floats(n) }
                parsed += 1
            } catch is GGUFError { thrown += 1 }
        }
        XCTAssertEqual(thrown + parsed, 300)
        XCTAssertGreaterThan(thrown, 50)
    }

    // MARK: bad input, one case per error, from literal bytes

    /// A minimal valid file: 1 kv ("k" = u32 7), 1 F32 tensor "w" of 8 elements at offset 0.
    struct Bytes {
        var version: UInt32 = 3
        var tensorCount: UInt64 = 1
        var kvCount: UInt64 = 1
        var kvs: [UInt8] = Bytes.kv("k", type: 4, value: le(UInt32(7)))
        var tensorInfos: [UInt8] = Bytes.tensor("w", dims: [8], type: 0, offset: 0)
        var dataBytes = 32

        static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        static func str(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }
        static func kv(_ key: String, type: UInt32, value: [UInt8]) -> [UInt8] { str(key) + le(type) + value }
        static func tensor(_ name: String, dims: [UInt64], type: UInt32, offset: UInt64) -> [UInt8] {
            str(name) + le(UInt32(dims.count)) + dims.flatMap { le($0) } + le(type) + le(offset)
        }

        var bytes: [UInt8] {
            var out = Array("GGUF".utf8) + Bytes.le(version) + Bytes.le(tensorCount) + Bytes.le(kvCount) + kvs + tensorInfos
            while out.count % 32 != 0 { out.append(0) }
            return out + [UInt8](repeating: 0, count: dataBytes)
        }
    }

    func expectError(_ bytes: [UInt8], _ kind: GGUFError.Kind, mentions: String? = nil,
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let p = try tempFile(bytes)
        XCTAssertThrowsError(try GGUFFile(path: p), file: file, line: line) { e in
            guard let g = e as? GGUFError else { return XCTFail("not a GGUFError: \(e)", file: file, line: line) }
            XCTAssertEqual(g.kind, kind, g.description, file: file, line: line)
            XCTAssertTrue(g.description.contains(p), "error names the file: \(g)", file: file, line: line)
            if let mentions { XCTAssertTrue(g.description.contains(mentions), "\(g) should mention \(mentions)", file: file, line: line) }
        }
    }

    func testMinimalFileIsValid() throws {
        let f = try GGUFFile(path: try tempFile(Bytes().bytes))
        XCTAssertEqual(f.metadata["k"], .uint32(7))
        XCTAssertEqual(try f.floats("w"), [Float](repeating: 0, count: 8))
        XCTAssertEqual(f.version, 3)
        var v2 = Bytes(); v2.version = 2
        XCTAssertEqual(try GGUFFile(path: try tempFile(v2.bytes)).version, 2)
    }

    func testBadMagic() throws {
        var b = Bytes().bytes; b[0] = UInt8(ascii: "X")
        try expectError(b, .badMagic)
    }

    func testUnsupportedVersions() throws {
        var v1 = Bytes(); v1.version = 1
        try expectError(v1.bytes, .unsupportedVersion, mentions: "version 1")
        var be = Bytes(); be.version = UInt32(3).byteSwapped
        try expectError(be.bytes, .unsupportedVersion, mentions: "big-endian")
    }

    func testTooShortFile() throws {
        try expectError(Array("GGUF".utf8) + Bytes.le(UInt32(3)), .truncated)
    }

    func testCountsBoundedByFileSize() throws {
        var b = Bytes(); b.kvCount = 1 << 40
        try expectError(b.bytes, .tooLarge, mentions: "metadata count")
        var t = Bytes(); t.tensorCount = 1 << 40
        try expectError(t.bytes, .tooLarge, mentions: "tensor count")
    }

    func testStringLengthBoundedByFileSize() throws {
        var b = Bytes(); b.kvs = Bytes.le(UInt64(1) << 50) + Array("k".utf8)
        try expectError(b.bytes, .tooLarge)
        var v = Bytes(); v.kvs = Bytes.kv("name", type: 8, value: Bytes.le(UInt64(999_999)))
        try expectError(v.bytes, .tooLarge, mentions: "'name'")
    }

    func testArrayCountBoundedByFileSize() throws {
        var b = Bytes(); b.kvs = Bytes.kv("arr", type: 9, value: Bytes.le(UInt32(8)) + Bytes.le(UInt64(1) << 60))
        try expectError(b.bytes, .tooLarge, mentions: "'arr'")
    }

    func testTooDeeplyNestedArrays() throws {
        var value: [UInt8] = []
        for _ in 0..<10 { value += Bytes.le(UInt32(9)) + Bytes.le(UInt64(1)) }
        value += Bytes.le(UInt32(4)) + Bytes.le(UInt64(0))
        var b = Bytes(); b.kvs = Bytes.kv("deep", type: 9, value: Array(value.dropFirst(0)))
        try expectError(b.bytes, .invalidValueType, mentions: "nested")
    }

    func testUnknownValueType() throws {
        var b = Bytes(); b.kvs = Bytes.kv("k", type: 13, value: [])
        try expectError(b.bytes, .invalidValueType, mentions: "'k'")
    }

    func testInvalidUTF8() throws {
        var b = Bytes(); b.kvs = Bytes.kv("k", type: 8, value: Bytes.le(UInt64(2)) + [0xC3, 0x28])
        try expectError(b.bytes, .invalidString, mentions: "'k'")
    }

    func testDuplicateKey() throws {
        var b = Bytes(); b.kvCount = 2
        b.kvs = Bytes.kv("k", type: 4, value: Bytes.le(UInt32(1))) + Bytes.kv("k", type: 4, value: Bytes.le(UInt32(2)))
        try expectError(b.bytes, .duplicateKey)
    }

    func testBadBool() throws {
        var b = Bytes(); b.kvs = Bytes.kv("flag", type: 7, value: [2])
        try expectError(b.bytes, .invalidMetadata, mentions: "'flag'")
    }

    func testAlignmentMustBeU32PowerOfTwo() throws {
        var b = Bytes(); b.kvs = Bytes.kv("general.alignment", type: 4, value: Bytes.le(UInt32(24)))
        try expectError(b.bytes, .invalidMetadata, mentions: "general.alignment")
        var c = Bytes(); c.kvs = Bytes.kv("general.alignment", type: 5, value: Bytes.le(Int32(32)))
        try expectError(c.bytes, .invalidMetadata)
    }

    func testUnknownGGMLType() throws {
        var b = Bytes(); b.tensorInfos = Bytes.tensor("w", dims: [8], type: 4, offset: 0)
        try expectError(b.bytes, .unknownGGMLType, mentions: "'w'")
    }

    func testTooManyDims() throws {
        var b = Bytes(); b.tensorInfos = Bytes.tensor("w", dims: [1, 1, 1, 1, 8], type: 0, offset: 0)
        try expectError(b.bytes, .invalidTensorInfo, mentions: "5 dimensions")
    }

    func testElementCountOverflow() throws {
        var b = Bytes(); b.tensorInfos = Bytes.tensor("w", dims: [1 << 40, 1 << 40], type: 0, offset: 0)
        try expectError(b.bytes, .invalidTensorInfo, mentions: "overflows")
    }

    func testRowNotBlockMultiple() throws {
        var b = Bytes(); b.tensorInfos = Bytes.tensor("w", dims: [33], type: 2, offset: 0)
        try expectError(b.bytes, .invalidTensorInfo, mentions: "block size 32")
    }

    func testTensorPastEndOfFile() throws {
        var b = Bytes(); b.tensorInfos = Bytes.tensor("w", dims: [9], type: 0, offset: 0)
        try expectError(b.bytes, .tensorOutOfBounds, mentions: "'w'")
        var c = Bytes(); c.tensorInfos = Bytes.tensor("w", dims: [8], type: 0, offset: UInt64(1) << 62)
        try expectError(c.bytes, .tensorOutOfBounds)
    }

    func testMisalignedOffset() throws {
        var b = Bytes(); b.tensorInfos = Bytes.tensor("w", dims: [1], type: 0, offset: 4)
        try expectError(b.bytes, .misaligned, mentions: "alignment 32")
    }

    func testOverlappingTensors() throws {
        var b = Bytes(); b.tensorCount = 2; b.dataBytes = 64
        b.tensorInfos = Bytes.tensor("a", dims: [8], type: 0, offset: 0) + Bytes.tensor("b", dims: [8], type: 0, offset: 32)
        XCTAssertNoThrow(try GGUFFile(path: try tempFile(b.bytes)))
        b.tensorInfos = Bytes.tensor("a", dims: [16], type: 0, offset: 0) + Bytes.tensor("b", dims: [8], type: 0, offset: 32)
        try expectError(b.bytes, .overlappingTensors)
    }

    func testDuplicateTensorName() throws {
        var b = Bytes(); b.tensorCount = 2; b.dataBytes = 64
        b.tensorInfos = Bytes.tensor("a", dims: [8], type: 0, offset: 0) + Bytes.tensor("a", dims: [8], type: 0, offset: 32)
        try expectError(b.bytes, .duplicateTensor, mentions: "'a'")
    }

    func testTruncatedTensorInfo() throws {
        var b = Bytes(); b.tensorInfos = Array(b.tensorInfos.prefix(10)); b.dataBytes = 0
        try expectError(Array(b.bytes.prefix(b.bytes.count)), .truncated)
    }

    func testUnsupportedTypeThrowsOnRead() throws {
        var b = Bytes(); b.tensorInfos = Bytes.tensor("w", dims: [256], type: GGMLType.IQ2_XXS.rawValue, offset: 0); b.dataBytes = 96
        let f = try GGUFFile(path: try tempFile(b.bytes))
        XCTAssertThrowsError(try f.floats("w")) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .unsupportedType)
        }
        XCTAssertThrowsError(try f.floats("nope")) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .missingTensor)
        }
    }
}
