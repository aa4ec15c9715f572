// Memory at scale, in miniature: copying a checkpoint through CheckpointWriter from mapped shards
// must not keep the source's pages resident (file-backed pages count in RSS, so a naive copy of a
// 16 GB model shows a 16 GB resident set). scripts/scale-bench.sh measures the full-size case.

import Foundation
import XCTest
@testable import SafeTensors

final class ScaleTests: XCTestCase {
    /// A 384 MB bf16 checkpoint in three shards, copied tensor by tensor as `.bytes` views of the
    /// mapping: peak RSS must grow far less than the data size, and the copy must be exact.
    func testMappedCopyKeepsResidentSetFlat() throws {
        let dir = try makeTempDir("scale")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rows = 4096, cols = 4096                    // 32 MB per bf16 tensor
        let w = try CheckpointWriter(target: dir + "/src", maxShardSize: 140 << 20)
        for k in 0..<12 {
            try w.add(TensorRecord(name: "layers.\(k).weight", dtype: .BF16, shape: [rows, cols], source: .produce {
                var b = [UInt8](repeating: 0, count: rows * cols * 2)
                for i in stride(from: 0, to: b.count, by: 4096) { b[i] = UInt8(truncatingIfNeeded: i / 4096 + k) }
                return b
            }))
        }
        try w.commit()

        let source = try Checkpoint(directory: dir + "/src")
        XCTAssertEqual(source.totalBytes, 12 * rows * cols * 2)
        let grown = try peakRSSGrowth {
            let copy = try CheckpointWriter(target: dir + "/copy", maxShardSize: 140 << 20, sources: [dir + "/src"])
            for n in source.tensorNames {
                let info = try XCTUnwrap(source.info(n))
                try copy.add(TensorRecord(name: n, dtype: info.dtype, shape: info.shape, source: .bytes(try source.bytes(n))))
            }
            try copy.commit()
        }
        if let grown {
            print("scale: copy of \(source.totalBytes >> 20) MB from mapped shards grew peak RSS by \(grown >> 20) MB")
            XCTAssertLessThan(grown, 160 << 20, "the copy kept source pages resident")
        }
        for s in try FileManager.default.contentsOfDirectory(atPath: dir + "/src") where s.hasSuffix(".safetensors") {
            XCTAssertTrue(try readFile(dir + "/copy/" + s) == readFile(dir + "/src/" + s), "\(s) differs from the source")
        }

        // floats() drops the mapped pages it read: only the f32 result stays resident.
        let grownFloats = try peakRSSGrowth {
            for n in source.tensorNames.prefix(6) { _ = try source.floats(n) }
        }
        if let grownFloats {
            print("scale: six 32 MB bf16 -> f32 conversions grew peak RSS by \(grownFloats >> 20) MB")
            XCTAssertLessThan(grownFloats, 200 << 20)
        }
        // A payload in ordinary memory is written as is (never madvised away).
        let heap = [UInt8](repeating: 7, count: 1 << 20)
        try heap.withUnsafeBytes { b in
            try writeSafeTensors(path: dir + "/heap.safetensors", tensors: [TensorRecord(name: "h", dtype: .U8, shape: [1 << 20], source: .bytes(b))])
        }
        XCTAssertTrue(heap.allSatisfy { $0 == 7 }, "the payload in ordinary memory was modified")
        let back = try SafeTensorsFile(path: dir + "/heap.safetensors")
        let written = withExtendedLifetime(back) { Array((try? back.bytes("h")) ?? UnsafeRawBufferPointer(start: nil, count: 0)) }
        XCTAssertTrue(written == heap, "the payload in ordinary memory was not written as is")
    }

    /// A `.stream` payload writes a tensor in pieces: a 256 MB tensor edited 1 MB at a time keeps
    /// the resident set near one piece; a stream that gives too few or too many bytes is an error
    /// and leaves nothing behind.
    func testStreamedTensorKeepsResidentSetFlat() throws {
        let dir = try makeTempDir("stream")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rows = 65536, cols = 2048                   // 256 MB of f16 (e.g. an embedding table)
        let grown = try peakRSSGrowth {
            let w = try CheckpointWriter(target: dir + "/out")
            try w.add(TensorRecord(name: "embed", dtype: .F16, shape: [rows, cols], source: .stream { emit in
                var chunk = [Float](repeating: 0, count: 256 * cols)
                for r0 in stride(from: 0, to: rows, by: 256) {
                    for i in chunk.indices { chunk[i] = Float((r0 + i / cols) % 1000) }
                    let bytes = try chunk.withUnsafeBufferPointer { try FloatConversion.encode($0, as: .F16) }
                    try bytes.withUnsafeBytes { try emit($0) }
                }
            }))
            try w.commit()
        }
        if let grown {
            print("scale: streaming a 256 MB tensor in 1 MB pieces grew peak RSS by \(grown >> 20) MB")
            XCTAssertLessThan(grown, 64 << 20)
        }
        let f = try SafeTensorsFile(path: dir + "/out/model.safetensors")
        let row = 12345
        var values = [Float](repeating: 0, count: rows * cols)
        try values.withUnsafeMutableBufferPointer { try f.floats("embed", into: $0) }
        XCTAssertEqual(values[row * cols], Float(row % 1000))
        XCTAssertEqual(values[rows * cols - 1], Float((rows - 1) % 1000))

        for (label, pieces) in [("short", 3), ("long", 5)] {
            let w = try CheckpointWriter(target: dir + "/\(label)")
            try w.add(TensorRecord(name: "t", dtype: .U8, shape: [4], source: .stream { emit in
                for _ in 0..<pieces { try [UInt8](repeating: 1, count: 1).withUnsafeBytes { try emit($0) } }
                if pieces == 3 { return }
            }))
            XCTAssertThrowsError(try w.commit()) { XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .invalidTensor, "\($0)") }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["out"])
    }
}
