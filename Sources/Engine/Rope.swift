// RoPE inverse frequencies as modeling_rope_utils.py computes them (in f32, like torch), and the
// dynamic-NTK state: transformers recomputes inv_freq when a forward call reaches a longer sequence
// than any before (and resets it for short ones), so keys already in the KV cache keep the rotation
// they were given. Every `logits`/`generate` call starts from the freshly loaded state.

import Foundation

struct RopeState {
    let spec: RopeSpec
    let headDim: Int
    let maxPositions: Int
    let rot: Int                         // rotated dims per head
    private(set) var invFreq: [Float]    // [rot / 2]
    private let originalInvFreq: [Float]
    private var maxSeqLenCached: Int

    init(spec: RopeSpec, headDim: Int, maxPositions: Int) {
        self.spec = spec
        self.headDim = headDim
        self.maxPositions = maxPositions
        rot = Int(Double(headDim) * spec.partialRotaryFactor)
        let f = Self.frequencies(spec, rot: rot, maxPositions: maxPositions, seqLen: nil)
        invFreq = f
        originalInvFreq = f
        maxSeqLenCached = maxPositions
    }

    mutating func reset() {
        invFreq = originalInvFreq
        maxSeqLenCached = maxPositions
    }

    /// dynamic_rope_update before a forward whose last position is seqLen - 1.
    mutating func update(seqLen: Int) {
        guard case .dynamic = spec.type else { return }
        let cached = maxSeqLenCached
        if seqLen > cached {
            invFreq = Self.frequencies(spec, rot: rot, maxPositions: maxPositions, seqLen: seqLen)
            maxSeqLenCached = seqLen
        }
        if seqLen < maxPositions && cached > maxPositions {
            invFreq = originalInvFreq
            maxSeqLenCached = maxPositions
        }
    }

    /// cos/sin of positions start..<start+T into [T, rot/2] tables.
    func tables(start: Int, count T: Int, cos: FPtr, sin: FPtr) {
        let half = rot / 2
        for t in 0..<T {
            let pos = Float(start + t)
            for i in 0..<half {
                let a = pos * invFreq[i]
                cos[t * half + i] = Foundation.cos(a)
                sin[t * half + i] = Foundation.sin(a)
            }
        }
    }

    static func frequencies(_ s: RopeSpec, rot: Int, maxPositions: Int, seqLen: Int?) -> [Float] {
        var base = Float(s.theta)
        let dim = Float(rot)
        if case .dynamic(let factor) = s.type {
            let len = Float(max(seqLen ?? maxPositions, maxPositions))
            let f = Float(factor)
            let grow = (f * len / Float(maxPositions)) - (f - 1)
            base = base * Foundation.pow(grow, dim / (dim - 2))
        }
        var inv = (0..<(rot / 2)).map { i -> Float in 1 / Foundation.pow(base, Float(2 * i) / dim) }
        switch s.type {
        case .standard, .dynamic: break
        case .linear(let factor):
            inv = inv.map { $0 / Float(factor) }
        case let .llama3(factor, lo, hi, orig):
            let f = Float(factor), low = Float(lo), high = Float(hi), old = Float(orig)
            let lowWave = old / low, highWave = old / high
            inv = inv.map { fr in
                let wave = 2 * Float.pi / fr
                let scaled = wave > lowWave ? fr / f : fr
                if wave < highWave || wave > lowWave { return scaled }
                let smooth = (old / wave - low) / (high - low)
                return (1 - smooth) * scaled / f + smooth * scaled
            }
        }
        return inv
    }
}
