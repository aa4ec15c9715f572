// CheckpointSummary (what `edit-cli inspect` prints) on the fixtures and small written folders.

import Foundation
import XCTest
@testable import SafeTensors

final class SummaryTests: XCTestCase {
    func testShardedFixture() throws {
        let s = try CheckpointSummary(path: fixturesDir() + "/sharded")
        XCTAssertEqual(s.modelType, "llama")
        XCTAssertEqual(s.architectures, ["LlamaForCausalLM"])
        XCTAssertEqual(s.tiedEmbeddings, false)
        XCTAssertTrue(s.hasLMHead)
        XCTAssertEqual(s.shards.count, 4)
        // 16x8 + 3x(8x8 + 8x16 + 8) + 20x16 + 8 + 1 + 3 + 0 + 16x8
        XCTAssertEqual(s.parameters, 128 + 3 * (64 + 128 + 8) + 320 + 8 + 1 + 3 + 0 + 128)
        XCTAssertEqual(s.totalBytes, 3723)  // index total_size written by huggingface_hub
        XCTAssertEqual(s.dtypes.first?.dtype, "F32")
        XCTAssertEqual(s.dtypes.map { $0.tensors }.reduce(0, +), 16)
        let names = s.tensors.map { $0.name }
        XCTAssertLessThan(names.firstIndex(of: "model.layers.1.mlp.down_proj.weight")!, names.firstIndex(of: "model.layers.2.input_layernorm.weight")!)
        XCTAssertEqual(s.tensors.first { $0.name == "model.big" }?.shard, "model-00003-of-00004.safetensors")
        let j = s.json
        XCTAssertEqual(j["tensor_count"]?.intValue, 16)
        XCTAssertEqual(j["tied_embeddings"], .bool(false))
        XCTAssertTrue(s.text.contains("tied embeddings: no (tie_word_embeddings=false in config.json)"))
    }

    func testTiedInferredFromMissingLMHead() throws {
        let dir = try makeTempDir(self)
        let m = (dir as NSString).appendingPathComponent("m")
        let w = try CheckpointWriter(target: m)
        try w.add(TensorRecord(name: "model.embed_tokens.weight", shape: [4, 2], floats: [Float](repeating: 1, count: 8), as: .BF16))
        try w.commit()
        XCTAssertEqual(try CheckpointSummary(path: m).tiedEmbeddings, true)
        try Data(#"{"model_type":"gpt2","tie_word_embeddings":false}"#.utf8).write(to: URL(fileURLWithPath: m + "/config.json"))
        let s = try CheckpointSummary(path: m)
        XCTAssertEqual(s.tiedEmbeddings, false)
        XCTAssertTrue(s.text.contains("warning: embeddings are not tied but lm_head.weight is absent"))
        XCTAssertNil(try CheckpointSummary(path: fixturesDir() + "/all_dtypes.safetensors").tiedEmbeddings)
    }

    func testBadInputsAreTypedErrors() throws {
        let dir = try makeTempDir(self)
        let m = (dir as NSString).appendingPathComponent("m")
        let w = try CheckpointWriter(target: m)
        try w.addFile(name: "config.json", contents: Array("{not json".utf8))
        try w.add(TensorRecord(name: "x", shape: [1], floats: [1]))
        try w.commit()
        XCTAssertThrowsError(try CheckpointSummary(path: m)) { e in
            XCTAssertTrue("\(e)".hasPrefix(m + "/config.json: not valid JSON"), "\(e)")
        }
        XCTAssertThrowsError(try CheckpointSummary(path: dir + "/model.gguf"))
        XCTAssertThrowsError(try CheckpointSummary(path: dir + "/missing")) { XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .io) }
    }

    /// Counts from gguf-py (GGUFReader) on the same file: 21 tensors, 97856 elements.
    func testGGUFFile() throws {
        let root = (fixturesDir() as NSString).deletingLastPathComponent
        let s = try CheckpointSummary(path: root + "/gguf/tiny_llama.gguf")
        XCTAssertEqual(s.format, "gguf")
        XCTAssertEqual(s.modelType, "llama")
        XCTAssertEqual(s.tensors.count, 21)
        XCTAssertEqual(s.parameters, 97856)
        let embd = try XCTUnwrap(s.tensors.first { $0.name == "token_embd.weight" })
        XCTAssertEqual(embd.dtype, "Q8_0")
        XCTAssertEqual(embd.shape, [282, 64])
        XCTAssertEqual(s.tiedEmbeddings, false, "output.weight present")
        XCTAssertEqual(s.metadata["general.architecture"], "llama")
    }

    func testNaturalOrder() {
        XCTAssertTrue(naturalLess("layers.2.w", "layers.10.w"))
        XCTAssertFalse(naturalLess("layers.10.w", "layers.2.w"))
        XCTAssertTrue(naturalLess("a", "a.b"))
        XCTAssertFalse(naturalLess("a", "a"))
    }
}
