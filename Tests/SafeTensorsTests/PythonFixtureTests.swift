// Files written by the Python `safetensors` library and huggingface_hub (fixtures/safetensors,
// made by make_fixtures.py) read back with the values torch gives; and the Swift writer
// reproduces those files byte for byte from the same tensors.

import Foundation
import XCTest
@testable import SafeTensors

final class PythonFixtureTests: XCTestCase {
    private var expected: JSONValue!

    override func setUpWithError() throws {
        expected = try JSONValue.parse(data: readBytes(fixturesDir() + "/expected.json"))
    }

    /// dtype, shape, raw bytes and f32 values (torch's `.float()`) of one tensor.
    private func check(_ source: TensorSource, bytes: [UInt8], name: String, _ want: JSONValue,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let info = try XCTUnwrap(source.info(name), name, file: file, line: line)
        XCTAssertEqual(info.dtype.rawValue, want["dtype"]?.stringValue, name, file: file, line: line)
        XCTAssertEqual(info.shape, want["shape"]?.intArray, name, file: file, line: line)
        XCTAssertEqual(bytes, hexBytes(want["hex"]?.stringValue ?? "?"), name, file: file, line: line)
        let wantBits = try XCTUnwrap(want["f32_bits"]?.intArray, file: file, line: line)
        let got = try source.floats(name)
        XCTAssertEqual(got.count, wantBits.count, name, file: file, line: line)
        var mismatches = 0
        for (k, (g, w)) in zip(got, wantBits).enumerated() where !sameFloat(g, Float(bitPattern: UInt32(w))) {
            mismatches += 1
            if mismatches <= 5 {
                XCTFail("\(name)[\(k)]: got \(g) (0x\(String(g.bitPattern, radix: 16))), torch gives \(Float(bitPattern: UInt32(w))) (0x\(String(w, radix: 16)))", file: file, line: line)
            }
        }
        XCTAssertEqual(mismatches, 0, name, file: file, line: line)
    }

    func testEveryDTypeScalarAndEmptyTensors() throws {
        let f = try SafeTensorsFile(path: fixturesDir() + "/all_dtypes.safetensors")
        let want = try XCTUnwrap(expected["files"]?["all_dtypes.safetensors"])
        XCTAssertEqual(f.metadata, ["format": "pt"])
        let names = try XCTUnwrap(want["order"]?.arrayValue?.compactMap { $0.stringValue })
        XCTAssertEqual(Set(f.tensorNames), Set(names))
        XCTAssertEqual(Set(names.compactMap { f.info($0)?.dtype }), Set(DType.allCases), "fixture covers every dtype")
        XCTAssertEqual(f.info("scalar")?.shape, [])
        XCTAssertEqual(try f.floats("scalar"), [3.5])
        XCTAssertEqual(try f.floats("scalar_i64"), [-42])
        XCTAssertEqual(f.info("empty")?.shape, [0, 3])
        XCTAssertEqual(try f.floats("empty_bf16"), [])
        for n in names {
            try check(f, bytes: Array(try f.bytes(n)), name: n, try XCTUnwrap(want["tensors"]?[n]))
        }
    }

    func testMetadata() throws {
        let f = try SafeTensorsFile(path: fixturesDir() + "/metadata.safetensors")
        let want = try XCTUnwrap(expected["files"]?["metadata.safetensors"]?["metadata"]?.objectPairs)
        XCTAssertEqual(f.metadata, Dictionary(uniqueKeysWithValues: want.map { ($0.0, $0.1.stringValue ?? "?") }))
        XCTAssertEqual(f.metadata["note"], "caf\u{e9} \u{2603} \"quoted\"\\n")
        XCTAssertEqual(try f.floats("w"), [0, 1, 2, 3, 4, 5])
    }

    func testShardedCheckpointFromHub() throws {
        let dir = fixturesDir() + "/sharded"
        let ck = try Checkpoint(directory: dir)
        let want = try XCTUnwrap(expected["sharded"])
        let shards = try XCTUnwrap(want["shards"]?.arrayValue?.compactMap { $0.stringValue })
        XCTAssertEqual(ck.shards.map { ($0.path as NSString).lastPathComponent }, shards)
        let map = try XCTUnwrap(want["weight_map"]?.objectPairs)
        XCTAssertEqual(Set(ck.tensorNames), Set(map.map { $0.0 }))
        for (name, shard) in map {
            XCTAssertEqual(ck.shardName(of: name), shard.stringValue, name)
            try check(ck, bytes: Array(try ck.bytes(name)), name: name, try XCTUnwrap(want["tensors"]?[name]))
        }
        XCTAssertEqual(ck.totalBytes, want["total_size"]?.intValue)
        let single = try Checkpoint.open(fixturesDir() + "/all_dtypes.safetensors")
        XCTAssertEqual(single.shards.count, 1)
        XCTAssertEqual(single.shardName(of: "f32"), "all_dtypes.safetensors")
    }

    /// The Swift writer, given the tensors of all_dtypes.safetensors, writes the same bytes.
    func testWriterMatchesPythonByteForByte() throws {
        let path = fixturesDir() + "/all_dtypes.safetensors"
        let f = try SafeTensorsFile(path: path)
        let dir = try makeTempDir(self)
        let out = (dir as NSString).appendingPathComponent("copy.safetensors")
        // Reversed order on purpose: the writer sorts as Python does.
        let records = try f.tensorNames.reversed().map { n in
            TensorRecord(name: n, dtype: f.info(n)!.dtype, shape: f.info(n)!.shape, source: .bytes(try f.bytes(n))) // programmer error: n from tensorNames
        }
        try writeSafeTensors(path: out, tensors: records, sources: [path])
        assertSameBytes(try readBytes(out), try readBytes(path), "all_dtypes.safetensors")
    }

    /// Same state dict, same max shard size: same shards as huggingface_hub, byte for byte, and an
    /// index with the same content.
    func testWriterShardsLikeHub() throws {
        let want = try XCTUnwrap(expected["sharded"])
        let order = try XCTUnwrap(want["order"]?.arrayValue?.compactMap { $0.stringValue })
        let sizes = try XCTUnwrap(want["sizes"]?.intArray)
        let limit = try XCTUnwrap(want["max_shard_size"]?.intValue)
        let src = try Checkpoint(directory: fixturesDir() + "/sharded")
        let plan = CheckpointWriter.planShards(sizes: sizes, maxShardSize: limit)
        let map = Dictionary(uniqueKeysWithValues: try XCTUnwrap(want["weight_map"]?.objectPairs).map { ($0.0, $0.1.stringValue ?? "") })
        for (k, members) in plan.enumerated() {
            for m in members {
                XCTAssertEqual(map[order[m]], String(format: "model-%05d-of-%05d.safetensors", k + 1, plan.count), order[m])
            }
        }
        let dir = try makeTempDir(self)
        let target = (dir as NSString).appendingPathComponent("out")
        let w = try CheckpointWriter(target: target, maxShardSize: limit, sources: [fixturesDir() + "/sharded"])
        for n in order {
            let info = try XCTUnwrap(src.info(n))
            try w.add(TensorRecord(name: n, dtype: info.dtype, shape: info.shape, source: .bytes(try src.bytes(n))))
        }
        try w.commit()
        for s in src.shards {
            let name = (s.path as NSString).lastPathComponent
            assertSameBytes(try readBytes((target as NSString).appendingPathComponent(name)), try readBytes(s.path), name)
        }
        let ours = try JSONValue.parse(data: readBytes((target as NSString).appendingPathComponent("model.safetensors.index.json")))
        XCTAssertEqual(ours["metadata"]?["total_size"]?.intValue, want["total_size"]?.intValue)
        let ourMap = Dictionary(uniqueKeysWithValues: try XCTUnwrap(ours["weight_map"]?.objectPairs).map { ($0.0, $0.1.stringValue ?? "") })
        XCTAssertEqual(ourMap, map)
    }

    /// f32 -> F16/BF16 encoding rounds exactly as torch does (NaN: any NaN).
    func testEncodingMatchesTorch() throws {
        let enc = try XCTUnwrap(expected["encode"])
        let x = try XCTUnwrap(enc["f32_bits"]?.intArray).map { Float(bitPattern: UInt32($0)) }
        for (dtype, key) in [(DType.F16, "f16_bits"), (.BF16, "bf16_bits")] {
            let want = try XCTUnwrap(enc[key]?.intArray)
            let got = try x.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype) }
            for k in x.indices {
                let g = UInt16(got[2 * k]) | UInt16(got[2 * k + 1]) << 8
                let back = dtype == .F16 ? FloatConversion.f16ToFloat(g) : FloatConversion.bf16ToFloat(g)
                let wantBack = dtype == .F16 ? FloatConversion.f16ToFloat(UInt16(want[k])) : FloatConversion.bf16ToFloat(UInt16(want[k]))
                XCTAssertTrue(sameFloat(back, wantBack), "\(dtype) of \(x[k]): got 0x\(String(g, radix: 16)), torch 0x\(String(want[k], radix: 16))")
            }
        }
    }
}
