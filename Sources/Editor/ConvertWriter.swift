// Minimal streaming safetensors writer for `convert`: the header is known up front (names, shapes,
// f32), then each tensor is produced and written in turn, so memory holds one tensor at a time.
//
// TODO(merge): switch `writeF32Shards` to the SafeTensors module's `CheckpointWriter` once it lands
// in main; this is the one function to replace.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import SafeTensors

struct ShardPlanEntry {
    var name: String
    var shape: [Int]
    var byteCount: Int { shape.reduce(1, *) * 4 }
}

/// Splits tensors (in order) into shards of at most `maxShardBytes` (a tensor larger than that gets
/// a shard of its own), writes them as model.safetensors or model-0000k-of-0000n.safetensors plus
/// model.safetensors.index.json, into `dir` (which exists). `produce(k, buffer)` fills tensor k.
/// Returns the file names written.
func writeF32Shards(dir: String, entries: [ShardPlanEntry], metadata: [(String, String)], maxShardBytes: Int,
                    produce: (Int, UnsafeMutableBufferPointer<Float>) throws -> Void) throws -> [String] {
    var shards: [[Int]] = [[]]
    var current = 0
    for (k, e) in entries.enumerated() {
        if !shards[shards.count - 1].isEmpty && current + e.byteCount > maxShardBytes {
            shards.append([]); current = 0
        }
        shards[shards.count - 1].append(k)
        current += e.byteCount
    }
    let n = shards.count
    func fileName(_ s: Int) -> String {
        n == 1 ? "model.safetensors" : String(format: "model-%05d-of-%05d.safetensors", s + 1, n)
    }
    let maxCount = entries.map { $0.shape.reduce(1, *) }.max() ?? 0
    let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(maxCount, 1))
    defer { buffer.deallocate() }
    var weightMap: [(String, JSONValue)] = []
    var totalSize = 0
    for (s, members) in shards.enumerated() {
        var header: [(String, JSONValue)] = [("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))]
        var offset = 0
        for k in members {
            let e = entries[k]
            header.append((e.name, .object([("dtype", .string("F32")), ("shape", .array(e.shape.map { .int($0) })),
                                            ("data_offsets", .array([.int(offset), .int(offset + e.byteCount)]))])))
            offset += e.byteCount
            weightMap.append((e.name, .string(fileName(s))))
        }
        totalSize += offset
        var text = Array(JSONValue.object(header).serialized().utf8)
        while text.count % 8 != 0 { text.append(UInt8(ascii: " ")) }
        let path = (dir as NSString).appendingPathComponent(fileName(s))
        guard let fp = fopen(path, "wb") else {
            throw ConvertError(.io, file: path, "cannot create: \(String(cString: strerror(errno)))")
        }
        var ok = true
        var len = UInt64(text.count).littleEndian
        ok = ok && fwrite(&len, 8, 1, fp) == 1
        ok = ok && text.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, fp) } == text.count
        for k in members {
            let count = entries[k].shape.reduce(1, *)
            let view = UnsafeMutableBufferPointer(rebasing: buffer[0..<count])
            do { try produce(k, view) } catch { fclose(fp); throw error }
            ok = ok && (count == 0 || fwrite(view.baseAddress, 4, count, fp) == count)
        }
        ok = (fclose(fp) == 0) && ok
        guard ok else { throw ConvertError(.io, file: path, "write failed: \(String(cString: strerror(errno)))") }
    }
    if n > 1 {
        let index = JSONValue.object([("metadata", .object([("total_size", .int(totalSize))])), ("weight_map", .object(weightMap))])
        try writeText(index.serialized(pretty: true) + "\n", to: (dir as NSString).appendingPathComponent("model.safetensors.index.json"))
    }
    return shards.indices.map(fileName)
}

func writeText(_ s: String, to path: String) throws {
    do { try s.write(toFile: path, atomically: false, encoding: .utf8) } catch {
        throw ConvertError(.io, file: path, "cannot write: \(error.localizedDescription)")
    }
}

/// Runs `body` on a fresh temporary folder beside `target`, then moves it into place. An existing
/// target is refused unless `force`; with `force` it is replaced only after the new folder is
/// complete. On any error the temporary folder is removed and the target is untouched.
func withAtomicOutputFolder<T>(_ target: String, force: Bool, _ body: (String) throws -> T) throws -> T {
    let fm = FileManager.default
    let url = URL(fileURLWithPath: target).standardizedFileURL
    let parent = url.deletingLastPathComponent().path
    let name = url.lastPathComponent
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
        throw ConvertError(.io, file: target, "parent folder \(parent) does not exist")
    }
    if fm.fileExists(atPath: url.path) && !force {
        throw ConvertError(.targetExists, file: target, "already exists (use --force to replace it)")
    }
    let tmp = (parent as NSString).appendingPathComponent(".\(name).tmp-\(getpid())-\(UUID().uuidString.prefix(8))")
    do { try fm.createDirectory(atPath: tmp, withIntermediateDirectories: false) } catch {
        throw ConvertError(.io, file: tmp, "cannot create temporary folder: \(error.localizedDescription)")
    }
    let result: T
    do { result = try body(tmp) } catch {
        try? fm.removeItem(atPath: tmp)
        throw error
    }
    var old: String?
    if fm.fileExists(atPath: url.path) {
        let o = (parent as NSString).appendingPathComponent(".\(name).old-\(getpid())-\(UUID().uuidString.prefix(8))")
        guard rename(url.path, o) == 0 else {
            try? fm.removeItem(atPath: tmp)
            throw ConvertError(.io, file: target, "cannot move the existing target aside: \(String(cString: strerror(errno)))")
        }
        old = o
    }
    guard rename(tmp, url.path) == 0 else {
        let err = String(cString: strerror(errno))
        if let old { _ = rename(old, url.path) }
        try? fm.removeItem(atPath: tmp)
        throw ConvertError(.io, file: target, "cannot rename the finished folder into place: \(err)")
    }
    if let old { try? fm.removeItem(atPath: old) }
    return result
}
