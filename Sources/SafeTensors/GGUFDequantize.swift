// Dequantization of ggml block formats to f32, following ggml-quants.c `dequantize_row_*`
// operation by operation (same products in the same order, no fused multiply-add), so results are
// bit-identical to ggml's reference and to gguf-py's `gguf.quants.dequantize`.
//
// Block layouts (QK = 32, QK_K = 256; f16 = IEEE half, little-endian):
//   Q4_0  (18 B / 32):  f16 d; u8 qs[16]                 x = (nibble - 8) * d
//   Q4_1  (20 B / 32):  f16 d, m; u8 qs[16]              x = nibble * d + m
//   Q5_0  (22 B / 32):  f16 d; u8 qh[4]; u8 qs[16]       x = ((nibble | bit << 4) - 16) * d
//   Q5_1  (24 B / 32):  f16 d, m; u8 qh[4]; u8 qs[16]    x = (nibble | bit << 4) * d + m
//   Q8_0  (34 B / 32):  f16 d; i8 qs[32]                 x = q * d
//   Q2_K  (84 B / 256): u8 scales[16]; u8 qs[64]; f16 d, dmin
//   Q3_K (110 B / 256): u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d
//   Q4_K (144 B / 256): f16 d, dmin; u8 scales[12]; u8 qs[128]
//   Q5_K (176 B / 256): f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
//   Q6_K (210 B / 256): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
// Low nibbles of qs[j] are element j, high nibbles element j + 16 (32-blocks); K-quants walk
// their sub-blocks as commented in each function.

public enum GGUFDequantize {
    @inline(__always) static func u8(_ p: UnsafeRawPointer, _ k: Int) -> UInt8 { p.load(fromByteOffset: k, as: UInt8.self) }
    @inline(__always) static func f16(_ p: UnsafeRawPointer, _ k: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: k, as: UInt16.self))))
    }

    /// Dequantizes `count` elements (a multiple of the block size) of `type` stored at `src`.
    /// Precondition: `type.canDequantize` (programmer error otherwise: callers check it).
    public static func dequantize(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let (qk, bs) = type.blockLayout
        precondition(count % qk == 0, "programmer error: count not a block multiple")
        let nb = count / qk
        switch type {
        case .F32:
            UnsafeMutableRawPointer(y).copyMemory(from: src, byteCount: count * 4)
        case .F16:
            for k in 0..<count { y[k] = f16(src, 2 * k) }
        case .BF16:
            for k in 0..<count { y[k] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self))) << 16) }
        case .Q4_0: for i in 0..<nb { q4_0(src + i * bs, y + i * qk) }
        case .Q4_1: for i in 0..<nb { q4_1(src + i * bs, y + i * qk) }
        case .Q5_0: for i in 0..<nb { q5_0(src + i * bs, y + i * qk) }
        case .Q5_1: for i in 0..<nb { q5_1(src + i * bs, y + i * qk) }
        case .Q8_0: for i in 0..<nb { q8_0(src + i * bs, y + i * qk) }
        case .Q2_K: for i in 0..<nb { q2_K(src + i * bs, y + i * qk) }
        case .Q3_K: for i in 0..<nb { q3_K(src + i * bs, y + i * qk) }
        case .Q4_K: for i in 0..<nb { q4_K(src + i * bs, y + i * qk) }
        case .Q5_K: for i in 0..<nb { q5_K(src + i * bs, y + i * qk) }
        case .Q6_K: for i in 0..<nb { q6_K(src + i * bs, y + i * qk) }
        default:
            preconditionFailure("programmer error: \(type.name) has no dequantizer; check canDequantize first")
        }
    }

    static func q4_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        for j in 0..<16 {
            let q = u8(b, 2 + j)
            y[j] = Float(Int(q & 0x0F) - 8) * d
            y[j + 16] = Float(Int(q >> 4) - 8) * d
        }
    }

    static func q4_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0), m = f16(b, 2)
        for j in 0..<16 {
            let q = u8(b, 4 + j)
            y[j] = Float(q & 0x0F) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }

    static func q5_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let qh = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        for j in 0..<16 {
            let q = u8(b, 6 + j)
            let h0 = Int((qh >> UInt32(j)) << 4) & 0x10
            let h1 = Int(qh >> UInt32(j + 12)) & 0x10
            y[j] = Float((Int(q & 0x0F) | h0) - 16) * d
            y[j + 16] = Float((Int(q >> 4) | h1) - 16) * d
        }
    }

    static func q5_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0), m = f16(b, 2)
        let qh = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        for j in 0..<16 {
            let q = u8(b, 8 + j)
            let h0 = Int((qh >> UInt32(j)) << 4) & 0x10
            let h1 = Int(qh >> UInt32(j + 12)) & 0x10
            y[j] = Float(Int(q & 0x0F) | h0) * d + m
            y[j + 16] = Float(Int(q >> 4) | h1) * d + m
        }
    }

    static func q8_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        for j in 0..<32 { y[j] = Float(b.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
    }

    // Q2_K: 16 sub-blocks of 16; scales[i] low nibble scales, high nibble mins. Each 128-element
    // half uses 32 bytes of qs four times, shifting by 0, 2, 4, 6.
    static func q2_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 80), dmin = f16(b, 82)
        var out = 0, isc = 0, qo = 16
        for _ in 0..<2 {
            var shift: UInt8 = 0
            for _ in 0..<4 {
                for half in 0..<2 {
                    let sc = u8(b, isc); isc += 1
                    let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        y[out] = dl * Float((u8(b, qo + half * 16 + l) >> shift) & 3) - ml
                        out += 1
                    }
                }
                shift += 2
            }
            qo += 32
        }
    }

    // Q3_K: 16 sub-blocks of 16 with 6-bit signed scales (offset 32) packed in 12 bytes; 2 low
    // bits in qs, the third bit in hmask (a clear bit subtracts 4).
    static func q3_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let dAll = f16(b, 108)
        var scales = [Int](repeating: 0, count: 16)
        for j in 0..<16 {
            let low = j < 8 ? u8(b, 96 + j) & 0x0F : u8(b, 96 + j - 8) >> 4
            let high = (u8(b, 96 + 8 + j % 4) >> UInt8(2 * (j / 4))) & 3
            scales[j] = Int(low | (high << 4)) - 32
        }
        var out = 0, isc = 0, qo = 32
        var m: UInt8 = 1
        for _ in 0..<2 {
            var shift: UInt8 = 0
            for _ in 0..<4 {
                for half in 0..<2 {
                    let dl = dAll * Float(scales[isc]); isc += 1
                    for l in 0..<16 {
                        let idx = half * 16 + l
                        let q = Int((u8(b, qo + idx) >> shift) & 3) - ((u8(b, idx) & m) != 0 ? 0 : 4)
                        y[out] = dl * Float(q)
                        out += 1
                    }
                }
                shift += 2
                m <<= 1
            }
            qo += 32
        }
    }

    /// 6-bit scale and min of sub-block j from the 12 packed bytes at `s` (ggml get_scale_min_k4).
    @inline(__always) static func scaleMinK4(_ j: Int, _ s: UnsafeRawPointer) -> (UInt8, UInt8) {
        if j < 4 { return (u8(s, j) & 63, u8(s, j + 4) & 63) }
        return ((u8(s, j + 4) & 0x0F) | ((u8(s, j - 4) >> 6) << 4), (u8(s, j + 4) >> 4) | ((u8(s, j) >> 6) << 4))
    }

    // Q4_K: 8 sub-blocks of 32; each 32 bytes of qs give 64 elements (low nibbles, then high).
    static func q4_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0), dmin = f16(b, 2)
        let s = b + 4
        var out = 0, qo = 16
        for j in stride(from: 0, to: 8, by: 2) {
            let (sc1, m1) = scaleMinK4(j, s), (sc2, m2) = scaleMinK4(j + 1, s)
            let d1 = d * Float(sc1), mn1 = dmin * Float(m1)
            let d2 = d * Float(sc2), mn2 = dmin * Float(m2)
            for l in 0..<32 { y[out + l] = d1 * Float(u8(b, qo + l) & 0x0F) - mn1 }
            for l in 0..<32 { y[out + 32 + l] = d2 * Float(u8(b, qo + l) >> 4) - mn2 }
            out += 64; qo += 32
        }
    }

    // Q5_K: as Q4_K plus a fifth bit per element from qh (bit 2k for the low half, 2k+1 for the high).
    static func q5_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0), dmin = f16(b, 2)
        let s = b + 4
        var out = 0, qo = 48
        var u1: UInt8 = 1, u2: UInt8 = 2
        for j in stride(from: 0, to: 8, by: 2) {
            let (sc1, m1) = scaleMinK4(j, s), (sc2, m2) = scaleMinK4(j + 1, s)
            let d1 = d * Float(sc1), mn1 = dmin * Float(m1)
            let d2 = d * Float(sc2), mn2 = dmin * Float(m2)
            for l in 0..<32 {
                let h: UInt8 = (u8(b, 16 + l) & u1) != 0 ? 16 : 0
                y[out + l] = d1 * Float((u8(b, qo + l) & 0x0F) + h) - mn1
            }
            for l in 0..<32 {
                let h: UInt8 = (u8(b, 16 + l) & u2) != 0 ? 16 : 0
                y[out + 32 + l] = d2 * Float((u8(b, qo + l) >> 4) + h) - mn2
            }
            out += 64; qo += 32
            u1 <<= 2; u2 <<= 2
        }
    }

    // Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; 4 low bits in ql, 2 high bits in qh;
    // two 128-element halves, each from 64 bytes of ql and 32 of qh.
    static func q6_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 208)
        for n in 0..<2 {
            let ql = 64 * n, qh = 128 + 32 * n, sc = 192 + 8 * n, yo = 128 * n
            for l in 0..<32 {
                let i = l / 16
                let h = u8(b, qh + l)
                let q1 = Int((u8(b, ql + l) & 0x0F) | ((h & 3) << 4)) - 32
                let q2 = Int((u8(b, ql + l + 32) & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int((u8(b, ql + l) >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int((u8(b, ql + l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32
                func s(_ k: Int) -> Float { Float(b.load(fromByteOffset: sc + k, as: Int8.self)) }
                y[yo + l] = d * s(i) * Float(q1)
                y[yo + l + 32] = d * s(i + 2) * Float(q2)
                y[yo + l + 64] = d * s(i + 4) * Float(q3)
                y[yo + l + 96] = d * s(i + 6) * Float(q4)
            }
        }
    }
}
