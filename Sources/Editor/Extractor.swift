// extract: contrastive steering vectors at resid_post.L for every requested layer, from one
// forward pass per prompt (all requested layers captured at once).
//
// Features: the state of the last prompt token ("last") or the mean over the prompt ("mean").
// mean-diff: v = mean(positive) - mean(negative).
// pca: repeng's pca_diff: the first principal component of the centred paired differences
//      (pos_i - neg_i), by power iteration; unit length, sign chosen so positives project higher.
// Per-layer report: Cohen's d of the projections onto v/|v| (pooled sd), leave-one-pair-out sign
// accuracy (direction refitted without the pair, threshold at the midpoint of the training means),
// and |v| relative to the mean norm of the features.

import Foundation

public struct ExtractOptions: Sendable {
    public enum Method: String, Sendable { case meanDiff = "mean-diff", pca }
    public enum Position: String, Sendable { case last, mean }
    public var layers: [Int]
    public var method: Method = .meanDiff
    public var position: Position = .last
    public init(layers: [Int], method: Method = .meanDiff, position: Position = .last) {
        self.layers = layers; self.method = method; self.position = position
    }
}

public struct LayerReport: Sendable {
    public var layer: Int
    public var effectSize: Double      // Cohen's d
    public var accuracy: Double        // leave-one-pair-out
    public var norm: Double            // |v|
    public var relativeNorm: Double    // |v| / mean feature norm
}

public struct ExtractResult: Sendable {
    public var vectors: [Int: [Float]]
    public var reports: [LayerReport]
    public var positiveCount: Int, negativeCount: Int
    public var options: ExtractOptions

    public var reportJSON: JSONValue {
        .object([
            ("method", .string(options.method.rawValue)), ("position", .string(options.position.rawValue)),
            ("positive_count", .int(positiveCount)), ("negative_count", .int(negativeCount)),
            ("layers", .array(reports.map { r in .object([
                ("layer", .int(r.layer)), ("point", .string("resid_post.\(r.layer)")), ("effect_size", .double(r.effectSize)),
                ("accuracy", .double(r.accuracy)), ("norm", .double(r.norm)), ("relative_norm", .double(r.relativeNorm)),
            ]) })),
        ])
    }
}

public enum Extractor {
    /// Features [prompt][layer] -> [hidden] (f64) from one forward per prompt.
    public static func features(model: LanguageModel, prompts: [[Int]], layers: [Int], position: ExtractOptions.Position,
                                label: String = "prompt", log: (String) -> Void = { _ in }) throws -> [[[Double]]] {
        let h = model.config.hiddenSize
        let points = Set(layers.map { HookPoint.residPost($0) })
        var out: [[[Double]]] = []
        for (k, p) in prompts.enumerated() {
            // States only: the unembedding ([T, vocab] logits) is skipped, so extraction costs no
            // more than the forward passes themselves (`edit-cli bench --positive/--negative`).
            let cap: [HookPoint: [Float]]
            do { cap = try model.states(tokens: p, capture: points) } catch let e as ModelError {
                throw EditError.badInput("\(label) \(k + 1): \(e)")
            }
            var row: [[Double]] = []
            for l in layers {
                guard let s = cap[.residPost(l)], s.count == p.count * h else {
                    throw EditError.badInput("the engine returned no resid_post.\(l) state") // programmer error, reported
                }
                switch position {
                case .last: row.append((0..<h).map { Double(s[(p.count - 1) * h + $0]) })
                case .mean:
                    var m = [Double](repeating: 0, count: h)
                    for t in 0..<p.count { for j in 0..<h { m[j] += Double(s[t * h + j]) } }
                    row.append(m.map { $0 / Double(p.count) })
                }
            }
            out.append(row)
            if (k + 1) % 10 == 0 { log("extract: \(k + 1)/\(prompts.count) prompts") }
        }
        return out
    }

    public static func extract(model: LanguageModel, positive: [[Int]], negative: [[Int]], options: ExtractOptions,
                               log: (String) -> Void = { _ in }) throws -> ExtractResult {
        guard !positive.isEmpty, !negative.isEmpty else { throw EditError.badInput("need at least one positive and one negative prompt") }
        if options.method == .pca && positive.count != negative.count {
            throw EditError.badInput("pca pairs positives with negatives line by line; found \(positive.count) positive and \(negative.count) negative prompts")
        }
        for l in options.layers where l < 0 || l >= model.config.numLayers {
            throw EditError.badInput("layer \(l) is out of range (the model has \(model.config.numLayers) layers: 0-\(model.config.numLayers - 1))")
        }
        let fp = try features(model: model, prompts: positive, layers: options.layers, position: options.position, label: "positive prompt", log: log)
        let fn = try features(model: model, prompts: negative, layers: options.layers, position: options.position, label: "negative prompt", log: log)
        var vectors: [Int: [Float]] = [:]
        var reports: [LayerReport] = []
        for (k, l) in options.layers.enumerated() {
            let p = fp.map { $0[k] }, n = fn.map { $0[k] }
            let v = direction(p, n, method: options.method)
            vectors[l] = v.map { Float($0) }
            reports.append(report(layer: l, v: v, pos: p, neg: n, method: options.method))
        }
        return ExtractResult(vectors: vectors, reports: reports, positiveCount: positive.count, negativeCount: negative.count, options: options)
    }

    public static func direction(_ pos: [[Double]], _ neg: [[Double]], method: ExtractOptions.Method) -> [Double] {
        switch method {
        case .meanDiff:
            return zip(mean(pos), mean(neg)).map { $0 - $1 }
        case .pca:
            let diffs = zip(pos, neg).map { zip($0, $1).map { $0 - $1 } }
            let mu = mean(diffs)
            let centred = diffs.map { zip($0, mu).map { $0 - $1 } }
            var v = firstComponent(centred, fallback: mu)
            // Sign: positives project higher than negatives on average.
            let gap = zip(mean(pos), mean(neg)).map { $0 - $1 }
            if dot(gap, v) < 0 { v = v.map { -$0 } }
            return v
        }
    }

    /// First principal component of the rows of x (already centred), by power iteration on X^T X.
    static func firstComponent(_ x: [[Double]], fallback: [Double]) -> [Double] {
        let h = fallback.count
        // Start from a fixed, generic vector so results are reproducible.
        var v = (0..<h).map { 1 + 0.01 * Double($0 % 7) }
        var nv = norm(v); v = v.map { $0 / nv }
        for _ in 0..<200 {
            var w = [Double](repeating: 0, count: h)
            for row in x {
                let c = dot(row, v)
                for j in 0..<h { w[j] += c * row[j] }
            }
            nv = norm(w)
            if nv < 1e-300 { let f = norm(fallback); return f > 0 ? fallback.map { $0 / f } : v }
            let next = w.map { $0 / nv }
            let change = zip(next, v).reduce(0) { $0 + abs($1.0 - $1.1) }
            v = next
            if change < 1e-12 { break }
        }
        return v
    }

    static func report(layer: Int, v: [Double], pos: [[Double]], neg: [[Double]], method: ExtractOptions.Method) -> LayerReport {
        let nv = norm(v)
        let u = nv > 0 ? v.map { $0 / nv } : v
        let pp = pos.map { dot($0, u) }, pn = neg.map { dot($0, u) }
        let d = cohensD(pp, pn)
        // Leave one pair (or one prompt of each side, by index) out.
        var correct = 0, total = 0
        let folds = max(pos.count, neg.count)
        for i in 0..<folds {
            let trP = pos.enumerated().filter { $0.offset != i }.map(\.element)
            let trN = neg.enumerated().filter { $0.offset != i }.map(\.element)
            guard !trP.isEmpty, !trN.isEmpty else { continue }
            let w = direction(trP, trN, method: method)
            let mid = (mean(trP.map { dot($0, w) }) + mean(trN.map { dot($0, w) })) / 2
            if i < pos.count { total += 1; if dot(pos[i], w) > mid { correct += 1 } }
            if i < neg.count { total += 1; if dot(neg[i], w) < mid { correct += 1 } }
        }
        let meanNorm = mean((pos + neg).map { norm($0) })
        return LayerReport(layer: layer, effectSize: d, accuracy: total > 0 ? Double(correct) / Double(total) : .nan,
                           norm: nv, relativeNorm: meanNorm > 0 ? nv / meanNorm : .nan)
    }

    static func cohensD(_ a: [Double], _ b: [Double]) -> Double {
        let ma = mean(a), mb = mean(b)
        let va = a.count > 1 ? a.reduce(0) { $0 + ($1 - ma) * ($1 - ma) } / Double(a.count - 1) : 0
        let vb = b.count > 1 ? b.reduce(0) { $0 + ($1 - mb) * ($1 - mb) } / Double(b.count - 1) : 0
        let dof = Double(a.count + b.count - 2)
        let pooled = dof > 0 ? ((Double(a.count - 1) * va + Double(b.count - 1) * vb) / dof).squareRoot() : 0
        return pooled > 0 ? (ma - mb) / pooled : (ma == mb ? 0 : .infinity)
    }

    static func mean(_ x: [Double]) -> Double { x.isEmpty ? 0 : x.reduce(0, +) / Double(x.count) }
    static func mean(_ rows: [[Double]]) -> [Double] {
        guard let first = rows.first else { return [] }
        var m = [Double](repeating: 0, count: first.count)
        for r in rows { for j in m.indices { m[j] += r[j] } }
        return m.map { $0 / Double(rows.count) }
    }
    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    static func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }

    /// The vectors file: tensors "resid_post.<L>" (F32 [hidden]) with metadata.
    public static func vectorsFile(_ r: ExtractResult, model: String, chat: Bool) throws -> [UInt8] {
        let tensors = r.options.layers.compactMap { l -> TensorRecord? in
            guard let v = r.vectors[l] else { return nil }
            return TensorRecord(name: "resid_post.\(l)", shape: [v.count], floats: v)
        }
        let meta: [String: String] = [
            "model": model, "method": r.options.method.rawValue, "position": r.options.position.rawValue,
            "point": "resid_post", "layers": r.options.layers.map(String.init).joined(separator: ","),
            "positive_count": "\(r.positiveCount)", "negative_count": "\(r.negativeCount)", "chat": chat ? "true" : "false",
            "unit_length": r.options.method == .pca ? "true" : "false",
        ]
        return try safeTensorsData(tensors: tensors, metadata: meta)
    }

    /// Line chart per layer: effect size (Cohen's d, blue, left axis) and leave-one-pair-out sign
    /// accuracy (orange, right axis 0..1), titled with the model's name (the last path component of
    /// `model`, without ".gguf"); the best layer (highest d, then highest accuracy) is marked.
    public static func plot(_ r: ExtractResult, model: String = "") throws -> [UInt8] {
        let d = r.reports.map(\.effectSize), acc = r.reports.map(\.accuracy)
        let finite = d.filter(\.isFinite)
        let nice = PNG.niceTicks(min(finite.min() ?? 0, 0), max(finite.max() ?? 1, 1e-9), count: 5)
        let digits = max(0, -Int(floor(log10(nice.step))))
        var best: Int?
        for (j, rep) in r.reports.enumerated() where rep.effectSize.isFinite {
            if let b = best {
                let o = r.reports[b]
                if rep.effectSize > o.effectSize || (rep.effectSize == o.effectSize && rep.accuracy > o.accuracy) { best = j }
            } else { best = j }
        }
        var name = (model as NSString).lastPathComponent
        if name.lowercased().hasSuffix(".gguf") { name = String(name.dropLast(5)) }
        let layers = r.reports.map(\.layer)
        let consecutive = zip(layers, layers.dropFirst()).allSatisfy { $1 == $0 + 1 }
        let chart = LineChart(
            title: "Steering vector separation per layer" + (name.isEmpty ? "" : ": \(name)"),
            xTitle: "layer", xLabels: layers.map(String.init),
            xLabelAt: { j, every in consecutive ? layers[j] % every == 0 : j % every == 0 },
            left: ChartAxis(label: "effect size (Cohen's d)", range: nice.range, ticks: nice.ticks,
                            format: { String(format: "%.\(digits)f", $0) }),
            right: ChartAxis(label: "sign accuracy", range: 0...1, ticks: [0, 0.5, 1],
                             format: { $0 == 0.5 ? "0.5" : String(format: "%.0f", $0) }),
            series: [
                ChartSeries(name: "effect size (Cohen's d)", values: d, color: (31, 119, 180), axis: .left),
                ChartSeries(name: "sign accuracy", values: acc, color: (255, 127, 14), axis: .right),
            ],
            marker: best.map { b in
                (b, String(format: "best: layer %d (d %.2f)", r.reports[b].layer, r.reports[b].effectSize))
            })
        return try PNG.encode(PNG.lineChart(chart))
    }
}
