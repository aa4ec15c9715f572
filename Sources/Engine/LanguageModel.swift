// The forward pass shared by every architecture (the architecture files only resolve configs and
// name weights), with hook points on the residual stream (DESIGN.md section 2) and interventions
// applied at inference (section 3).
//
// One forward call processes a chunk of tokens at absolute positions start..<start+T against the
// KV cache in a RunState; `logits` is one chunk from an empty cache, `generate` is a prompt chunk
// followed by one-token chunks.

import Foundation
import COpenBLAS

/// Token sampling for `generate`. temperature 0 is greedy (argmax, first index on ties).
public struct Sampling: Sendable, Equatable {
    public var temperature: Float     // 0: greedy
    public var topP: Float            // 1: no nucleus cut
    public var seed: UInt64

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topP = topP; self.seed = seed
    }
    public static let greedy = Sampling()
}

/// A loaded model. Weights are converted to f32 once; scratch buffers and the KV cache live in one
/// RunState reused across calls, so one model serves one call at a time (not thread-safe).
public final class LanguageModel {
    public let config: ModelConfig
    let weights: ModelWeights
    private var ropes: [RopeState]
    private var state: RunState?

    /// Loads a Hugging Face folder (config.json, model.safetensors or sharded with an index).
    public static func load(path: String) throws -> LanguageModel {
        let config = try ModelConfig.load(directory: path)
        let source = try Checkpoint(directory: path)
        do {
            return try LanguageModel(config: config, weights: source)
        } catch let e as ModelError {
            // Weight-table errors name the tensor; say which checkpoint it is in.
            throw ModelError("\(path): \(e)")
        }
    }

    public init(config: ModelConfig, weights source: TensorSource) throws {
        self.config = config
        let arch = Architectures.lookup(family: config.family)
        weights = try ModelWeights(config: config, table: arch.weightTable(config), source: source,
                                   rename: { arch.checkpointName($0, in: source) })
        Kernels.matvecThreads = max(1, LanguageModel.threads)
        ropes = config.ropes.map { RopeState(spec: $0, headDim: config.headDim, maxPositions: config.maxPositions) }
    }

    /// Threads used by BLAS and by attention (default: what OpenBLAS chose, usually the core count).
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set {
            openblas_set_num_threads(Int32(max(1, newValue)))
            Kernels.matvecThreads = max(1, newValue)
        }
    }

    // MARK: Public entry points

    /// Logits for every position ([T, V] row-major) of one sequence, treated entirely as prompt;
    /// `capture` returns the states at those hook points ([T, H] each, after interventions there).
    public func logits(tokens: [Int], interventions: [ResolvedIntervention] = [],
                       capture: Set<HookPoint> = []) throws -> (logits: [Float], captured: [HookPoint: [Float]]) {
        try check(tokens: tokens, what: "tokens")
        try checkPositions(tokens.count)
        let hooks = try HookTable(interventions, capture: capture, config: config)
        let st = runState(capacity: tokens.count, chunk: tokens.count)
        resetRopes()
        var out = [Float](repeating: 0, count: tokens.count * config.vocabSize)
        var captured: [HookPoint: [Float]] = [:]
        out.withUnsafeMutableBufferPointer { o in
            forward(tokens, start: 0, promptLength: tokens.count, state: st, hooks: hooks,
                    captured: &captured, logitRows: .all(o.baseAddress!)) // programmer error: count > 0 checked
        }
        return (out, captured)
    }

    /// The states at `capture` points ([T, H] each, after interventions there) without computing
    /// logits (the unembedding is skipped): what `extract` needs, one pass per prompt.
    public func states(tokens: [Int], interventions: [ResolvedIntervention] = [],
                       capture: Set<HookPoint>) throws -> [HookPoint: [Float]] {
        try check(tokens: tokens, what: "tokens")
        try checkPositions(tokens.count)
        let hooks = try HookTable(interventions, capture: capture, config: config)
        let st = runState(capacity: tokens.count, chunk: tokens.count)
        resetRopes()
        var captured: [HookPoint: [Float]] = [:]
        forward(tokens, start: 0, promptLength: tokens.count, state: st, hooks: hooks, captured: &captured, logitRows: .none)
        return captured
    }

    /// Generates up to `maxTokens` tokens after `prompt` with the KV cache. Stops after a token in
    /// `stopTokens` (which is included in the result) or when `onToken` returns false.
    public func generate(prompt: [Int], interventions: [ResolvedIntervention] = [], maxTokens: Int,
                         sampling: Sampling, stopTokens: Set<Int>, onToken: (Int) -> Bool) throws -> [Int] {
        try check(tokens: prompt, what: "prompt")
        guard maxTokens >= 0 else { throw ModelError("generate: maxTokens must be >= 0, found \(maxTokens)") }
        guard sampling.temperature >= 0, sampling.temperature.isFinite else {
            throw ModelError("generate: temperature must be >= 0, found \(sampling.temperature)")
        }
        guard sampling.topP > 0, sampling.topP <= 1 else {
            throw ModelError("generate: top-p must be in (0, 1], found \(sampling.topP)")
        }
        if maxTokens == 0 { return [] }
        let total = prompt.count + maxTokens
        try checkPositions(total - 1)
        let hooks = try HookTable(interventions, capture: [], config: config)
        let st = runState(capacity: total, chunk: prompt.count)
        resetRopes()
        var rng = Xoshiro256(seed: sampling.seed)
        var none: [HookPoint: [Float]] = [:]
        var out: [Int] = []
        forward(prompt, start: 0, promptLength: prompt.count, state: st, hooks: hooks, captured: &none, logitRows: .last)
        var pos = prompt.count
        while true {
            let next = Sampler.pick(st.logits.p, count: config.vocabSize, sampling: sampling, rng: &rng, scratch: st)
            out.append(next)
            if stopTokens.contains(next) || !onToken(next) || out.count >= maxTokens { break }
            forward([next], start: pos, promptLength: prompt.count, state: st, hooks: hooks, captured: &none, logitRows: .last)
            pos += 1
        }
        return out
    }

    // MARK: Internals

    private func check(tokens: [Int], what: String) throws {
        guard !tokens.isEmpty else { throw ModelError("\(what): no tokens") }
        if let (i, t) = tokens.enumerated().first(where: { $0.element < 0 || $0.element >= config.vocabSize }) {
            throw ModelError("\(what)[\(i)]: token id \(t) is out of range (vocab_size \(config.vocabSize))")
        }
    }

    /// Sequences longer than the model's context are refused before any work (a million-character
    /// prompt file line would otherwise take minutes and gigabytes): learned position tables end
    /// at their size; RoPE models at max_position_embeddings (transformers would run them, but
    /// past the trained context the output is extrapolation). Dynamic-NTK RoPE exists to run past
    /// max_position_embeddings, so those models are limited by memory only.
    private func checkPositions(_ n: Int) throws {
        if config.learnedPositions {
            if n > config.maxPositions {
                throw ModelError("sequence of \(n) tokens exceeds the \(config.maxPositions) learned positions of this \(config.modelType) model")
            }
            return
        }
        let dynamic = config.ropes.contains { if case .dynamic = $0.type { return true } else { return false } }
        if !dynamic, n > config.maxPositions {
            throw ModelError("sequence of \(n) tokens exceeds max_position_embeddings \(config.maxPositions) of this \(config.modelType) model")
        }
    }

    private func resetRopes() { for i in ropes.indices { ropes[i].reset() } }

    private func runState(capacity: Int, chunk: Int) -> RunState {
        if let s = state, s.capacity >= capacity, s.chunk >= chunk { return s }
        let s = RunState(config: config, capacity: max(capacity, state?.capacity ?? 0), chunk: max(chunk, state?.chunk ?? 0),
                         threads: max(1, LanguageModel.threads))
        state = s
        return s
    }

    enum LogitRows { case all(FPtr), last, none }

    /// Runs tokens at positions start..<start+T through the model, appending their keys and values
    /// to the cache. Rows of logits: all (into the given [T, V] buffer) or last (into state.logits).
    func forward(_ tokens: [Int], start: Int, promptLength: Int, state s: RunState, hooks: HookTable,
                 captured: inout [HookPoint: [Float]], logitRows: LogitRows) {
        let c = config, w = weights
        let T = tokens.count, H = c.hiddenSize, I = c.intermediateSize, hd = c.headDim
        let qd = c.qDim, kvd = c.kvDim, rows = c.qkvRows
        let guRows = c.gatedMLP ? 2 * I : I
        let x = s.x.p, xn = s.xn.p, qkv = s.qkv.p, att = s.att.p, proj = s.proj.p, gu = s.gu.p, act = s.act.p

        // `point` is canonical (see HookTable); its aliases are captured with the same state.
        func hook(_ point: HookPoint, _ buf: FPtr) {
            if let ivs = hooks.at[point] {
                for iv in ivs { iv.apply(toState: buf, tokens: T, hidden: H, start: start, promptLength: promptLength) }
            }
            guard !hooks.capture.isEmpty else { return }
            for p in HookTable.aliases(of: point, numLayers: c.numLayers) where hooks.capture.contains(p) {
                captured[p] = Array(UnsafeBufferPointer(start: buf, count: T * H))
            }
        }
        func norm(_ src: FPtr, _ g: FloatBuffer, _ b: FloatBuffer?, _ dst: FPtr, rows n: Int, width: Int) {
            if c.norm == .layerNorm {
                Kernels.layerNorm(src, g.p, b?.p, dst, rows: n, n: width, eps: c.normEps)
            } else {
                Kernels.rmsNorm(src, g.p, dst, rows: n, n: width, eps: c.normEps)
            }
        }

        // Embedding (Gemma: times sqrt(hidden); GPT-2: plus the position table).
        for (t, tok) in tokens.enumerated() {
            let row = x + t * H
            row.update(from: w.embed.p + tok * H, count: H)
            if let sc = c.embedScale { for i in 0..<H { row[i] *= sc } }
            if let wpe = w.positions { Kernels.add(row, wpe.p + (start + t) * H, H) }
        }
        hook(.residPre(0), x)     // also the embed point: one state

        // RoPE tables for this chunk, per distinct RoPE.
        for r in ropes.indices {
            ropes[r].update(seqLen: start + T)
            ropes[r].tables(start: start, count: T, cos: s.cos[r].p, sin: s.sin[r].p)
        }

        for l in 0..<c.numLayers {
            let lw = w.layers[l], spec = c.layers[l]
            // Attention branch.
            norm(x, lw.attnNorm, lw.attnNormBias, xn, rows: T, width: H)
            Kernels.linear(xn, rows: T, inDim: H, lw.wqkv.p, outDim: rows, bias: lw.bqkv?.p, into: qkv)
            let rope: (rot: Int, cos: FPtr, sin: FPtr)? = c.learnedPositions ? nil
                : (ropes[spec.rope].rot, s.cos[spec.rope].p, s.sin[spec.rope].p)
            let kc = s.kCache[l].p, vc = s.vCache[l].p
            Kernels.parallelRows(T, cost: rows) { tokenRange in
                for t in tokenRange {
                    let q = qkv + t * rows, k = q + qd, v = k + kvd
                    if let qn = lw.qNorm, let kn = lw.kNorm {
                        Kernels.rmsNormRows(q, qn.p, q, rows: 0..<c.numHeads, n: hd, eps: c.normEps)
                        Kernels.rmsNormRows(k, kn.p, k, rows: 0..<c.numKVHeads, n: hd, eps: c.normEps)
                    }
                    if let rope {
                        let half = rope.rot / 2
                        let cs = rope.cos + t * half, sn = rope.sin + t * half
                        Kernels.rope(q, heads: c.numHeads, headDim: hd, rot: rope.rot, cos: cs, sin: sn)
                        Kernels.rope(k, heads: c.numKVHeads, headDim: hd, rot: rope.rot, cos: cs, sin: sn)
                    }
                    kc.advanced(by: (start + t) * kvd).update(from: k, count: kvd)
                    vc.advanced(by: (start + t) * kvd).update(from: v, count: kvd)
                }
            }
            attention(layer: l, window: spec.slidingWindow, T: T, start: start, state: s)
            Kernels.linear(att, rows: T, inDim: qd, lw.wo.p, outDim: H, bias: lw.bo?.p, into: proj)
            if let pn = lw.postAttnNorm { Kernels.rmsNorm(proj, pn.p, proj, rows: T, n: H, eps: c.normEps) }
            hook(.attnOut(l), proj)
            Kernels.add(x, proj, T * H)
            hook(.residMid(l), x)

            // MLP branch.
            norm(x, lw.mlpNorm, lw.mlpNormBias, xn, rows: T, width: H)
            Kernels.linear(xn, rows: T, inDim: H, lw.wgu.p, outDim: guRows, bias: lw.bgu?.p, into: gu)
            Kernels.mlpActivation(c.activation, gated: c.gatedMLP, gu, act, rows: T, inner: I)
            Kernels.linear(act, rows: T, inDim: I, lw.wdown.p, outDim: H, bias: lw.bdown?.p, into: proj)
            if let pn = lw.postMlpNorm { Kernels.rmsNorm(proj, pn.p, proj, rows: T, n: H, eps: c.normEps) }
            hook(.mlpOut(l), proj)
            Kernels.add(x, proj, T * H)
            hook(.residPost(l), x)   // also resid_pre.(l+1): one state
        }

        // Final norm and unembedding, only for the rows asked for.
        let V = c.vocabSize
        switch logitRows {
        case .none: return
        case .all(let out):
            norm(x, w.finalNorm, w.finalNormBias, xn, rows: T, width: H)
            Kernels.linear(xn, rows: T, inDim: H, w.lmHead.p, outDim: V, bias: nil, into: out)
            if let cap = c.finalSoftcap { for i in 0..<(T * V) { out[i] = Foundation.tanh(out[i] / cap) * cap } }
        case .last:
            norm(x + (T - 1) * H, w.finalNorm, w.finalNormBias, xn, rows: 1, width: H)
            Kernels.linear(xn, rows: 1, inDim: H, w.lmHead.p, outDim: V, bias: nil, into: s.logits.p)
            if let cap = c.finalSoftcap { for i in 0..<V { s.logits.p[i] = Foundation.tanh(s.logits.p[i] / cap) * cap } }
        }
    }

    /// Causal (optionally sliding-window) GQA attention of the chunk's queries against the cache.
    /// Work is split over (token, head) pairs across threads; each thread has its own score row.
    private func attention(layer l: Int, window: Int?, T: Int, start: Int, state s: RunState) {
        let c = config
        let hd = c.headDim, nH = c.numHeads, kvd = c.kvDim, rows = c.qkvRows, qd = c.qDim
        let group = nH / c.numKVHeads
        let scale = c.attnScale, cap = c.attnSoftcap
        let kc = s.kCache[l].p, vc = s.vCache[l].p, qkv = s.qkv.p, att = s.att.p
        let jobs = T * nH
        let work = { (worker: Int, from: Int, to: Int) in
            let scores = s.scores.p + worker * s.capacity
            for job in from..<to {
                let t = job / nH, h = job % nH
                let pos = start + t
                let lo = window.map { max(0, pos - $0 + 1) } ?? 0
                let q = qkv + t * rows + h * hd
                let koff = (h / group) * hd
                var mx = -Float.infinity
                for j in lo...pos {
                    var sc = Kernels.dot(q, kc + j * kvd + koff, hd) * scale
                    if let cap { sc = Foundation.tanh(sc / cap) * cap }
                    scores[j] = sc
                    if sc > mx { mx = sc }
                }
                // e^(score - max), 8 lanes at a time (Kernels.exp), the tail in libm.
                var sum: Float = 0
                var j = lo
                var acc = SIMD8<Float>()
                let mv = SIMD8<Float>(repeating: mx)
                while j + 8 <= pos + 1 {
                    let e = Kernels.exp(UnsafeRawPointer(scores + j).loadUnaligned(as: SIMD8<Float>.self) - mv)
                    UnsafeMutableRawPointer(scores + j).storeBytes(of: e, as: SIMD8<Float>.self)
                    acc += e
                    j += 8
                }
                sum = acc.sum()
                while j <= pos { let e = Foundation.exp(scores[j] - mx); scores[j] = e; sum += e; j += 1 }
                let inv = 1 / sum
                let o = att + t * qd + h * hd
                o.initialize(repeating: 0, count: hd)
                for j in lo...pos { Kernels.axpy(scores[j] * inv, vc + j * kvd + koff, o, hd) }
            }
        }
        let nt = min(s.threads, jobs)
        // Few short rows (decode): one thread avoids the dispatch cost.
        if nt <= 1 || jobs * (start + T) < 4096 {
            work(0, 0, jobs)
        } else {
            DispatchQueue.concurrentPerform(iterations: nt) { k in
                work(k, jobs * k / nt, jobs * (k + 1) / nt)
            }
        }
    }
}

/// Interventions grouped by hook point, and the points to capture. Names of one state share one
/// list, in recipe order: embed and resid_pre.0 are resid_pre.0; resid_pre.(L+1) is resid_post.L.
struct HookTable {
    static func canonical(_ p: HookPoint) -> HookPoint {
        switch p {
        case .embed: return .residPre(0)
        case .residPre(let l) where l > 0: return .residPost(l - 1)
        default: return p
        }
    }

    static func aliases(of p: HookPoint, numLayers: Int) -> [HookPoint] {
        switch p {
        case .residPre(0): return [.embed, .residPre(0)]
        case .residPost(let l) where l + 1 < numLayers: return [.residPost(l), .residPre(l + 1)]
        default: return [p]
        }
    }

    var at: [HookPoint: [ResolvedIntervention]] = [:]
    var capture: Set<HookPoint>

    init(_ ivs: [ResolvedIntervention], capture: Set<HookPoint>, config c: ModelConfig) throws {
        self.capture = capture
        func check(_ p: HookPoint, _ what: String) throws {
            if let l = p.layer, l >= c.numLayers {
                throw ModelError("\(what) \(p): layer \(l) is out of range (the model has \(c.numLayers) layers)")
            }
        }
        for iv in ivs {
            try check(iv.point, "intervention (recipe entry \(iv.entry)) at")
            if case .ablateWeights = iv.op {
                throw ModelError("recipe entry \(iv.entry): ablate-weights is a weight edit with no hooked form")
            }
            guard iv.vector.count == c.hiddenSize else {
                throw ModelError("recipe entry \(iv.entry) at \(iv.point): vector has \(iv.vector.count) values, expected hidden size \(c.hiddenSize)")
            }
            at[Self.canonical(iv.point), default: []].append(iv)
        }
        for p in capture { try check(p, "capture point") }
    }
}

/// Scratch buffers and the KV cache, allocated once per capacity and reused across calls.
final class RunState {
    let capacity: Int            // positions the KV cache holds
    let chunk: Int               // tokens one forward call may process
    let threads: Int
    let x, xn, qkv, att, proj, gu, act: FloatBuffer
    let logits: FloatBuffer      // [V] (last row)
    let probs: FloatBuffer       // [V] sampling scratch
    let order: UnsafeMutablePointer<Int32>   // [V] sampling scratch
    let scores: FloatBuffer      // [threads, capacity]
    let kCache, vCache: [FloatBuffer]        // per layer [capacity, nKV hd]
    let cos, sin: [FloatBuffer]              // per RoPE [chunk, rot/2]

    init(config c: ModelConfig, capacity: Int, chunk: Int, threads: Int) {
        self.capacity = capacity; self.chunk = chunk; self.threads = threads
        let H = c.hiddenSize, I = c.intermediateSize
        x = FloatBuffer(count: chunk * H)                       // [T, H] residual stream
        xn = FloatBuffer(count: chunk * H)                      // [T, H] normed
        qkv = FloatBuffer(count: chunk * c.qkvRows)             // [T, (nH + 2 nKV) hd]
        att = FloatBuffer(count: chunk * c.qDim)                // [T, nH hd]
        proj = FloatBuffer(count: chunk * H)                    // [T, H] writer output
        gu = FloatBuffer(count: chunk * (c.gatedMLP ? 2 * I : I))
        act = FloatBuffer(count: chunk * I)                     // [T, I]
        logits = FloatBuffer(count: c.vocabSize)
        probs = FloatBuffer(count: c.vocabSize)
        order = .allocate(capacity: c.vocabSize)
        scores = FloatBuffer(count: threads * capacity)
        kCache = (0..<c.numLayers).map { _ in FloatBuffer(count: capacity * c.kvDim) }
        vCache = (0..<c.numLayers).map { _ in FloatBuffer(count: capacity * c.kvDim) }
        let half = c.ropes.map { Int(Double(c.headDim) * $0.partialRotaryFactor) / 2 }
        cos = half.map { FloatBuffer(count: chunk * $0) }
        sin = half.map { FloatBuffer(count: chunk * $0) }
    }
    deinit { order.deallocate() }
}
