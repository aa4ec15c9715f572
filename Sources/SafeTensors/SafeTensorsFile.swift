// A memory-mapped .safetensors file (format: 8-byte little-endian header length N, N bytes of
// UTF-8 JSON, then the data region). Tensors are views into the mapping: nothing is copied until
// a caller asks for f32.
//
// Validation rules (mirroring huggingface/safetensors `tensor.rs`):
//  1. the file has at least 8 bytes and N <= headerLimit and 8 + N <= file size;
//  2. the header is a UTF-8 JSON object; `__metadata__` maps strings to strings;
//  3. each tensor has dtype (known), shape (non-negative ints), data_offsets [begin, end];
//  4. end - begin == product(shape) * dtype.size, with checked arithmetic;
//  5. sorted by begin, tensors are contiguous and non-overlapping, start at 0, and the last end
//     equals the data region size (data covers exactly the rest of the file).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
@_exported import StrictJSON

public final class SafeTensorsFile: TensorSource, @unchecked Sendable {
    /// Headers larger than this are refused (the reference implementation uses 100 MB).
    public static let headerLimit = 100_000_000

    public struct Entry: Sendable {
        public var info: TensorInfo
        public var begin: Int   // offset in the data region
        public var end: Int
    }

    public let path: String
    public let metadata: [String: String]
    public private(set) var tensorNames: [String] = []
    public private(set) var entries: [String: Entry] = [:]
    public let fileSize: Int
    public let dataStart: Int              // 8 + N

    private let base: UnsafeMutableRawPointer?
    private let mappedLength: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw SafeTensorsError(.io, file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw SafeTensorsError(.io, file: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError(.io, file: path, "not a regular file")
        }
        let size = Int(st.st_size)
        fileSize = size
        guard size >= 8 else {
            throw SafeTensorsError(.headerTooSmall, file: path, "file is \(size) bytes, expected at least 8")
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw SafeTensorsError(.io, file: path, "cannot mmap: \(String(cString: strerror(errno)))")
        }
        base = p
        mappedLength = size
        do {
            let raw = UnsafeRawBufferPointer(start: p, count: size)
            let n64 = raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
            guard n64 <= UInt64(Self.headerLimit) else {
                throw SafeTensorsError(.headerTooLarge, file: path, "header length \(n64) exceeds the limit of \(Self.headerLimit) bytes")
            }
            let n = Int(n64)
            guard 8 + n <= size else {
                throw SafeTensorsError(.headerTooSmall, file: path, "header length \(n) runs past the end of the \(size)-byte file")
            }
            dataStart = 8 + n
            let header = UnsafeRawBufferPointer(rebasing: raw[8..<(8 + n)])
            let parsed = try Self.parseHeader(header, dataSize: size - 8 - n, file: path)
            metadata = parsed.metadata
            tensorNames = parsed.order
            entries = parsed.entries
        } catch {
            munmap(p, size)
            throw error
        }
    }

    deinit {
        if let base { munmap(base, mappedLength) }
    }

    struct ParsedHeader {
        var metadata: [String: String]
        var order: [String]
        var entries: [String: Entry]
    }

    static func parseHeader(_ bytes: UnsafeRawBufferPointer, dataSize: Int, file: String) throws -> ParsedHeader {
        guard let text = String(validatingUTF8Bytes: bytes) else {
            throw SafeTensorsError(.invalidHeader, file: file, "header is not valid UTF-8")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(text) } catch let e as JSONParseError {
            throw SafeTensorsError(.invalidHeader, file: file, "header is not valid JSON: \(e.message)")
        }
        guard case .object(let pairs) = json else {
            throw SafeTensorsError(.invalidHeader, file: file, "header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        var order: [String] = []
        var seen = Set<String>()
        for (name, value) in pairs {
            guard seen.insert(name).inserted else {
                throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "duplicate name in header")
            }
            if name == "__metadata__" {
                guard case .object(let mpairs) = value else {
                    throw SafeTensorsError(.invalidHeader, file: file, "__metadata__ is not an object of strings")
                }
                for (k, v) in mpairs {
                    guard case .string(let s) = v else {
                        throw SafeTensorsError(.invalidHeader, file: file, "__metadata__['\(k)'] is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard case .object(let fields) = value else {
                throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "entry is not an object")
            }
            var dtypeS: String?; var shape: [Int]?; var offs: [Int]?
            for (k, v) in fields {
                switch k {
                case "dtype":
                    guard case .string(let s) = v else { throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "dtype is not a string") }
                    dtypeS = s
                case "shape":
                    guard let a = v.intArray, a.allSatisfy({ $0 >= 0 }) else {
                        throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "shape is not a list of non-negative integers")
                    }
                    shape = a
                case "data_offsets":
                    guard let a = v.intArray, a.count == 2, a[0] >= 0, a[1] >= 0 else {
                        throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "data_offsets is not [begin, end]")
                    }
                    offs = a
                default:
                    throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "unknown field '\(k)'")
                }
            }
            guard let dtypeS, let shape, let offs else {
                throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "entry needs dtype, shape and data_offsets")
            }
            guard let dtype = DType(rawValue: dtypeS) else {
                throw SafeTensorsError(.unknownDType, file: file, tensor: name, "unknown dtype '\(dtypeS)'")
            }
            var count = 1
            for d in shape {
                let (m, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw SafeTensorsError(.sizeMismatch, file: file, tensor: name, "shape \(shape) overflows") }
                count = m
            }
            let (bytes, o2) = count.multipliedReportingOverflow(by: dtype.size)
            guard !o2 else { throw SafeTensorsError(.sizeMismatch, file: file, tensor: name, "shape \(shape) overflows") }
            guard offs[1] >= offs[0] else {
                throw SafeTensorsError(.invalidOffsets, file: file, tensor: name, "data_offsets [\(offs[0]), \(offs[1])] end before they begin")
            }
            guard offs[1] - offs[0] == bytes else {
                throw SafeTensorsError(.sizeMismatch, file: file, tensor: name, "\(dtype.rawValue) \(shape) needs \(bytes) bytes, data_offsets give \(offs[1] - offs[0])")
            }
            entries[name] = Entry(info: TensorInfo(name: name, dtype: dtype, shape: shape, byteCount: bytes), begin: offs[0], end: offs[1])
            order.append(name)
        }
        // Rule 5: contiguous, non-overlapping, covering the data region exactly.
        let sorted = order.sorted { (entries[$0]!.begin, entries[$0]!.end) < (entries[$1]!.begin, entries[$1]!.end) } // programmer error: names come from entries
        var cursor = 0
        for name in sorted {
            let e = entries[name]! // programmer error: names come from entries
            if e.begin < cursor {
                throw SafeTensorsError(.invalidOffsets, file: file, tensor: name, "data_offsets [\(e.begin), \(e.end)] overlap the previous tensor (which ends at \(cursor))")
            }
            if e.begin > cursor {
                throw SafeTensorsError(.invalidOffsets, file: file, tensor: name, "data_offsets [\(e.begin), \(e.end)] leave a gap after offset \(cursor)")
            }
            cursor = e.end
        }
        guard cursor == dataSize else {
            throw SafeTensorsError(.invalidOffsets, file: file, "tensors cover \(cursor) bytes of data but the file has \(dataSize) bytes after the header")
        }
        return ParsedHeader(metadata: metadata, order: order, entries: entries)
    }

    public func info(_ name: String) -> TensorInfo? { entries[name]?.info }

    /// The tensor's bytes inside the mapping (valid while this object lives).
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let e = entries[name] else {
            throw SafeTensorsError(.missingTensor, file: path, tensor: name, "not in this file")
        }
        return UnsafeRawBufferPointer(start: base! + dataStart + e.begin, count: e.end - e.begin) // programmer error: base is set when init succeeds
    }

    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else {
            throw SafeTensorsError(.missingTensor, file: path, tensor: name, "not in this file")
        }
        let b = try bytes(name)
        do { return try FloatConversion.toFloat32(b, dtype: e.info.dtype, count: e.info.elementCount) }
        catch let err as FloatConversion.Unsupported {
            throw SafeTensorsError(.unsupported, file: path, tensor: name, "cannot read \(err.dtype.rawValue) as float")
        }
    }
}

extension String {
    /// Strict UTF-8 decoding: nil on any invalid sequence (Foundation would substitute U+FFFD).
    init?(validatingUTF8Bytes bytes: UnsafeRawBufferPointer) {
        var it = bytes.makeIterator()
        var out = String.UnicodeScalarView()
        var decoder = UTF8()
        loop: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let s): out.append(s)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(out)
    }
}
