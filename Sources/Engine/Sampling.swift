// Choosing the next token: greedy argmax, or temperature + top-p (nucleus) sampling with a seeded
// xoshiro256** generator (state seeded by splitmix64), so a seed reproduces a run on any machine.

import Foundation

struct Xoshiro256 {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var r = z
            r = (r ^ (r >> 30)) &* 0xBF58_476D_1CE4_E5B9
            r = (r ^ (r >> 27)) &* 0x94D0_49BB_1331_11EB
            return r ^ (r >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    mutating func next() -> UInt64 {
        let result = Self.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = Self.rotl(s.3, 45)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func uniform() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

enum Sampler {
    static func argmax(_ l: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0
        var bv = l[0]
        for i in 1..<count where l[i] > bv { bv = l[i]; best = i }
        return best
    }

    static func pick(_ logits: UnsafePointer<Float>, count V: Int, sampling: Sampling, rng: inout Xoshiro256,
                     scratch s: RunState) -> Int {
        if sampling.temperature == 0 { return argmax(logits, count: V) }
        // Softmax of logits / temperature, in f64 for the normaliser.
        let p = s.probs.p
        var mx = -Float.infinity
        for i in 0..<V where logits[i] > mx { mx = logits[i] }
        var sum: Double = 0
        for i in 0..<V {
            let e = Foundation.exp((logits[i] - mx) / sampling.temperature)
            p[i] = e
            sum += Double(e)
        }
        var n = V
        var total = sum
        if sampling.topP < 1 {
            // Keep the smallest set of most probable tokens whose mass reaches top-p (at least one).
            let order = s.order
            for i in 0..<V { order[i] = Int32(i) }
            var buf = UnsafeMutableBufferPointer(start: order, count: V)
            buf.sort { (a: Int32, b: Int32) -> Bool in
                let pa: Float = p[Int(a)], pb: Float = p[Int(b)]
                return pa > pb || (pa == pb && a < b)
            }
            let target = Double(sampling.topP) * sum
            var acc: Double = 0
            n = 0
            while n < V {
                acc += Double(p[Int(order[n])])
                n += 1
                if acc >= target { break }
            }
            total = acc
            let r = rng.uniform() * total
            var c: Double = 0
            for k in 0..<n {
                c += Double(p[Int(order[k])])
                if r < c { return Int(order[k]) }
            }
            return Int(order[n - 1])
        }
        let r = rng.uniform() * total
        var c: Double = 0
        for i in 0..<V {
            c += Double(p[i])
            if r < c { return i }
        }
        return V - 1
    }
}
