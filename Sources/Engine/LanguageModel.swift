// The forward pass shared by every architecture (the architecture files only resolve configs and
// name weights), with hook points on the residual stream (DESIGN.md section 2) and interventions
// applied at inference (section 3).
//
// One forward call processes a chunk of tokens at absolute positions start..<start+T against the
// KV cache in a RunState; `logits` is one chunk from an empty cache, `generate` is a prompt chunk
// followed by one-token chunks.

import Foundation
import COpenBLAS
import CKernels

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

    /// Threads of the engine's kernels and of BLAS (default: what OpenBLAS chose, usually the core
    /// count). More than the CPUs this process may use count as that many: spinning workers beyond
    /// them only take turns (a prefill with 8 on 2 cores ran at a quarter of the speed).
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set {
            let n = min(max(1, newValue), Int(cpool_usable_cpus()))
            openblas_set_num_threads(Int32(n))
            Kernels.matvecThreads = n
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
            Kernels.linear(xn, rows: T, lw.wqkv, bias: lw.bqkv?.p, into: qkv)
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
            Kernels.linear(att, rows: T, lw.wo, bias: lw.bo?.p, into: proj)
            if let pn = lw.postAttnNorm { Kernels.rmsNorm(proj, pn.p, proj, rows: T, n: H, eps: c.normEps) }
            hook(.attnOut(l), proj)
            Kernels.add(x, proj, T * H)
            hook(.residMid(l), x)

            // MLP branch.
            norm(x, lw.mlpNorm, lw.mlpNormBias, xn, rows: T, width: H)
            Kernels.linear(xn, rows: T, lw.wgu, bias: lw.bgu?.p, into: gu)
            Kernels.mlpActivation(c.activation, gated: c.gatedMLP, gu, act, rows: T, inner: I)
            Kernels.linear(act, rows: T, lw.wdown, bias: lw.bdown?.p, into: proj)
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
    /// Queries are split over threads by token, interleaved (token t goes to thread t % threads),
    /// so the long rows at the end of a causal chunk are shared out evenly; each thread has its own
    /// score row. Scores: with several queries (prefill) the layer's keys are first transposed
    /// once ([kv head, dim, position]) so that 64 scores come out of one pass over the query's
    /// dimensions without horizontal sums; a single query (decode) takes dot products against the
    /// cache directly. Softmax as transformers: e^(s - max), normalised, then P V with the output
    /// held in registers 64 dimensions at a time.
    private func attention(layer l: Int, window: Int?, T: Int, start: Int, state s: RunState) {
        let c = config
        let hd = c.headDim, nH = c.numHeads, kvd = c.kvDim, rows = c.qkvRows, qd = c.qDim
        let group = nH / c.numKVHeads
        let scale = c.attnScale, cap = c.attnSoftcap
        let kc = s.kCache[l].p, vc = s.vCache[l].p, qkv = s.qkv.p, att = s.att.p
        let n = start + T, ldk = s.keyStride, kT = s.keysT.p
        let transposed = T >= 8
        if transposed {
            // kT[e, j] = K[j, e] for e in 0..<kvd (kv head g's dims are rows g hd ..< (g + 1) hd).
            Kernels.parallelRows(kvd, cost: n) { es in
                for e in es {
                    let dst = kT + e * ldk
                    for j in 0..<n { dst[j] = kc[j * kvd + e] }
                }
            }
        }
        let nt = min(s.threads, T)
        func work(_ worker: Int) {
            let scores = s.scores.p + worker * s.scoreStride
            var t = worker
            while t < T {
                let pos = start + t
                let lo = window.map { max(0, pos - $0 + 1) } ?? 0
                for h in 0..<nH {
                    let q = qkv + t * rows + h * hd
                    let koff = (h / group) * hd
                    if transposed {
                        // 64 keys per pass (Acc64) from the first multiple of 8 at or below lo; the
                        // extra scores (below lo, above pos) are computed and not used.
                        let kt = kT + koff * ldk
                        var j0 = lo & ~7
                        while j0 <= pos {
                            var acc = Kernels.Acc64()
                            for d in 0..<hd { acc.add(q[d], times: UnsafeRawPointer(kt + d * ldk + j0)) }
                            acc.store(to: scores + j0)
                            j0 += 64
                        }
                    } else {
                        for j in lo...pos { scores[j] = Kernels.dot(q, kc + j * kvd + koff, hd) }
                    }
                    var mx = -Float.infinity
                    if let cap {
                        for j in lo...pos {
                            let sc = Foundation.tanh(scores[j] * scale / cap) * cap
                            scores[j] = sc
                            if sc > mx { mx = sc }
                        }
                    } else {
                        var j = lo
                        let sv = SIMD8<Float>(repeating: scale)
                        var mv = SIMD8<Float>(repeating: -.infinity)
                        while j + 8 <= pos + 1 {
                            let r = UnsafeMutableRawPointer(scores + j)
                            let sc = r.loadUnaligned(as: SIMD8<Float>.self) * sv
                            r.storeBytes(of: sc, as: SIMD8<Float>.self)
                            mv = pointwiseMax(mv, sc)
                            j += 8
                        }
                        mx = mv.max()
                        while j <= pos { scores[j] *= scale; mx = max(mx, scores[j]); j += 1 }
                    }
                    // e^(score - max), 8 lanes at a time (Kernels.exp), the tail in libm.
                    var j = lo
                    var acc = SIMD8<Float>()
                    let mv = SIMD8<Float>(repeating: mx)
                    while j + 8 <= pos + 1 {
                        let e = Kernels.exp(UnsafeRawPointer(scores + j).loadUnaligned(as: SIMD8<Float>.self) - mv)
                        UnsafeMutableRawPointer(scores + j).storeBytes(of: e, as: SIMD8<Float>.self)
                        acc += e
                        j += 8
                    }
                    var sum = acc.sum()
                    while j <= pos { let e = Foundation.exp(scores[j] - mx); scores[j] = e; sum += e; j += 1 }
                    let inv = 1 / sum
                    for j in lo...pos { scores[j] *= inv }
                    Self.weightedValues(scores, lo: lo, pos: pos, values: vc + koff, stride: kvd, dim: hd,
                                        into: att + t * qd + h * hd)
                }
                t += nt
            }
        }
        // Few short rows (decode): one thread avoids the dispatch cost.
        if nt <= 1 || T * nH * n < 4096 {
            for k in 0..<nt { work(k) }
        } else {
            Kernels.parallel(nt) { k in work(k) }
        }
    }

    /// o[0..<dim] = sum over j in lo...pos of p[j] v[j * stride ..< j * stride + dim]: 64 output
    /// dimensions in registers per pass over the rows (Acc64), then 32, 8, 1.
    @inline(__always)
    static func weightedValues(_ p: CFPtr, lo: Int, pos: Int, values v: CFPtr, stride: Int, dim: Int, into o: FPtr) {
        var c = 0
        while c + 64 <= dim {
            var acc = Kernels.Acc64()
            for j in lo...pos { acc.add(p[j], times: UnsafeRawPointer(v + j * stride + c)) }
            acc.store(to: o + c)
            c += 64
        }
        while c + 32 <= dim {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            for j in lo...pos {
                let pj = SIMD8<Float>(repeating: p[j])
                let r = UnsafeRawPointer(v + j * stride + c)
                a0 = a0.addingProduct(pj, r.loadUnaligned(as: SIMD8<Float>.self))
                a1 = a1.addingProduct(pj, r.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
                a2 = a2.addingProduct(pj, r.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
                a3 = a3.addingProduct(pj, r.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
            }
            let w = UnsafeMutableRawPointer(o + c)
            w.storeBytes(of: a0, as: SIMD8<Float>.self)
            w.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self)
            w.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self)
            w.storeBytes(of: a3, toByteOffset: 96, as: SIMD8<Float>.self)
            c += 32
        }
        while c + 8 <= dim {
            var a = SIMD8<Float>()
            for j in lo...pos {
                a = a.addingProduct(SIMD8<Float>(repeating: p[j]), UnsafeRawPointer(v + j * stride + c).loadUnaligned(as: SIMD8<Float>.self))
            }
            UnsafeMutableRawPointer(o + c).storeBytes(of: a, as: SIMD8<Float>.self)
            c += 8
        }
        while c < dim {
            var a: Float = 0
            for j in lo...pos { a += p[j] * v[j * stride + c] }
            o[c] = a
            c += 1
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
    let scores: FloatBuffer      // [threads, scoreStride]
    let scoreStride: Int         // capacity + 64: score passes write 64 at a time
    let keysT: FloatBuffer       // [nKV hd, keyStride]: one layer's keys transposed (prefill attention)
    let keyStride: Int           // capacity + 64, a multiple of 8
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
        scoreStride = capacity + 64
        scores = FloatBuffer(count: threads * scoreStride)
        keyStride = (capacity + 64 + 7) & ~7
        keysT = FloatBuffer(count: c.kvDim * keyStride)
        kCache = (0..<c.numLayers).map { _ in FloatBuffer(count: capacity * c.kvDim) }
        vCache = (0..<c.numLayers).map { _ in FloatBuffer(count: capacity * c.kvDim) }
        let half = c.ropes.map { Int(Double(c.headDim) * $0.partialRotaryFactor) / 2 }
        cos = half.map { FloatBuffer(count: chunk * $0) }
        sin = half.map { FloatBuffer(count: chunk * $0) }
    }
    deinit { order.deallocate() }
}
