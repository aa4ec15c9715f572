// verify: the hooked original against the edited checkpoint, numerically.
//
// Per prompt (all positions): max |logit difference|, KL(hooked || edited) per position (mean and
// max), top-1 agreement, and the greedy continuation (N tokens, KV cache) of both: the length of
// their common prefix.
//
// Tolerance rule (default; --atol overrides): tol = 1e-4 * max(1, max|hooked logit|) + 2 * floor.
//   The first term is f32 arithmetic: the fold reorders sums, worth ~1e-6 on tiny models and
//   ~1e-5..1e-4 relative on deep ones. The floor is what storage precision alone costs:
//   max |logits(folded model in exact f32) - logits(the same rounded through the edited
//   checkpoint's dtype)|, both unhooked and computed in memory from ORIGINAL + recipe (never from
//   EDITED, so a wrong checkpoint cannot widen its own tolerance). For an f32 checkpoint the floor is 0.
// Weight-space recipes (ablate-weights) have no hooked twin: the report is a distance from the
// original (with the recipe's hookable entries applied by hooks), and passes unless --atol is given
// and exceeded.

import Foundation

public struct VerifyOptions: Sendable {
    public var atol: Double?
    public var greedyTokens = 16
    public var measureFloor = true
    public init(atol: Double? = nil, greedyTokens: Int = 16, measureFloor: Bool = true) {
        self.atol = atol; self.greedyTokens = greedyTokens; self.measureFloor = measureFloor
    }
}

public struct PromptComparison: Sendable {
    public var tokens: Int
    public var maxAbsDiff: Double
    public var meanKL: Double
    public var maxKL: Double
    public var top1Agreement: Double          // fraction of positions with the same argmax
    public var greedyCommonPrefix: Int        // tokens generated identically before the first difference
    public var greedyTokens: Int
}

public struct VerifyReport: Sendable {
    public enum Mode: String, Sendable { case equivalence, distance }
    public var mode: Mode
    public var editedDType: DType
    public var prompts: [PromptComparison] = []
    public var maxAbsLogit = 0.0
    public var roundingFloor: Double?         // nil when it could not be measured
    public var tolerance = 0.0
    public var approximate = false
    public var passed = false

    public var maxAbsDiff: Double { prompts.map(\.maxAbsDiff).max() ?? 0 }
    public var maxKL: Double { prompts.map(\.maxKL).max() ?? 0 }
    public var meanKL: Double {
        let n = prompts.reduce(0) { $0 + $1.tokens }
        return n == 0 ? 0 : prompts.reduce(0) { $0 + $1.meanKL * Double($1.tokens) } / Double(n)
    }
    public var top1Agreement: Double {
        let n = prompts.reduce(0) { $0 + $1.tokens }
        return n == 0 ? 0 : prompts.reduce(0) { $0 + $1.top1Agreement * Double($1.tokens) } / Double(n)
    }
    public var greedyAgreement: Double {
        let n = prompts.reduce(0) { $0 + $1.greedyTokens }
        return n == 0 ? 1 : Double(prompts.reduce(0) { $0 + $1.greedyCommonPrefix }) / Double(n)
    }

    public var json: JSONValue {
        .object([
            ("mode", .string(mode.rawValue)),
            ("passed", .bool(passed)),
            ("edited_dtype", .string(editedDType.rawValue)),
            ("max_abs_diff", .double(maxAbsDiff)),
            ("tolerance", .double(tolerance)),
            ("rounding_floor", roundingFloor.map { .double($0) } ?? .null),
            ("max_abs_logit", .double(maxAbsLogit)),
            ("mean_kl", .double(meanKL)),
            ("max_kl", .double(maxKL)),
            ("top1_agreement", .double(top1Agreement)),
            ("greedy_agreement", .double(greedyAgreement)),
            ("approximate", .bool(approximate)),
            ("prompts", .array(prompts.map { p in .object([
                ("tokens", .int(p.tokens)), ("max_abs_diff", .double(p.maxAbsDiff)), ("mean_kl", .double(p.meanKL)),
                ("max_kl", .double(p.maxKL)), ("top1_agreement", .double(p.top1Agreement)),
                ("greedy_common_prefix", .int(p.greedyCommonPrefix)), ("greedy_tokens", .int(p.greedyTokens)),
            ]) })),
        ])
    }
}

public enum Verifier {
    /// Compares ORIGINAL with `recipe` applied by hooks against EDITED (no hooks) on each token list.
    public static func verify(original: String, edited: String, recipe: Recipe, prompts: [[Int]],
                              options: VerifyOptions = VerifyOptions(), log: (String) -> Void = { _ in }) throws -> VerifyReport {
        guard !prompts.isEmpty else { throw EditError.badInput("no prompts") }
        let editedCheckpoint = try Checkpoint(directory: edited)
        let editedDType = dominantFloatDType(editedCheckpoint)
        let approximate = editedCheckpoint.shards.first?.metadata[Baker.approximateKey] == "true"
        let weightSpace = !recipe.weightSpaceEntries.isEmpty
        var report = VerifyReport(mode: weightSpace ? .distance : .equivalence, editedDType: editedDType)
        report.approximate = approximate

        log("loading \(original)")
        var want: [[Float]] = []
        var wantGreedy: [[Int]] = []
        let vocab: Int
        do {   // the hooked original, released before the edited model loads
            let hookedModel = try LanguageModel.load(path: original)
            vocab = hookedModel.config.vocabSize
            let interventions = try recipe.resolve(hiddenSize: hookedModel.config.hiddenSize, numLayers: hookedModel.config.numLayers)
            for p in prompts {
                want.append(try hookedModel.logits(tokens: p, interventions: interventions).logits)
                wantGreedy.append(try greedy(hookedModel, p, interventions, options.greedyTokens))
            }
        }
        log("loading \(edited)")
        do {
            let editedModel = try LanguageModel.load(path: edited)
            guard editedModel.config.vocabSize == vocab else {
                throw EditError.badInput("\(edited): vocab_size \(editedModel.config.vocabSize) differs from the original's \(vocab)")
            }
            for (k, p) in prompts.enumerated() {
                let got = try editedModel.logits(tokens: p).logits
                let g = try greedy(editedModel, p, [], options.greedyTokens)
                var c = compare(want[k], got, tokens: p.count, vocab: vocab)
                c.greedyTokens = wantGreedy[k].count
                c.greedyCommonPrefix = zip(wantGreedy[k], g).prefix { $0.0 == $0.1 }.count
                report.prompts.append(c)
                report.maxAbsLogit = max(report.maxAbsLogit, Double(want[k].lazy.map { abs($0) }.max() ?? 0))
            }
        }

        if options.measureFloor {
            report.roundingFloor = try? roundingFloor(original: original, recipe: recipe, dtype: editedDType,
                                                      approximate: approximate, prompts: prompts, log: log)
        }
        report.tolerance = options.atol ?? (1e-4 * max(1, report.maxAbsLogit) + 2 * (report.roundingFloor ?? 0))
        switch report.mode {
        case .equivalence: report.passed = report.maxAbsDiff <= report.tolerance
        case .distance: report.passed = options.atol.map { report.maxAbsDiff <= $0 } ?? true
        }
        return report
    }

    /// Storage-precision floor: the folded model in exact f32 vs the same rounded through `dtype`.
    public static func roundingFloor(original: String, recipe: Recipe, dtype: DType, approximate: Bool,
                                     prompts: [[Int]], log: (String) -> Void = { _ in }) throws -> Double {
        // An f32 checkpoint stores the folded values exactly (a 16-bit source's values are exact in f32).
        if dtype == .F32 { return 0 }
        log("measuring the \(dtype.rawValue) rounding floor")
        let exact = try FoldedModel(model: original, recipe: recipe, outputDType: nil, approximate: approximate)
        let config = try ModelConfig.resolve(json: exact.config, file: "config.json (folded)", directory: original)
        // One model in memory at a time: exact logits first, then the rounded model.
        let exactLogits: [[Float]] = try {
            let m = try LanguageModel(config: config, weights: exact)
            return try prompts.map { try m.logits(tokens: $0).logits }
        }()
        let rounded = try FoldedModel(model: original, recipe: recipe, outputDType: nil, approximate: approximate)
        rounded.roundThrough = dtype
        let roundedModel = try LanguageModel(config: config, weights: rounded)
        var floor = 0.0
        for (k, p) in prompts.enumerated() {
            let b = try roundedModel.logits(tokens: p).logits
            for i in b.indices { floor = max(floor, Double(abs(exactLogits[k][i] - b[i]))) }
        }
        return floor
    }

    static func greedy(_ m: LanguageModel, _ prompt: [Int], _ iv: [ResolvedIntervention], _ n: Int) throws -> [Int] {
        guard n > 0 else { return [] }
        let room = max(0, m.config.maxPositions - prompt.count)
        let count = min(n, room)
        guard count > 0 else { return [] }
        return try m.generate(prompt: prompt, interventions: iv, maxTokens: count, sampling: .greedy, stopTokens: [], onToken: { _ in true })
    }

    /// Differences of two [T, V] logit arrays.
    public static func compare(_ want: [Float], _ got: [Float], tokens t: Int, vocab v: Int) -> PromptComparison {
        var maxDiff = 0.0, sumKL = 0.0, maxKL = 0.0
        var agree = 0
        for pos in 0..<t {
            let a = want[(pos * v)..<((pos + 1) * v)], b = got[(pos * v)..<((pos + 1) * v)]
            var ma = -Double.infinity, mb = -Double.infinity
            var ia = 0, ib = 0
            for (j, (x, y)) in zip(a, b).enumerated() {
                maxDiff = max(maxDiff, Double(abs(x - y)))
                if Double(x) > ma { ma = Double(x); ia = j }
                if Double(y) > mb { mb = Double(y); ib = j }
            }
            if ia == ib { agree += 1 }
            var za = 0.0, zb = 0.0
            for (x, y) in zip(a, b) { za += exp(Double(x) - ma); zb += exp(Double(y) - mb) }
            let la = ma + log(za), lb = mb + log(zb)
            var kl = 0.0
            for (x, y) in zip(a, b) {
                let lp = Double(x) - la, lq = Double(y) - lb
                kl += exp(lp) * (lp - lq)
            }
            kl = max(0, kl)
            sumKL += kl; maxKL = max(maxKL, kl)
        }
        return PromptComparison(tokens: t, maxAbsDiff: maxDiff, meanKL: t > 0 ? sumKL / Double(t) : 0, maxKL: maxKL,
                                top1Agreement: t > 0 ? Double(agree) / Double(t) : 1, greedyCommonPrefix: 0, greedyTokens: 0)
    }

    /// The float dtype holding most of a checkpoint's bytes.
    public static func dominantFloatDType(_ c: Checkpoint) -> DType {
        var bytes: [DType: Int] = [:]
        for n in c.tensorNames { if let i = c.info(n), i.dtype.isFloatingPoint { bytes[i.dtype, default: 0] += i.byteCount } }
        return bytes.max { $0.value < $1.value }?.key ?? .F32
    }
}
