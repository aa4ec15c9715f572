// The code examples of docs/library.md, verbatim between the "docs example" markers, run on the
// tiny llama fixture: the documented usage compiles and does what the page says.

import Foundation
import XCTest
import Editor

// docs example: bake (begin)
/// Bakes `recipePath` into a copy of `model` at `out`, then checks the copy against the original
/// model with the recipe's hooks on the same prompts.
func bakeAndVerify(model: String, recipePath: String, out: String, prompts: [[Int]]) throws -> VerifyReport {
    let recipe = try Recipe.load(path: recipePath)
    let baked = try Baker.bake(model: model, recipe: recipe, out: out, options: BakeOptions())
    print("baked \(baked.edited.count) tensors, added \(baked.added.count), into \(baked.output)")
    let report = try Verifier.verify(original: model, edited: out, recipe: recipe, prompts: prompts)
    print("verify: \(report.passed ? "passed" : "FAILED"), max |diff| \(report.maxAbsDiff), tolerance \(report.tolerance)")
    return report
}
// docs example: bake (end)

// docs example: hooks (begin)
/// Logits ([tokens, vocab], row-major) of `model` with the recipe applied by hooks at run time,
/// and without it.
func steeredLogits(model path: String, recipePath: String, tokens: [Int]) throws -> (steered: [Float], plain: [Float]) {
    let model = try LanguageModel.load(path: path)
    let recipe = try Recipe.load(path: recipePath)
    let hooks = try recipe.resolve(hiddenSize: model.config.hiddenSize, numLayers: model.config.numLayers)
    let steered = try model.logits(tokens: tokens, interventions: hooks).logits
    let plain = try model.logits(tokens: tokens).logits
    return (steered, plain)
}
// docs example: hooks (end)

final class LibraryExampleTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/models/llama").path

    func tokens() throws -> [Int] {
        let f = try SafeTensorsFile(path: Self.fixtures + "/reference.safetensors")
        let raw = try f.bytes("tokens")
        let n = try XCTUnwrap(f.info("tokens")).elementCount
        return (0..<n).map { Int(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self).littleEndian) }
    }

    func testBakeExample() throws {
        let dir = NSTemporaryDirectory() + "library-example-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = try tokens()
        let report = try bakeAndVerify(model: Self.fixtures, recipePath: Self.fixtures + "/recipes/multi.json",
                                       out: dir + "/llama-steered", prompts: [t, Array(t.prefix(5))])
        XCTAssertTrue(report.passed)
        XCTAssertEqual(report.mode, .equivalence)
        XCTAssertEqual(report.prompts.count, 2)
        XCTAssertLessThan(report.maxAbsDiff, 1e-4)
        XCTAssertEqual(report.top1Agreement, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/llama-steered/" + Baker.recipeFile))
    }

    func testHooksExample() throws {
        let t = try tokens()
        let (steered, plain) = try steeredLogits(model: Self.fixtures, recipePath: Self.fixtures + "/recipes/multi.json", tokens: t)
        // Against transformers with the same recipe as forward hooks, and without hooks.
        let ref = try SafeTensorsFile(path: Self.fixtures + "/reference.safetensors")
        let wantSteered = try ref.floats("hooked.multi.logits"), wantPlain = try ref.floats("logits")
        XCTAssertEqual(steered.count, wantSteered.count)
        XCTAssertEqual(plain.count, wantPlain.count)
        XCTAssertLessThan(zip(steered, wantSteered).map { abs($0 - $1) }.max() ?? .infinity, 1e-4)
        XCTAssertLessThan(zip(plain, wantPlain).map { abs($0 - $1) }.max() ?? .infinity, 1e-4)
        XCTAssertGreaterThan(zip(steered, plain).map { abs($0 - $1) }.max() ?? 0, 1e-2, "the recipe changes the logits")
    }

    /// docs/library.md shows both example functions verbatim.
    func testDocsShowTheseExamples() throws {
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        let doc = try String(contentsOfFile: URL(fileURLWithPath: Self.fixtures).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs/library.md").path, encoding: .utf8)
        for name in ["bake", "hooks"] {
            let begin = "// docs example: \(name) (begin)\n", end = "// docs example: \(name) (end)\n"
            let a = try XCTUnwrap(source.range(of: begin), name), b = try XCTUnwrap(source.range(of: end), name)
            let code = String(source[a.upperBound..<b.lowerBound])
            XCTAssertGreaterThan(code.count, 200, name)
            XCTAssertTrue(doc.contains(code), "docs/library.md no longer shows the \(name) example of LibraryExampleTests.swift verbatim")
        }
    }
}
