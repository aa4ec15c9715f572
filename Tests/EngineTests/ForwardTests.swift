// The engine against transformers: for every tiny fixture model (fixtures/models/*, made by
// fixtures/gen/make_models.py), plain logits and residual states, hooked logits of every recipe,
// and greedy tokens with the KV cache must match the stored reference.

import Foundation
import XCTest
@testable import Engine
import SafeTensors

final class ForwardTests: XCTestCase {
    static let atol: Float = 1e-4

    private func load(_ name: String) throws -> (LanguageModel, Reference) {
        let dir = Fixtures.path(name)
        return (try LanguageModel.load(path: dir), try Reference(dir + "/reference.safetensors"))
    }

    /// Plain logits at every position, and resid_pre.0 / resid_mid.L / resid_post.L captured in the same pass.
    private func checkPlain(_ name: String) throws {
        let (m, ref) = try load(name)
        let tokens = try ref.ints("tokens")
        var points: Set<HookPoint> = [.residPre(0)]
        for l in 0..<m.config.numLayers { points.insert(.residMid(l)); points.insert(.residPost(l)) }
        let (logits, captured) = try m.logits(tokens: tokens, capture: points)
        checkTensor("\(name) logits", logits, try ref.floats("logits"), atol: Self.atol)
        for p in points.sorted() {
            guard let got = captured[p] else { XCTFail("\(name): \(p) not captured"); continue }
            checkTensor("\(name) \(p)", got, try ref.floats(p.description), atol: Self.atol)
        }
    }

    /// states() captures the same tensors as logits(capture:) without computing logits.
    func testStatesMatchLogitsCapture() throws {
        let (m, ref) = try load("gemma2")
        let tokens = try ref.ints("tokens")
        let points: Set<HookPoint> = [.embed, .attnOut(0), .residMid(1), .mlpOut(1), .residPost(1)]
        let a = try m.states(tokens: tokens, capture: points)
        let b = try m.logits(tokens: tokens, capture: points).captured
        XCTAssertEqual(Set(a.keys), points)
        for p in points { XCTAssertEqual(a[p], b[p], "\(p)") }
        checkTensor("gemma2 embed == resid_pre.0", a[.embed] ?? [], try ref.floats("resid_pre.0"), atol: Self.atol)
    }

    /// resid_post.L and resid_pre.(L+1) (and embed and resid_pre.0) are one state: their interventions
    /// form one list in recipe order, and captures under either name are the same tensor.
    func testAliasedPointsShareOneOrderedList() throws {
        let (m, ref) = try load("llama")
        let tokens = try ref.ints("tokens")
        let H = m.config.hiddenSize
        var r = [Float](repeating: 0, count: H); r[3] = 1
        func run(_ ivs: [ResolvedIntervention]) throws -> [HookPoint: [Float]] {
            try m.states(tokens: tokens, interventions: ivs, capture: [.residPost(0), .residPre(1), .embed, .residPre(0)])
        }
        let add = ResolvedIntervention(op: .add(scale: 3), point: .residPre(1), vector: r, positions: .all, entry: 0)
        let ablate = ResolvedIntervention(op: .ablate(strength: 1), point: .residPost(0), vector: r, positions: .all, entry: 1)
        let a = try run([add, ablate])     // add, then remove: nothing along r survives
        let b = try run([ablate, add])     // remove, then add: exactly 3 along r
        for t in 0..<tokens.count {
            XCTAssertEqual(a[.residPost(0)]![t * H + 3], 0, accuracy: 1e-6)
            XCTAssertEqual(b[.residPost(0)]![t * H + 3], 3, accuracy: 1e-6)
        }
        XCTAssertEqual(a[.residPost(0)], a[.residPre(1)])
        XCTAssertEqual(a[.embed], a[.residPre(0)])
    }

    /// Every recipe in recipes/ applied by hooks vs transformers with the same hooks.
    private func checkRecipes(_ name: String) throws {
        let (m, ref) = try load(name)
        let tokens = try ref.ints("tokens")
        let dir = Fixtures.path(name) + "/recipes"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertFalse(files.isEmpty, "\(name): no recipes")
        for f in files {
            let rname = String(f.dropLast(5))
            let recipe = try Recipe.load(path: dir + "/" + f)
            let ivs = try recipe.resolve(hiddenSize: m.config.hiddenSize, numLayers: m.config.numLayers)
            let (logits, _) = try m.logits(tokens: tokens, interventions: ivs)
            checkTensor("\(name) hooked \(rname)", logits, try ref.floats("hooked.\(rname).logits"), atol: Self.atol)
        }
    }

    /// Greedy decoding with the KV cache, plain and with add_resid_post hooked.
    private func checkGreedy(_ name: String) throws {
        let (m, ref) = try load(name)
        let tokens = try ref.ints("tokens")
        let want = try ref.ints("greedy.tokens")
        let got = try m.generate(prompt: tokens, maxTokens: want.count, sampling: .greedy, stopTokens: [], onToken: { _ in true })
        XCTAssertEqual(got, want, "\(name) greedy tokens")
        let recipe = try Recipe.load(path: Fixtures.path(name) + "/recipes/add_resid_post.json")
        let ivs = try recipe.resolve(hiddenSize: m.config.hiddenSize, numLayers: m.config.numLayers)
        let want2 = try ref.ints("greedy.add_resid_post.tokens")
        let got2 = try m.generate(prompt: tokens, interventions: ivs, maxTokens: want2.count, sampling: .greedy,
                                  stopTokens: [], onToken: { _ in true })
        XCTAssertEqual(got2, want2, "\(name) greedy tokens with add_resid_post")
    }

    private func checkAll(_ name: String) throws {
        try checkPlain(name)
        try checkRecipes(name)
        try checkGreedy(name)
    }

    func testLlama() throws { try checkAll("llama") }
    func testLlama3RopeWithBiases() throws { try checkAll("llama3") }
    func testLlamaLinearRope() throws { try checkAll("llama-linear") }
    func testLlamaDynamicRope() throws { try checkAll("llama-dynamic") }
    func testLlamaBF16Checkpoint() throws { try checkAll("llama-bf16") }
    func testMistralUntied() throws { try checkAll("mistral") }
    func testQwen2() throws { try checkAll("qwen2") }
    func testQwen3() throws { try checkAll("qwen3") }
    func testGemma() throws { try checkAll("gemma") }
    func testGemma2() throws { try checkAll("gemma2") }
    func testGemma3() throws { try checkAll("gemma3") }
    func testGPT2() throws { try checkAll("gpt2") }
    func testGPT2F16Checkpoint() throws { try checkAll("gpt2-f16") }

    /// Generation stops after a stop token and includes it; onToken returning false stops too.
    func testStopTokensAndCallback() throws {
        let (m, ref) = try load("llama")
        let tokens = try ref.ints("tokens")
        let want = try ref.ints("greedy.tokens")
        let stop = want[2]
        let firstStop = want.firstIndex(of: stop)! // programmer error: stop is taken from want
        let got = try m.generate(prompt: tokens, maxTokens: want.count, sampling: .greedy, stopTokens: [stop], onToken: { _ in true })
        XCTAssertEqual(got, Array(want[...firstStop]))
        var seen: [Int] = []
        let got2 = try m.generate(prompt: tokens, maxTokens: want.count, sampling: .greedy, stopTokens: [],
                                  onToken: { seen.append($0); return seen.count < 3 })
        XCTAssertEqual(got2, Array(want[..<3]))
        XCTAssertEqual(seen, Array(want[..<3]))
    }

    /// The same seed gives the same sample; temperature sampling stays in the vocabulary.
    func testSeededSamplingIsReproducible() throws {
        let (m, ref) = try load("llama")
        let tokens = try ref.ints("tokens")
        let s = Sampling(temperature: 1.0, topP: 0.9, seed: 42)
        let a = try m.generate(prompt: tokens, maxTokens: 16, sampling: s, stopTokens: [], onToken: { _ in true })
        let b = try m.generate(prompt: tokens, maxTokens: 16, sampling: s, stopTokens: [], onToken: { _ in true })
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.count, 16)
        XCTAssertTrue(a.allSatisfy { $0 >= 0 && $0 < m.config.vocabSize })
        let c = try m.generate(prompt: tokens, maxTokens: 16, sampling: Sampling(temperature: 1.0, topP: 0.9, seed: 43),
                               stopTokens: [], onToken: { _ in true })
        XCTAssertNotEqual(a, c, "different seeds gave identical 16-token samples")
    }

    /// A nucleus so small it holds only the most probable token is greedy decoding.
    func testTinyTopPIsGreedy() throws {
        let (m, ref) = try load("qwen3")
        let tokens = try ref.ints("tokens")
        let want = try ref.ints("greedy.tokens")
        let got = try m.generate(prompt: tokens, maxTokens: want.count, sampling: Sampling(temperature: 0.7, topP: 1e-6, seed: 9),
                                 stopTokens: [], onToken: { _ in true })
        XCTAssertEqual(got, want)
    }

    /// Logits of a prefix computed through the KV cache equal a fresh full forward (cache consistency).
    func testIncrementalMatchesFullForward() throws {
        let (m, ref) = try load("gemma3")
        let tokens = try ref.ints("tokens")
        let full = try m.logits(tokens: tokens).logits
        let V = m.config.vocabSize
        // generate() feeds back its own tokens, so compare its first pick with the full forward's argmax.
        let next = try m.generate(prompt: Array(tokens.prefix(5)), maxTokens: 1, sampling: .greedy, stopTokens: [], onToken: { _ in true })
        let row = Array(try m.logits(tokens: Array(tokens.prefix(5))).logits[(4 * V)..<(5 * V)])
        checkTensor("prefix logits", row, Array(full[(4 * V)..<(5 * V)]), atol: Self.atol)
        XCTAssertEqual(next[0], row.indices.max(by: { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }))
    }
}
