// Writes a model folder atomically: tensors streamed into one or more .safetensors shards in a
// temporary folder beside the target, renamed into place by commit().
//
// Interim adapter: branch `safetensors` is adding `CheckpointWriter` with the same shape of API
// (add / addFile / copyFile / commit / abort). Bake talks only to this type, so swapping is local.
//
// Rules:
//  1. the target must not exist unless `force` (checked at init, before any work, and at commit);
//  2. tensors are written in the order added; each shard holds consecutive tensors and is closed
//     when the next tensor would push it past maxShardSize (a tensor larger than the cap gets a
//     shard of its own);
//  3. one shard: `model.safetensors`; several: `model-0000k-of-0000n.safetensors` plus
//     `model.safetensors.index.json` ({"metadata": {"total_size"}, "weight_map"});
//  4. every shard's header starts with `__metadata__` (given metadata plus "format": "pt") and is
//     padded with spaces to a multiple of 8 bytes;
//  5. `.produce` closures run one at a time while writing, so at most one edited tensor is in memory.

import Foundation

public struct OutputTensor {
    public enum Payload {
        case bytes(UnsafeRawBufferPointer)        // copied as is (e.g. a view into a source mmap)
        case produce(() throws -> [UInt8])        // computed when written
    }
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var payload: Payload
    public init(name: String, dtype: DType, shape: [Int], payload: Payload) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.payload = payload
    }
    var byteCount: Int { shape.reduce(1, *) * dtype.size }
}

public final class OutputWriter {
    public let target: String
    public let force: Bool
    public let maxShardSize: Int?
    public var metadata: [(String, String)]
    private var tensors: [OutputTensor] = []
    private var files: [(name: String, contents: [UInt8])] = []
    private var copies: [(from: String, as: String)] = []
    public private(set) var temp: String
    private var finished = false

    public init(target: String, force: Bool, maxShardSize: Int?, metadata: [(String, String)]) throws {
        self.target = target; self.force = force; self.maxShardSize = maxShardSize; self.metadata = metadata
        let fm = FileManager.default
        if fm.fileExists(atPath: target) && !force {
            throw EditError.io("\(target): already exists (use --force to replace it)")
        }
        let abs = URL(fileURLWithPath: target).standardizedFileURL.path
        let parent = (abs as NSString).deletingLastPathComponent
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
            throw EditError.io("\(target): parent folder \(parent) does not exist")
        }
        temp = (parent as NSString).appendingPathComponent(".\((abs as NSString).lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(atPath: temp)
        do { try fm.createDirectory(atPath: temp, withIntermediateDirectories: false) } catch {
            throw EditError.io("\(temp): cannot create the temporary output folder: \(error.localizedDescription)")
        }
    }

    deinit { if !finished { abort() } }

    public func add(_ t: OutputTensor) { tensors.append(t) }
    public func addFile(name: String, contents: [UInt8]) { files.append((name, contents)) }
    public func copyFile(from: String, as name: String) { copies.append((from, name)) }

    public func abort() {
        finished = true
        try? FileManager.default.removeItem(atPath: temp)
    }

    /// Writes everything into the temporary folder, then renames it to the target.
    public func commit() throws {
        do {
            try writeAll()
            try moveIntoPlace()
            finished = true
        } catch {
            abort()
            throw error
        }
    }

    private func shardPlan() -> [[Int]] {
        guard let cap = maxShardSize else { return [Array(tensors.indices)] }
        var shards: [[Int]] = [[]]
        var size = 0
        for (k, t) in tensors.enumerated() {
            if !shards[shards.count - 1].isEmpty && size + t.byteCount > cap {
                shards.append([]); size = 0
            }
            shards[shards.count - 1].append(k); size += t.byteCount
        }
        return shards
    }

    private func writeAll() throws {
        var seen = Set<String>()
        for t in tensors where !seen.insert(t.name).inserted {
            throw EditError.badInput("\(target): tensor '\(t.name)' added twice") // programmer error in the caller, reported anyway
        }
        let plan = shardPlan()
        let n = plan.count
        var weightMap: [(String, JSONValue)] = []
        var total = 0
        for (s, members) in plan.enumerated() {
            let name = n == 1 ? "model.safetensors" : String(format: "model-%05d-of-%05d.safetensors", s + 1, n)
            try writeShard(path: (temp as NSString).appendingPathComponent(name), members: members)
            for k in members { weightMap.append((tensors[k].name, .string(name))); total += tensors[k].byteCount }
        }
        if n > 1 {
            let index = JSONValue.object([
                ("metadata", .object([("total_size", .int(total))])),
                ("weight_map", .object(weightMap)),
            ])
            try write(Array((index.serialized(pretty: true) + "\n").utf8), to: "model.safetensors.index.json")
        }
        for f in files { try write(f.contents, to: f.name) }
        for c in copies {
            let dst = (temp as NSString).appendingPathComponent(c.as)
            do { try FileManager.default.copyItem(atPath: c.from, toPath: dst) } catch {
                throw EditError.io("\(c.from): cannot copy into the output: \(error.localizedDescription)")
            }
        }
    }

    private func write(_ bytes: [UInt8], to name: String) throws {
        let path = (temp as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw EditError.io("\(path): cannot write")
        }
    }

    private func writeShard(path: String, members: [Int]) throws {
        var meta: [(String, JSONValue)] = metadata.filter { $0.0 != "format" }.map { ($0.0, .string($0.1)) }
        meta.append(("format", .string("pt")))
        var header: [(String, JSONValue)] = [("__metadata__", .object(meta))]
        var offset = 0
        for k in members {
            let t = tensors[k]
            header.append((t.name, .object([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.map { .int($0) })),
                ("data_offsets", .array([.int(offset), .int(offset + t.byteCount)])),
            ])))
            offset += t.byteCount
        }
        var headerBytes = Array(JSONValue.object(header).serialized().utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        guard let f = fopen(path, "wb") else { throw EditError.io("\(path): cannot create") }
        var ok = true
        defer { fclose(f) }
        var len = UInt64(headerBytes.count).littleEndian
        ok = ok && fwrite(&len, 8, 1, f) == 1
        ok = ok && headerBytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) } == headerBytes.count
        for k in members {
            let t = tensors[k]
            switch t.payload {
            case .bytes(let b):
                guard b.count == t.byteCount else {
                    throw EditError.badInput("\(path): tensor '\(t.name)': \(b.count) bytes given, \(t.dtype.rawValue) \(t.shape) needs \(t.byteCount)")
                }
                if b.count > 0 { ok = ok && fwrite(b.baseAddress, 1, b.count, f) == b.count }
            case .produce(let make):
                let b = try make()
                guard b.count == t.byteCount else {
                    throw EditError.badInput("\(path): tensor '\(t.name)': produced \(b.count) bytes, \(t.dtype.rawValue) \(t.shape) needs \(t.byteCount)")
                }
                ok = ok && b.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) } == b.count
            }
            guard ok else { throw EditError.io("\(path): write failed (disk full?)") }
        }
        guard ok, fflush(f) == 0 else { throw EditError.io("\(path): write failed (disk full?)") }
    }

    private func moveIntoPlace() throws {
        let fm = FileManager.default
        var old: String?
        if fm.fileExists(atPath: target) {
            guard force else { throw EditError.io("\(target): already exists (use --force to replace it)") }
            let o = temp + ".old"
            try? fm.removeItem(atPath: o)
            do { try fm.moveItem(atPath: target, toPath: o) } catch {
                throw EditError.io("\(target): cannot move the existing folder aside: \(error.localizedDescription)")
            }
            old = o
        }
        do { try fm.moveItem(atPath: temp, toPath: target) } catch {
            if let old { try? fm.moveItem(atPath: old, toPath: target) }
            throw EditError.io("\(target): cannot rename the finished output into place: \(error.localizedDescription)")
        }
        if let old { try? fm.removeItem(atPath: old) }
    }
}
