// Conversions between stored element types and f32. The F16/BF16 loops work on SIMD8 vectors:
// with -target-cpu haswell, F16 <-> F32 is one F16C instruction per 8 lanes, and BF16 is a widen
// and a shift. Stored data is little-endian (safetensors) and may be unaligned (offsets are only
// multiples of the element size when the writer sorted by dtype), so loads are unaligned.

public enum FloatConversion {
    public struct Unsupported: Error, CustomStringConvertible {
        public var dtype: DType
        public var description: String { "cannot encode floats as \(dtype.rawValue)" }
    }

    @inline(__always) public static func bf16ToFloat(_ h: UInt16) -> Float {
        Float(bitPattern: UInt32(h) << 16)
    }

    /// Round-to-nearest-even f32 -> bf16 (NaN stays a quiet NaN), as torch does.
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

    /// F8 E4M3 (the "fn" variant torch.float8_e4m3fn: bias 7, no infinities, S.1111.111 is NaN).
    public static func f8e4m3ToFloat(_ b: UInt8) -> Float {
        let sign: Float = (b & 0x80) != 0 ? -1 : 1
        let e = Int((b >> 3) & 0xF), m = Int(b & 0x7)
        if e == 0xF && m == 0x7 { return .nan }
        if e == 0 { return sign * Float(m) / 8 * Float(pow2: -6) }
        return sign * (1 + Float(m) / 8) * Float(pow2: e - 7)
    }

    /// F8 E5M2 (IEEE-like: bias 15, infinities and NaN): the top byte of an f16.
    @inline(__always) public static func f8e5m2ToFloat(_ b: UInt8) -> Float {
        f16ToFloat(UInt16(b) << 8)
    }

    /// Converts `count` elements stored as `dtype` in `bytes` to f32. Integers and BOOL convert to
    /// their value (exact up to 2^24).
    public static func toFloat32(_ bytes: UnsafeRawBufferPointer, dtype: DType, count: Int) -> [Float] {
        precondition(bytes.count >= count * dtype.size) // programmer error: callers pass validated sizes
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            convert(bytes, dtype: dtype, into: UnsafeMutableBufferPointer(rebasing: out[0..<count]))
            initialized = count
        }
    }

    /// Converts `out.count` elements stored as `dtype` at the start of `bytes` into `out`.
    public static func convert(_ bytes: UnsafeRawBufferPointer, dtype: DType, into out: UnsafeMutableBufferPointer<Float>) {
        let count = out.count
        guard count > 0 else { return }
        precondition(bytes.count >= count * dtype.size) // programmer error: callers pass validated sizes
        let src = bytes.baseAddress!  // programmer error: non-empty when count > 0
        let dst = out.baseAddress!    // programmer error: non-empty when count > 0
        switch dtype {
        case .F32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .F16:
            f16ToFloat(src, dst, count)
        case .BF16:
            bf16ToFloat(src, dst, count)
        case .F64:
            for k in 0..<count { dst[k] = Float(src.loadUnaligned(fromByteOffset: 8 * k, as: Double.self)) }
        case .F8_E4M3:
            var table = [Float](repeating: 0, count: 256)
            for b in 0..<256 { table[b] = f8e4m3ToFloat(UInt8(b)) }
            for k in 0..<count { dst[k] = table[Int(src.load(fromByteOffset: k, as: UInt8.self))] }
        case .F8_E5M2:
            for k in 0..<count { dst[k] = f8e5m2ToFloat(src.load(fromByteOffset: k, as: UInt8.self)) }
        case .I64:
            for k in 0..<count { dst[k] = Float(src.loadUnaligned(fromByteOffset: 8 * k, as: Int64.self)) }
        case .I32:
            for k in 0..<count { dst[k] = Float(src.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self)) }
        case .I16:
            for k in 0..<count { dst[k] = Float(src.loadUnaligned(fromByteOffset: 2 * k, as: Int16.self)) }
        case .I8:
            for k in 0..<count { dst[k] = Float(src.load(fromByteOffset: k, as: Int8.self)) }
        case .U8:
            for k in 0..<count { dst[k] = Float(src.load(fromByteOffset: k, as: UInt8.self)) }
        case .BOOL:
            for k in 0..<count { dst[k] = src.load(fromByteOffset: k, as: UInt8.self) != 0 ? 1 : 0 }
        }
    }

    /// Pointer form of `convert(_:dtype:into:)` (kept for callers of the first version).
    public static func convert(_ bytes: UnsafeRawBufferPointer, dtype: DType, count: Int, into out: UnsafeMutablePointer<Float>) {
        convert(bytes, dtype: dtype, into: UnsafeMutableBufferPointer(start: out, count: count))
    }

    static func f16ToFloat(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
        var k = 0
        while k + 8 <= count {
            let h = src.loadUnaligned(fromByteOffset: 2 * k, as: SIMD8<Float16>.self)
            UnsafeMutableRawPointer(dst + k).storeBytes(of: SIMD8<Float>(h), as: SIMD8<Float>.self)
            k += 8
        }
        while k < count {
            dst[k] = Float(src.loadUnaligned(fromByteOffset: 2 * k, as: Float16.self))
            k += 1
        }
    }

    static func bf16ToFloat(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
        var k = 0
        while k + 8 <= count {
            let h = src.loadUnaligned(fromByteOffset: 2 * k, as: SIMD8<UInt16>.self)
            let w = SIMD8<UInt32>(truncatingIfNeeded: h) &<< 16
            UnsafeMutableRawPointer(dst + k).storeBytes(of: w, as: SIMD8<UInt32>.self)
            k += 8
        }
        while k < count {
            dst[k] = bf16ToFloat(src.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self))
            k += 1
        }
    }

    /// Dtypes `encode` can write.
    public static let encodable: Set<DType> = [.F32, .F16, .BF16, .F64]

    /// Encodes f32 values as `dtype` bytes (F32, F16, BF16, F64), rounding to nearest even.
    public static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: DType) throws -> [UInt8] {
        guard encodable.contains(dtype) else { throw Unsupported(dtype: dtype) }
        let n = values.count
        return try [UInt8](unsafeUninitializedCapacity: n * dtype.size) { raw, initialized in
            initialized = n * dtype.size
            guard n > 0 else { return }
            try encode(values, as: dtype, into: UnsafeMutableRawPointer(raw.baseAddress!)) // programmer error: non-empty
        }
    }

    /// `encode` into memory the caller owns (values.count * dtype.size bytes), so a stream of
    /// blocks can reuse one buffer (fresh pages cost ~1-2 s per GiB on first touch here).
    public static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: DType, into dst: UnsafeMutableRawPointer) throws {
        guard encodable.contains(dtype) else { throw Unsupported(dtype: dtype) }
        let n = values.count
        guard n > 0 else { return }
        let src = values.baseAddress!              // programmer error: non-empty
        switch dtype {
        case .F32:
            dst.copyMemory(from: src, byteCount: 4 * n)
        case .F16:
            var k = 0
            while k + 8 <= n {
                let v = UnsafeRawPointer(src + k).loadUnaligned(as: SIMD8<Float>.self)
                dst.storeBytes(of: SIMD8<Float16>(v), toByteOffset: 2 * k, as: SIMD8<Float16>.self)
                k += 8
            }
            while k < n { dst.storeBytes(of: floatToF16(src[k]), toByteOffset: 2 * k, as: UInt16.self); k += 1 }
        case .BF16:
            // Signed lanes: AVX2 has no unsigned compare, and the unsigned form compiled to a
            // scalar-ish sequence 20x slower (it was a third of a bf16 bake). The low 16 bits
            // of an arithmetic and a logical shift agree, and |u| & 0x7FFFFFFF is non-negative,
            // so the result is bit-identical (checked over all 2^32 inputs).
            var k = 0
            while k + 16 <= n {
                let u = UnsafeRawPointer(src + k).loadUnaligned(as: SIMD16<Int32>.self)
                let rounded = (u &+ (SIMD16<Int32>(repeating: 0x7FFF) &+ ((u &>> 16) & 1))) &>> 16
                let quiet = (u &>> 16) | 0x40
                let isNaN = (u & 0x7FFF_FFFF) .> SIMD16<Int32>(repeating: 0x7F80_0000)
                let r = rounded.replacing(with: quiet, where: isNaN)
                dst.storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: r), toByteOffset: 2 * k, as: SIMD16<UInt16>.self)
                k += 16
            }
            while k < n { dst.storeBytes(of: floatToBF16(src[k]), toByteOffset: 2 * k, as: UInt16.self); k += 1 }
        case .F64:
            for k in 0..<n { dst.storeBytes(of: Double(src[k]), toByteOffset: 8 * k, as: Double.self) }
        default:
            break // excluded by the guard above
        }
    }
}

extension Float {
    init(pow2 e: Int) { self = Float(sign: .plus, exponent: e, significand: 1) }
}
