// A Hugging Face model folder's weights: one model.safetensors, or shards listed by
// model.safetensors.index.json ({"metadata": {"total_size": N}, "weight_map": {name: shard}}).

import Foundation

public final class Checkpoint: TensorSource, @unchecked Sendable {
    public let directory: String
    public let shards: [SafeTensorsFile]           // in file-name order
    public private(set) var tensorNames: [String] = []
    private var shardOf: [String: Int] = [:]

    public init(directory: String) throws {
        self.directory = directory
        let fm = FileManager.default
        let indexPath = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
        let singlePath = (directory as NSString).appendingPathComponent("model.safetensors")
        var files: [SafeTensorsFile] = []
        if fm.fileExists(atPath: indexPath) {
            guard let data = fm.contents(atPath: indexPath) else {
                throw SafeTensorsError(.io, file: indexPath, "cannot read")
            }
            let json: JSONValue
            do { json = try JSONValue.parse(data: [UInt8](data)) } catch {
                throw SafeTensorsError(.invalidIndex, file: indexPath, "not valid JSON: \(error)")
            }
            guard let map = json["weight_map"]?.objectPairs else {
                throw SafeTensorsError(.invalidIndex, file: indexPath, "missing object 'weight_map'")
            }
            var shardNames: [String] = []
            var wanted: [(String, String)] = []
            for (name, v) in map {
                guard let shard = v.stringValue, !shard.contains("/"), !shard.isEmpty, shard != "..", shard != "." else {
                    throw SafeTensorsError(.invalidIndex, file: indexPath, tensor: name, "weight_map entry is not a file name in this folder")
                }
                if !shardNames.contains(shard) { shardNames.append(shard) }
                wanted.append((name, shard))
            }
            shardNames.sort()
            for s in shardNames { files.append(try SafeTensorsFile(path: (directory as NSString).appendingPathComponent(s))) }
            shards = files
            for (k, f) in files.enumerated() {
                for n in f.tensorNames {
                    if shardOf[n] != nil {
                        throw SafeTensorsError(.invalidIndex, file: f.path, tensor: n, "tensor appears in more than one shard")
                    }
                    shardOf[n] = k
                }
            }
            for (name, shard) in wanted {
                guard let k = shardOf[name], (files[k].path as NSString).lastPathComponent == shard else {
                    throw SafeTensorsError(.invalidIndex, file: indexPath, tensor: name, "weight_map says \(shard) but that shard does not hold it")
                }
            }
            tensorNames = files.flatMap { $0.tensorNames }
        } else if fm.fileExists(atPath: singlePath) {
            let f = try SafeTensorsFile(path: singlePath)
            shards = [f]
            for n in f.tensorNames { shardOf[n] = 0 }
            tensorNames = f.tensorNames
        } else {
            throw SafeTensorsError(.io, file: directory, "no model.safetensors or model.safetensors.index.json in this folder")
        }
    }

    public func info(_ name: String) -> TensorInfo? {
        guard let k = shardOf[name] else { return nil }
        return shards[k].info(name)
    }

    public func shard(of name: String) -> SafeTensorsFile? {
        guard let k = shardOf[name] else { return nil }
        return shards[k]
    }

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
}
