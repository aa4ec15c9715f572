// The direct-I/O writer (DirectWrite.swift) against the buffered one: the same checkpoints,
// byte for byte, whatever the staging chunk size, for tensors from every kind of payload (mapped
// source file read with pread, memory, produced, streamed in odd pieces), headers longer than a
// disk block, files smaller than one block or an exact number of blocks, and late metadata that
// rewrites the header at the end. Also: a source that shrinks before the copy is an error naming
// the tensor, and nothing is left behind.

import Foundation
import XCTest
import TestSupport
@testable import SafeTensors
import CFileIO

final class DirectWriteTests: XCTestCase {
    private var saved: (Bool, Int, Int) = (true, 0, 0)

    override func setUp() {
        saved = (DirectFileStream.enabled, DirectFileStream.chunkSize, DirectFileStream.ioThreads)
    }

    override func tearDown() {
        (DirectFileStream.enabled, DirectFileStream.chunkSize, DirectFileStream.ioThreads) = saved
        DirectFileStream.injectedWriteError = nil
    }

    /// Tensors of odd sizes (sum not a multiple of 4096) in a source file on disk.
    private func makeSource(_ dir: String, seed: UInt64) throws -> (path: String, tensors: [(String, DType, [Int], [UInt8])]) {
        var rng = SeededRandom(seed: seed)
        var tensors: [(String, DType, [Int], [UInt8])] = []
        let specs: [(DType, [Int])] = [(.F32, [37, 129]), (.BF16, [4099]), (.F32, [1]), (.F16, [3, 2047]), (.U8, [5]),
                                       (.F32, [2048, 3]), (.I64, [17])]
        for (k, (d, shape)) in specs.enumerated() {
            let n = shape.reduce(1, *) * d.size
            tensors.append(("src.\(k)", d, shape, (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        }
        let path = (dir as NSString).appendingPathComponent("source.safetensors")
        let records = tensors.map { t in TensorRecord(name: t.0, dtype: t.1, shape: t.2, source: .produce { t.3 }) }
        DirectFileStream.enabled = false
        try writeSafeTensors(path: path, tensors: records)
        DirectFileStream.enabled = saved.0
        return (path, tensors)
    }

    /// One checkpoint folder from a mix of payloads, with a long header and a late value.
    private func writeCheckpoint(_ target: String, source: SafeTensorsFile, names: [String], maxShard: Int?,
                                 longMetadata: Int) throws {
        var rng = SeededRandom(seed: 99)
        let memory = (0..<(4 * 3001)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let streamed = (0..<(2 * 12_289)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let late = LateMetadata(placeholder: String(repeating: "0", count: 64)) { String(repeating: "c3", count: 32) }
        let w = try CheckpointWriter(target: target, maxShardSize: maxShard,
                                     metadata: ["long": String(repeating: "m", count: longMetadata)], lateMetadata: ["sum": late])
        for n in names {
            let info = try XCTUnwrap(source.info(n))
            try w.add(TensorRecord(name: n, dtype: info.dtype, shape: info.shape, source: .bytes(try source.bytes(n))))
        }
        try memory.withUnsafeBytes { m in
            try w.add(TensorRecord(name: "memory", dtype: .F32, shape: [3001], source: .bytes(m)))
            try w.add(TensorRecord(name: "produced", dtype: .F32, shape: [3001], source: .produce { memory.reversed() }))
            try w.add(TensorRecord(name: "streamed", dtype: .F16, shape: [12_289], source: .stream { emit in
                var at = 0, step = 1
                while at < streamed.count {
                    let n = min(step, streamed.count - at)
                    try streamed.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[at..<(at + n)])) }
                    at += n; step = step * 3 + 1
                }
            }))
            try w.add(TensorRecord(name: "empty", dtype: .F32, shape: [0], source: .produce { [] }))
            try w.commit()
        }
    }

    /// Whether this file system accepts O_DIRECT (else both runs take the buffered path).
    private func directIOWorks(_ dir: String) -> Bool {
        let probe = dir + "/.probe-\(UUID().uuidString.prefix(8))"
        let fd = cfileio_create_direct(probe, 0o644)
        guard fd >= 0 else { return false }
        close(fd); unlink(probe)
        return true
    }

    private func folderBytes(_ dir: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for n in try FileManager.default.contentsOfDirectory(atPath: dir) { out[n] = try readBytes(dir + "/" + n) }
        return out
    }

    func testDirectMatchesBufferedForEveryChunkSize() throws {
        let dir = try makeTempDir(self, "direct")
        let (path, tensors) = try makeSource(dir, seed: 7)
        let source = try SafeTensorsFile(path: path)
        let names = tensors.map(\.0)
        for (maxShard, longMetadata) in [(nil, 10), (nil, 9000), (Int?(40_000), 5000)] as [(Int?, Int)] {
            DirectFileStream.enabled = false
            let reference = dir + "/buffered-\(longMetadata)"
            try writeCheckpoint(reference, source: source, names: names, maxShard: maxShard, longMetadata: longMetadata)
            let expected = try folderBytes(reference)
            XCTAssertEqual(expected.keys.filter { $0.hasSuffix(".safetensors") }.count, maxShard == nil ? 1 : 3)
            let ck = try Checkpoint(directory: reference)
            for t in tensors { XCTAssertEqual(Array(try ck.bytes(t.0)), t.3, t.0) }
            for sh in ck.shards { XCTAssertEqual(sh.metadata["sum"], String(repeating: "c3", count: 32)) }

            DirectFileStream.enabled = true
            let before = DirectFileStream.opened
            defer { if directIOWorks(dir) { XCTAssertGreaterThan(DirectFileStream.opened, before, "the direct path did not run") } }
            for (chunk, threads) in [(4096, 1), (8192, 3), (3 * 4096, 2), (1 << 20, 3), (4 << 20, 3)] {
                DirectFileStream.chunkSize = chunk
                DirectFileStream.ioThreads = threads
                let target = dir + "/direct-\(longMetadata)-\(chunk)"
                try writeCheckpoint(target, source: source, names: names, maxShard: maxShard, longMetadata: longMetadata)
                XCTAssertEqual(try folderBytes(target), expected, "chunk \(chunk), threads \(threads), header \(longMetadata)")
                try FileManager.default.removeItem(atPath: target)
            }
        }
    }

    /// Files below one disk block, of exactly one and two blocks, and one byte either side.
    func testSmallAndBlockSizedFiles() throws {
        let dir = try makeTempDir(self, "direct-small")
        func write(_ size: Int, _ path: String) throws -> [UInt8] {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            try writeSafeTensors(path: path, tensors: [TensorRecord(name: "t", dtype: .U8, shape: [size], source: .produce { bytes })])
            let f = try SafeTensorsFile(path: path)
            XCTAssertEqual(Array(try f.bytes("t")), bytes, "size \(size)")
            return try readBytes(path)
        }
        // Sizes of 4 digits share one header length H: the file is 8 + H + size bytes.
        let headed = try write(5000, dir + "/probe.safetensors").count - 5000
        var sizes = [0, 1, 100]
        for blocks in [1, 2] { sizes += [-1, 0, 1].map { blocks * 4096 - headed + $0 } }
        XCTAssertTrue(sizes.dropFirst(3).allSatisfy { (1000..<10_000).contains($0) }, "\(sizes)")
        DirectFileStream.chunkSize = 8192
        for size in sizes {
            DirectFileStream.enabled = false
            let buffered = try write(size, dir + "/b.safetensors")
            DirectFileStream.enabled = true
            let direct = try write(size, dir + "/d.safetensors")
            XCTAssertEqual(direct, buffered, "size \(size)")
            if size >= 1000 { XCTAssertEqual(direct.count, headed + size, "no padding left at the end") }
        }
    }

    /// A source cut short before its tensor is copied: error naming the tensor, nothing left.
    func testSourceShorterThanItsHeaderSays() throws {
        let dir = try makeTempDir(self, "direct-cut")
        let (path, tensors) = try makeSource(dir, seed: 8)
        let source = try SafeTensorsFile(path: path)
        let last = try XCTUnwrap(source.tensorNames.max { source.entries[$0]!.begin < source.entries[$1]!.begin })
        XCTAssertEqual(truncate(path, off_t(source.dataStart + source.entries[last]!.begin + 3)), 0)
        DirectFileStream.chunkSize = 4096
        let w = try CheckpointWriter(target: dir + "/out")
        for t in tensors { try w.add(TensorRecord(name: t.0, dtype: t.1, shape: t.2, source: .bytes(try source.bytes(t.0)))) }
        XCTAssertThrowsError(try w.commit()) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .io, "\(e)")
            XCTAssertTrue("\(e)".contains("'\(last)'") && "\(e)".contains("ended"), "\(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["source.safetensors"], "files left behind")
    }

    /// Write errors seen by the I/O threads: a failure in the middle of the data, and one when the
    /// header block is rewritten at the end, each stop the commit with the error and leave
    /// nothing; an EINVAL (a device wanting a larger alignment) turns direct I/O off for the file
    /// and the same bytes are written through the page cache.
    func testWriteErrorsStopTheCommitAndEINVALFallsBack() throws {
        let dir = try makeTempDir(self, "direct-err")
        let (path, tensors) = try makeSource(dir, seed: 9)
        let source = try SafeTensorsFile(path: path)
        let names = tensors.map(\.0)
        DirectFileStream.enabled = false
        try writeCheckpoint(dir + "/reference", source: source, names: names, maxShard: nil, longMetadata: 10)
        let expected = try folderBytes(dir + "/reference")
        DirectFileStream.enabled = true
        DirectFileStream.chunkSize = 8192
        DirectFileStream.ioThreads = 3
        try XCTSkipUnless(directIOWorks(dir), "this file system has no direct I/O: the buffered writer ran in the other tests")

        let lock = NSLock()
        var writes: [Int] = []   // offsets of the attempts, in order
        func injecting(_ rule: @escaping (_ offset: Int, _ attempt: Int) -> Int32?) {
            lock.lock(); writes = []; lock.unlock()
            DirectFileStream.injectedWriteError = { offset, _ in
                lock.lock(); defer { lock.unlock() }
                writes.append(offset)
                return rule(offset, writes.count)
            }
        }
        // EIO on the data chunk at 32 KB.
        injecting { offset, _ in offset == 32_768 ? EIO : nil }
        XCTAssertThrowsError(try writeCheckpoint(dir + "/eio", source: source, names: names, maxShard: nil, longMetadata: 10)) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .io, "\(e)")
            XCTAssertTrue("\(e)".contains("cannot write") && "\(e)".contains("Input/output error"), "\(e)")
        }
        // EIO when the header block is written again (the second write at offset 0, after every
        // data chunk).
        var headWrites = 0
        injecting { offset, _ in
            if offset == 0 { headWrites += 1 }   // under the lock of `injecting`
            return offset == 0 && headWrites == 2 ? EIO : nil
        }
        XCTAssertThrowsError(try writeCheckpoint(dir + "/eio-head", source: source, names: names, maxShard: nil, longMetadata: 10)) { e in
            XCTAssertTrue("\(e)".contains("Input/output error"), "\(e)")
        }
        XCTAssertEqual(headWrites, 2)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["reference", "source.safetensors"], "a failed commit left files")

        // EINVAL on the third write: O_DIRECT off for that file, same bytes in the end.
        injecting { _, attempt in attempt == 3 ? EINVAL : nil }
        try writeCheckpoint(dir + "/einval", source: source, names: names, maxShard: nil, longMetadata: 10)
        XCTAssertEqual(try folderBytes(dir + "/einval"), expected)
        lock.lock(); let attempts = writes.count; lock.unlock()
        XCTAssertGreaterThan(attempts, 4, "the writes went on after the EINVAL")
    }
}
