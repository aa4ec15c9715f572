// Optional check on a real checkpoint folder (skipped unless ST_REAL_MODEL is set), printing
// figures: open time, f32 conversion throughput, streaming copy throughput. The copy must reload
// bit-identical (here, and in Python with check_swift_output.py-style comparisons by hand).
//   ST_REAL_MODEL=/tmp/smollm2-bf16 ST_REAL_COPY=/tmp/smollm2-copy scripts/test --filter RealCheckpointTests

import Foundation
import XCTest
@testable import SafeTensors

final class RealCheckpointTests: XCTestCase {
    func testOpenConvertCopy() throws {
        guard let path = ProcessInfo.processInfo.environment["ST_REAL_MODEL"] else {
            throw XCTSkip("set ST_REAL_MODEL to a Hugging Face model folder")
        }
        let copy = try ProcessInfo.processInfo.environment["ST_REAL_COPY"] ?? (makeTempDir(self) + "/copy")
        var t0 = Date()
        let ck = try Checkpoint.open(path)
        let openTime = Date().timeIntervalSince(t0)
        var elements = 0, bytes = 0
        var buffer = [Float]()
        var times: [Double] = []
        for pass in 0..<2 { // first pass: page faults of the fresh mapping; second: warm
            t0 = Date()
            for n in ck.tensorNames {
                let info = try XCTUnwrap(ck.info(n))
                if buffer.count < info.elementCount { buffer = [Float](repeating: 0, count: info.elementCount) }
                try buffer.withUnsafeMutableBufferPointer { try ck.floats(n, into: UnsafeMutableBufferPointer(rebasing: $0[0..<info.elementCount])) }
                if pass == 0 { elements += info.elementCount; bytes += info.byteCount }
            }
            times.append(Date().timeIntervalSince(t0))
        }
        let (convTime, warmTime) = (times[0], times[1])
        t0 = Date()
        let w = try CheckpointWriter(target: copy, force: true, maxShardSize: 100_000_000, sources: [path])
        for n in ck.tensorNames {
            let info = try XCTUnwrap(ck.info(n))
            try w.add(TensorRecord(name: n, dtype: info.dtype, shape: info.shape, source: .bytes(try ck.bytes(n))))
        }
        for f in ["config.json", "generation_config.json"] where FileManager.default.fileExists(atPath: path + "/" + f) {
            try w.copyFile(from: path + "/" + f, as: f)
        }
        try w.commit()
        let copyTime = Date().timeIntervalSince(t0)
        let back = try Checkpoint(directory: copy)
        XCTAssertEqual(back.tensorNames.sorted(), ck.tensorNames.sorted())
        for n in ck.tensorNames { XCTAssertTrue(try back.bytes(n).elementsEqual(try ck.bytes(n)), n) }
        print(String(format: "real checkpoint: %d tensors, %.1fM elements, %.0f MB; open %.1f ms; to f32 %.3f s (%.2f G elements/s), warm %.3f s (%.2f G elements/s); streaming copy %.2f s (%.0f MB/s incl. fsync)",
                     ck.tensorNames.count, Double(elements) / 1e6, Double(bytes) / 1e6, openTime * 1e3,
                     convTime, Double(elements) / convTime / 1e9, warmTime, Double(elements) / warmTime / 1e9, copyTime, Double(bytes) / copyTime / 1e6))
    }
}
