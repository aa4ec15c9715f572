// Writes GGUF version 3 files (used for llama.cpp control vectors and for tests). Tensors are
// given as raw bytes of a ggml type with dims fastest-first, as the format stores them.

import Foundation

public struct GGUFWriter {
    public struct Tensor {
        public var name: String
        public var type: GGMLType
        public var dims: [Int]          // fastest-varying first (ggml `ne`)
        public var data: [UInt8]
        public init(name: String, type: GGMLType, dims: [Int], data: [UInt8]) {
            self.name = name; self.type = type; self.dims = dims; self.data = data
        }
        /// An F32 tensor from row-major values and a row-major shape.
        public init(name: String, f32 values: [Float], shape: [Int]) {
            self.name = name; self.type = .F32; self.dims = shape.reversed()
            self.data = values.withUnsafeBytes { [UInt8]($0) }
        }
    }

    public var metadata: [(String, GGUFValue)] = []
    public var tensors: [Tensor] = []
    /// Data alignment; a value other than 32 is recorded as general.alignment.
    public var alignment = GGUFFile.defaultAlignment
    public var version: UInt32 = 3

    public init() {}

    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let k = metadata.firstIndex(where: { $0.0 == key }) { metadata[k].1 = value } else { metadata.append((key, value)) }
    }

    /// The whole file as bytes.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func putString(_ s: String) { put(UInt64(s.utf8.count)); out.append(contentsOf: Array(s.utf8)) }
        func putValue(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): put(x)
            case .int8(let x): put(x)
            case .uint16(let x): put(x)
            case .int16(let x): put(x)
            case .uint32(let x): put(x)
            case .int32(let x): put(x)
            case .uint64(let x): put(x)
            case .int64(let x): put(x)
            case .float32(let f): put(f.bitPattern)
            case .float64(let d): put(d.bitPattern)
            case .bool(let b): put(UInt8(b ? 1 : 0))
            case .string(let s): putString(s)
            case .array(let t, let a):
                put(t.rawValue); put(UInt64(a.count))
                for e in a { putValue(e) }
            }
        }
        var metadata = self.metadata
        if alignment != GGUFFile.defaultAlignment && !metadata.contains(where: { $0.0 == "general.alignment" }) {
            metadata.append(("general.alignment", .uint32(UInt32(alignment))))
        }
        out.append(contentsOf: Array("GGUF".utf8))
        put(version)
        put(UInt64(tensors.count))
        put(UInt64(metadata.count))
        for (k, v) in metadata { putString(k); put(v.type.rawValue); putValue(v) }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (t, off) in zip(tensors, offsets) {
            putString(t.name)
            put(UInt32(t.dims.count))
            for d in t.dims { put(UInt64(d)) }
            put(t.type.rawValue)
            put(UInt64(off))
        }
        func pad() { while out.count % alignment != 0 { out.append(0) } }
        pad()
        for t in tensors { out.append(contentsOf: t.data); pad() }
        return out
    }

    /// Writes atomically: a temporary file beside `path`, renamed into place.
    public func write(to path: String) throws {
        let bytes = serialized()
        let url = URL(fileURLWithPath: path)
        do { try Data(bytes).write(to: url, options: .atomic) } catch {
            throw GGUFError(.io, file: path, "cannot write: \(error.localizedDescription)")
        }
    }
}
