// The writer: round trips through the reader (every dtype, scalars, empty tensors, sharded and
// not), the on-disk layout rules, sharded index files, and atomicity (nothing at the target after
// an abort or an error; no overwriting of existing targets or of the inputs).

import Foundation
import XCTest
import TestSupport
@testable import SafeTensors

final class WriterTests: XCTestCase {
    /// Random bytes for every dtype (BOOL as 0/1), plus a scalar and empty tensors.
    private func sampleTensors(seed: UInt64) -> [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] {
        var rng = SeededRandom(seed: seed)
        var out: [(String, DType, [Int], [UInt8])] = []
        let shapes: [[Int]] = [[3, 5], [7], [2, 3, 4], [1, 9]]
        for (k, d) in DType.allCases.enumerated() {
            let shape = shapes[k % shapes.count]
            let n = shape.reduce(1, *) * d.size
            var b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if d == .BOOL { b = b.map { $0 & 1 } }
            out.append(("t.\(d.rawValue.lowercased())", d, shape, b))
        }
        out.append(("scalar", .F32, [], [0, 0, 0x60, 0x40]))      // 3.5
        out.append(("empty", .BF16, [0, 4], []))
        out.append(("empty.i8", .I8, [0], []))
        return out
    }

    func testSingleFileRoundTripEveryDType() throws {
        let dir = try makeTempDir(self)
        let tensors = sampleTensors(seed: 1)
        let path = (dir as NSString).appendingPathComponent("v.safetensors")
        // Half given as mapped-style buffers, half produced on demand.
        let storage = tensors.map { $0.bytes }
        try storage.withUnsafeBufferPointers { buffers in
            let records = tensors.enumerated().map { k, t in
                TensorRecord(name: t.name, dtype: t.dtype, shape: t.shape,
                             source: k % 2 == 0 ? .bytes(buffers[k]) : .produce { t.bytes })
            }
            try writeSafeTensors(path: path, tensors: records, metadata: ["model": "tiny", "format": "ignored"])
        }
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.metadata, ["format": "pt", "model": "tiny"])
        XCTAssertEqual(Set(f.tensorNames), Set(tensors.map { $0.name }))
        for t in tensors {
            XCTAssertEqual(f.info(t.name), TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, byteCount: t.bytes.count))
            XCTAssertEqual(Array(try f.bytes(t.name)), t.bytes, t.name)
        }
        XCTAssertEqual(try f.floats("scalar"), [3.5])
        try checkLayoutRules(path)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.hasPrefix(".") }, "temp file left behind")
    }

    /// Rules 1-2 of Writer.swift: 8-aligned header padded with spaces, metadata first with
    /// format pt, tensors sorted widest dtype first so each starts at a multiple of its size.
    private func checkLayoutRules(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let raw = try readBytes(path)
        let n = raw.withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self).littleEndian) }
        XCTAssertEqual(n % 8, 0, "header length", file: file, line: line)
        let header = String(decoding: raw[8..<(8 + n)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix(#"{"__metadata__":{"format":"pt""#), header, file: file, line: line)
        let trimmed = header.trimmingCharacters(in: CharacterSet(charactersIn: " "))
        XCTAssertTrue(trimmed.hasSuffix("}"), file: file, line: line)
        XCTAssertLessThan(header.count - trimmed.count, 8, file: file, line: line)
        let f = try SafeTensorsFile(path: path)
        var lastSize = Int.max
        for name in f.tensorNames {
            let e = f.entries[name]!
            XCTAssertEqual((f.dataStart + e.begin) % e.info.dtype.size, 0, "\(name) misaligned", file: file, line: line)
            XCTAssertLessThanOrEqual(e.info.dtype.size, lastSize, file: file, line: line)
            lastSize = e.info.dtype.size
        }
    }

    func testShardedRoundTrip() throws {
        let dir = try makeTempDir(self)
        let target = (dir as NSString).appendingPathComponent("out")
        let tensors = sampleTensors(seed: 2)
        let w = try CheckpointWriter(target: target, maxShardSize: 64, metadata: ["recipe": "{}"])
        for t in tensors {
            try w.add(TensorRecord(name: t.name, dtype: t.dtype, shape: t.shape, source: .produce { t.bytes }))
        }
        try w.addFile(name: "config.json", contents: Array(#"{"model_type":"llama"}"#.utf8))
        try w.commit()
        let expectedPlan = CheckpointWriter.planShards(sizes: tensors.map { $0.bytes.count }, maxShardSize: 64)
        XCTAssertGreaterThan(expectedPlan.count, 3)
        XCTAssertEqual(w.shardFileNames.count, expectedPlan.count)
        XCTAssertEqual(w.shardFileNames.first, String(format: "model-00001-of-%05d.safetensors", expectedPlan.count))

        let ck = try Checkpoint(directory: target)
        XCTAssertEqual(ck.shards.count, expectedPlan.count)
        for (k, members) in expectedPlan.enumerated() {
            for m in members { XCTAssertEqual(ck.shardName(of: tensors[m].name), w.shardFileNames[k]) }
        }
        for t in tensors { XCTAssertEqual(Array(try ck.bytes(t.name)), t.bytes, t.name) }
        for s in ck.shards {
            XCTAssertEqual(s.metadata, ["format": "pt", "recipe": "{}"])
            try checkLayoutRules(s.path)
        }
        let index = try JSONValue.parse(data: readBytes((target as NSString).appendingPathComponent("model.safetensors.index.json")))
        XCTAssertEqual(index["metadata"]?["total_size"]?.intValue, tensors.reduce(0) { $0 + $1.bytes.count })
        let keys = index["weight_map"]?.objectPairs?.map { $0.0 } ?? []
        XCTAssertEqual(keys, keys.sorted())
        XCTAssertEqual(Set(keys), Set(tensors.map { $0.name }))
        XCTAssertEqual(try readBytes((target as NSString).appendingPathComponent("config.json")), Array(#"{"model_type":"llama"}"#.utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out"], "temp folder left behind")
    }

    /// Late metadata: every shard is written with a placeholder, the value is asked for once after
    /// the last shard's data, and all headers (and late files) carry it; a value that changes the
    /// header's length is an error that leaves nothing.
    func testLateMetadataReachesEveryShardAndLateFiles() throws {
        let dir = try makeTempDir(self)
        let target = (dir as NSString).appendingPathComponent("out")
        let tensors = sampleTensors(seed: 5)
        var asked = 0, writtenBeforeAsked = 0
        let late = LateMetadata(placeholder: String(repeating: "0", count: 64)) {
            asked += 1
            return String(repeating: "ab", count: 32)
        }
        let w = try CheckpointWriter(target: target, maxShardSize: 64, metadata: ["a": "1"], lateMetadata: ["sum": late])
        w.onTensorWritten = { _, done, _ in if asked == 0 { writtenBeforeAsked = done } }
        for t in tensors { try w.add(TensorRecord(name: t.name, dtype: t.dtype, shape: t.shape, source: .produce { t.bytes })) }
        try w.addLateFile(name: "README.md") { Array("sum \(try w.resolveLateMetadata()["sum"] ?? "?")\n".utf8) }
        try w.commit()
        XCTAssertEqual(asked, 1)
        XCTAssertEqual(writtenBeforeAsked, tensors.count, "the value is asked for after all shards' data")
        let ck = try Checkpoint(directory: target)
        XCTAssertGreaterThan(ck.shards.count, 3)
        for sh in ck.shards {
            XCTAssertEqual(sh.metadata, ["format": "pt", "a": "1", "sum": String(repeating: "ab", count: 32)])
            try checkLayoutRules(sh.path)
        }
        for t in tensors { XCTAssertEqual(Array(try ck.bytes(t.name)), t.bytes, t.name) }
        XCTAssertEqual(try readBytes((target as NSString).appendingPathComponent("README.md")), Array("sum \(String(repeating: "ab", count: 32))\n".utf8))

        let target2 = (dir as NSString).appendingPathComponent("bad")
        let w2 = try CheckpointWriter(target: target2, maxShardSize: 64,
                                      lateMetadata: ["sum": LateMetadata(placeholder: "00") { String(repeating: "x", count: 40) }])
        for t in tensors { try w2.add(TensorRecord(name: t.name, dtype: t.dtype, shape: t.shape, source: .produce { t.bytes })) }
        XCTAssertThrowsError(try w2.commit()) { e in XCTAssertTrue("\(e)".contains("header length"), "\(e)") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out"], "failed commit left files")
    }

    func testOneShardIsModelSafetensorsWithoutIndex() throws {
        let dir = try makeTempDir(self)
        let target = (dir as NSString).appendingPathComponent("out")
        let w = try CheckpointWriter(target: target, maxShardSize: 1 << 20)
        for t in sampleTensors(seed: 3) { try w.add(TensorRecord(name: t.name, dtype: t.dtype, shape: t.shape, source: .produce { t.bytes })) }
        try w.commit()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target), ["model.safetensors"])
        XCTAssertEqual(try Checkpoint(directory: target).tensorNames.count, sampleTensors(seed: 3).count)
    }

    func testShardPlanFollowsHub() {
        // huggingface_hub: a tensor over the limit gets its own shard, appended when seen.
        XCTAssertEqual(CheckpointWriter.planShards(sizes: [4, 4, 4], maxShardSize: 8), [[0, 1], [2]])
        XCTAssertEqual(CheckpointWriter.planShards(sizes: [4, 20, 4, 1], maxShardSize: 8), [[1], [0, 2], [3]])
        XCTAssertEqual(CheckpointWriter.planShards(sizes: [8, 8], maxShardSize: 8), [[0], [1]])
        XCTAssertEqual(CheckpointWriter.planShards(sizes: [1, 2], maxShardSize: nil), [[0, 1]])
        XCTAssertEqual(CheckpointWriter.planShards(sizes: [], maxShardSize: 8), [[]])
    }

    func testParseSize() {
        XCTAssertEqual(CheckpointWriter.parseSize("5GB"), 5_000_000_000)
        XCTAssertEqual(CheckpointWriter.parseSize("2GiB"), 2 << 30)
        XCTAssertEqual(CheckpointWriter.parseSize("500 mb"), 500_000_000)
        XCTAssertEqual(CheckpointWriter.parseSize("1.5KB"), 1500)
        XCTAssertEqual(CheckpointWriter.parseSize("4096"), 4096)
        XCTAssertNil(CheckpointWriter.parseSize("-1GB"))
        XCTAssertNil(CheckpointWriter.parseSize("lots"))
        XCTAssertNil(CheckpointWriter.parseSize("0"))
    }

    func testRecordValidation() throws {
        let dir = try makeTempDir(self)
        let w = try CheckpointWriter(target: (dir as NSString).appendingPathComponent("out"))
        defer { w.abort() }
        func kind(_ r: TensorRecord) -> SafeTensorsError.Kind? {
            do { try w.add(r); return nil } catch { return (error as? SafeTensorsError)?.kind }
        }
        XCTAssertEqual(kind(TensorRecord(name: "", dtype: .F32, shape: [1], source: .produce { [0, 0, 0, 0] })), .invalidTensor)
        XCTAssertEqual(kind(TensorRecord(name: "__metadata__", dtype: .F32, shape: [1], source: .produce { [0, 0, 0, 0] })), .invalidTensor)
        XCTAssertEqual(kind(TensorRecord(name: "neg", dtype: .F32, shape: [-1], source: .produce { [] })), .invalidTensor)
        XCTAssertEqual(kind(TensorRecord(name: "big", dtype: .F64, shape: [1 << 40, 1 << 40], source: .produce { [] })), .overflow)
        let four: [UInt8] = [1, 2, 3, 4]
        four.withUnsafeBytes { b in
            XCTAssertEqual(kind(TensorRecord(name: "short", dtype: .F32, shape: [2], source: .bytes(b))), .invalidTensor)
            XCTAssertNil(kind(TensorRecord(name: "ok", dtype: .F32, shape: [1], source: .bytes(b))))
        }
        XCTAssertEqual(kind(TensorRecord(name: "ok", dtype: .F32, shape: [1], source: .produce { [0, 0, 0, 0] })), .invalidTensor, "duplicate name")
        XCTAssertThrowsError(try w.addFile(name: "model.safetensors", contents: []))
        XCTAssertThrowsError(try w.addFile(name: "../x", contents: []))
        try w.addFile(name: "a.json", contents: [])
        XCTAssertThrowsError(try w.addFile(name: "a.json", contents: []))
    }

    // MARK: atomicity

    func testAbortLeavesNothing() throws {
        let dir = try makeTempDir(self)
        let target = (dir as NSString).appendingPathComponent("out")
        let w = try CheckpointWriter(target: target)
        try w.add(TensorRecord(name: "a", shape: [2], floats: [1, 2]))
        try w.addFile(name: "config.json", contents: Array("{}".utf8))
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.temporaryDirectory))
        XCTAssertTrue(w.temporaryDirectory.hasPrefix(dir + "/.out.tmp-"))
        w.abort()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
        XCTAssertThrowsError(try w.commit())
    }

    func testDroppedWriterLeavesNothing() throws {
        let dir = try makeTempDir(self)
        do {
            let w = try CheckpointWriter(target: (dir as NSString).appendingPathComponent("out"))
            try w.addFile(name: "config.json", contents: Array("{}".utf8))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    struct Boom: Error {}

    func testErrorMidWriteLeavesNothing() throws {
        let dir = try makeTempDir(self)
        let target = (dir as NSString).appendingPathComponent("out")
        let w = try CheckpointWriter(target: target, maxShardSize: 8)
        try w.add(TensorRecord(name: "a", shape: [2], floats: [1, 2]))
        try w.add(TensorRecord(name: "b", shape: [2], floats: [1, 2]))
        try w.add(TensorRecord(name: "c", dtype: .F32, shape: [2], source: .produce { throw Boom() }))
        XCTAssertThrowsError(try w.commit()) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])

        let w2 = try CheckpointWriter(target: target)
        try w2.add(TensorRecord(name: "short", dtype: .F32, shape: [2], source: .produce { [0, 0, 0, 0] }))
        XCTAssertThrowsError(try w2.commit()) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .invalidTensor)
            XCTAssertTrue("\(e)".contains("'short'"), "\(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    func testOneWriterPerTargetAndProgress() throws {
        let dir = try makeTempDir(self)
        let target = (dir as NSString).appendingPathComponent("out")
        let first = try CheckpointWriter(target: target)
        XCTAssertThrowsError(try CheckpointWriter(target: target)) { XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .targetExists) }
        first.abort()
        let second = try CheckpointWriter(target: target, maxShardSize: 8)
        var seen: [String] = []
        second.onTensorWritten = { name, done, total in
            seen.append("\(name) \(done)/\(total)")
        }
        try second.add(TensorRecord(name: "b", shape: [2], floats: [1, 2]))
        try second.add(TensorRecord(name: "a", shape: [2], floats: [1, 2]))
        try second.commit()
        XCTAssertEqual(seen, ["b 1/2", "a 2/2"])
        XCTAssertEqual(try Checkpoint.open(target + "/model.safetensors.index.json").tensorNames, ["b", "a"])
    }

    func testExistingTargetNeedsForce() throws {
        let dir = try makeTempDir(self)
        let target = (dir as NSString).appendingPathComponent("out")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        _ = FileManager.default.createFile(atPath: (target as NSString).appendingPathComponent("old.txt"), contents: Data("old".utf8))
        XCTAssertThrowsError(try CheckpointWriter(target: target)) { XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .targetExists) }

        // With force, a failing write leaves the old folder intact...
        let bad = try CheckpointWriter(target: target, force: true)
        try bad.add(TensorRecord(name: "c", dtype: .F32, shape: [2], source: .produce { throw Boom() }))
        XCTAssertThrowsError(try bad.commit())
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target), ["old.txt"])
        // ...and a complete one replaces it.
        let good = try CheckpointWriter(target: target, force: true)
        try good.add(TensorRecord(name: "a", shape: [2], floats: [1, 2]))
        try good.commit()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target), ["model.safetensors"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out"])

        let file = (dir as NSString).appendingPathComponent("file")
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        XCTAssertThrowsError(try CheckpointWriter(target: file, force: true)) { XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .targetExists) }
    }

    func testRefusesToOverwriteSources() throws {
        let dir = try makeTempDir(self)
        let src = (dir as NSString).appendingPathComponent("model")
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: false)
        try writeSafeTensors(path: (src as NSString).appendingPathComponent("model.safetensors"), tensors: [TensorRecord(name: "a", shape: [1], floats: [1])])
        let srcFile = (src as NSString).appendingPathComponent("model.safetensors")
        for (target, sources) in [(src, [src]), (src, [srcFile]), (src + "/", [src]), (dir + "/./model", [srcFile])] {
            XCTAssertThrowsError(try CheckpointWriter(target: target, force: true, sources: sources), target) {
                XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .overwritesSource)
            }
        }
        let link = (dir as NSString).appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: src)
        XCTAssertThrowsError(try CheckpointWriter(target: src, force: true, sources: [link + "/model.safetensors"])) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .overwritesSource)
        }
        XCTAssertThrowsError(try writeSafeTensors(path: link + "/model.safetensors", tensors: [], sources: [srcFile])) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .overwritesSource)
        }
        // A sibling output is fine, and the source is untouched throughout.
        let w = try CheckpointWriter(target: (dir as NSString).appendingPathComponent("edited"), sources: [src])
        try w.add(TensorRecord(name: "a", shape: [1], floats: [2]))
        try w.commit()
        XCTAssertEqual(try Checkpoint(directory: src).floats("a"), [1])
    }

    func testSingleFileWriteIsAtomic() throws {
        let dir = try makeTempDir(self)
        let path = (dir as NSString).appendingPathComponent("v.safetensors")
        try writeSafeTensors(path: path, tensors: [TensorRecord(name: "a", shape: [1], floats: [1])])
        XCTAssertThrowsError(try writeSafeTensors(path: path, tensors: [TensorRecord(name: "b", dtype: .F32, shape: [1], source: .produce { throw Boom() })]))
        XCTAssertEqual(try SafeTensorsFile(path: path).floats("a"), [1], "old file intact")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["v.safetensors"])
        XCTAssertThrowsError(try writeSafeTensors(path: path, tensors: [], overwrite: false)) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .targetExists)
        }
        try writeSafeTensors(path: path, tensors: [TensorRecord(name: "b", shape: [2], floats: [3, 4], as: .BF16)])
        XCTAssertEqual(try SafeTensorsFile(path: path).floats("b"), [3, 4])
    }
}

extension Array where Element == [UInt8] {
    /// Calls `body` with stable buffers of every element (the writer's `.bytes` payloads).
    func withUnsafeBufferPointers<R>(_ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        let copies = map { bytes -> UnsafeMutableRawBufferPointer in
            let p = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
            p.copyBytes(from: bytes)
            return p
        }
        defer { copies.forEach { $0.deallocate() } }
        return try body(copies.map { UnsafeRawBufferPointer($0) })
    }
}
