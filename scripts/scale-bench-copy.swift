// Copies a checkpoint through CheckpointWriter with `.bytes` payloads straight from the mapped
// source shards (the path `bake` uses for every untouched tensor), same sharding, so
// scripts/scale-bench.sh can measure its time and peak RSS against `cp`.
//
//   scale-bench-copy SOURCE_DIR OUT_DIR MAX_SHARD_BYTES
import Foundation
import SafeTensors

let args = CommandLine.arguments
guard args.count == 4, let maxShard = Int(args[3]) else {
    FileHandle.standardError.write("usage: scale-bench-copy SOURCE_DIR OUT_DIR MAX_SHARD_BYTES\n".data(using: .utf8)!) // programmer error: literal
    exit(2)
}
do {
    let source = try Checkpoint(directory: args[1])
    let writer = try CheckpointWriter(target: args[2], force: true, maxShardSize: maxShard, sources: [args[1]])
    for name in source.tensorNames {
        guard let info = source.info(name) else { continue }
        try writer.add(TensorRecord(name: name, dtype: info.dtype, shape: info.shape, source: .bytes(try source.bytes(name))))
    }
    try writer.copyFile(from: args[1] + "/config.json", as: "config.json")
    try writer.commit()
    print("copied \(source.tensorNames.count) tensors into \(writer.shardFileNames.count) shards")
} catch {
    FileHandle.standardError.write("scale-bench-copy: \(error)\n".data(using: .utf8)!) // programmer error: literal
    exit(2)
}
