import XCTest
import Foundation
@testable import Editor
import SafeTensors

let convertFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/gguf").path

/// Temporary folders made by the current test; removed by `removeTempDirs()` in tearDown.
nonisolated(unsafe) var tempDirs: [String] = []

func freshTempDir() throws -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("convert-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    tempDirs.append(d)
    return d
}

func removeTempDirs() {
    for d in tempDirs { try? FileManager.default.removeItem(atPath: d) }
    tempDirs = []
}

func readJSON(_ path: String) throws -> JSONValue {
    try JSONValue.parse(data: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
}

/// The expected values in fixtures/gguf/NAME.expected were written by transformers' own GGUF loader
/// (make_convert_fixtures.py): its state dict, config and tokenizer for the same tiny GGUF.
final class ConvertTests: XCTestCase {
    override func tearDown() { removeTempDirs() }

    func convertFixture(_ name: String) throws -> (out: String, report: ConvertReport) {
        let out = try freshTempDir() + "/hf"
        let report = try GGUFConverter.convert(gguf: "\(convertFixtures)/\(name).gguf", to: out)
        return (out, report)
    }

    func checkWeightsEqualTransformers(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (out, _) = try convertFixture(name)
        let got = try Checkpoint(directory: out)
        let want = try SafeTensorsFile(path: "\(convertFixtures)/\(name).expected/model.safetensors")
        XCTAssertEqual(Set(got.tensorNames), Set(want.tensorNames), "\(name): tensor names", file: file, line: line)
        for n in want.tensorNames where got.contains(n) {
            XCTAssertEqual(got.info(n)?.shape, want.info(n)?.shape, "\(name): \(n) shape", file: file, line: line)
            let a = try got.floats(n), b = try want.floats(n)
            let diff = zip(a, b).filter { $0.0.bitPattern != $0.1.bitPattern }.count
            XCTAssertEqual(diff, 0, "\(name): \(n): \(diff) values differ from transformers", file: file, line: line)
        }
    }

    func testLlamaWeightsMatchTransformersIncludingQKUnpermute() throws { try checkWeightsEqualTransformers("tiny_llama") }
    func testLlamaSentencePieceWeights() throws { try checkWeightsEqualTransformers("tiny_llama_spm") }
    func testQwen2WeightsWithBiasesAndTiedEmbeddings() throws { try checkWeightsEqualTransformers("tiny_qwen2") }
    func testGemma3WeightsWithNormMinusOne() throws { try checkWeightsEqualTransformers("tiny_gemma3") }
    func testQwen3WeightsWithQKNorms() throws { try checkWeightsEqualTransformers("tiny_qwen3") }
    func testGemma2Weights() throws { try checkWeightsEqualTransformers("tiny_gemma2") }

    static let allFixtures = ["tiny_llama", "tiny_llama_spm", "tiny_qwen2", "tiny_qwen3", "tiny_gemma2", "tiny_gemma3"]

    func testTokenizerJSONEqualsTransformersForEveryTokenizerKind() throws {
        for name in Self.allFixtures {
            let (out, _) = try convertFixture(name)
            let got = try readJSON(out + "/tokenizer.json")
            let want = try readJSON("\(convertFixtures)/\(name).expected/tokenizer.json")
            for key in ["added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder", "model"] {
                XCTAssertEqual(got[key], want[key], "\(name): tokenizer.json '\(key)' differs from transformers'")
            }
        }
    }

    func testConfigMatchesTransformers() throws {
        let keys = ["model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings", "vocab_size",
                    "tie_word_embeddings", "bos_token_id", "eos_token_id"]
        for name in Self.allFixtures {
            let (out, report) = try convertFixture(name)
            let got = try readJSON(out + "/config.json")
            let want = try readJSON("\(convertFixtures)/\(name).expected/config.json")
            // transformers' Qwen2Config has no head_dim (it derives hidden / heads = 16, which we write).
            for k in keys where !(name == "tiny_qwen2" && k == "head_dim") {
                XCTAssertEqual(got[k], want[k], "\(name): config '\(k)'")
            }
            XCTAssertEqual(got["architectures"], want["architectures"], name)
            XCTAssertEqual(got["rope_theta"], want["rope_parameters"]?["rope_theta"] ?? want["rope_parameters"]?["full_attention"]?["rope_theta"], name)
            XCTAssertEqual(got["torch_dtype"], .string("float32"))
            XCTAssertEqual(report.modelType, got["model_type"]?.stringValue)
            if name == "tiny_qwen2" { XCTAssertEqual(got["head_dim"], .int(16)) }
            if name == "tiny_gemma2" {
                for k in ["sliding_window", "layer_types", "attn_logit_softcapping", "final_logit_softcapping"] { XCTAssertEqual(got[k], want[k], "gemma2 \(k)") }
            }
            if name == "tiny_gemma3" {
                for k in ["sliding_window", "layer_types"] { XCTAssertEqual(got[k], want[k], "gemma3 \(k)") }
                // transformers leaves the class default 256 here; llama.cpp scales queries by 1/sqrt(head_dim)
                // (hidden/heads for 27B), which we write. Real Gemma 3 models other than 27B have head_dim 256.
                XCTAssertEqual(got["query_pre_attn_scalar"], .int(32))
            }
        }
    }

    func testTokenizerConfigHasChatTemplateAndSpecialTokens() throws {
        let (out, _) = try convertFixture("tiny_llama")
        let c = try readJSON(out + "/tokenizer_config.json")
        XCTAssertEqual(c["bos_token"], .string("<|im_start|>"))
        XCTAssertEqual(c["eos_token"], .string("<|im_end|>"))
        XCTAssertEqual(c["add_bos_token"], .bool(false))
        XCTAssertEqual(c["chat_template"]?.stringValue?.hasPrefix("{% for m in messages %}"), true)
        let g = try readJSON("\(convertFixtures)/../gguf/tiny_gemma3.expected/config.json")
        XCTAssertEqual(g["model_type"], .string("gemma3_text"))
    }

    func testLlama3RopeScalingIsRecoveredFromRopeFreqs() throws {
        let (out, _) = try convertFixture("tiny_llama3")
        let c = try readJSON(out + "/config.json")
        let params = try readJSON("\(convertFixtures)/tiny_llama3.params.json")
        XCTAssertEqual(c["rope_scaling"], params["rope_scaling"])
        XCTAssertEqual(c["rope_theta"], params["rope_theta"])
        let ck = try Checkpoint(directory: out)
        XCTAssertFalse(ck.tensorNames.contains { $0.contains("rope") })
        XCTAssertTrue(ck.contains("model.layers.0.self_attn.q_proj.weight"))
        // Divisors that no llama3 parameters produce are refused.
        XCTAssertThrowsError(try GGUFConverter.inferLlama3RopeScaling([1, 1, 2.5, 1, 7, 32, 32, 32], theta: 500000, dim: 16, file: "f")) { e in
            XCTAssertEqual((e as? ConvertError)?.kind, .unsupported)
        }
    }

    func testUnpermuteInvertsLlamaCppPermutation() throws {
        // llama.cpp: w.reshape(heads, 2, half, cols).swapaxes(1, 2) -> GGUF rows. 2 heads, half 2, 1 col:
        // HF rows [h0: a0 a1 b0 b1 | h1: c0 c1 d0 d1] are stored as [a0 b0 a1 b1 | c0 d0 c1 d1].
        let stored: [Float] = [10, 20, 11, 21, 30, 40, 31, 41]
        var out = [Float](repeating: 0, count: 8)
        try stored.withUnsafeBufferPointer { s in
            try out.withUnsafeMutableBufferPointer { o in
                try GGUFConverter.unpermuteRows(s, into: o, shape: [8], heads: 2, name: "q", file: "f")
            }
        }
        XCTAssertEqual(out, [10, 11, 20, 21, 30, 31, 40, 41])
        XCTAssertThrowsError(try stored.withUnsafeBufferPointer { s in
            try out.withUnsafeMutableBufferPointer { o in try GGUFConverter.unpermuteRows(s, into: o, shape: [8], heads: 3, name: "q", file: "f") }
        })
    }

    func testRefusesExistingTargetWithoutForceAndReplacesWithForce() throws {
        let dir = try freshTempDir()
        let out = dir + "/hf"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: out + "/marker"))
        XCTAssertThrowsError(try GGUFConverter.convert(gguf: "\(convertFixtures)/tiny_qwen2.gguf", to: out)) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .targetExists, "\(e)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/marker"))
        _ = try GGUFConverter.convert(gguf: "\(convertFixtures)/tiny_qwen2.gguf", to: out, options: ConvertOptions(force: true))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/marker"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["hf"], "no temporary folders left")
    }

    func testFailureLeavesNothingBehind() throws {
        // quant_types.gguf has architecture "fixture": refused before any file is written.
        let dir = try freshTempDir()
        XCTAssertThrowsError(try GGUFConverter.convert(gguf: "\(convertFixtures)/quant_types.gguf", to: dir + "/hf")) { e in
            XCTAssertEqual((e as? ConvertError)?.kind, .unsupported)
            XCTAssertTrue("\(e)".contains("fixture"))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    func testUnknownTensorIsRefused() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        for (k, v) in [("embedding_length", 32), ("block_count", 1), ("feed_forward_length", 32), ("attention.head_count", 2)] {
            w.set("llama.\(k)", .uint32(UInt32(v)))
        }
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.tokens", .array(.string, [.string("a"), .string("b")]))
        w.set("tokenizer.ggml.merges", .array(.string, [.string("a b")]))
        w.tensors = [.init(name: "token_embd.weight", f32: [Float](repeating: 0, count: 64), shape: [2, 32]),
                     .init(name: "output_norm.weight", f32: [Float](repeating: 1, count: 32), shape: [32]),
                     .init(name: "blk.0.mystery.weight", f32: [0], shape: [1])]
        let dir = try freshTempDir()
        try w.write(to: dir + "/m.gguf")
        XCTAssertThrowsError(try GGUFConverter.convert(gguf: dir + "/m.gguf", to: dir + "/hf")) { e in
            XCTAssertEqual((e as? ConvertError)?.kind, .unknownTensor)
            XCTAssertTrue("\(e)".contains("blk.0.mystery.weight"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/hf"))
    }

    func testShardingWritesIndex() throws {
        let out = try freshTempDir() + "/hf"
        var o = ConvertOptions(); o.maxShardBytes = 100_000
        let r = try GGUFConverter.convert(gguf: "\(convertFixtures)/tiny_llama.gguf", to: out, options: o)
        XCTAssertTrue(r.files.contains("model.safetensors.index.json") || FileManager.default.fileExists(atPath: out + "/model.safetensors.index.json"))
        let ck = try Checkpoint(directory: out)
        XCTAssertGreaterThan(ck.shards.count, 1)
        let want = try SafeTensorsFile(path: "\(convertFixtures)/tiny_llama.expected/model.safetensors")
        for n in want.tensorNames { XCTAssertEqual(try ck.floats(n), try want.floats(n), n) }
    }
}

final class ConvertSourceTests: XCTestCase {
    override func tearDown() { removeTempDirs() }

    func testHFSourceServesConvertedTensorsWithoutWriting() throws {
        let src = try GGUFHFSource(path: "\(convertFixtures)/tiny_llama.gguf")
        let want = try SafeTensorsFile(path: "\(convertFixtures)/tiny_llama.expected/model.safetensors")
        XCTAssertEqual(Set(src.tensorNames), Set(want.tensorNames))
        for n in ["model.layers.1.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight", "lm_head.weight"] {
            XCTAssertEqual(src.info(n)?.shape, want.info(n)?.shape)
            XCTAssertEqual(try src.floats(n), try want.floats(n), n)
        }
        XCTAssertEqual(src.config["model_type"], .string("llama"))
        XCTAssertNotNil(try src.tokenizerFiles().tokenizer["model"])
        XCTAssertThrowsError(try src.floats("nope"))
    }

    func testResolveModelPathConvertsOnceIntoCache() throws {
        let root = try freshTempDir()
        let dir = try GGUFModelCache.resolveModelPath("\(convertFixtures)/tiny_gemma3.gguf", cacheRoot: root)
        XCTAssertTrue(dir.hasPrefix(root))
        let ck = try Checkpoint(directory: dir)
        XCTAssertTrue(ck.contains("model.embed_tokens.weight"))
        let stamp = try FileManager.default.attributesOfItem(atPath: dir + "/model.safetensors")[.modificationDate] as? Date
        let again = try GGUFModelCache.resolveModelPath("\(convertFixtures)/tiny_gemma3.gguf", cacheRoot: root)
        XCTAssertEqual(again, dir)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: dir + "/model.safetensors")[.modificationDate] as? Date, stamp)
        XCTAssertEqual(try GGUFModelCache.resolveModelPath("/some/folder", cacheRoot: root), "/some/folder")
    }

    /// The cache folder follows the same rule as the scripts (scripts/test, fetch-smollm2):
    /// $EDIT_CLI_CACHE, else $XDG_CACHE_HOME/edit-cli, else $HOME/.cache/edit-cli.
    func testCacheRootFollowsTheEnvironmentLikeTheScripts() {
        let names = ["EDIT_CLI_CACHE", "XDG_CACHE_HOME", "HOME"]
        let saved = names.map { getenv($0).map { String(cString: $0) } }
        defer { for (n, v) in zip(names, saved) { if let v { setenv(n, v, 1) } else { unsetenv(n) } } }
        unsetenv("EDIT_CLI_CACHE"); unsetenv("XDG_CACHE_HOME"); setenv("HOME", "/tmp/home-x", 1)
        XCTAssertEqual(GGUFModelCache.defaultRoot, "/tmp/home-x/.cache/edit-cli/gguf")
        setenv("XDG_CACHE_HOME", "/tmp/xdg-y", 1)
        XCTAssertEqual(GGUFModelCache.defaultRoot, "/tmp/xdg-y/edit-cli/gguf")
        setenv("EDIT_CLI_CACHE", "/tmp/cache-z", 1)
        XCTAssertEqual(GGUFModelCache.defaultRoot, "/tmp/cache-z/gguf")
    }
}
