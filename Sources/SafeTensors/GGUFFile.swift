// A memory-mapped GGUF file (llama.cpp's format, versions 2 and 3), read as a `TensorSource`
// that hands out f32 (dequantized) tensors with row-major shapes.
//
// Layout (little-endian): magic "GGUF", u32 version, u64 tensor_count, u64 kv_count;
// kv_count x (string key, u32 value type, value); tensor_count x (string name, u32 n_dims,
// n_dims x u64 dims (fastest-varying first), u32 ggml type, u64 offset); padding to the alignment
// (metadata `general.alignment`, u32, default 32); then the data section. A string is a u64 byte
// length and that many UTF-8 bytes; an array is u32 element type, u64 count, the elements.
//
// Validation rules (the file is untrusted input):
//  1. magic, version 2 or 3 (a byte-swapped version means a big-endian file: refused);
//  2. every read is bounded by the file size; every count (kv, tensors, array elements, string
//     bytes) is checked against the bytes left before anything is allocated;
//  3. strings are valid UTF-8; keys and tensor names are unique; arrays nest at most 8 deep;
//  4. general.alignment, when present, is a u32 power of two;
//  5. tensors: at most 4 dims, known ggml type, element count and byte size computed with checked
//     arithmetic, dims[0] a multiple of the type's block size, offset a multiple of the alignment,
//     data inside the file, no two tensors overlapping.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    public var type: GGMLType
    /// Dimensions as the file lists them: fastest-varying first (ggml `ne`), e.g. [576, 49152].
    public var dims: [Int]
    /// Offset in the data section.
    public var offset: Int
    public var byteCount: Int
    public var elementCount: Int

    /// Row-major (Hugging Face / PyTorch) shape: `dims` reversed, e.g. [49152, 576].
    public var shape: [Int] { dims.reversed() }
}

public final class GGUFFile: TensorSource, @unchecked Sendable {
    public static let defaultAlignment = 32
    static let maxArrayDepth = 8

    public let path: String
    public let version: Int
    public let fileSize: Int
    public let alignment: Int
    /// Start of the data section in the file.
    public let dataOffset: Int
    /// Metadata keys in file order, and their values.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    private let index: [String: Int]

    private let base: UnsafeMutableRawPointer?
    private let mappedLength: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw GGUFError(.io, file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw GGUFError(.io, file: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GGUFError(.io, file: path, "not a regular file") }
        let size = Int(st.st_size)
        fileSize = size
        guard size >= 24 else {
            throw GGUFError(.truncated, file: path, "file is \(size) bytes, a GGUF header needs 24")
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw GGUFError(.io, file: path, "cannot mmap: \(String(cString: strerror(errno)))")
        }
        base = p
        mappedLength = size
        do {
            var parser = GGUFParser(UnsafeRawBufferPointer(start: p, count: size), file: path)
            let parsed = try parser.parse()
            version = parsed.version
            alignment = parsed.alignment
            dataOffset = parsed.dataOffset
            metadataKeys = parsed.keys
            metadata = parsed.metadata
            tensors = parsed.tensors
            var idx: [String: Int] = [:]
            for (k, t) in parsed.tensors.enumerated() { idx[t.name] = k }
            index = idx
            FileMappings.register(UnsafeRawPointer(p), size)
        } catch {
            munmap(p, size)
            throw error
        }
    }

    deinit {
        if let base { FileMappings.unregister(UnsafeRawPointer(base)); munmap(base, mappedLength) }
    }

    // MARK: metadata helpers

    public var architecture: String? { metadata["general.architecture"]?.stringValue }

    // MARK: tensors

    public func tensorInfo(_ name: String) -> GGUFTensorInfo? {
        guard let k = index[name] else { return nil }
        return tensors[k]
    }

    /// The tensor's stored bytes inside the mapping (valid while this object lives).
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let t = tensorInfo(name) else {
            throw GGUFError(.missingTensor, file: path, tensor: name, "not in this file")
        }
        return UnsafeRawBufferPointer(start: base! + dataOffset + t.offset, count: t.byteCount) // programmer error: base is set when init succeeds
    }

    // MARK: TensorSource

    public var tensorNames: [String] { tensors.map(\.name) }

    /// Shape in row-major order; dtype F32 because `floats` dequantizes (the stored ggml type is
    /// in `tensorInfo(_:)`); byteCount is that of the f32 tensor.
    public func info(_ name: String) -> TensorInfo? {
        guard let t = tensorInfo(name) else { return nil }
        return TensorInfo(name: name, dtype: .F32, shape: t.shape, byteCount: t.elementCount * 4)
    }

    public func floats(_ name: String) throws -> [Float] {
        guard let t = tensorInfo(name) else {
            throw GGUFError(.missingTensor, file: path, tensor: name, "not in this file")
        }
        guard t.type.canDequantize else {
            throw GGUFError(.unsupportedType, file: path, tensor: name, "ggml type \(t.type.name) cannot be dequantized by this build (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K)")
        }
        let src = try bytes(name)
        // The f32 copy is what the caller keeps: drop the mapped pages just read, so converting
        // a 40 GB GGUF does not keep it resident (file-backed pages count in RSS).
        defer { if let p = src.baseAddress { FileMappings.release(p, src.count) } }
        return [Float](unsafeUninitializedCapacity: t.elementCount) { out, n in
            if t.elementCount > 0 {
                GGUFDequantize.dequantize(t.type, src.baseAddress!, count: t.elementCount, into: out.baseAddress!) // programmer error: sizes validated at open
            }
            n = t.elementCount
        }
    }
}

// MARK: - parsing

struct GGUFParser {
    struct Parsed {
        var version: Int
        var alignment: Int
        var dataOffset: Int
        var keys: [String]
        var metadata: [String: GGUFValue]
        var tensors: [GGUFTensorInfo]
    }

    let raw: UnsafeRawBufferPointer
    let file: String
    var pos = 0

    init(_ raw: UnsafeRawBufferPointer, file: String) { self.raw = raw; self.file = file }

    var remaining: Int { raw.count - pos }

    func need(_ n: Int, _ what: @autoclosure () -> String, key: String? = nil, tensor: String? = nil) throws {
        guard n >= 0, n <= remaining else {
            throw GGUFError(.truncated, file: file, key: key, tensor: tensor, "\(what()) needs \(n) bytes at offset \(pos) but the \(raw.count)-byte file ends first")
        }
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String, key: String? = nil, tensor: String? = nil) throws -> T {
        try need(MemoryLayout<T>.size, what(), key: key, tensor: tensor)
        let v = T(littleEndian: raw.loadUnaligned(fromByteOffset: pos, as: T.self))
        pos += MemoryLayout<T>.size
        return v
    }

    mutating func string(_ what: @autoclosure () -> String, key: String? = nil, tensor: String? = nil) throws -> String {
        let n64 = try load(UInt64.self, "length of \(what())", key: key, tensor: tensor)
        guard n64 <= UInt64(remaining) else {
            throw GGUFError(.tooLarge, file: file, key: key, tensor: tensor, "\(what()) claims \(n64) bytes at offset \(pos) but only \(remaining) are left in the file")
        }
        let n = Int(n64)
        let bytes = UnsafeRawBufferPointer(rebasing: raw[pos..<(pos + n)])
        let s = String(decoding: bytes, as: UTF8.self)
        // Invalid UTF-8 decodes to U+FFFD, which changes the bytes: compare to detect it.
        guard s.utf8.count == n, s.utf8.elementsEqual(bytes) else {
            throw GGUFError(.invalidString, file: file, key: key, tensor: tensor, "\(what()) at offset \(pos) is not valid UTF-8")
        }
        pos += n
        return s
    }

    mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try load(UInt8.self, "value", key: key))
        case .int8: return .int8(try load(Int8.self, "value", key: key))
        case .uint16: return .uint16(try load(UInt16.self, "value", key: key))
        case .int16: return .int16(try load(Int16.self, "value", key: key))
        case .uint32: return .uint32(try load(UInt32.self, "value", key: key))
        case .int32: return .int32(try load(Int32.self, "value", key: key))
        case .uint64: return .uint64(try load(UInt64.self, "value", key: key))
        case .int64: return .int64(try load(Int64.self, "value", key: key))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, "value", key: key)))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, "value", key: key)))
        case .bool:
            let b = try load(UInt8.self, "value", key: key)
            guard b <= 1 else {
                throw GGUFError(.invalidMetadata, file: file, key: key, "bool value at offset \(pos - 1) is \(b), expected 0 or 1")
            }
            return .bool(b == 1)
        case .string: return .string(try string("string value", key: key))
        case .array:
            guard depth < Self.maxDepth else {
                throw GGUFError(.invalidValueType, file: file, key: key, "arrays nested more than \(Self.maxDepth) deep")
            }
            let raw = try load(UInt32.self, "array element type", key: key)
            guard let et = GGUFValueType(rawValue: raw) else {
                throw GGUFError(.invalidValueType, file: file, key: key, "unknown array element type \(raw) at offset \(pos - 4)")
            }
            let count64 = try load(UInt64.self, "array length", key: key)
            let (total, o) = count64.multipliedReportingOverflow(by: UInt64(et.minimumSize))
            guard !o, total <= UInt64(remaining) else {
                throw GGUFError(.tooLarge, file: file, key: key, "array of \(count64) elements of type \(et) cannot fit in the \(remaining) bytes left in the file")
            }
            let count = Int(count64)
            var out: [GGUFValue] = []
            out.reserveCapacity(count)
            if et == .string {
                for k in 0..<count { out.append(.string(try string("string element \(k)", key: key))) }
            } else {
                for _ in 0..<count { out.append(try value(et, key: key, depth: depth + 1)) }
            }
            return .array(et, out)
        }
    }

    static let maxDepth = GGUFFile.maxArrayDepth

    mutating func parse() throws -> Parsed {
        let magic = try load(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {  // "GGUF" read little-endian
            let found = (0..<4).map { String(format: "%02x", raw[$0]) }.joined(separator: " ")
            throw GGUFError(.badMagic, file: file, "not a GGUF file (first bytes \(found), expected 47 47 55 46 \"GGUF\")")
        }
        let version = try load(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw GGUFError(.unsupportedVersion, file: file, "big-endian GGUF files are not supported")
            }
            throw GGUFError(.unsupportedVersion, file: file, "GGUF version \(version) is not supported (expected 2 or 3)")
        }
        let tensorCount64 = try load(UInt64.self, "tensor count")
        let kvCount64 = try load(UInt64.self, "metadata count")
        // Smallest kv: 8 (key length) + 4 (type) + 1 (u8 value). Smallest tensor info: 8 + 4 + 4 + 8.
        guard kvCount64 <= UInt64(remaining / 13) else {
            throw GGUFError(.tooLarge, file: file, "metadata count \(kvCount64) cannot fit in a \(raw.count)-byte file")
        }
        guard tensorCount64 <= UInt64(remaining / 24) else {
            throw GGUFError(.tooLarge, file: file, "tensor count \(tensorCount64) cannot fit in a \(raw.count)-byte file")
        }
        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        for k in 0..<Int(kvCount64) {
            let key = try string("metadata key #\(k)")
            guard metadata[key] == nil else {
                throw GGUFError(.duplicateKey, file: file, key: key, "appears twice")
            }
            let traw = try load(UInt32.self, "value type", key: key)
            guard let t = GGUFValueType(rawValue: traw) else {
                throw GGUFError(.invalidValueType, file: file, key: key, "unknown value type \(traw) at offset \(pos - 4)")
            }
            metadata[key] = try value(t, key: key, depth: 0)
            keys.append(key)
        }
        var alignment = GGUFFile.defaultAlignment
        if let a = metadata["general.alignment"] {
            guard case .uint32(let v) = a, v > 0, v & (v - 1) == 0 else {
                throw GGUFError(.invalidMetadata, file: file, key: "general.alignment", "expected a u32 power of two, found \(a)")
            }
            alignment = Int(v)
        }
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(Int(tensorCount64))
        var seen = Set<String>()
        for k in 0..<Int(tensorCount64) {
            let name = try string("name of tensor #\(k)")
            guard seen.insert(name).inserted else {
                throw GGUFError(.duplicateTensor, file: file, tensor: name, "appears twice in the tensor list")
            }
            let nd = try load(UInt32.self, "dimension count", tensor: name)
            guard nd <= 4 else {
                throw GGUFError(.invalidTensorInfo, file: file, tensor: name, "\(nd) dimensions, at most 4 allowed")
            }
            var dims: [Int] = []
            var count = 1
            for _ in 0..<Int(nd) {
                let d64 = try load(UInt64.self, "dimension", tensor: name)
                guard d64 <= UInt64(Int64.max) else {
                    throw GGUFError(.invalidTensorInfo, file: file, tensor: name, "dimension \(d64) is too large")
                }
                let d = Int(d64)
                let (m, o) = count.multipliedReportingOverflow(by: d)
                guard !o else {
                    throw GGUFError(.invalidTensorInfo, file: file, tensor: name, "element count of dims \(dims + [d]) overflows")
                }
                count = m
                dims.append(d)
            }
            let traw = try load(UInt32.self, "ggml type", tensor: name)
            guard let type = GGMLType(rawValue: traw) else {
                throw GGUFError(.unknownGGMLType, file: file, tensor: name, "unknown ggml type \(traw)")
            }
            let offset64 = try load(UInt64.self, "data offset", tensor: name)
            let (blockElems, blockBytes) = type.blockLayout
            let rowLength = dims.first ?? 1
            guard rowLength % blockElems == 0 else {
                throw GGUFError(.invalidTensorInfo, file: file, tensor: name, "first dimension \(rowLength) is not a multiple of the \(type.name) block size \(blockElems)")
            }
            let (bytes, o2) = (count / blockElems).multipliedReportingOverflow(by: blockBytes)
            guard !o2 else {
                throw GGUFError(.invalidTensorInfo, file: file, tensor: name, "byte size of dims \(dims) overflows")
            }
            guard offset64 <= UInt64(Int64.max) else {
                throw GGUFError(.tensorOutOfBounds, file: file, tensor: name, "data offset \(offset64) is outside the file")
            }
            let offset = Int(offset64)
            guard offset % alignment == 0 else {
                throw GGUFError(.misaligned, file: file, tensor: name, "data offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            tensors.append(GGUFTensorInfo(name: name, type: type, dims: dims, offset: offset, byteCount: bytes, elementCount: count))
        }
        // The data section starts at the next multiple of the alignment.
        let (padded, o3) = pos.addingReportingOverflow(alignment - 1)
        guard !o3 else { throw GGUFError(.tooLarge, file: file, "header end overflows") }
        let dataOffset = padded / alignment * alignment
        for t in tensors {
            let (start, o4) = dataOffset.addingReportingOverflow(t.offset)
            let (end, o5) = start.addingReportingOverflow(t.byteCount)
            guard !o4, !o5, end <= raw.count else {
                throw GGUFError(.tensorOutOfBounds, file: file, tensor: t.name, "\(t.type.name) \(t.dims) needs bytes \(dataOffset)+\(t.offset)..+\(t.byteCount) but the file has \(raw.count) bytes")
            }
        }
        let byOffset = tensors.sorted { ($0.offset, $0.byteCount) < ($1.offset, $1.byteCount) }
        var cursor = 0
        var previous = ""
        for t in byOffset {
            guard t.offset >= cursor || t.byteCount == 0 else {
                throw GGUFError(.overlappingTensors, file: file, tensor: t.name, "data at offset \(t.offset) overlaps tensor '\(previous)' (which ends at \(cursor))")
            }
            if t.offset + t.byteCount > cursor { cursor = t.offset + t.byteCount; previous = t.name }
        }
        return Parsed(version: Int(version), alignment: alignment, dataOffset: dataOffset, keys: keys, metadata: metadata, tensors: tensors)
    }
}
