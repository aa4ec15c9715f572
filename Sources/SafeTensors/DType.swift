// Element types of the safetensors format (huggingface/safetensors `Dtype`).

public enum DType: String, CaseIterable, Sendable, Codable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL
    case F8_E4M3, F8_E5M2

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL, .F8_E4M3, .F8_E5M2: return 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .F64, .F32, .F16, .BF16, .F8_E4M3, .F8_E5M2: return true
        default: return false
        }
    }

    /// product(shape) * size, nil on overflow or a negative dimension.
    public static func checkedByteCount(shape: [Int], dtype: DType) -> Int? {
        var count = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (m, o) = count.multipliedReportingOverflow(by: d)
            if o { return nil }
            count = m
        }
        let (bytes, o) = count.multipliedReportingOverflow(by: dtype.size)
        return o ? nil : bytes
    }
}
