// Sharded checkpoints: the index rules of Checkpoint.swift, each broken once.

import Foundation
import XCTest
@testable import SafeTensors

final class CheckpointTests: XCTestCase {
    /// A two-shard folder written by the writer; returns its path.
    private func shardedFolder() throws -> String {
        let dir = try makeTempDir(self)
        let target = (dir as NSString).appendingPathComponent("m")
        let w = try CheckpointWriter(target: target, maxShardSize: 8)
        try w.add(TensorRecord(name: "a", shape: [2], floats: [1, 2]))
        try w.add(TensorRecord(name: "b", shape: [2], floats: [3, 4]))
        try w.commit()
        return target
    }

    private func expectIndexError(_ index: String, tensor: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try shardedFolder()
        let path = (dir as NSString).appendingPathComponent("model.safetensors.index.json")
        try Data(index.utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Checkpoint(directory: dir), file: file, line: line) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .invalidIndex, "\(e)", file: file, line: line)
            if let tensor { XCTAssertEqual((e as? SafeTensorsError)?.tensor, tensor, "\(e)", file: file, line: line) }
        }
    }

    func testValidShardedFolder() throws {
        let ck = try Checkpoint(directory: try shardedFolder())
        XCTAssertEqual(ck.tensorNames, ["a", "b"])
        XCTAssertEqual(ck.shardName(of: "b"), "model-00002-of-00002.safetensors")
        XCTAssertEqual(try ck.floats("b"), [3, 4])
        XCTAssertThrowsError(try ck.floats("c")) { XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .missingTensor) }
    }

    func testIndexRules() throws {
        let s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors"
        try expectIndexError("not json")
        try expectIndexError("[]")
        try expectIndexError(#"{"metadata":{}}"#)
        try expectIndexError(#"{"weight_map":{"a":"\#(s1)","b":"../\#(s2)"}}"#, tensor: "b")
        try expectIndexError(#"{"weight_map":{"a":"\#(s1)","b":5}}"#, tensor: "b")
        try expectIndexError(#"{"weight_map":{"a":"\#(s1)","b":"\#(s2)","a":"\#(s1)"}}"#, tensor: "a")
        try expectIndexError(#"{"weight_map":{"a":"\#(s2)","b":"\#(s2)"}}"#, tensor: "a")      // wrong shard
    }

    func testStrayAndMissing() throws {
        let s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors"
        try expectIndexError(#"{"weight_map":{"a":"\#(s1)","b":"\#(s2)","c":"\#(s2)"}}"#, tensor: "c")    // listed, absent
        try expectIndexError(#"{"weight_map":{"a":"\#(s1)","b":"model-00003-of-00003.safetensors"}}"#)   // missing shard file
        try expectIndexError(#"{"weight_map":{"b":"\#(s2)","x":"\#(s1)"}}"#, tensor: "x")                 // shard holds a, not x
    }
}
