// Deterministic mutation sweeps over every parser of user files. Each starts from valid inputs
// (committed fixtures), applies a few thousand seeded mutations (byte replacements, truncations,
// insertions, duplicated and deleted spans, extreme numbers in numeric fields) and requires for
// every one: no crash, bounded time, and either a valid result (which is then used: tensors read,
// text encoded, template rendered) or the parser's own typed error.
//
// A failure prints the parser, the trial number and the seed, so the input can be rebuilt.

import Foundation
import XCTest
import TestSupport
@testable import SafeTensors
@testable import Tokenizers
@testable import Engine
@testable import Editor

final class MutationTests: XCTestCase {
    /// Longest time one input may take (a hang would show up as a blown budget, not a freeze:
    /// every parser here is bounded by its input size and limits).
    static let perInputBudget = 2.0

    struct Outcome { var accepted = 0; var rejected = 0; var slowest = 0.0 }

    /// Runs `trials` mutations of each base through `probe`, which returns true when the input was
    /// accepted and false for the parser's typed error; any other error fails the test.
    func sweep(_ label: String, bases: [[UInt8]], trials: Int, text: Bool, seed: UInt64,
               probe: ([UInt8]) throws -> Bool) -> Outcome {
        var rng = SeededRandom(seed: seed)
        var out = Outcome()
        for base in bases {
            XCTAssertTrue((try? probe(base)) == true, "\(label): the unmutated base must be accepted")
        }
        for trial in 0..<trials {
            let base = bases[trial % bases.count]
            let m = Mutator.mutate(base, rng: &rng, text: text)
            let t = Date()
            do {
                if try probe(m) { out.accepted += 1 } else { out.rejected += 1 }
            } catch {
                XCTFail("\(label): trial \(trial) (seed \(seed)): untyped error \(type(of: error)): \(error)")
            }
            let dt = Date().timeIntervalSince(t)
            out.slowest = max(out.slowest, dt)
            XCTAssertLessThan(dt, Self.perInputBudget, "\(label): trial \(trial) (seed \(seed)) took \(dt) s")
        }
        // Both outcomes must occur, or the mutations are not reaching the parser's checks.
        XCTAssertGreaterThan(out.rejected, 0, "\(label): no mutation was rejected")
        print("mutation \(label): \(trials) inputs, \(out.accepted) accepted, \(out.rejected) typed errors, slowest \(String(format: "%.3f", out.slowest)) s")
        return out
    }

    func testSafeTensorsHeaders() throws {
        let bases = try ["all_dtypes.safetensors", "metadata.safetensors"].map { try readFile("\(fixturesRoot)/safetensors/\($0)") }
        _ = sweep("safetensors", bases: bases, trials: 4000, text: false, seed: 0x5AFE) { bytes in
            do {
                let f = try SafeTensorsFile(bytes: bytes, name: "mutated.safetensors")
                for n in f.tensorNames {
                    let info = try XCTUnwrap(f.info(n))
                    XCTAssertEqual(try f.bytes(n).count, info.byteCount)
                    if info.dtype.isFloatingPoint { XCTAssertEqual(try f.floats(n).count, info.elementCount) }
                }
                return true
            } catch is SafeTensorsError { return false }
        }
    }

    func testGGUFFiles() throws {
        let dir = try makeTempDir("gguf-mut", memory: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/m.gguf"
        let bases = try ["tiny_llama.gguf", "quant_types.gguf", "cv_repeng.gguf"].map { try readFile("\(fixturesRoot)/gguf/\($0)") }
        _ = sweep("gguf", bases: bases, trials: 2500, text: false, seed: 0x6607) { bytes in
            try writeFile(path, bytes)
            do {
                let f = try GGUFFile(path: path)
                for t in f.tensors {
                    XCTAssertEqual(try f.bytes(t.name).count, t.byteCount)
                    do {
                        let values = try f.floats(t.name)
                        XCTAssertEqual(values.count, t.elementCount)
                    } catch let e as GGUFError where e.kind == .unsupportedType {}
                }
                return true
            } catch is GGUFError { return false }
        }
    }

    /// convert reads the GGUF's metadata (architecture, hyperparameters, tokenizer arrays) into
    /// config.json and tokenizer.json: mutated inputs must give a typed error or a folder.
    func testConvertOfMutatedGGUF() throws {
        let dir = try makeTempDir("convert-mut", memory: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/m.gguf"
        let bases = try ["tiny_llama.gguf", "tiny_qwen2.gguf"].map { try readFile("\(fixturesRoot)/gguf/\($0)") }
        var n = 0
        _ = sweep("convert", bases: bases, trials: 600, text: false, seed: 0xC0DE) { bytes in
            try writeFile(path, bytes)
            n += 1
            let out = dir + "/out\(n)"
            defer { try? FileManager.default.removeItem(atPath: out) }
            do {
                _ = try GGUFConverter.convert(gguf: path, to: out)
                XCTAssertNoThrow(try Checkpoint(directory: out))
                return true
            } catch is ConvertError { return false } catch is GGUFError { return false }
            catch is SafeTensorsError { return false } catch is TokenizerError { return false }
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") }
        XCTAssertEqual(left, [], "temporary folders left behind by failed conversions")
    }

    func testJSON() throws {
        let bases = try ["safetensors/sharded/model.safetensors.index.json", "tokenizers/llama3style/tokenizer_config.json",
                         "models/gpt2-f16/recipes/multi.json"].map { try readFile("\(fixturesRoot)/\($0)") }
        _ = sweep("json", bases: bases, trials: 4000, text: true, seed: 0x1507) { bytes in
            do {
                let v = try JSONValue.parse(data: bytes)
                XCTAssertEqual(try JSONValue.parse(v.serialized()), v, "serialised form must parse back to the same value")
                return true
            } catch is JSONParseError { return false }
        }
    }

    func testModelConfig() throws {
        let bases = try ["llama", "gpt2", "gemma2", "gemma3", "qwen2", "qwen3", "llama-dynamic"].map { try readFile("\(fixturesRoot)/models/\($0)/config.json") }
        _ = sweep("config.json", bases: bases, trials: 4000, text: true, seed: 0xC0F1) { bytes in
            guard let json = try? JSONValue.parse(data: bytes) else { return false }
            do {
                let c = try ModelConfig.resolve(json: json)
                XCTAssertFalse(c.weightTable.isEmpty)
                return true
            } catch is ModelError { return false }
        }
    }

    func testTokenizerJSON() throws {
        let bases = try ["metaspace_always", "gpt2style"].map { try readFile("\(fixturesRoot)/tokenizers/\($0)/tokenizer.json") }
        _ = sweep("tokenizer.json", bases: bases, trials: 1500, text: true, seed: 0x70CE) { bytes in
            do {
                let t = try Tokenizer(tokenizerJSON: bytes, configJSON: nil)
                let ids = t.encode("Hello wörld, 12345 <|im_start|>  tabs\tand\nnewlines 🤗")
                _ = t.decode(ids)
                return true
            } catch is TokenizerError { return false }
        }
    }

    func testTokenizerConfigJSON() throws {
        let tj = try readFile("\(fixturesRoot)/tokenizers/llama3style/tokenizer.json")
        let bases = try ["llama3style"].map { try readFile("\(fixturesRoot)/tokenizers/\($0)/tokenizer_config.json") }
        _ = sweep("tokenizer_config.json", bases: bases, trials: 1500, text: true, seed: 0x70CF) { bytes in
            do {
                let t = try Tokenizer(tokenizerJSON: tj, configJSON: bytes)
                if t.chatTemplate != nil {
                    _ = try t.applyChatTemplate(messages: [["role": "user", "content": "Hi"]], addGenerationPrompt: true)
                }
                return true
            } catch is TokenizerError { return false }
        }
    }

    func testChatTemplates() throws {
        let goldens = try JSONValue.parse(data: try readFile("\(fixturesRoot)/tokenizers/chat_goldens.json"))
        var sources: [String] = []
        if let s = goldens["features_template"]?.stringValue { sources.append(s) }
        for f in ["llama3style", "spstyle", "smollm2"] {
            let cfg = try JSONValue.parse(data: try readFile("\(fixturesRoot)/tokenizers/\(f)/tokenizer_config.json"))
            if let s = cfg["chat_template"]?.stringValue { sources.append(s) }
        }
        XCTAssertGreaterThanOrEqual(sources.count, 3)
        let messages: JinjaValue = .array([
            .dict([("role", .string("system")), ("content", .string("Be brief."))]),
            .dict([("role", .string("user")), ("content", .string("Hi"))]),
            .dict([("role", .string("assistant")), ("content", .string("Hello"))]),
            .dict([("role", .string("user")), ("content", .string("2+2?"))]),
        ])
        _ = sweep("chat template", bases: sources.map { Array($0.utf8) }, trials: 4000, text: true, seed: 0x717A) { bytes in
            do {
                let t = try ChatTemplate(source: String(decoding: bytes, as: UTF8.self), file: "mutated.jinja")
                t.maxLoopIterations = 100_000
                _ = try t.render(["messages": messages, "add_generation_prompt": .bool(true),
                                  "bos_token": .string("<s>"), "eos_token": .string("</s>")])
                return true
            } catch is TokenizerError { return false }
        }
    }

    func testRecipes() throws {
        let folder = "\(fixturesRoot)/models/gpt2-f16/recipes"
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") }.sorted()
        let bases = try names.map { try readFile("\(folder)/\($0)") }
        _ = sweep("recipe", bases: bases, trials: 4000, text: true, seed: 0x2EC1) { bytes in
            guard let json = try? JSONValue.parse(data: bytes) else { return false }
            do {
                let r = try Recipe(json: json, baseFolder: folder, label: "mutated.json")
                _ = try r.resolve(hiddenSize: 64, numLayers: 2)
                return true
            } catch is RecipeError { return false }
        }
    }

    func testPromptFiles() throws {
        let dir = try makeTempDir("prompts-mut", memory: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bases = try ["lines.txt", "prompts.jsonl"].map { Array(try readFile("\(repoRoot)/fuzz/corpus/prompts/\($0)").dropFirst()) }
        var k = 0
        _ = sweep("prompt file", bases: bases, trials: 3000, text: true, seed: 0x9A0F) { bytes in
            k += 1
            // .txt detects JSON Lines from the first line; every third file forces .jsonl.
            let path = dir + (k % 3 == 0 ? "/p.jsonl" : "/p.txt")
            try writeFile(path, bytes)
            do {
                let prompts = try PromptFile.load(path)
                XCTAssertFalse(prompts.isEmpty)
                return true
            } catch is EditError { return false }
        }
    }

    func testNPYVectors() throws {
        let dir = try makeTempDir("npy-mut", memory: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/v.npy"
        let bases = try ["f32.npy", "f64_1xn.npy", "f16.npy"].map { try readFile("\(repoRoot)/fuzz/corpus/npy/\($0)") }
        _ = sweep("npy", bases: bases, trials: 3000, text: false, seed: 0x0509) { bytes in
            try writeFile(path, bytes)
            do { _ = try NPY.readVector(path: path); return true } catch is NPY.Error { return false }
        }
    }
}
