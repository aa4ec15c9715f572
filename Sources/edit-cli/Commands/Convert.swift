import Foundation
import Editor
import Engine

extension CLI {
    static let convertHelp = """
    edit-cli convert MODEL.gguf --out DIR [--force]
      Convert a GGUF model (llama, qwen2, qwen3, gemma, gemma2, gemma3; tensors F32, F16, BF16,
      Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K) to a Hugging Face folder: config.json,
      generation_config.json, f32 safetensors with HF names, tokenizer.json, tokenizer_config.json.
      Undoes llama.cpp's Q/K row permutation (llama) and (1 + w) norm storage (gemma).
      The folder is written beside DIR and renamed into place when complete.
      --out DIR    output folder (must not exist unless --force)
      --force      replace an existing DIR
      example: edit-cli convert SmolLM2-135M-Instruct.Q4_1.gguf --out ./SmolLM2-135M-Instruct
    """
}

func runConvert(_ args: inout Arguments) throws -> Int32 {
    let model = try args.positional("MODEL.gguf")
    let out = try args.required("--out")
    let force = args.flag("--force")
    try args.finish()
    BLASKernels.stopIdleWorkers()   // no BLAS here; its idle workers would spin on our cores
    let report = try GGUFConverter.convert(gguf: model, to: out, options: ConvertOptions(force: force),
                                           progress: Progress.enabled ? { Progress.say($0) } : nil)
    print("converted \(model) (\(report.architecture) -> \(report.modelType)): \(report.tensorCount) tensors, \(report.parameterCount) parameters, f32")
    print("tokenizer: \(report.tokenizer)")
    print("wrote \(out): \(report.files.joined(separator: ", ")) in \(String(format: "%.1f", report.seconds)) s")
    return 0
}
