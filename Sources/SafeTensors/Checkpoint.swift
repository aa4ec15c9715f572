// A Hugging Face model's weights: a folder with one model.safetensors, a folder with shards listed
// by model.safetensors.index.json ({"metadata": {"total_size": N}, "weight_map": {name: shard}}),
// or a single .safetensors file.
//
// Index rules (each failure is an `.invalidIndex` error naming the index and the tensor):
//  1. the index is a JSON object with an object `weight_map` of string values;
//  2. every shard name is a plain file name in the same folder (no '/', not '.' or '..');
//  3. names in weight_map are unique; every listed tensor is in the shard the map names;
//  4. every tensor of every listed shard is listed (no stray tensors), and no tensor is in two shards.
// metadata.total_size is informative only (real checkpoints disagree on it), so it is not checked.

import Foundation

public final class Checkpoint: TensorSource, @unchecked Sendable {
    /// The folder (or, for a single file, the file's path).
    public let directory: String
    /// Path of model.safetensors.index.json when the checkpoint is sharded.
    public let indexPath: String?
    public let shards: [SafeTensorsFile]           // in file-name order
    public let tensorNames: [String]               // shard order, then header order
    private let shardOf: [String: Int]

    /// Opens a folder (index or model.safetensors), a model.safetensors.index.json (its folder), or
    /// a single .safetensors file.
    public static func open(_ path: String) throws -> Checkpoint {
        if (path as NSString).lastPathComponent == "model.safetensors.index.json" {
            let dir = (path as NSString).deletingLastPathComponent
            return try Checkpoint(directory: dir.isEmpty ? "." : dir)
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw SafeTensorsError(.io, file: path, "no such file or folder")
        }
        return isDir.boolValue ? try Checkpoint(directory: path) : try Checkpoint(file: path)
    }

    /// A single .safetensors file seen as a checkpoint.
    public init(file: String) throws {
        let f = try SafeTensorsFile(path: file)
        directory = file
        indexPath = nil
        shards = [f]
        tensorNames = f.tensorNames
        shardOf = Dictionary(uniqueKeysWithValues: f.tensorNames.map { ($0, 0) })
    }

    public init(directory: String) throws {
        self.directory = directory
        let fm = FileManager.default
        let indexPath = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
        let singlePath = (directory as NSString).appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: indexPath) {
            self.indexPath = indexPath
            let wanted = try Self.readIndex(indexPath)
            var shardNames = Array(Set(wanted.map { $0.shard }))
            shardNames.sort()
            var files: [SafeTensorsFile] = []
            var shardOf: [String: Int] = [:]
            for s in shardNames {
                let path = (directory as NSString).appendingPathComponent(s)
                guard fm.fileExists(atPath: path) else {
                    throw SafeTensorsError(.invalidIndex, file: indexPath, "shard '\(s)' listed in weight_map is missing from the folder")
                }
                let f = try SafeTensorsFile(path: path)
                for n in f.tensorNames {
                    if let other = shardOf[n] {
                        throw SafeTensorsError(.invalidIndex, file: f.path, tensor: n, "tensor is also in \(files[other].path)")
                    }
                    shardOf[n] = files.count
                }
                files.append(f)
            }
            var listed = Set<String>()
            for (name, shard) in wanted {
                listed.insert(name)
                guard let k = shardOf[name] else {
                    throw SafeTensorsError(.invalidIndex, file: indexPath, tensor: name, "weight_map names shard \(shard), which does not hold it")
                }
                let actual = (files[k].path as NSString).lastPathComponent
                guard actual == shard else {
                    throw SafeTensorsError(.invalidIndex, file: indexPath, tensor: name, "weight_map names shard \(shard), but the tensor is in \(actual)")
                }
            }
            for f in files {
                for n in f.tensorNames where !listed.contains(n) {
                    throw SafeTensorsError(.invalidIndex, file: f.path, tensor: n, "tensor is not listed in the weight_map of \(indexPath)")
                }
            }
            shards = files
            self.shardOf = shardOf
            tensorNames = files.flatMap { $0.tensorNames }
        } else if fm.fileExists(atPath: singlePath) {
            let f = try SafeTensorsFile(path: singlePath)
            self.indexPath = nil
            shards = [f]
            tensorNames = f.tensorNames
            shardOf = Dictionary(uniqueKeysWithValues: f.tensorNames.map { ($0, 0) })
        } else {
            throw SafeTensorsError(.io, file: directory, "no model.safetensors or model.safetensors.index.json in this folder")
        }
    }

    /// (tensor, shard file name) pairs of an index, in file order; rules 1-3 of the header comment.
    static func readIndex(_ indexPath: String) throws -> [(name: String, shard: String)] {
        guard let data = FileManager.default.contents(atPath: indexPath) else {
            throw SafeTensorsError(.io, file: indexPath, "cannot read")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(data: [UInt8](data)) } catch {
            throw SafeTensorsError(.invalidIndex, file: indexPath, "not valid JSON: \(error)")
        }
        guard json.objectPairs != nil else {
            throw SafeTensorsError(.invalidIndex, file: indexPath, "not a JSON object")
        }
        guard let map = json["weight_map"]?.objectPairs else {
            throw SafeTensorsError(.invalidIndex, file: indexPath, "missing object 'weight_map'")
        }
        var seen = Set<String>()
        var wanted: [(name: String, shard: String)] = []
        for (name, v) in map {
            guard seen.insert(name).inserted else {
                throw SafeTensorsError(.invalidIndex, file: indexPath, tensor: name, "listed twice in weight_map")
            }
            guard let shard = v.stringValue, !shard.isEmpty, !shard.contains("/"), shard != "..", shard != "." else {
                throw SafeTensorsError(.invalidIndex, file: indexPath, tensor: name, "weight_map entry is not a file name in this folder")
            }
            wanted.append((name, shard))
        }
        return wanted
    }

    public func info(_ name: String) -> TensorInfo? {
        guard let k = shardOf[name] else { return nil }
        return shards[k].info(name)
    }

    public func shard(of name: String) -> SafeTensorsFile? {
        guard let k = shardOf[name] else { return nil }
        return shards[k]
    }

    /// File name of the shard holding `name` (e.g. "model-00001-of-00002.safetensors").
    public func shardName(of name: String) -> String? {
        shard(of: name).map { ($0.path as NSString).lastPathComponent }
    }

    /// The tensor's bytes inside its shard's mapping (zero-copy; valid while this object lives).
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let f = shard(of: name) else {
            throw SafeTensorsError(.missingTensor, file: directory, tensor: name, "not in this checkpoint")
        }
        return try f.bytes(name)
    }

    public func floats(_ name: String) throws -> [Float] {
        guard let f = shard(of: name) else {
            throw SafeTensorsError(.missingTensor, file: directory, tensor: name, "not in this checkpoint")
        }
        return try f.floats(name)
    }

    public func floats(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let f = shard(of: name) else {
            throw SafeTensorsError(.missingTensor, file: directory, tensor: name, "not in this checkpoint")
        }
        try f.floats(name, into: out)
    }

    /// Drops the tensor's mapped pages from the resident set (see SafeTensorsFile.releasePages).
    public func releasePages(_ name: String) {
        shard(of: name)?.releasePages(name)
    }

    /// Sum of the tensors' byte sizes.
    public var totalBytes: Int { shards.reduce(0) { $0 + ($1.fileSize - $1.dataStart) } }
}
