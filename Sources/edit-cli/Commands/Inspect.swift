// edit-cli inspect MODEL [--json]: what is in a checkpoint (CheckpointSummary: headers and
// config.json only, nothing is converted).

import Editor
import Foundation
import SafeTensors

extension CLI {
    static let inspectHelp = """
    edit-cli inspect MODEL [--json]
      Show a model's architecture (model_type, architectures from config.json), tensors (name,
      dtype, shape, shard), parameter count, dtype summary and whether embeddings are tied.
      MODEL is a Hugging Face folder (model.safetensors or shards with model.safetensors.index.json),
      a single .safetensors file, or a .gguf file (GGUF tensor names and ggml types; architecture
      and tied embeddings as `convert` would write them in config.json). --json prints one JSON
      object to stdout.
      example: edit-cli inspect ./SmolLM2-135M-Instruct --json
    """
}

func runInspect(_ args: inout Arguments) throws -> Int32 {
    let model = try args.positional("MODEL")
    let json = args.flag("--json")
    try args.finish()
    var summary = try CheckpointSummary(path: model)
    if summary.format == "gguf" {
        // The config.json `convert` would write: architectures and tie_word_embeddings.
        do {
            try summary.apply(config: try GGUFHFSource(path: model).config, configPath: model)
        } catch {
            summary.notes.append("no Hugging Face config for this GGUF (\(error))")
        }
    }
    print(json ? summary.json.serialized() : summary.text)
    return 0
}
