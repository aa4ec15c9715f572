import Foundation
import Engine

extension CLI {
    static let benchHelp = """
    edit-cli bench MODEL [--prompt-tokens 128] [--decode-tokens 64] [--threads N] [--json]
      Prefill and decode tokens per second of the engine on this machine (f32, greedy, KV cache).
      Prefill: one forward over --prompt-tokens tokens up to the first sampled token.
      Decode: the following --decode-tokens single-token steps. Best of 3 runs after a warm-up.
      example: edit-cli bench ./SmolLM2-135M-Instruct --threads 2 --json
    """
}

func runBench(_ args: inout Arguments) throws -> Int32 {
    let modelPath = try args.positional("MODEL")
    let promptTokens = try args.int("--prompt-tokens") ?? 128
    let decodeTokens = try args.int("--decode-tokens") ?? 64
    let threads = try args.int("--threads")
    let runs = try args.int("--runs") ?? 3
    let json = args.flag("--json")
    try args.finish()
    guard promptTokens >= 1 else { throw UsageError("bench: --prompt-tokens must be >= 1") }
    guard decodeTokens >= 1 else { throw UsageError("bench: --decode-tokens must be >= 1") }
    guard runs >= 1 else { throw UsageError("bench: --runs must be >= 1") }
    try EngineCLI.setThreads(threads, command: "bench")

    let (_, model) = try EngineCLI.loadModel(modelPath)
    let V = model.config.vocabSize
    // A fixed, reproducible prompt of ordinary token ids (same as scripts/bench_torch.py).
    let prompt = (0..<promptTokens).map { (($0 * 7919) + 1000) % V }

    func once() throws -> (prefill: Double, decode: Double) {
        var stamps: [UInt64] = []
        stamps.reserveCapacity(decodeTokens + 2)
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = try model.generate(prompt: prompt, maxTokens: decodeTokens + 1, sampling: .greedy, stopTokens: []) { _ in
            stamps.append(DispatchTime.now().uptimeNanoseconds)
            return true
        }
        let prefill = Double(stamps[0] - t0) / 1e9
        let decode = Double(stamps[stamps.count - 1] - stamps[0]) / 1e9
        return (Double(promptTokens) / prefill, Double(stamps.count - 1) / decode)
    }
    Progress.say("bench: warm-up")
    _ = try once()
    var best = (prefill: 0.0, decode: 0.0)
    for k in 0..<runs {
        let r = try once()
        Progress.say("bench: run \(k + 1): prefill \(String(format: "%.1f", r.prefill)) tok/s, decode \(String(format: "%.1f", r.decode)) tok/s")
        best = (max(best.prefill, r.prefill), max(best.decode, r.decode))
    }
    let nThreads = LanguageModel.threads
    if json {
        print(JSONValue.object([
            ("model", .string(modelPath)),
            ("threads", .int(nThreads)),
            ("blas_kernels", .string(BLASKernels.current)),
            ("prompt_tokens", .int(promptTokens)),
            ("decode_tokens", .int(decodeTokens)),
            ("prefill_tokens_per_s", .double((best.prefill * 10).rounded() / 10)),
            ("decode_tokens_per_s", .double((best.decode * 10).rounded() / 10)),
        ]).serialized())
    } else {
        print("threads: \(nThreads) (OpenBLAS kernels: \(BLASKernels.current))")
        print("prefill: \(String(format: "%.1f", best.prefill)) tokens/s (\(promptTokens) tokens)")
        print("decode:  \(String(format: "%.1f", best.decode)) tokens/s (\(decodeTokens) tokens)")
    }
    return 0
}
