// Bad models are refused with one line naming the config field or tensor, expected vs found.

import Foundation
import XCTest
@testable import Engine
import SafeTensors

/// A checkpoint with some tensors hidden or reporting another shape.
private final class Doctored: TensorSource {
    let base: TensorSource
    var hidden: Set<String> = []
    var shapes: [String: [Int]] = [:]
    init(_ base: TensorSource) { self.base = base }
    var tensorNames: [String] { base.tensorNames.filter { !hidden.contains($0) } }
    func info(_ name: String) -> TensorInfo? {
        if hidden.contains(name) { return nil }
        guard var i = base.info(name) else { return nil }
        if let s = shapes[name] { i.shape = s }
        return i
    }
    func floats(_ name: String) throws -> [Float] { try base.floats(name) }
}

final class LoadErrorTests: XCTestCase {
    private func message(_ body: () throws -> Any) -> String? {
        do { _ = try body(); return nil } catch { return "\(error)" }
    }

    private func configJSON(_ text: String) throws -> JSONValue { try JSONValue.parse(text) }

    func testUnsupportedModelTypeIsNamed() throws {
        let m = message { try ModelConfig.resolve(json: try self.configJSON(#"{"model_type": "falcon", "hidden_size": 8}"#)) }
        XCTAssertNotNil(m)
        XCTAssertTrue(m?.contains("model_type 'falcon' is not supported") ?? false, m ?? "")
        XCTAssertTrue(m?.contains("llama") ?? false, "lists supported types: \(m ?? "")")
    }

    func testMissingModelType() throws {
        let m = message { try ModelConfig.resolve(json: try self.configJSON(#"{"hidden_size": 8}"#)) }
        XCTAssertEqual(m, "config.json: missing 'model_type'")
    }

    func testWrongFieldTypeIsNamed() throws {
        let m = message { try ModelConfig.resolve(json: try self.configJSON(
            #"{"model_type": "llama", "hidden_size": "64", "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 8, "intermediate_size": 8}"#)) }
        XCTAssertEqual(m, #"config.json: 'hidden_size' must be an integer, found "64""#)
    }

    func testUnsupportedRopeTypeIsNamed() throws {
        let m = message { try ModelConfig.resolve(json: try self.configJSON(
            #"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 8, "intermediate_size": 8, "rope_parameters": {"rope_type": "yarn", "factor": 4.0}}"#)) }
        XCTAssertTrue(m?.contains("rope type 'yarn' is not supported") ?? false, m ?? "")
    }

    func testMissingTensorIsNamed() throws {
        let dir = Fixtures.path("llama")
        let config = try ModelConfig.load(directory: dir)
        let src = Doctored(try Checkpoint(directory: dir))
        src.hidden = ["model.layers.1.mlp.down_proj.weight"]
        let m = message { try LanguageModel(config: config, weights: src) }
        XCTAssertEqual(m, "model.layers.1.mlp.down_proj.weight: missing from the checkpoint (model_type 'llama' expects [64, 80])")
    }

    func testWrongShapeIsNamedWithExpectedAndFound() throws {
        let dir = Fixtures.path("qwen2")
        let config = try ModelConfig.load(directory: dir)
        let src = Doctored(try Checkpoint(directory: dir))
        src.shapes = ["model.layers.0.mlp.down_proj.weight": [80, 64]]
        let m = message { try LanguageModel(config: config, weights: src) }
        XCTAssertEqual(m, "model.layers.0.mlp.down_proj.weight: expected [64, 80], found [80, 64]")
    }

    func testUntiedModelNeedsLmHead() throws {
        let dir = Fixtures.path("mistral")
        let config = try ModelConfig.load(directory: dir)
        XCTAssertFalse(config.tieEmbeddings)
        let src = Doctored(try Checkpoint(directory: dir))
        src.hidden = ["lm_head.weight"]
        let m = message { try LanguageModel(config: config, weights: src) }
        XCTAssertTrue(m?.hasPrefix("lm_head.weight: missing") ?? false, m ?? "")
    }

    func testOutOfRangeTokenIsRefused() throws {
        let m = try LanguageModel.load(path: Fixtures.path("llama"))
        let msg = message { try m.logits(tokens: [3, 999]) }
        XCTAssertEqual(msg, "tokens[1]: token id 999 is out of range (vocab_size 256)")
        XCTAssertNotNil(message { try m.logits(tokens: []) })
    }

    func testGPT2RefusesMorePositionsThanItsTable() throws {
        let m = try LanguageModel.load(path: Fixtures.path("gpt2"))
        let msg = message { try m.logits(tokens: [Int](repeating: 5, count: m.config.maxPositions + 1)) }
        XCTAssertNotNil(msg)
        XCTAssertTrue(msg?.contains("learned positions") ?? false, msg ?? "")
    }

    func testRoPEModelsRefuseMoreThanTheirContextExceptDynamicNTK() throws {
        let m = try LanguageModel.load(path: Fixtures.path("llama"))
        XCTAssertEqual(m.config.maxPositions, 64)
        XCTAssertNoThrow(try m.states(tokens: [Int](repeating: 5, count: 64), capture: []))
        let msg = message { try m.states(tokens: [Int](repeating: 5, count: 65), capture: []) }
        XCTAssertEqual(msg, "sequence of 65 tokens exceeds max_position_embeddings 64 of this llama model")
        // generate: prompt plus new tokens must fit.
        XCTAssertNotNil(message { _ = try m.generate(prompt: [Int](repeating: 5, count: 60), maxTokens: 10, sampling: .greedy, stopTokens: []) { _ in true } })
        // Dynamic NTK scaling exists to run past max_position_embeddings (8 in this fixture).
        let d = try LanguageModel.load(path: Fixtures.path("llama-dynamic"))
        XCTAssertEqual(d.config.maxPositions, 8)
        XCTAssertNoThrow(try d.states(tokens: [Int](repeating: 5, count: 40), capture: []))
    }

    func testResolvedConfigsOfFixtures() throws {
        let g3 = try ModelConfig.load(directory: Fixtures.path("gemma3"))
        XCTAssertEqual(g3.layers.map { $0.slidingWindow }, [4, nil, 4])
        XCTAssertEqual(g3.ropes.map { $0.theta }, [1_000_000, 10_000])
        XCTAssertEqual(g3.layers.map { $0.rope }, [1, 0, 1])
        XCTAssertTrue(g3.qkNorm && g3.postNorms)
        let g2 = try ModelConfig.load(directory: Fixtures.path("gemma2"))
        XCTAssertEqual(g2.attnSoftcap, 5)
        XCTAssertEqual(g2.finalSoftcap, 3)
        XCTAssertEqual(g2.attnScale, Float(1 / Double(24).squareRoot()))
        let q3 = try ModelConfig.load(directory: Fixtures.path("qwen3"))
        XCTAssertEqual(q3.headDim, 32)
        let l3 = try ModelConfig.load(directory: Fixtures.path("llama3"))
        XCTAssertTrue(l3.qkvBias && l3.oBias && l3.mlpBias)
        XCTAssertEqual(l3.ropes[0].type, .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8))
        let gpt2 = try ModelConfig.load(directory: Fixtures.path("gpt2"))
        XCTAssertEqual(gpt2.weightTable.first?.name, "transformer.wte.weight")
        XCTAssertEqual(gpt2.eosTokenIds, [2])
    }
}
