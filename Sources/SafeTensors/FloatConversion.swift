// Conversions between stored element types and f32.

public enum FloatConversion {
    public struct Unsupported: Error { public var dtype: DType }

    @inline(__always) public static func bf16ToFloat(_ h: UInt16) -> Float {
        Float(bitPattern: UInt32(h) << 16)
    }

    /// Round-to-nearest-even f32 -> bf16 (NaN stays NaN), as torch does.
    @inline(__always) public static func floatToBF16(_ f: Float) -> UInt16 {
        let u = f.bitPattern
        if f.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 0x40) }
        let rounding = UInt32(0x7FFF) + ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: (u &+ rounding) >> 16)
    }

    @inline(__always) public static func f16ToFloat(_ h: UInt16) -> Float {
        Float(Float16(bitPattern: h))
    }

    @inline(__always) public static func floatToF16(_ f: Float) -> UInt16 {
        Float16(f).bitPattern
    }

    /// F8 E4M3 (fn variant: no infinities, 0x7F/0xFF are NaN), bias 7.
    public static func f8e4m3ToFloat(_ b: UInt8) -> Float {
        let sign: Float = (b & 0x80) != 0 ? -1 : 1
        let e = Int((b >> 3) & 0xF), m = Int(b & 0x7)
        if e == 0xF && m == 0x7 { return .nan }
        if e == 0 { return sign * Float(m) / 8 * Float(pow2: -6) }
        return sign * (1 + Float(m) / 8) * Float(pow2: e - 7)
    }

    /// F8 E5M2 (IEEE-like: bias 15, infinities and NaN).
    public static func f8e5m2ToFloat(_ b: UInt8) -> Float {
        f16ToFloat(UInt16(b) << 8)
    }

    /// Converts `count` elements stored as `dtype` in `bytes` to f32.
    public static func toFloat32(_ bytes: UnsafeRawBufferPointer, dtype: DType, count: Int) throws -> [Float] {
        precondition(bytes.count >= count * dtype.size) // programmer error: callers pass validated sizes
        return try [Float](unsafeUninitializedCapacity: count) { out, initialized in
            try convert(bytes, dtype: dtype, count: count, into: out.baseAddress!) // programmer error: capacity > 0 or unused
            initialized = count
        }
    }

    public static func convert(_ bytes: UnsafeRawBufferPointer, dtype: DType, count: Int, into out: UnsafeMutablePointer<Float>) throws {
        guard count > 0 else { return }
        let src = bytes.baseAddress!  // programmer error: non-empty when count > 0
        switch dtype {
        case .F32:
            UnsafeMutableRawPointer(out).copyMemory(from: src, byteCount: count * 4)
        case .F16:
            for k in 0..<count { out[k] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self))) }
        case .BF16:
            for k in 0..<count { out[k] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)) << 16) }
        case .F64:
            for k in 0..<count { out[k] = Float(src.loadUnaligned(fromByteOffset: 8 * k, as: Double.self)) }
        case .F8_E4M3:
            for k in 0..<count { out[k] = f8e4m3ToFloat(src.load(fromByteOffset: k, as: UInt8.self)) }
        case .F8_E5M2:
            for k in 0..<count { out[k] = f8e5m2ToFloat(src.load(fromByteOffset: k, as: UInt8.self)) }
        default:
            throw Unsupported(dtype: dtype)
        }
    }

    /// Encodes f32 values as `dtype` bytes (F32, F16, BF16, F64).
    public static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: DType) throws -> [UInt8] {
        let n = values.count
        var out = [UInt8](repeating: 0, count: n * dtype.size)
        out.withUnsafeMutableBytes { raw in
            switch dtype {
            case .F32: raw.copyMemory(from: UnsafeRawBufferPointer(values))
            case .F16: for k in 0..<n { raw.storeBytes(of: floatToF16(values[k]).littleEndian, toByteOffset: 2 * k, as: UInt16.self) }
            case .BF16: for k in 0..<n { raw.storeBytes(of: floatToBF16(values[k]).littleEndian, toByteOffset: 2 * k, as: UInt16.self) }
            case .F64: for k in 0..<n { raw.storeBytes(of: Double(values[k]), toByteOffset: 8 * k, as: Double.self) }
            default: break
            }
        }
        guard [.F32, .F16, .BF16, .F64].contains(dtype) else { throw Unsupported(dtype: dtype) }
        return out
    }
}

extension Float {
    init(pow2 e: Int) { self = Float(sign: .plus, exponent: e, significand: 1) }
}
