// Writing safetensors files and Hugging Face checkpoint folders, streaming one tensor at a time.
//
// File layout written (byte-identical to Python `safetensors` for the same tensors and metadata):
//  1. tensors sorted by dtype, widest first (I64, F64, F32, I32, BF16, F16, I16, F8_E4M3, F8_E5M2,
//     I8, U8, BOOL, the order of huggingface/safetensors `Dtype`), then by name, so every tensor
//     starts at a multiple of its element size;
//  2. header: compact JSON, `__metadata__` first (always with "format": "pt"), then the tensors in
//     that order, padded with spaces to a multiple of 8 bytes;
//  3. data: the tensors back to back, produced and written one at a time.
//
// Checkpoint folders (CheckpointWriter):
//  4. shards follow huggingface_hub `split_state_dict_into_shards_factory` in the order tensors
//     were added: a tensor larger than maxShardSize gets a shard of its own; otherwise a new shard
//     starts when the tensor would push the current one over the limit;
//  5. one shard is written as `model.safetensors` (no index); several as
//     `model-00001-of-0000N.safetensors` plus model.safetensors.index.json
//     ({"metadata": {"total_size": sum of tensor bytes}, "weight_map": {name: shard}}, keys sorted,
//     2-space indent, as transformers writes it);
//  6. everything goes to `.<target>.tmp-<pid>` beside the target, each file fsync'd, then the folder
//     is renamed into place (an existing target, with force, is moved aside first and deleted only
//     after the rename); the temp folder is removed on error, on abort() and when the writer is
//     dropped uncommitted;
//  7. the writer never writes over its inputs: the target may not be, or contain, a source path.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A metadata value known only once the tensors are written (e.g. a checksum computed meanwhile on
/// another thread). The header is written last; until then it holds `placeholder`, and `value`,
/// asked for once after the data, must serialize to the same number of bytes (a hex digest in
/// place of as many zeros).
public struct LateMetadata {
    public var placeholder: String
    public var value: () throws -> String
    public init(placeholder: String, value: @escaping () throws -> String) {
        self.placeholder = placeholder; self.value = value
    }
}

/// Where a tensor's bytes come from when the writer needs them.
public enum TensorPayload {
    /// Bytes inside memory the owner keeps alive until commit (e.g. a mapped source tensor);
    /// written without a copy.
    case bytes(UnsafeRawBufferPointer)
    /// A closure producing the bytes when the tensor is written (after `add`, during `commit`),
    /// so an edit holds one tensor at a time.
    case produce(() throws -> [UInt8])
    /// A closure that writes the tensor in pieces, in order, through `emit` (as many calls as it
    /// likes), so an edit of a tensor larger than memory should hold (a 128256 x 8192 embedding
    /// is 4 GB as f32) keeps one chunk of rows at a time. The pieces must add up to exactly the
    /// tensor's byte size.
    case stream((_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void)
}

public struct TensorRecord {
    public var name: String
    public var dtype: DType
    public var shape: [Int]          // [] for a scalar
    public var source: TensorPayload

    public init(name: String, dtype: DType, shape: [Int], source: TensorPayload) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.source = source
    }

    /// f32 values stored as `dtype` (F32, F16, BF16 or F64), encoded when written. The array is
    /// held until commit: fine for vectors and edited tensors, while untouched weights of a big
    /// model should be `.bytes` views of the mapped source (or a `.produce` that computes late).
    public init(name: String, shape: [Int], floats: [Float], as dtype: DType = .F32) {
        self.init(name: name, dtype: dtype, shape: shape, source: .produce {
            try floats.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype) }
        })
    }
}

// MARK: - single files

/// Writes one .safetensors file atomically: a temp file `.<name>.tmp-<pid>` beside `path`,
/// fsync'd, then renamed over `path`. Refuses when `path` is one of `sources`, or exists and
/// `overwrite` is false.
public func writeSafeTensors(path: String, tensors: [TensorRecord], metadata: [String: String] = [:],
                             overwrite: Bool = true, sources: [String] = []) throws {
    let target = absolutePath(path)
    let parent = (target as NSString).deletingLastPathComponent
    let base = (target as NSString).lastPathComponent
    try checkNotSource(target: target, sources: sources)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
        throw SafeTensorsError(.io, file: target, "parent folder \(parent) does not exist")
    }
    if FileManager.default.fileExists(atPath: target, isDirectory: &isDir) {
        if isDir.boolValue { throw SafeTensorsError(.targetExists, file: target, "is a folder, expected a file path") }
        if !overwrite { throw SafeTensorsError(.targetExists, file: target, "already exists (use --force to replace it)") }
    }
    let plan = try SafeTensorsLayout(tensors, metadata: metadata, file: target)
    let temp = (parent as NSString).appendingPathComponent(".\(base).tmp-\(getpid())")
    unlink(temp)
    do {
        try plan.write(to: temp, displayName: target)
        guard rename(temp, target) == 0 else { throw posixError(target, "cannot rename \(temp) into place") }
        try fsyncDirectory(parent)
    } catch {
        unlink(temp)
        throw error
    }
}

// MARK: - checkpoint folders

public final class CheckpointWriter {
    public let target: String            // absolute path of the output folder
    public let temporaryDirectory: String
    public let force: Bool
    public let maxShardSize: Int?
    public let metadata: [String: String]
    public let sources: [String]
    /// After commit: the safetensors files written (file names inside the target), in shard order.
    public private(set) var shardFileNames: [String] = []

    private enum State { case open, committed, aborted }
    private var state = State.open
    private var records: [TensorRecord] = []
    private var names = Set<String>()
    private var extraFiles = Set<String>()

    private let lateMetadata: [String: LateMetadata]
    private var resolvedLate: [String: String]?
    private var lateFiles: [(name: String, contents: () throws -> [UInt8])] = []

    /// `lateMetadata` values go in every shard's header with the `metadata`, resolved after the
    /// tensors are written (see LateMetadata).
    public init(target: String, force: Bool = false, maxShardSize: Int? = nil,
                metadata: [String: String] = [:], lateMetadata: [String: LateMetadata] = [:],
                sources: [String] = []) throws {
        self.target = absolutePath(target)
        self.force = force
        self.metadata = metadata
        self.lateMetadata = lateMetadata
        self.sources = sources
        if let m = maxShardSize, m <= 0 {
            throw SafeTensorsError(.invalidTensor, file: self.target, "max shard size must be positive, found \(m)")
        }
        self.maxShardSize = maxShardSize
        let parent = (self.target as NSString).deletingLastPathComponent
        let base = (self.target as NSString).lastPathComponent
        temporaryDirectory = (parent as NSString).appendingPathComponent(".\(base).tmp-\(getpid())")
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
            throw SafeTensorsError(.io, file: self.target, "parent folder \(parent) does not exist")
        }
        try checkTarget()
        guard ActiveTemporaries.claim(temporaryDirectory) else {
            state = .aborted
            throw SafeTensorsError(.targetExists, file: self.target, "another writer of this process is already writing it")
        }
        try? FileManager.default.removeItem(atPath: temporaryDirectory) // left by a dead process that had our pid
        guard mkdir(temporaryDirectory, 0o755) == 0 else {
            let err = posixError(temporaryDirectory, "cannot create the temporary folder")
            ActiveTemporaries.release(temporaryDirectory)
            state = .aborted
            throw err
        }
    }

    deinit { if state == .open { removeTemporary() } }

    /// Called after each tensor is written during commit (name, 1-based count, total), e.g. to
    /// show progress on stderr.
    public var onTensorWritten: ((_ name: String, _ done: Int, _ total: Int) -> Void)?

    /// Queues a tensor; its bytes are read or produced during commit(). Names must be unique.
    public func add(_ record: TensorRecord) throws {
        try requireOpen()
        try validate(record, file: target)
        guard names.insert(record.name).inserted else {
            throw SafeTensorsError(.invalidTensor, file: target, tensor: record.name, "added twice")
        }
        records.append(record)
    }

    public func add(_ records: [TensorRecord]) throws {
        for r in records { try add(r) }
    }

    /// Writes a non-tensor file (config.json, steering_recipe.json...) into the output folder now.
    public func addFile(name: String, contents: [UInt8]) throws {
        try requireOpen()
        _ = try extraFilePath(name)
        try addFileUnchecked(name, contents)
    }

    /// A non-tensor file whose contents are made during commit(), after the shards (e.g. a model
    /// card quoting late metadata values).
    public func addLateFile(name: String, contents: @escaping () throws -> [UInt8]) throws {
        try requireOpen()
        _ = try extraFilePath(name)
        lateFiles.append((name, contents))
    }

    /// Copies a file (tokenizer.json, generation_config.json...) into the output folder now.
    public func copyFile(from source: String, as name: String) throws {
        try requireOpen()
        let path = try extraFilePath(name)
        let inFD = open(source, O_RDONLY | O_CLOEXEC)
        guard inFD >= 0 else { throw posixError(source, "cannot open") }
        defer { close(inFD) }
        let outFD = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard outFD >= 0 else { throw posixError(path, "cannot create") }
        defer { close(outFD) }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(inFD, buffer.baseAddress, chunk)
            if n < 0 { if errno == EINTR { continue }; throw posixError(source, "cannot read") }
            if n == 0 { break }
            try writeAll(outFD, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path)
        }
        guard fsync(outFD) == 0 else { throw posixError(path, "cannot fsync") }
    }

    /// Writes the shards (and the index), then renames the folder into place. On error the
    /// temporary folder is removed and the target is left as it was.
    public func commit() throws {
        try requireOpen()
        do {
            try writeShards()
            for f in lateFiles { try addFileUnchecked(f.name, try f.contents()) }
            try fsyncDirectory(temporaryDirectory)
            try checkTarget()
            try moveIntoPlace()
            ActiveTemporaries.release(temporaryDirectory)
            state = .committed
        } catch {
            abort()
            throw error
        }
    }

    /// Drops everything written so far (the target is untouched). Safe to call more than once.
    public func abort() {
        if state == .open { removeTemporary() }
        if state != .committed { state = .aborted }
    }

    /// Parses a shard size as transformers/huggingface_hub do: "5GB" (10^9), "500MB", "2GiB" (2^30),
    /// "100KB", or a plain number of bytes. Nil when malformed or not positive.
    public static func parseSize(_ text: String) -> Int? {
        let s = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("TIB", 0x1p40), ("GIB", 0x1p30), ("MIB", 0x1p20), ("KIB", 0x1p10),
                                         ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1)]
        let upper = s.uppercased()
        var number = upper, scale = 1.0
        for (u, f) in units where upper.hasSuffix(u) {
            number = String(upper.dropLast(u.count)).trimmingCharacters(in: .whitespaces); scale = f; break
        }
        guard let v = Double(number), v.isFinite, v > 0 else { return nil }
        let bytes = (v * scale).rounded(.down)
        guard bytes >= 1, bytes < 0x1p62 else { return nil }
        return Int(bytes)
    }

    /// Shard assignment (rule 4): indices into `sizes`, grouped by shard.
    public static func planShards(sizes: [Int], maxShardSize: Int?) -> [[Int]] {
        guard let limit = maxShardSize else { return sizes.isEmpty ? [[]] : [Array(sizes.indices)] }
        var shards: [[Int]] = []
        var current: [Int] = []
        var currentSize = 0
        for (k, size) in sizes.enumerated() {
            if size > limit { shards.append([k]); continue }
            if currentSize + size > limit && !current.isEmpty {
                shards.append(current); current = []; currentSize = 0
            }
            current.append(k); currentSize += size
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }
        return shards
    }

    // MARK: internals

    private func requireOpen() throws {
        guard state == .open else {
            throw SafeTensorsError(.io, file: target, state == .committed ? "writer already committed" : "writer was aborted")
        }
    }

    private func removeTemporary() {
        try? FileManager.default.removeItem(atPath: temporaryDirectory)
        ActiveTemporaries.release(temporaryDirectory)
    }

    private func checkTarget() throws {
        try checkNotSource(target: target, sources: sources)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDir) {
            guard force else {
                throw SafeTensorsError(.targetExists, file: target, "already exists (use --force to replace it)")
            }
            guard isDir.boolValue else {
                throw SafeTensorsError(.targetExists, file: target, "exists and is not a folder; refusing to replace it")
            }
        }
    }

    private func extraFilePath(_ name: String) throws -> String {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.contains("\0") else {
            throw SafeTensorsError(.io, file: target, "'\(name)' is not a plain file name")
        }
        guard !isReservedName(name) else {
            throw SafeTensorsError(.io, file: target, "'\(name)' is written by the checkpoint writer itself")
        }
        guard extraFiles.insert(name).inserted else {
            throw SafeTensorsError(.io, file: target, "file '\(name)' added twice")
        }
        return (temporaryDirectory as NSString).appendingPathComponent(name)
    }

    private func isReservedName(_ name: String) -> Bool {
        if name == "model.safetensors" || name == "model.safetensors.index.json" { return true }
        return name.hasPrefix("model-") && name.hasSuffix(".safetensors") && name.contains("-of-")
    }

    private func writeShards() throws {
        let sizes = records.map { DType.checkedByteCount(shape: $0.shape, dtype: $0.dtype) ?? 0 } // validated in add
        let plan = Self.planShards(sizes: sizes, maxShardSize: maxShardSize)
        let n = plan.count
        var weightMap: [(String, JSONValue)] = []
        var fileNames: [String] = []
        var done = 0
        // Every shard's data is written first and the headers last, once late metadata values
        // are known (a checksum computed meanwhile must not hold up the next shard).
        var pending: [(file: PendingFile, display: String, layout: SafeTensorsLayout)] = []
        defer { for p in pending { p.file.close() } }   // only left over on error
        var withPlaceholders = metadata
        for (key, v) in lateMetadata { withPlaceholders[key] = v.placeholder }
        for (k, members) in plan.enumerated() {
            let name = n == 1 ? "model.safetensors" : String(format: "model-%05d-of-%05d.safetensors", k + 1, n)
            let display = (target as NSString).appendingPathComponent(name)
            let layout = try SafeTensorsLayout(members.map { records[$0] }, metadata: withPlaceholders, file: display)
            let path = (temporaryDirectory as NSString).appendingPathComponent(name)
            let file = try layout.writeData(to: path, displayName: display) { tensor in
                done += 1
                self.onTensorWritten?(tensor, done, self.records.count)
            }
            pending.append((file, display, layout))
            for m in members { weightMap.append((records[m].name, .string(name))) }
            fileNames.append(name)
        }
        var final = metadata
        for (key, v) in try resolveLateMetadata() { final[key] = v }
        while let p = pending.first {
            pending.removeFirst()
            try p.layout.finish(p.file, displayName: p.display, header: try p.layout.makeHeader(metadata: final))
        }
        if n > 1 {
            weightMap.sort { $0.0 < $1.0 }
            let total = sizes.reduce(0, +)
            let index = JSONValue.object([
                ("metadata", .object([("total_size", .int(total))])),
                ("weight_map", .object(weightMap)),
            ])
            try addFileUnchecked("model.safetensors.index.json", Array((index.serialized(pretty: true) + "\n").utf8))
        }
        shardFileNames = fileNames
    }

    /// The late metadata values, asked for once.
    public func resolveLateMetadata() throws -> [String: String] {
        if let r = resolvedLate { return r }
        var r: [String: String] = [:]
        for (k, v) in lateMetadata { r[k] = try v.value() }
        resolvedLate = r
        return r
    }

    private func addFileUnchecked(_ name: String, _ contents: [UInt8]) throws {
        let path = (temporaryDirectory as NSString).appendingPathComponent(name)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw posixError(path, "cannot create") }
        defer { close(fd) }
        try contents.withUnsafeBytes { try writeAll(fd, $0, path) }
        guard fsync(fd) == 0 else { throw posixError(path, "cannot fsync") }
    }

    private func moveIntoPlace() throws {
        let parent = (target as NSString).deletingLastPathComponent
        if FileManager.default.fileExists(atPath: target) {
            // force (checked by checkTarget): move the old folder aside, put the new one in place,
            // and delete the old one only once the new one is there.
            let old = (parent as NSString).appendingPathComponent(".\((target as NSString).lastPathComponent).old-\(getpid())")
            try? FileManager.default.removeItem(atPath: old)
            guard rename(target, old) == 0 else { throw posixError(target, "cannot move the existing folder aside") }
            guard rename(temporaryDirectory, target) == 0 else {
                let err = posixError(target, "cannot rename \(temporaryDirectory) into place")
                _ = rename(old, target)
                throw err
            }
            try? FileManager.default.removeItem(atPath: old)
        } else {
            guard rename(temporaryDirectory, target) == 0 else {
                throw posixError(target, "cannot rename \(temporaryDirectory) into place")
            }
        }
        try fsyncDirectory(parent)
    }
}

/// Temporary folders being written by live CheckpointWriters of this process (two writers to the
/// same target would share `.<target>.tmp-<pid>`).
enum ActiveTemporaries {
    nonisolated(unsafe) private static var paths = Set<String>()
    private static let lock = NSLock()
    static func claim(_ p: String) -> Bool { lock.lock(); defer { lock.unlock() }; return paths.insert(p).inserted }
    static func release(_ p: String) { lock.lock(); defer { lock.unlock() }; paths.remove(p) }
}

// MARK: - one file's layout and writing

/// One safetensors file's bytes in memory (same layout and checks as `writeSafeTensors`), for
/// small files that travel inside something else (a checkpoint's vectors file, an extract result).
public func safeTensorsData(tensors: [TensorRecord], metadata: [String: String] = [:]) throws -> [UInt8] {
    let layout = try SafeTensorsLayout(tensors, metadata: metadata, file: "<memory>")
    var out: [UInt8] = []
    try layout.emit(displayName: "<memory>") { out.append(contentsOf: $0) }
    return out
}

/// The header and tensor order of one safetensors file (rules 1-2), validated.
struct SafeTensorsLayout {
    var ordered: [TensorRecord]
    var offsets: [Int]         // data offset of each tensor of `ordered` (from the data start)
    var header: [UInt8]        // padded JSON
    var file: String

    init(_ tensors: [TensorRecord], metadata: [String: String], file: String) throws {
        self.file = file
        var seen = Set<String>()
        for t in tensors {
            try validate(t, file: file)
            guard seen.insert(t.name).inserted else {
                throw SafeTensorsError(.invalidTensor, file: file, tensor: t.name, "added twice")
            }
        }
        ordered = tensors.sorted {
            let (a, b) = (dtypeRank($0.dtype), dtypeRank($1.dtype))
            return a != b ? a > b : $0.name < $1.name
        }
        offsets = []
        var offset = 0
        for t in ordered {
            let size = DType.checkedByteCount(shape: t.shape, dtype: t.dtype) ?? 0 // validated above
            let (end, o) = offset.addingReportingOverflow(size)
            guard !o else { throw SafeTensorsError(.overflow, file: file, tensor: t.name, "data offsets overflow") }
            offsets.append(offset)
            offset = end
        }
        header = []
        header = try makeHeader(metadata: metadata)
    }

    /// The padded header JSON for these tensors with `metadata`.
    func makeHeader(metadata: [String: String]) throws -> [UInt8] {
        var meta: [(String, JSONValue)] = [("format", .string("pt"))]
        for k in metadata.keys.sorted() where k != "format" { meta.append((k, .string(metadata[k]!))) } // programmer error: key from keys
        var pairs: [(String, JSONValue)] = [("__metadata__", .object(meta))]
        for (t, offset) in zip(ordered, offsets) {
            let size = DType.checkedByteCount(shape: t.shape, dtype: t.dtype) ?? 0 // validated in init
            pairs.append((t.name, .object([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.map { .int($0) })),
                ("data_offsets", .array([.int(offset), .int(offset + size)])),
            ])))
        }
        var h = Array(JSONValue.object(pairs).serialized().utf8)
        h.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - h.count % 8) % 8))
        guard h.count <= SafeTensorsFile.headerLimit else {
            throw SafeTensorsError(.headerTooLarge, file: file, "header would be \(h.count) bytes, over the limit of \(SafeTensorsFile.headerLimit)")
        }
        return h
    }

    /// Writes the file at `path` (created new, fsync'd): `writeData` then `finish`.
    func write(to path: String, displayName: String) throws {
        let file = try writeData(to: path, displayName: displayName)
        do {
            try finish(file, displayName: displayName, header: header)
        } catch {
            unlink(path)
            throw error
        }
    }

    /// The first bytes of the file: the header's length (little-endian u64), then the header.
    static func filePrefix(_ header: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { [UInt8]($0) } + header
    }

    /// Bytes of the data section.
    var dataSize: Int {
        guard let last = ordered.last, let o = offsets.last else { return 0 }
        return o + (DType.checkedByteCount(shape: last.shape, dtype: last.dtype) ?? 0) // validated in init
    }

    /// Creates the file at `path` and writes every tensor at its offset, leaving the final header
    /// for `finish` (so late metadata can be filled in once all shards are written). With direct
    /// I/O (DirectFileStream) the file is produced front to back: length prefix and placeholder
    /// header, then each tensor, mapped source tensors read with pread from their file, edited
    /// ones produced or streamed. Without it (the file system refuses O_DIRECT), see
    /// `writeBuffered`. `written` is called on this thread once per tensor, in completion order.
    /// On error the file is closed and removed.
    func writeData(to path: String, displayName: String, written: (String) -> Void = { _ in }) throws -> PendingFile {
        let headBytes = 8 + header.count
        guard let stream = try DirectFileStream.create(path: path, logicalSize: headBytes + dataSize, headBytes: headBytes) else {
            return PendingFile(path: path, descriptor: try writeBuffered(to: path, displayName: displayName, written: written))
        }
        do {
            try Self.filePrefix(header).withUnsafeBytes { try stream.append($0) }
            for t in ordered {
                let size = DType.checkedByteCount(shape: t.shape, dtype: t.dtype) ?? 0 // validated in init
                if case .bytes(let b) = t.source, size > 0, let p = b.baseAddress, let origin = FileMappings.origin(p, size) {
                    try stream.append(from: origin.fd, offset: origin.offset, count: size, tensor: t.name)
                } else {
                    try emitTensor(t, displayName: displayName) { try stream.append($0) }
                }
                written(t.name)
            }
            try stream.finishData()
        } catch {
            stream.abandon()
            unlink(path)
            throw error
        }
        return PendingFile(path: path, direct: stream)
    }

    /// `writeData` through the page cache, returning the open descriptor. Every tensor's place is
    /// fixed by the header, so the data goes in two lanes at once: tensors lying in a mapped
    /// source file are copied file to file by the kernel (sendfile, as `cp` copies) on a second
    /// thread, while this thread produces the others (edited tensors) and writes them with pwrite.
    func writeBuffered(to path: String, displayName: String, written: (String) -> Void) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw posixError(path, "cannot create") }
        var ok = false
        defer { if !ok { close(fd); unlink(path) } }
        let dataStart = 8 + header.count

        var copies: [KernelCopyLane.Job] = []
        var others: [Int] = []
        for (k, t) in ordered.enumerated() {
            let size = DType.checkedByteCount(shape: t.shape, dtype: t.dtype) ?? 0 // validated in init
            if case .bytes(let b) = t.source, size > 0, let p = b.baseAddress, let origin = FileMappings.origin(p, size) {
                copies.append(.init(name: t.name, bytes: UnsafeRawBufferPointer(start: p, count: size),
                                    sourceFD: origin.fd, sourceOffset: origin.offset, fileOffset: dataStart + offsets[k]))
            } else {
                others.append(k)
            }
        }
        let lane = copies.isEmpty ? nil : try KernelCopyLane(path: path, jobs: copies)
        do {
            for k in others {
                if lane?.failed == true { break }
                let t = ordered[k]
                var position = dataStart + offsets[k]
                try emitTensor(t, displayName: displayName) { piece in
                    try pwriteAll(fd, piece, at: position, path)
                    startWriteback(fd, position, piece.count)
                    position += piece.count
                }
                written(t.name)
                lane?.drain(written)
            }
            try lane?.finish(written)
        } catch {
            lane?.cancel()
            throw error
        }
        ok = true
        return fd
    }

    /// Writes the length prefix and `head` (this layout's header or the same with late metadata
    /// values: same length) at the start of the file, fsyncs and closes it, also on error.
    func finish(_ file: PendingFile, displayName: String, header head: [UInt8]) throws {
        defer { file.close() }
        guard head.count == header.count else {
            throw SafeTensorsError(.invalidTensor, file: displayName, "late metadata changed the header length (\(header.count) -> \(head.count) bytes)")
        }
        let prefix = Self.filePrefix(head)
        if let stream = file.direct {
            try stream.finish(prefix: prefix)
        } else if let fd = file.descriptor {
            try prefix.withUnsafeBytes { try pwriteAll(fd, $0, at: 0, file.path) }
            guard fsync(fd) == 0 else { throw posixError(file.path, "cannot fsync") }
        }
    }

    /// The file's bytes in order (length prefix, header, tensors produced only now) through `sink`.
    func emit(displayName: String, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try Self.filePrefix(header).withUnsafeBytes { try sink($0) }
        for t in ordered { try emitTensor(t, displayName: displayName, sink) }
    }

    /// One tensor's bytes through `sink`, produced or streamed now, checked against its size.
    func emitTensor(_ t: TensorRecord, displayName: String, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let size = DType.checkedByteCount(shape: t.shape, dtype: t.dtype) ?? 0 // validated in init
        switch t.source {
        case .bytes(let b):
            if size > 0, let p = b.baseAddress, FileMappings.contains(p, size) {
                // From a mapped source file: write in chunks and drop each chunk's pages
                // afterwards, so copying a checkpoint keeps a flat resident set (mapped file
                // pages count in RSS until released).
                try forEachReleasingPages(UnsafeRawBufferPointer(start: p, count: size), sink)
            } else {
                try sink(UnsafeRawBufferPointer(rebasing: b[0..<size]))
            }
        case .produce(let make):
            let bytes = try make()
            guard bytes.count == size else {
                throw SafeTensorsError(.invalidTensor, file: displayName, tensor: t.name, "\(t.dtype.rawValue) \(t.shape) needs \(size) bytes, the producer gave \(bytes.count)")
            }
            try bytes.withUnsafeBytes { try sink($0) }
        case .stream(let produce):
            var done = 0
            try produce { piece in
                guard done + piece.count <= size else {
                    throw SafeTensorsError(.invalidTensor, file: displayName, tensor: t.name, "\(t.dtype.rawValue) \(t.shape) needs \(size) bytes, the stream gave more")
                }
                if !piece.isEmpty { try sink(piece) }
                done += piece.count
            }
            guard done == size else {
                throw SafeTensorsError(.invalidTensor, file: displayName, tensor: t.name, "\(t.dtype.rawValue) \(t.shape) needs \(size) bytes, the stream gave \(done)")
            }
        }
    }
}

/// A file whose tensors are written and whose final header comes last (`SafeTensorsLayout.finish`):
/// a direct-I/O stream, or a descriptor of the buffered writer.
final class PendingFile {
    let path: String
    private(set) var descriptor: Int32?
    private(set) var direct: DirectFileStream?

    init(path: String, descriptor: Int32) { self.path = path; self.descriptor = descriptor }
    init(path: String, direct: DirectFileStream) { self.path = path; self.direct = direct }

    /// Closes the file (finished or not; removing an unfinished one is the caller's part).
    func close() {
        if let fd = descriptor { closeDescriptor(fd); descriptor = nil }
        direct?.abandon()
        direct = nil
    }

    deinit { close() }
}

private func closeDescriptor(_ fd: Int32) { close(fd) }

/// Mapped bytes through `body` in 64 MB pieces, each piece's pages released afterwards (see
/// `releaseMappedPages`), so reading a whole mapped file keeps a flat resident set.
func forEachReleasingPages(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
    guard let p = bytes.baseAddress else { return }
    let chunk = 64 << 20
    var done = 0
    while done < bytes.count {
        let n = min(chunk, bytes.count - done)
        try body(UnsafeRawBufferPointer(start: p + done, count: n))
        FileMappings.release(p + done, n)
        done += n
    }
}

/// The second lane of `SafeTensorsLayout.write`: a thread copying mapped source tensors into the
/// file at their offsets through its own descriptor (so its file position is its own), with
/// sendfile, or from the mapping when the kernel cannot. The writing thread collects finished
/// names (`drain`), waits for the end (`finish`), or stops it after its own error (`cancel`).
final class KernelCopyLane: @unchecked Sendable {
    struct Job {
        var name: String
        var bytes: UnsafeRawBufferPointer
        var sourceFD: Int32
        var sourceOffset: Int
        var fileOffset: Int
    }
    private let condition = NSCondition()
    private var finished: [String] = []
    private var done = false
    private var error: Error?
    private var stop = false
    private let fd: Int32

    init(path: String, jobs: [Job]) throws {
        fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw posixError(path, "cannot open for writing") }
        let thread = Thread { [self] in
            do {
                for job in jobs {
                    if stopped { break }
                    if try !copyInKernel(from: job.sourceFD, offset: job.sourceOffset, count: job.bytes.count, to: fd,
                                         at: job.fileOffset, path: path, tensor: job.name) {
                        var position = job.fileOffset
                        try forEachReleasingPages(job.bytes) { piece in
                            try pwriteAll(fd, piece, at: position, path)
                            startWriteback(fd, position, piece.count)
                            position += piece.count
                        }
                    }
                    condition.lock(); finished.append(job.name); condition.signal(); condition.unlock()
                }
            } catch {
                condition.lock(); self.error = error; condition.unlock()
            }
            condition.lock(); done = true; condition.broadcast(); condition.unlock()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit { close(fd) }

    private var stopped: Bool { condition.lock(); defer { condition.unlock() }; return stop }

    /// Whether the lane has stopped on an error (the writing thread then stops too).
    var failed: Bool { condition.lock(); defer { condition.unlock() }; return error != nil }

    /// Reports the tensors finished so far.
    func drain(_ written: (String) -> Void) {
        condition.lock(); let names = finished; finished = []; condition.unlock()
        names.forEach(written)
    }

    /// Waits for the lane, reporting tensors as they finish; rethrows its error.
    func finish(_ written: (String) -> Void) throws {
        condition.lock()
        while true {
            let names = finished; finished = []
            if !names.isEmpty { condition.unlock(); names.forEach(written); condition.lock(); continue }
            if done { break }
            condition.wait()
        }
        let e = error
        condition.unlock()
        if let e { throw e }
    }

    /// Stops the lane after its current tensor and waits for it (its descriptors must outlive it).
    func cancel() {
        condition.lock()
        stop = true
        while !done { condition.wait() }
        condition.unlock()
    }
}

/// Position in huggingface/safetensors' `Dtype` declaration order; the writer sorts widest first.
func dtypeRank(_ d: DType) -> Int {
    switch d {
    case .BOOL: return 0
    case .U8: return 4
    case .I8: return 5
    case .F8_E5M2: return 6
    case .F8_E4M3: return 7
    case .I16: return 9
    case .F16: return 11
    case .BF16: return 12
    case .I32: return 13
    case .F32: return 15
    case .F64: return 17
    case .I64: return 18
    }
}

func validate(_ t: TensorRecord, file: String) throws {
    guard !t.name.isEmpty, t.name != "__metadata__" else {
        throw SafeTensorsError(.invalidTensor, file: file, tensor: t.name, "is not a valid tensor name")
    }
    guard t.shape.allSatisfy({ $0 >= 0 }) else {
        throw SafeTensorsError(.invalidTensor, file: file, tensor: t.name, "shape \(t.shape) has a negative dimension")
    }
    guard let size = DType.checkedByteCount(shape: t.shape, dtype: t.dtype) else {
        throw SafeTensorsError(.overflow, file: file, tensor: t.name, "\(t.dtype.rawValue) \(t.shape) overflows the byte count")
    }
    if case .bytes(let b) = t.source, b.count != size {
        throw SafeTensorsError(.invalidTensor, file: file, tensor: t.name, "\(t.dtype.rawValue) \(t.shape) needs \(size) bytes, the source buffer has \(b.count)")
    }
}

// MARK: - POSIX helpers

func absolutePath(_ p: String) -> String {
    let abs = p.hasPrefix("/") ? p : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(p)
    return (abs as NSString).standardizingPath
}

/// realpath of the longest existing prefix, plus the rest: compares paths through symlinks.
func resolvedPath(_ p: String) -> String {
    var path = absolutePath(p)
    var rest: [String] = []
    while path != "/" {
        if let r = realpath(path, nil) {
            defer { free(r) }
            var s = String(cString: r)
            for c in rest.reversed() { s = (s as NSString).appendingPathComponent(c) }
            return s
        }
        rest.append((path as NSString).lastPathComponent)
        path = (path as NSString).deletingLastPathComponent
    }
    return "/" + rest.reversed().joined(separator: "/")
}

/// Rule 7: the target may not be a source, nor contain one (replacing it would delete the source).
func checkNotSource(target: String, sources: [String]) throws {
    let t = resolvedPath(target)
    for s in sources {
        let r = resolvedPath(s)
        if r == t || r.hasPrefix(t == "/" ? "/" : t + "/") {
            throw SafeTensorsError(.overwritesSource, file: target, "would overwrite the input \(s); choose another output path")
        }
    }
}

func posixError(_ file: String, _ what: String) -> SafeTensorsError {
    SafeTensorsError(.io, file: file, "\(what): \(String(cString: strerror(errno)))")
}

func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ path: String) throws {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30)) // programmer error: non-empty
        if n < 0 {
            if errno == EINTR { continue }
            throw posixError(path, "cannot write")
        }
        done += n
    }
}

/// Copies `count` bytes at `offset` of `source` to `fileOffset` of `fd` with sendfile(2) (page
/// cache to page cache, as `cp` does with copy_file_range): no page faults on a mapping, no
/// user-space copy. Moves `fd`'s file position (give it a descriptor of its own). Returns false,
/// having written nothing, when the kernel cannot do it for these files (the caller then writes
/// from the mapping). A source that ends early (truncated while we run) is an error naming it,
/// where reading the mapping would have been a SIGBUS.
func copyInKernel(from source: Int32, offset: Int, count: Int, to fd: Int32, at fileOffset: Int, path: String, tensor: String) throws -> Bool {
    guard lseek(fd, off_t(fileOffset), SEEK_SET) >= 0 else { throw posixError(path, "cannot seek") }
    var off = offset
    var done = 0
    while done < count {
        let n = sendfile(fd, source, &off, min(count - done, 8 << 20))
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { continue }
            if done == 0 && (errno == EINVAL || errno == ENOSYS) { return false }
            throw posixError(path, "cannot copy tensor '\(tensor)' from its source")
        }
        if n == 0 {
            throw sourceEndedEarly(path, tensor: tensor, missing: count - done)
        }
        startWriteback(fd, fileOffset + done, n)
        done += n
    }
    return true
}

/// Starts writing [offset, offset + count) of `fd` to disk now, without waiting: on Linux,
/// POSIX_FADV_DONTNEED starts asynchronous writeback of the dirty pages (and drops only clean
/// ones). The disk then works while the rest is written instead of all at the final fsync:
/// SmolLM2 bake 0.50-0.55 -> 0.38-0.44 s, the 6 GB first bake 4.9-6.0 -> 4.0 s.
func startWriteback(_ fd: Int32, _ offset: Int, _ count: Int) {
    _ = posix_fadvise(fd, off_t(offset), off_t(count), POSIX_FADV_DONTNEED)
}

/// A mapped source tensor whose file is shorter than its header says (truncated while we run).
func sourceEndedEarly(_ path: String, tensor: String, missing: Int) -> SafeTensorsError {
    SafeTensorsError(.io, file: path, tensor: tensor, "its source file ended \(missing) bytes early (changed or truncated while being copied)")
}

func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, _ path: String) throws {
    var done = 0
    while done < bytes.count {
        let n = pwrite(fd, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30), off_t(offset + done)) // programmer error: non-empty
        if n < 0 {
            if errno == EINTR { continue }
            throw posixError(path, "cannot write")
        }
        done += n
    }
}

func fsyncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw posixError(path, "cannot open folder to fsync") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw posixError(path, "cannot fsync folder") }
}
