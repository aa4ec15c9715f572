// bake against transformers: every fixture model x every recipe. Foldable recipes are baked to a
// temp folder, the baked checkpoint runs through the engine with no hooks, and its logits must
// match `hooked.<recipe>.logits` (transformers + PyTorch hooks on the original) to 1e-4 in f32.
// Unfoldable recipes must be refused with a reason, leaving no output folder.

import Foundation
import XCTest
@testable import Editor

final class BakeFixtureTests: XCTestCase {
    /// Recipes every model refuses, and what the message must say.
    static let refusedEverywhere: [String: String] = [
        "ablate_resid_pre": "holds the sum of all earlier writers",
        "ablate_residual_half": "only at strength 1",
        "add_last": "positions \"last\"",
        "add_list": "positions [0, 2]",
    ]
    /// Per-architecture refusals (no MLP bias slot; post-norm blocks).
    static func refused(_ model: String, _ recipe: String) -> String? {
        if let r = refusedEverywhere[recipe] { return r }
        switch model {
        case "qwen3", "gemma":
            if ["add_mlp_out", "add_resid_post", "multi"].contains(recipe) { return "no MLP bias slot" }
        case "gemma2", "gemma3":
            if !["add_embed", "add_resid_pre0"].contains(recipe) { return "post-norm block" }
        default: break
        }
        return nil
    }

    func testEveryFixtureRecipe() throws {
        var baked = 0, refusals = 0
        var worst: Float = 0
        for m in EditorFixtures.models {
            let tokens = try EditorFixtures.tokens(m)
            let sixteenBit = m.hasSuffix("bf16") || m.hasSuffix("f16")
            for r in EditorFixtures.recipes(m) {
                let out = EditorFixtures.tempDir("bake") + "/out"
                defer { try? FileManager.default.removeItem(atPath: (out as NSString).deletingLastPathComponent) }
                // 16-bit sources: bake to f32 for the exact comparison (the kept-dtype case is in testSixteenBitKeepsDType).
                let options = BakeOptions(dtype: sixteenBit ? .f32 : .keep)
                if let why = Self.refused(m, r) {
                    XCTAssertThrowsError(try Baker.bake(model: EditorFixtures.model(m), recipePath: EditorFixtures.recipe(m, r), out: out, options: options), "\(m)/\(r) should be refused") { e in
                        guard case EditError.refused = e else { return XCTFail("\(m)/\(r): expected a refusal, got \(e)") }
                        XCTAssertTrue("\(e)".contains(why), "\(m)/\(r): message should say '\(why)': \(e)")
                        XCTAssertTrue("\(e)".contains("interventions["), "\(m)/\(r): message should name the entry: \(e)")
                    }
                    XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(m)/\(r): refused bake left an output folder")
                    refusals += 1
                    continue
                }
                try Baker.bake(model: EditorFixtures.model(m), recipePath: EditorFixtures.recipe(m, r), out: out, options: options)
                let got = try LanguageModel.load(path: out).logits(tokens: tokens).logits
                let want = try EditorFixtures.reference(m, "hooked.\(r).logits")
                worst = max(worst, maxDiff("\(m)/\(r) baked vs hooked transformers", got, want, atol: 1e-4))
                baked += 1
            }
        }
        print("bake fixtures: \(baked) baked and matched (worst max |diff| \(worst)), \(refusals) refused as expected")
        XCTAssertGreaterThan(baked, 60)
    }

    /// A 16-bit checkpoint stays 16-bit, differs from the hooked reference by no more than the
    /// measured rounding floor allows, and `verify` says it is equivalent.
    func testSixteenBitKeepsDType() throws {
        for (m, dtype) in [("llama-bf16", DType.BF16), ("gpt2-f16", DType.F16)] {
            let dir = EditorFixtures.tempDir("16bit")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let out = dir + "/out"
            try Baker.bake(model: EditorFixtures.model(m), recipePath: EditorFixtures.recipe(m, "multi"), out: out, options: BakeOptions())
            let c = try Checkpoint(directory: out)
            XCTAssertEqual(Verifier.dominantFloatDType(c), dtype)
            let tokens = try EditorFixtures.tokens(m)
            let recipe = try Recipe.load(path: out + "/steering_recipe.json")
            let report = try Verifier.verify(original: EditorFixtures.model(m), edited: out, recipe: recipe, prompts: [tokens])
            let floor = try XCTUnwrap(report.roundingFloor)
            XCTAssertGreaterThan(floor, 0, "\(m): a 16-bit bake has a nonzero rounding floor")
            XCTAssertLessThanOrEqual(report.maxAbsDiff, 2 * floor + 1e-4 * max(1, report.maxAbsLogit), "\(m)")
            XCTAssertTrue(report.passed, "\(m): verify should pass: diff \(report.maxAbsDiff), floor \(floor)")
            print("\(m): 16-bit bake max |diff| \(report.maxAbsDiff), rounding floor \(floor), tolerance \(report.tolerance)")
        }
    }

    func testVerifyPassesOnBakeAndFailsOnOtherRecipe() throws {
        let dir = EditorFixtures.tempDir("verify")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = "gpt2"
        let out = dir + "/multi"
        try Baker.bake(model: EditorFixtures.model(m), recipePath: EditorFixtures.recipe(m, "multi"), out: out, options: BakeOptions())
        let tokens = try EditorFixtures.tokens(m)
        let own = try Verifier.verify(original: EditorFixtures.model(m), edited: out,
                                      recipe: try Recipe.load(path: out + "/steering_recipe.json"), prompts: [tokens, Array(tokens.prefix(5))])
        XCTAssertTrue(own.passed)
        XCTAssertEqual(own.mode, .equivalence)
        XCTAssertEqual(own.top1Agreement, 1)
        XCTAssertEqual(own.greedyAgreement, 1)
        XCTAssertLessThan(own.maxKL, 1e-8)
        XCTAssertEqual(own.roundingFloor, 0)
        let other = try Verifier.verify(original: EditorFixtures.model(m), edited: out,
                                        recipe: try Recipe.load(path: EditorFixtures.recipe(m, "add_embed")), prompts: [tokens])
        XCTAssertFalse(other.passed)
        XCTAssertGreaterThan(other.maxAbsDiff, 0.1)
        XCTAssertGreaterThan(other.meanKL, 1e-3)
    }

    /// Output folder contents (DESIGN.md section 6).
    func testOutputFolder() throws {
        let dir = EditorFixtures.tempDir("folder")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = "llama"
        let src = EditorFixtures.model(m)
        let out = dir + "/out"
        let report = try Baker.bake(model: src, recipePath: EditorFixtures.recipe(m, "add_attn_out"), out: out, options: BakeOptions())
        let fm = FileManager.default
        for f in ["config.json", "model.safetensors", "steering_recipe.json", "steering_vectors.safetensors", "README.md"] {
            XCTAssertTrue(fm.fileExists(atPath: out + "/" + f), f)
        }
        XCTAssertFalse(fm.fileExists(atPath: out + "/reference.safetensors"), "only tokenizer/generation files are copied")
        // Untouched tensors are byte for byte the source's.
        let a = try Checkpoint(directory: src), b = try Checkpoint(directory: out)
        for n in a.tensorNames where n != "model.layers.0.self_attn.o_proj.weight" {
            XCTAssertEqual(Array(try a.bytes(n)), Array(try b.bytes(n)), n)
        }
        // Bias slots: attention_bias switches on q,k,v,o for every layer; zeros except o_proj.0.
        let config = try JSONValue.parse(data: [UInt8](fm.contents(atPath: out + "/config.json")!))
        XCTAssertEqual(config["attention_bias"]?.boolValue, true)
        for l in 0..<2 {
            for p in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                let name = "model.layers.\(l).self_attn.\(p).bias"
                let v = try b.floats(name)
                if l == 0 && p == "o_proj" { XCTAssertTrue(v.contains { $0 != 0 }, name) } else { XCTAssertTrue(v.allSatisfy { $0 == 0 }, name) }
            }
        }
        XCTAssertEqual(report.added.count, 8)
        // Metadata: format pt, source checksum, recipe checksum.
        let meta = b.shards[0].metadata
        XCTAssertEqual(meta["format"], "pt")
        let sums = try JSONValue.parse(meta[Baker.sourceKey] ?? "")
        XCTAssertEqual(sums.arrayValue?.first?["sha256"]?.stringValue, try SHA256.hashFile(src + "/model.safetensors"))
        let recipeBytes = [UInt8](fm.contents(atPath: out + "/steering_recipe.json")!)
        XCTAssertEqual(meta[Baker.recipeSHAKey], SHA256.hash(recipeBytes))
        let readme = String(decoding: fm.contents(atPath: out + "/README.md")!, as: UTF8.self)
        XCTAssertTrue(readme.contains("add 3.0 x vector at attn_out.0"))
        // Existing target: refused without force, replaced with force.
        XCTAssertThrowsError(try Baker.bake(model: src, recipePath: EditorFixtures.recipe(m, "add_embed"), out: out, options: BakeOptions()))
        try Baker.bake(model: src, recipePath: EditorFixtures.recipe(m, "add_embed"), out: out, options: BakeOptions(force: true))
        let tied = try JSONValue.parse(data: [UInt8](fm.contents(atPath: out + "/config.json")!))
        XCTAssertEqual(tied["tie_word_embeddings"]?.boolValue, false)
        let c = try Checkpoint(directory: out)   // keep the mapping alive while reading its bytes
        XCTAssertEqual(Array(try c.bytes("lm_head.weight")), Array(try a.bytes("model.embed_tokens.weight")))
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir), ["out"], "no temporary folder left behind")
    }

    /// Sharded output (index + several files) loads and matches; Qwen2 re-expressed as Llama.
    func testShardedAndReexpressed() throws {
        let dir = EditorFixtures.tempDir("shard")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = "qwen2"
        let out = dir + "/out"
        let report = try Baker.bake(model: EditorFixtures.model(m), recipePath: EditorFixtures.recipe(m, "multi"), out: out,
                                    options: BakeOptions(maxShardSize: 40_000))
        XCTAssertGreaterThan(report.shards, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors.index.json"))
        let config = try JSONValue.parse(data: [UInt8](FileManager.default.contents(atPath: out + "/config.json")!))
        XCTAssertEqual(config["model_type"]?.stringValue, "llama")
        XCTAssertEqual(config["architectures"]?.arrayValue?.first?.stringValue, "LlamaForCausalLM")
        XCTAssertEqual(config["attention_bias"]?.boolValue, true)
        XCTAssertNil(config["use_sliding_window"])
        let got = try LanguageModel.load(path: out).logits(tokens: try EditorFixtures.tokens(m)).logits
        maxDiff("qwen2 multi sharded", got, try EditorFixtures.reference(m, "hooked.multi.logits"), atol: 1e-4)
    }

    func testRefusalMessages() throws {
        let dir = EditorFixtures.tempDir("refuse")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func refusal(_ m: String, _ r: String, approximate: Bool = false) -> String {
            do {
                try Baker.bake(model: EditorFixtures.model(m), recipePath: EditorFixtures.recipe(m, r), out: dir + "/x", options: BakeOptions(approximate: approximate))
                return "baked"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(refusal("qwen3", "add_resid_post").contains("nearest foldable point: attn_out.1"))
        XCTAssertTrue(refusal("gemma", "add_mlp_out").contains("no MLP bias slot"))
        XCTAssertTrue(refusal("llama", "ablate_resid_pre").contains("ablate at point \"residual\""))
        XCTAssertTrue(refusal("llama", "ablate_residual_half").contains("attn_out"))
        XCTAssertTrue(refusal("gemma2", "ablate_residual").contains("--approximate"))
        XCTAssertTrue(refusal("gemma2", "add_attn_out").contains("post-norm"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x"))
    }

    /// --approximate on a post-norm model bakes, and verify reports (and fails on) the deviation.
    func testApproximatePostNorm() throws {
        let dir = EditorFixtures.tempDir("approx")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = "gemma2"
        let out = dir + "/out"
        let report = try Baker.bake(model: EditorFixtures.model(m), recipePath: EditorFixtures.recipe(m, "ablate_residual"), out: out,
                                    options: BakeOptions(approximate: true))
        XCTAssertFalse(report.approximations.isEmpty)
        let v = try Verifier.verify(original: EditorFixtures.model(m), edited: out, recipe: try Recipe.load(path: out + "/steering_recipe.json"),
                                    prompts: [try EditorFixtures.tokens(m)])
        XCTAssertTrue(v.approximate)
        XCTAssertGreaterThan(v.maxAbsDiff, 0)
        print("gemma2 approximate residual ablation: max |diff| \(v.maxAbsDiff), mean KL \(v.meanKL), top-1 \(v.top1Agreement), passed \(v.passed)")
    }

    /// Recipes that only fail in combination, and config-dependent refusals.
    func testCombinationRefusals() throws {
        let dir = EditorFixtures.tempDir("combo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func vec(_ k: Int) -> String { "[" + (0..<64).map { $0 == k ? "1" : ($0 == k + 1 ? "0.5" : "0") }.joined(separator: ",") + "]" }
        func bake(_ model: String, _ json: String, approximate: Bool = false) -> String {
            let path = dir + "/r.json"
            try? json.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                try Baker.bake(model: model, recipePath: path, out: dir + "/out", options: BakeOptions(force: true, approximate: approximate))
                return "baked"
            } catch { return "\(error)" }
        }
        let llama = EditorFixtures.model("llama")
        // Residual ablations along non-orthogonal directions (e3 + 0.5 e4 vs e4 + 0.5 e5).
        XCTAssertTrue(bake(llama, """
            {"interventions": [{"op": "ablate", "point": "residual", "direction": \(vec(3))},
                               {"op": "ablate", "point": "residual", "direction": \(vec(4))}]}
            """).contains("non-orthogonal"))
        // An add after the residual ablation with a component along it; the same add first folds.
        XCTAssertTrue(bake(llama, """
            {"interventions": [{"op": "ablate", "point": "residual", "direction": \(vec(3))},
                               {"op": "add", "point": "resid_post", "layer": 0, "vector": \(vec(4))}]}
            """).contains("put the residual ablation last"))
        XCTAssertEqual(bake(llama, """
            {"interventions": [{"op": "add", "point": "resid_post", "layer": 0, "vector": \(vec(4))},
                               {"op": "ablate", "point": "residual", "direction": \(vec(3))}]}
            """), "baked")
        // Mistral with an active sliding window cannot become Llama for a bias slot, unless --approximate.
        let mistral = dir + "/mistral"
        try FileManager.default.createDirectory(atPath: mistral, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: EditorFixtures.model("mistral") + "/model.safetensors", toPath: mistral + "/model.safetensors")
        let cfg = String(decoding: FileManager.default.contents(atPath: EditorFixtures.model("mistral") + "/config.json")!, as: UTF8.self)
            .replacingOccurrences(of: "\"sliding_window\": null", with: "\"sliding_window\": 8")
        try cfg.write(toFile: mistral + "/config.json", atomically: true, encoding: .utf8)
        let add = """
            {"interventions": [{"op": "add", "point": "attn_out", "layer": 0, "vector": \(vec(3))}]}
            """
        XCTAssertTrue(bake(mistral, add).contains("sliding_window 8"))
        XCTAssertEqual(bake(mistral, add, approximate: true), "baked")
        // The source is never the output.
        XCTAssertThrowsError(try Baker.bake(model: llama, recipePath: EditorFixtures.recipe("llama", "add_embed"), out: llama, options: BakeOptions(force: true)))
    }
}
