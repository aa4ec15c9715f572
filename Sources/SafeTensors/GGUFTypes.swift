// GGUF vocabulary: ggml tensor types, metadata value types and values, errors.
// Numbers follow ggml's `enum ggml_type` and gguf's `enum gguf_type` (gguf-py constants.py).

/// ggml tensor element types that may appear in a GGUF file. Only some can be dequantized here
/// (`canDequantize`); the others are recognised so a file that holds them still opens.
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9
    case Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15
    case IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23
    case I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30
    case TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41

    public var name: String { String(describing: self) }

    /// (elements per block, bytes per block), as ggml's type traits.
    public var blockLayout: (elements: Int, bytes: Int) {
        let qk = 256
        switch self {
        case .F32: return (1, 4)
        case .F16, .BF16: return (1, 2)
        case .Q4_0: return (32, 2 + 16)
        case .Q4_1: return (32, 2 + 2 + 16)
        case .Q5_0: return (32, 2 + 4 + 16)
        case .Q5_1: return (32, 2 + 2 + 4 + 16)
        case .Q8_0: return (32, 2 + 32)
        case .Q8_1: return (32, 4 + 4 + 32)
        case .Q2_K: return (qk, 2 + 2 + qk / 16 + qk / 4)
        case .Q3_K: return (qk, 2 + qk / 4 + qk / 8 + 12)
        case .Q4_K: return (qk, 2 + 2 + qk / 2 + 12)
        case .Q5_K: return (qk, 2 + 2 + qk / 2 + qk / 8 + 12)
        case .Q6_K: return (qk, 2 + qk / 2 + qk / 4 + qk / 16)
        case .Q8_K: return (qk, 4 + qk + qk / 8)
        case .IQ2_XXS: return (qk, 2 + qk / 4)
        case .IQ2_XS: return (qk, 2 + qk / 4 + qk / 32)
        case .IQ3_XXS: return (qk, 2 + qk / 4 + qk / 8)
        case .IQ1_S: return (qk, 2 + qk / 8 + qk / 16)
        case .IQ4_NL: return (32, 2 + 16)
        case .IQ3_S: return (qk, 2 + qk / 4 + qk / 8 + qk / 32 + 4)
        case .IQ2_S: return (qk, 2 + qk / 4 + qk / 16)
        case .IQ4_XS: return (qk, 2 + 2 + qk / 2 + qk / 64)
        case .I8: return (1, 1)
        case .I16: return (1, 2)
        case .I32: return (1, 4)
        case .I64, .F64: return (1, 8)
        case .IQ1_M: return (qk, qk / 8 + qk / 16 + qk / 32)
        case .TQ1_0: return (qk, 2 + 4 * 13)
        case .TQ2_0: return (qk, 2 + 64)
        case .MXFP4: return (32, 1 + 16)
        case .NVFP4: return (64, 4 + 32)
        case .Q1_0: return (128, 2 + 16)
        }
    }

    /// Types `GGUFDequantize` turns into f32.
    public var canDequantize: Bool {
        switch self {
        case .F32, .F16, .BF16, .Q8_0, .Q4_0, .Q4_1, .Q5_0, .Q5_1, .Q2_K, .Q3_K, .Q4_K, .Q5_K, .Q6_K: return true
        default: return false
        }
    }
}

/// Metadata value types (gguf `enum gguf_type`).
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes taken by one value of this type, nil for variable-size types (string, array).
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The smallest encoding of one value: bounds array counts by the bytes left in the file.
    var minimumSize: Int { fixedSize ?? (self == .string ? 8 : 12) }
}

/// One metadata value. Arrays keep their element type (an empty array still has one).
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// Any integer type that fits an Int.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(exactly: v)
        default: return nil
        }
    }

    /// Floats, and integers (a GGUF writer may store 10000 as an integer).
    public var doubleValue: Double? {
        switch self {
        case .float32(let f): return Double(f)
        case .float64(let d): return d
        default: return intValue.map(Double.init)
        }
    }

    public var floatValue: Float? {
        if case .float32(let f) = self { return f }
        return doubleValue.map(Float.init)
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }
    public var stringArray: [String]? {
        guard case .array(.string, let a) = self else { return nil }
        return a.compactMap(\.stringValue)
    }
}

public struct GGUFError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        case io                    // cannot open/read/map/write
        case badMagic              // not a GGUF file
        case unsupportedVersion    // version other than 2 and 3 (or a big-endian file)
        case truncated             // a read runs past the end of the file
        case tooLarge              // a count that the file's size cannot hold
        case invalidString         // not UTF-8
        case invalidValueType      // unknown metadata value type, or too deeply nested arrays
        case duplicateKey
        case invalidMetadata       // a known key with a wrong type or value (general.alignment)
        case unknownGGMLType
        case invalidTensorInfo     // dims, element count, block multiple
        case duplicateTensor
        case tensorOutOfBounds
        case misaligned
        case overlappingTensors
        case missingTensor
        case unsupportedType       // known ggml type with no dequantizer here
    }
    public var kind: Kind
    public var file: String
    public var key: String?
    public var tensor: String?
    public var detail: String

    public init(_ kind: Kind, file: String, key: String? = nil, tensor: String? = nil, _ detail: String) {
        self.kind = kind; self.file = file; self.key = key; self.tensor = tensor; self.detail = detail
    }

    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(detail)" }
        if let key { return "\(file): metadata '\(key)': \(detail)" }
        return "\(file): \(detail)"
    }
}
