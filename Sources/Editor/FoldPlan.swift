// From a recipe to per-writer affine maps, or a refusal saying why and what would fold.
//
// Ordering follows the hooked semantics (fixtures/gen/hooks.py): at each writer, the ops at the
// writer output (embed, attn_out.L, mlp_out.L) apply first, in recipe order; then the ops at the
// stream state that follows it (resid_pre.0; resid_mid.L; resid_post.L == resid_pre.(L+1)), in
// recipe order. `ablate` at `residual` acts at every stream state; at strength 1 it equals
// projecting every writer's output, because the stream before each writer is already free of r.

import Foundation

public enum WriterID: Hashable, Sendable, CustomStringConvertible {
    case embed
    case attn(Int)
    case mlp(Int)
    public var description: String {
        switch self {
        case .embed: return "embed"
        case .attn(let l): return "attn_out.\(l)"
        case .mlp(let l): return "mlp_out.\(l)"
        }
    }
}

public struct PlannedOp: Sendable {
    public var op: WriterOp
    public var entry: Int          // recipe entry index
    public var label: String       // "recipe.json: interventions[2] (add at resid_post.1)"
    public var stream: Bool        // true: acts at the stream state after the writer
}

public struct FoldPlan: Sendable {
    public var architecture: ModelArchitecture
    /// Affine maps per writer, in application order.
    public var ops: [WriterID: [WriterOp]] = [:]
    /// Writers whose output gets a constant (need a bias).
    public var constantWriters: Set<WriterID> = []
    /// Qwen2/Mistral re-expressed as LlamaForCausalLM to get bias slots.
    public var asLlama = false
    /// Bias flags to switch on ("attention_bias", "mlp_bias").
    public var biasFlags: Set<String> = []
    /// Whether any entry is a weight-space edit (verified by distance, not equality).
    public var weightSpace = false
    /// Approximations accepted with --approximate (post-norm projections, sliding window).
    public var approximations: [String] = []
    /// One line per recipe entry, for the model card.
    public var summary: [String] = []

    public var isEmpty: Bool { ops.values.allSatisfy { $0.isEmpty } }
}

public enum FoldPlanner {
    /// Plans the fold of `recipe` into a checkpoint with `architecture`. `tensors` reads norm weights
    /// for post-norm approximations. Throws `EditError.refused` naming the entry for anything that
    /// does not fold (exactly, or approximately when `approximate`).
    public static func plan(recipe: Recipe, architecture arch: ModelArchitecture, tensors: TensorSource,
                            approximate: Bool) throws -> FoldPlan {
        let n = arch.numLayers, h = arch.hiddenSize
        _ = try recipe.resolve(hiddenSize: h, numLayers: n)   // every entry validated before any work
        var plan = FoldPlan(architecture: arch)
        var writerStage: [WriterID: [PlannedOp]] = [:]
        var streamStage: [WriterID: [PlannedOp]] = [:]
        var residualDirections: [(r: [Double], label: String)] = []
        let recipeName = recipe.path ?? "recipe"

        for iv in recipe.interventions {
            let pointText: String = {
                guard let ls = iv.layers else { return iv.point.rawValue }
                return ls.count == 1 ? "\(iv.point.rawValue).\(ls[0])" : "\(iv.point.rawValue) layers \(ls)"
            }()
            let label = "\(recipeName): interventions[\(iv.index)] (\(iv.op.name) at \(pointText))"
            let v = try recipe.loadVector(iv, hiddenSize: h)
            if iv.positions != .all {
                throw EditError.refused(entry: label,
                    reason: "positions \(describe(iv.positions)) selects some tokens, while a weight acts on every token",
                    suggestion: "use positions \"all\" (the default) to bake it, or apply the recipe with hooks at run time (edit-cli generate/logits --recipe)")
            }
            func push(_ w: WriterID, _ op: WriterOp, stream: Bool) {
                let p = PlannedOp(op: op, entry: iv.index, label: label, stream: stream)
                if stream { streamStage[w, default: []].append(p) } else { writerStage[w, default: []].append(p) }
            }
            let layers = iv.layers ?? []
            switch iv.op {
            case .add(let scale):
                let c = v.map { $0 * Double(scale) }
                switch iv.point {
                case .embed: push(.embed, .add(c), stream: false)
                case .residPre:
                    for l in layers { push(l == 0 ? .embed : .mlp(l - 1), .add(c), stream: true) }
                case .attnOut: for l in layers { push(.attn(l), .add(c), stream: false) }
                case .residMid: for l in layers { push(.attn(l), .add(c), stream: true) }
                case .mlpOut: for l in layers { push(.mlp(l), .add(c), stream: false) }
                case .residPost: for l in layers { push(.mlp(l), .add(c), stream: true) }
                case .residual: throw EditError.badInput("\(label): add at residual") // rejected by the recipe parser
                }
                plan.summary.append("add \(scale) x vector at \(pointText)")
            case .ablate(let strength):
                let s = Double(strength)
                switch iv.point {
                case .residual:
                    guard s == 1 else {
                        throw EditError.refused(entry: label,
                            reason: "ablation at \"residual\" folds into every writer only at strength 1 (a projection is idempotent; strength \(s) applied at every stream state compounds)",
                            suggestion: "to weaken the edit, ablate at the writer points instead (\"embed\", and \"attn_out\"/\"mlp_out\" with \"layers\" 0-\(n - 1)) at strength \(s)")
                    }
                    for w in allWriters(n) { push(w, .project(r: v, strength: 1, preserveNorm: false), stream: true) }
                    residualDirections.append((v, label))
                case .embed: push(.embed, .project(r: v, strength: s, preserveNorm: false), stream: false)
                case .attnOut: for l in layers { push(.attn(l), .project(r: v, strength: s, preserveNorm: false), stream: false) }
                case .mlpOut: for l in layers { push(.mlp(l), .project(r: v, strength: s, preserveNorm: false), stream: false) }
                case .residPre, .residMid, .residPost:
                    if iv.point == .residPre && layers == [0] {
                        push(.embed, .project(r: v, strength: s, preserveNorm: false), stream: true)
                    } else {
                        throw streamPointRefusal(label: label, op: "ablate", point: iv.point, layers: layers, numLayers: n)
                    }
                }
                plan.summary.append("ablate direction at \(pointText)\(s == 1 ? "" : " (strength \(strength))")")
            case .clamp(let value):
                var targets: [(WriterID, Bool)] = []
                switch iv.point {
                case .embed: targets = [(.embed, false)]
                case .attnOut: targets = layers.map { (.attn($0), false) }
                case .mlpOut: targets = layers.map { (.mlp($0), false) }
                case .residPre where layers == [0]: targets = [(.embed, true)]
                case .residPre, .residMid, .residPost:
                    throw streamPointRefusal(label: label, op: "clamp", point: iv.point, layers: layers, numLayers: n)
                case .residual: throw EditError.badInput("\(label): clamp at residual") // rejected by the recipe parser
                }
                let c = v.map { $0 * Double(value) }
                for (w, st) in targets {
                    push(w, .project(r: v, strength: 1, preserveNorm: false), stream: st)
                    push(w, .add(c), stream: st)
                }
                plan.summary.append("clamp direction to \(value) at \(pointText)")
            case .ablateWeights(let wa):
                plan.weightSpace = true
                if wa.writers.contains("embed") {
                    let s = wa.strength(atLayer: 0)
                    if s != 0 { push(.embed, .project(r: v, strength: s, preserveNorm: wa.normPreserving), stream: false) }
                }
                for l in 0..<n {
                    let s = wa.strength(atLayer: l)
                    guard s != 0 else { continue }
                    if wa.writers.contains("attn_out") { push(.attn(l), .project(r: v, strength: s, preserveNorm: wa.normPreserving), stream: false) }
                    if wa.writers.contains("mlp_out") { push(.mlp(l), .project(r: v, strength: s, preserveNorm: wa.normPreserving), stream: false) }
                }
                plan.summary.append("weight-space ablation (\(wa.normPreserving ? "norm-preserving, " : "")writers \(wa.writers.sorted().joined(separator: ", ")), \(describe(wa.strength)))")
            }
        }

        // Two residual ablations fold only if their directions are orthogonal (otherwise the
        // second reintroduces part of the first into the stream, and the hooked model removes it
        // again at every later state).
        for i in 0..<residualDirections.count {
            for j in (i + 1)..<residualDirections.count {
                let d = zip(residualDirections[i].r, residualDirections[j].r).reduce(0) { $0 + $1.0 * $1.1 }
                if abs(d) > 1e-6 {
                    throw EditError.refused(entry: residualDirections[j].label,
                        reason: "it and \(residualDirections[i].label) ablate non-orthogonal directions (cosine \(String(format: "%.3g", d))) at every stream state, which no single edit per writer reproduces",
                        suggestion: "orthogonalise the second direction against the first, or ablate both at the writer points (embed, attn_out, mlp_out)")
                }
            }
        }

        for w in Set(writerStage.keys).union(streamStage.keys) {
            let planned = (writerStage[w] ?? []) + (streamStage[w] ?? [])
            try checkStreamOrder(streamStage[w] ?? [], residual: residualDirections.map(\.r))
            plan.ops[w] = planned.map(\.op)
            if planned.contains(where: { $0.op.isConstant }) { plan.constantWriters.insert(w) }
            if arch.family.postNorm, w != .embed {
                if let p = planned.first(where: { $0.op.isConstant }) {
                    throw EditError.refused(entry: p.label,
                        reason: "\(arch.modelType) normalises the \(w) term after its projection (post-norm block), so no constant on the projection's output adds a constant to the stream",
                        suggestion: "there is no foldable equivalent in this architecture; apply the recipe with hooks at run time (an add at \"embed\" does fold)")
                }
                if let p = planned.first {
                    guard approximate else {
                        throw EditError.refused(entry: p.label,
                            reason: "\(arch.modelType) normalises the \(w) term after its projection (post-norm block); removing the direction before the norm is only approximately the hooked edit (the norm rescales what is left)",
                            suggestion: "pass --approximate to project against g*r (g the post-norm scale) and let verify report the deviation")
                    }
                }
            }
        }
        if arch.family.postNorm && approximate {
            for (w, list) in plan.ops where !list.isEmpty {
                switch w {
                case .embed: break
                case .attn(let l): plan.ops[w] = try postNormOps(list, arch: arch, attention: true, layer: l, tensors: tensors)
                case .mlp(let l): plan.ops[w] = try postNormOps(list, arch: arch, attention: false, layer: l, tensors: tensors)
                }
            }
            plan.approximations.append("post-norm blocks: directions projected against g*r (g = 1 + post-norm weight), so the stream keeps no r component but the norm rescales the rest; verify reports the deviation")
        }

        // Bias slots for constants.
        let names = Set(tensors.tensorNames)
        for w in plan.constantWriters {
            let attention: Bool
            switch w {
            case .embed: continue
            case .attn: attention = true
            case .mlp: attention = false
            }
            var slot = arch.biasSlot(attention: attention, names: names, asLlama: plan.asLlama)
            if case .none = slot, arch.family.needsLlamaForBias {
                if let sw = arch.slidingWindowBlockingLlama {
                    guard approximate else {
                        let p = entryFor(w, writerStage, streamStage)
                        throw EditError.refused(entry: p, reason: "this needs a bias slot, which \(arch.modelType) gets only as LlamaForCausalLM, and the model uses \(sw)",
                                                suggestion: "pass --approximate to accept that, or ablate instead of add")
                    }
                    plan.approximations.append("re-expressed as LlamaForCausalLM although the source uses \(sw)")
                }
                plan.asLlama = true
                slot = arch.biasSlot(attention: attention, names: names, asLlama: true)
            }
            switch slot {
            case .present: break
            case .configFlag(let key, _): plan.biasFlags.insert(key)
            case .none(let reason):
                let p = entryFor(w, writerStage, streamStage)
                throw EditError.refused(entry: p, reason: "a constant at \(w) needs a bias on the \(attention ? "attention output" : "down") projection: \(reason)",
                                        suggestion: nearestFoldable(w, arch: arch, label: p))
            }
        }
        if plan.asLlama {
            // Qwen2's q/k/v biases become Llama's attention biases (with a zero o_proj bias).
            if arch.family == .qwen2 { plan.biasFlags.insert("attention_bias") }
        }
        return plan
    }

    /// A constant written to a stream state after a residual ablation keeps its r component only
    /// until the next state in the hooked model, but for ever in a folded one: refuse that.
    static func checkStreamOrder(_ ops: [PlannedOp], residual: [[Double]]) throws {
        var ablated: [(r: [Double], label: String)] = []
        for p in ops {
            switch p.op {
            case .add(let c):
                let norm = c.reduce(0) { $0 + $1 * $1 }.squareRoot()
                for a in ablated {
                    let d = zip(a.r, c).reduce(0) { $0 + $1.0 * $1.1 }
                    if abs(d) > 1e-6 * max(norm, 1e-30) {
                        throw EditError.refused(entry: p.label,
                            reason: "it comes after \(a.label) in the recipe, so its component along the ablated direction enters the stream and is removed again at the next stream state, which no weight edit reproduces",
                            suggestion: "put the residual ablation last in the recipe (then the added vector is projected too)")
                    }
                }
            case .project(let r, _, _):
                if residual.contains(r) { ablated.append((r, p.label)) }
            }
        }
    }

    static func allWriters(_ n: Int) -> [WriterID] {
        [.embed] + (0..<n).flatMap { [WriterID.attn($0), .mlp($0)] }
    }

    static func entryFor(_ w: WriterID, _ a: [WriterID: [PlannedOp]], _ b: [WriterID: [PlannedOp]]) -> String {
        ((a[w] ?? []) + (b[w] ?? [])).first(where: { $0.op.isConstant })?.label ?? "\(w)"
    }

    static func nearestFoldable(_ w: WriterID, arch: ModelArchitecture, label: String) -> String {
        switch w {
        case .mlp(let l):
            if label.contains("clamp") {
                return "nearest foldable option: ablate at mlp_out.\(l) (drops the value term)"
            }
            var s = "nearest foldable point: attn_out.\(l) (= resid_mid.\(l)), which the MLP of layer \(l) then also reads"
            if l + 1 < arch.numLayers { s += ", or attn_out.\(l + 1) (after the attention of layer \(l + 1) instead of before it)" }
            return s + "; verify then measures how far it is from the original recipe"
        case .attn(let l):
            return label.contains("clamp") ? "nearest foldable option: ablate at attn_out.\(l) (drops the value term)" : "apply the recipe with hooks at run time"
        case .embed: return "apply the recipe with hooks at run time"
        }
    }

    static func streamPointRefusal(label: String, op: String, point: PointKind, layers: [Int], numLayers n: Int) -> EditError {
        let l = layers.first ?? 0
        let upTo: String
        switch point {
        case .residPre: upTo = "embed and attn_out/mlp_out of layers 0-\(l - 1)"
        case .residMid: upTo = "embed, attn_out of layers 0-\(l) and mlp_out of layers 0-\(l - 1)"
        default: upTo = "embed and attn_out/mlp_out of layers 0-\(l)"
        }
        let suggestion = op == "ablate"
            ? "foldable equivalents: ablate at point \"residual\" (every writer, strength 1), or at the writers that fill this state (\(upTo)); verify measures the difference"
            : "foldable: clamp at a writer output (embed, attn_out.L, mlp_out.L)"
        return EditError.refused(entry: label,
            reason: "the stream at \(point.rawValue) holds the sum of all earlier writers, and \(op) at one stream state depends on that sum, which no single weight sees",
            suggestion: suggestion)
    }

    static func postNormOps(_ ops: [WriterOp], arch: ModelArchitecture, attention: Bool, layer: Int, tensors: TensorSource) throws -> [WriterOp] {
        guard let name = arch.postNormWeight(attention: attention, layer: layer) else { return ops }
        guard tensors.info(name)?.shape == [arch.hiddenSize] else {
            throw EditError.badInput("\(name): expected a [\(arch.hiddenSize)] post-norm weight")
        }
        let w = try tensors.floats(name)
        return ops.map { op in
            guard case let .project(r, s, keep) = op else { return op }
            var gr = (0..<r.count).map { (1 + Double(w[$0])) * r[$0] }
            let norm = gr.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 0 { gr = gr.map { $0 / norm } }
            return .project(r: gr, strength: s, preserveNorm: keep)
        }
    }

    static func describe(_ p: Positions) -> String {
        switch p {
        case .all: return "\"all\""
        case .prompt: return "\"prompt\""
        case .generated: return "\"generated\""
        case .last: return "\"last\""
        case .list(let l): return "\(l)"
        }
    }

    static func describe(_ s: WeightAblation.Strength) -> String {
        switch s {
        case .constant(let v): return "strength \(v)"
        case let .kernel(p, peak, edge, width): return "kernel peak \(peak) at layer \(p), edge \(edge), width \(width)"
        }
    }
}
