// Writes checkpoints for the manual Python check (fixtures/safetensors/check_swift_output.py):
//   ST_EXPORT_DIR=/tmp/st-export scripts/test --filter PythonExportTests
//   /work/venv/bin/python fixtures/safetensors/check_swift_output.py /tmp/st-export
// Skipped unless ST_EXPORT_DIR is set (tests never need Python).

import Foundation
import XCTest
import TestSupport
@testable import SafeTensors

final class PythonExportTests: XCTestCase {
    func testExportForPython() throws {
        guard let out = ProcessInfo.processInfo.environment["ST_EXPORT_DIR"] else {
            throw XCTSkip("set ST_EXPORT_DIR to write checkpoints for check_swift_output.py")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var rng = SeededRandom(seed: 2024)
        var tensors: [(String, DType, [Int], [UInt8])] = []
        for (k, d) in DType.allCases.enumerated() {
            let shape = [[4, 3], [17], [2, 2, 5]][k % 3]
            var b = (0..<(shape.reduce(1, *) * d.size)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if d == .BOOL { b = b.map { $0 & 1 } }
            tensors.append(("w.\(d.rawValue.lowercased())", d, shape, b))
        }
        tensors.append(("scalar", .F32, [], [0, 0, 0x60, 0x40]))
        tensors.append(("empty", .BF16, [0, 4], []))
        var manifest: [(String, JSONValue)] = []
        for t in tensors {
            manifest.append((t.0, .object([("dtype", .string(t.1.rawValue)), ("shape", .array(t.2.map { .int($0) })),
                                           ("hex", .string(t.3.map { String(format: "%02x", $0) }.joined()))])))
        }
        for (folder, limit) in [("sharded", 64), ("single", 1 << 20)] {
            let w = try CheckpointWriter(target: (out as NSString).appendingPathComponent(folder), force: true,
                                         maxShardSize: limit, metadata: ["producer": "swift"])
            for t in tensors { try w.add(TensorRecord(name: t.0, dtype: t.1, shape: t.2, source: .produce { t.3 })) }
            try w.commit()
        }
        try writeSafeTensors(path: (out as NSString).appendingPathComponent("vectors.safetensors"),
                             tensors: [TensorRecord(name: "resid_post.3", shape: [8], floats: (0..<8).map { Float($0) - 3.5 })],
                             metadata: ["method": "mean-diff"])
        try Data(JSONValue.object(manifest).serialized(pretty: true).utf8)
            .write(to: URL(fileURLWithPath: (out as NSString).appendingPathComponent("expected.json")))
    }
}
