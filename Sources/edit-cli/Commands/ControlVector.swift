import Foundation
import Editor

extension CLI {
    static let controlVectorHelp = """
    edit-cli control-vector export VECTORS.safetensors --out FILE.gguf [--model-hint NAME]
    edit-cli control-vector import FILE.gguf --out VECTORS.safetensors
      Convert between our vectors files (tensors "<point>.<layer>") and llama.cpp control vectors
      (general.architecture "controlvector", F32 tensors "direction.N").
      llama.cpp adds direction.N to the output of block N, which is our resid_post.N (0-based layers):
        export: resid_post.L -> direction.L (L >= 1; other points are refused; resid_post.0, which
                `extract --layers all` writes, is skipped with a note: block 0 cannot be addressed)
        import: direction.N -> resid_post.N (files from cvector-generator, repeng's export_gguf, or ours).
      Note: llama.cpp's cvector-generator measures at block N-1 and writes direction.N, so its vectors
      are applied one block after where they were measured; import keeps where they are applied.
      --model-hint NAME   controlvector.model_hint (default: the vectors file's metadata, else "unknown")
      example: edit-cli control-vector export vectors.safetensors --out joyful.gguf --model-hint llama
    """
}

func runControlVector(_ args: inout Arguments) throws -> Int32 {
    let sub = try args.positional("export|import")
    switch sub {
    case "export":
        let vectors = try args.positional("VECTORS.safetensors")
        let out = try args.required("--out")
        let hint = try args.option("--model-hint")
        try args.finish()
        let written = try ControlVectors.export(vectors: vectors, to: out, modelHint: hint, skipBlockZero: true) { name in
            FileHandle.standardError.write("control-vector export: skipped \(name): llama.cpp cannot address the output of block 0\n")
        }
        print("wrote \(out): \(written.count) control vectors (direction.\(written.map(String.init).joined(separator: ",")))")
    case "import":
        let file = try args.positional("FILE.gguf")
        let out = try args.required("--out")
        try args.finish()
        let imp = try ControlVectors.importFile(gguf: file, to: out)
        print("wrote \(out): \(imp.vectors.count) vectors (resid_post.\(imp.vectors.map { String($0.layer) }.joined(separator: ","))), model hint \(imp.modelHint ?? "none")")
    default:
        throw UsageError("control-vector: expected 'export' or 'import', found '\(sub)'")
    }
    return 0
}
