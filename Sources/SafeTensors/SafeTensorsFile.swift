// A memory-mapped .safetensors file. Format: 8-byte little-endian header length N, N bytes of
// UTF-8 JSON, then the data region. Tensors are views into the mapping: nothing is copied until a
// caller asks for f32.
//
// Validation rules (as strict as huggingface/safetensors `tensor.rs`, one error kind per rule):
//  1. the file has at least 8 bytes (headerTooSmall); N <= headerLimit (headerTooLarge);
//     8 + N <= file size (invalidHeaderLength);
//  2. the header is valid UTF-8 (headerNotUTF8), starts with '{' (invalidHeaderStart), is valid
//     JSON (headerNotJSON) and an object; names are unique (duplicateName); `__metadata__` maps
//     strings to strings, or is null as the reference reader allows (invalidHeader);
//  3. each tensor entry has exactly dtype (a known DType, else unknownDType), shape (non-negative
//     integers) and data_offsets [begin, end] (non-negative integers) (invalidHeader);
//  4. product(shape) * dtype.size does not overflow (overflow); end >= begin (invalidOffsets);
//     end - begin == product(shape) * dtype.size (sizeMismatch);
//  5. sorted by (begin, end), tensors start at 0, are contiguous and non-overlapping
//     (invalidOffsets), and the last end equals the size of the data region: data covers exactly
//     the rest of the file (incompleteData).
// Trailing spaces in the header (writers pad it to a multiple of 8) are plain JSON whitespace.

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
    public let tensorNames: [String]          // header order
    public let entries: [String: Entry]
    public let fileSize: Int
    public let dataStart: Int                 // 8 + N

    private enum Storage {
        case mapped(UnsafeMutableRawPointer, Int)
        case owned(UnsafeMutableRawPointer, Int)
    }
    private let storage: Storage
    private let base: UnsafeRawPointer

    /// Maps and validates the file at `path`.
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
        guard size >= 8 else {
            throw SafeTensorsError(.headerTooSmall, file: path, "file is \(size) bytes, expected at least 8 (the header length)")
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SafeTensorsError(.io, file: path, "cannot mmap: \(String(cString: strerror(errno)))")
        }
        let layout: Layout
        do {
            layout = try Self.validate(UnsafeRawBufferPointer(start: p, count: size), file: path)
        } catch {
            munmap(p, size)
            throw error
        }
        storage = .mapped(p, size)
        FileMappings.register(UnsafeRawPointer(p), size, fd: fcntl(fd, F_DUPFD_CLOEXEC, 0))
        base = UnsafeRawPointer(p)
        fileSize = size
        dataStart = layout.dataStart
        metadata = layout.metadata
        tensorNames = layout.order
        entries = layout.entries
    }

    /// Validates an in-memory copy of a file (tests, small blobs). `name` is used in errors.
    public init(bytes: [UInt8], name: String) throws {
        path = name
        guard bytes.count >= 8 else {
            throw SafeTensorsError(.headerTooSmall, file: name, "file is \(bytes.count) bytes, expected at least 8 (the header length)")
        }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) } // programmer error: count >= 8
        let layout: Layout
        do {
            layout = try Self.validate(UnsafeRawBufferPointer(start: p, count: bytes.count), file: name)
        } catch {
            p.deallocate()
            throw error
        }
        storage = .owned(p, bytes.count)
        base = UnsafeRawPointer(p)
        fileSize = bytes.count
        dataStart = layout.dataStart
        metadata = layout.metadata
        tensorNames = layout.order
        entries = layout.entries
    }

    deinit {
        switch storage {
        case .mapped(let p, let n): FileMappings.unregister(UnsafeRawPointer(p)); munmap(p, n)
        case .owned(let p, _): p.deallocate()
        }
    }

    struct Layout {
        var dataStart: Int
        var metadata: [String: String]
        var order: [String]
        var entries: [String: Entry]
    }

    /// Rules 1-5 on the whole file's bytes.
    static func validate(_ raw: UnsafeRawBufferPointer, file: String) throws -> Layout {
        let size = raw.count
        guard size >= 8 else {
            throw SafeTensorsError(.headerTooSmall, file: file, "file is \(size) bytes, expected at least 8 (the header length)")
        }
        let n64 = raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard n64 <= UInt64(headerLimit) else {
            throw SafeTensorsError(.headerTooLarge, file: file, "header length \(n64) exceeds the limit of \(headerLimit) bytes")
        }
        let n = Int(n64)
        guard n <= size - 8 else {
            throw SafeTensorsError(.invalidHeaderLength, file: file, "header length \(n) runs past the end of the \(size)-byte file")
        }
        let header = UnsafeRawBufferPointer(rebasing: raw[8..<(8 + n)])
        let parsed = try parseHeader(header, dataSize: size - 8 - n, file: file)
        return Layout(dataStart: 8 + n, metadata: parsed.metadata, order: parsed.order, entries: parsed.entries)
    }

    struct ParsedHeader {
        var metadata: [String: String]
        var order: [String]
        var entries: [String: Entry]
    }

    static func parseHeader(_ bytes: UnsafeRawBufferPointer, dataSize: Int, file: String) throws -> ParsedHeader {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw SafeTensorsError(.headerNotUTF8, file: file, "header is not valid UTF-8")
        }
        guard bytes.first == UInt8(ascii: "{") else {
            throw SafeTensorsError(.invalidHeaderStart, file: file, "header does not start with '{'")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(bytes: bytes) } catch {
            throw SafeTensorsError(.headerNotJSON, file: file, "header is not valid JSON: \(error)")
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
                throw SafeTensorsError(.duplicateName, file: file, tensor: name, "name appears twice in the header")
            }
            if name == "__metadata__" {
                if value.isNull { continue } // the reference reader takes null as "no metadata"
                guard case .object(let mpairs) = value else {
                    throw SafeTensorsError(.invalidHeader, file: file, "__metadata__ is not an object of strings")
                }
                for (k, v) in mpairs {
                    guard case .string(let s) = v else {
                        throw SafeTensorsError(.invalidHeader, file: file, "__metadata__['\(k)'] is not a string")
                    }
                    guard metadata.updateValue(s, forKey: k) == nil else {
                        throw SafeTensorsError(.duplicateName, file: file, "__metadata__ key '\(k)' appears twice")
                    }
                }
                continue
            }
            let entry = try parseEntry(name: name, value: value, file: file)
            entries[name] = entry
            order.append(name)
        }
        // Rule 5: sorted by offsets, contiguous, non-overlapping, covering the data region exactly.
        var spans = order.map { (name: $0, begin: entries[$0]!.begin, end: entries[$0]!.end) } // programmer error: names come from entries
        spans.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for s in spans {
            if s.begin < cursor {
                throw SafeTensorsError(.invalidOffsets, file: file, tensor: s.name, "data_offsets [\(s.begin), \(s.end)] overlap the previous tensor, which ends at \(cursor)")
            }
            if s.begin > cursor {
                throw SafeTensorsError(.invalidOffsets, file: file, tensor: s.name, "data_offsets [\(s.begin), \(s.end)] leave a gap after offset \(cursor)")
            }
            if s.end > dataSize {
                throw SafeTensorsError(.invalidOffsets, file: file, tensor: s.name, "data_offsets [\(s.begin), \(s.end)] run past the \(dataSize) bytes of data after the header")
            }
            cursor = s.end
        }
        guard cursor == dataSize else {
            throw SafeTensorsError(.incompleteData, file: file, "tensors cover \(cursor) bytes of data but the file has \(dataSize) bytes after the header")
        }
        return ParsedHeader(metadata: metadata, order: order, entries: entries)
    }

    static func parseEntry(name: String, value: JSONValue, file: String) throws -> Entry {
        guard case .object(let fields) = value else {
            throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "entry is not an object")
        }
        var dtypeS: String?; var shape: [Int]?; var offs: [Int]?
        for (k, v) in fields {
            switch k {
            case "dtype":
                guard dtypeS == nil, case .string(let s) = v else {
                    throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "dtype is not a single string")
                }
                dtypeS = s
            case "shape":
                guard shape == nil, let a = v.intArray, a.allSatisfy({ $0 >= 0 }) else {
                    throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "shape is not a single list of non-negative integers")
                }
                shape = a
            case "data_offsets":
                guard offs == nil, let a = v.intArray, a.count == 2, a[0] >= 0, a[1] >= 0 else {
                    throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "data_offsets is not a single [begin, end] of non-negative integers")
                }
                offs = a
            default:
                throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "unknown field '\(k)' (expected dtype, shape, data_offsets)")
            }
        }
        guard let dtypeS, let shape, let offs else {
            throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "entry needs dtype, shape and data_offsets")
        }
        guard let dtype = DType(rawValue: dtypeS) else {
            throw SafeTensorsError(.unknownDType, file: file, tensor: name, "unknown dtype '\(dtypeS)'")
        }
        guard let bytes = DType.checkedByteCount(shape: shape, dtype: dtype) else {
            throw SafeTensorsError(.overflow, file: file, tensor: name, "\(dtype.rawValue) \(shape) overflows the byte count")
        }
        let (begin, end) = (offs[0], offs[1])
        guard end >= begin else {
            throw SafeTensorsError(.invalidOffsets, file: file, tensor: name, "data_offsets [\(begin), \(end)] end before they begin")
        }
        guard end - begin == bytes else {
            throw SafeTensorsError(.sizeMismatch, file: file, tensor: name, "\(dtype.rawValue) \(shape) needs \(bytes) bytes, data_offsets [\(begin), \(end)] give \(end - begin)")
        }
        return Entry(info: TensorInfo(name: name, dtype: dtype, shape: shape, byteCount: bytes), begin: begin, end: end)
    }

    // MARK: access

    public func info(_ name: String) -> TensorInfo? { entries[name]?.info }

    /// Infos in header order.
    public var infos: [TensorInfo] { tensorNames.compactMap { entries[$0]?.info } }

    /// The whole file (the mapping), valid while this object lives.
    public var fileBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: fileSize) }

    /// The tensor's bytes inside the mapping (zero-copy; valid while this object lives).
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let e = entries[name] else {
            throw SafeTensorsError(.missingTensor, file: path, tensor: name, "not in this file")
        }
        return UnsafeRawBufferPointer(start: base + dataStart + e.begin, count: e.end - e.begin)
    }

    /// Drops the tensor's pages from this process's resident set. The mapping is read-only and
    /// private, so nothing is lost: touching the bytes again reads them from the file. Call it
    /// after consuming a tensor of a large checkpoint (file-backed pages count in RSS).
    public func releasePages(_ name: String) {
        guard case .mapped = storage, let e = entries[name] else { return }
        FileMappings.release(base + dataStart + e.begin, e.end - e.begin)
    }

    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else {
            throw SafeTensorsError(.missingTensor, file: path, tensor: name, "not in this file")
        }
        let n = e.info.elementCount
        return try [Float](unsafeUninitializedCapacity: n) { out, initialized in
            try floats(name, into: out)
            initialized = n
        }
    }

    /// Converts the tensor to f32 into `out` (which must hold exactly elementCount values).
    public func floats(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let e = entries[name] else {
            throw SafeTensorsError(.missingTensor, file: path, tensor: name, "not in this file")
        }
        guard out.count == e.info.elementCount else {
            throw SafeTensorsError(.shapeMismatch, file: path, tensor: name, "buffer holds \(out.count) floats, tensor has \(e.info.elementCount)")
        }
        FloatConversion.convert(try bytes(name), dtype: e.info.dtype, into: out)
        releasePages(name) // the f32 copy is what the caller keeps
    }
}

/// Read-only file mappings alive in this process (SafeTensorsFile), so the writer can tell a
/// `.bytes` payload that lives in a mapped file (whose pages it may drop after writing them,
/// keeping a copy of a 100 GB checkpoint at a flat resident set) from one in ordinary memory
/// (where MADV_DONTNEED would destroy the data).
enum FileMappings {
    /// Each mapping keeps a descriptor of its file (owned here, closed on unregister), so the
    /// writer can copy a mapped tensor in the kernel (`sendfile`) instead of through the mapping.
    nonisolated(unsafe) private static var regions: [(start: UInt, end: UInt, fd: Int32)] = []
    private static let lock = NSLock()

    static func register(_ p: UnsafeRawPointer, _ n: Int, fd: Int32 = -1) {
        lock.lock(); defer { lock.unlock() }
        regions.append((UInt(bitPattern: p), UInt(bitPattern: p) + UInt(n), fd))
    }

    static func unregister(_ p: UnsafeRawPointer) {
        lock.lock(); defer { lock.unlock() }
        for r in regions where r.start == UInt(bitPattern: p) && r.fd >= 0 { close(r.fd) }
        regions.removeAll { $0.start == UInt(bitPattern: p) }
    }

    /// Whether [p, p + n) lies inside one registered mapping.
    static func contains(_ p: UnsafeRawPointer, _ n: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let a = UInt(bitPattern: p), b = a + UInt(n)
        return regions.contains { $0.start <= a && b <= $0.end }
    }

    /// The file descriptor and file offset behind [p, p + n) when it lies inside one registered
    /// whole-file mapping (offset 0) whose descriptor is open. The descriptor stays valid while
    /// the mapping's owner is alive.
    static func origin(_ p: UnsafeRawPointer, _ n: Int) -> (fd: Int32, offset: Int)? {
        lock.lock(); defer { lock.unlock() }
        let a = UInt(bitPattern: p), b = a + UInt(n)
        guard let r = regions.first(where: { $0.start <= a && b <= $0.end }), r.fd >= 0 else { return nil }
        return (r.fd, Int(a - r.start))
    }

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// MADV_DONTNEED on the whole pages inside [p, p + n) of a registered mapping.
    static func release(_ p: UnsafeRawPointer, _ n: Int) {
        guard n > 0, contains(p, n) else { return }
        let a = (UInt(bitPattern: p) + UInt(pageSize) - 1) & ~UInt(pageSize - 1)
        let b = (UInt(bitPattern: p) + UInt(n)) & ~UInt(pageSize - 1)
        guard b > a, let start = UnsafeMutableRawPointer(bitPattern: a) else { return }
        _ = madvise(start, Int(b - a), Int32(MADV_DONTNEED))
    }
}

/// Drops the pages of `bytes` from the resident set when they lie in a read-only file mapping of
/// this module (a slice of `SafeTensorsFile.bytes`), so a reader streaming through a large tensor
/// keeps one block resident. Anything else is left alone.
public func releaseMappedPages(_ bytes: UnsafeRawBufferPointer) {
    guard let p = bytes.baseAddress else { return }
    FileMappings.release(p, bytes.count)
}
