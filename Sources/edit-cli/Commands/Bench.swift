import Editor
import Engine
import Foundation
import Tokenizers

extension CLI {
    static let benchHelp = """
    edit-cli bench MODEL [--prompt-tokens 128] [--decode-tokens 64] [--threads N] [--json]
      Prefill and decode tokens per second of the engine on this machine (f32, greedy, KV cache).
      Prefill: one forward over --prompt-tokens tokens up to the first sampled token.
      Decode: the following --decode-tokens single-token steps. Best of 3 runs after a warm-up.
      example: edit-cli bench ./SmolLM2-135M-Instruct --threads 2 --json

    edit-cli bench MODEL --positive FILE --negative FILE [--threads N] [--json]
      Extraction against the bare forward passes on the same prompts, in one process: the time of
      one forward per prompt up to its first sampled token (as generate runs it), and the time of
      `extract` over all layers (mean-diff, last position, vectors and report). Best of 3 each.
      example: edit-cli bench ./SmolLM2-135M-Instruct --positive pos.txt --negative neg.txt
    """
}

func runBench(_ args: inout Arguments) throws -> Int32 {
    let modelPath = try args.positional("MODEL")
    let promptTokens = try args.int("--prompt-tokens") ?? 128
    let decodeTokens = try args.int("--decode-tokens") ?? 64
    let threads = try args.int("--threads")
    let runs = try args.int("--runs") ?? 3
    let json = args.flag("--json")
    let positivePath = try args.option("--positive")
    let negativePath = try args.option("--negative")
    try args.finish()
    if positivePath != nil || negativePath != nil {
        guard let positivePath, let negativePath else { throw UsageError("bench: --positive and --negative go together") }
        try EngineCLI.setThreads(threads, command: "bench")
        return try benchExtraction(modelPath: modelPath, positivePath: positivePath, negativePath: negativePath, runs: runs, json: json)
    }
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

/// `bench --positive --negative`: extraction against bare forward passes over the same prompts.
func benchExtraction(modelPath: String, positivePath: String, negativePath: String, runs: Int, json: Bool) throws -> Int32 {
    let (folder, model) = try EngineCLI.loadModel(modelPath)
    let tok = try Tokenizer(directory: folder)
    let pos = try PromptFile.encode(try PromptFile.load(positivePath), tokenizer: tok, chat: false)
    let neg = try PromptFile.encode(try PromptFile.load(negativePath), tokenizer: tok, chat: false)
    let prompts = pos + neg
    let tokens = prompts.reduce(0) { $0 + $1.count }
    let options = ExtractOptions(layers: Array(0..<model.config.numLayers), method: .meanDiff, position: .last)
    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
    func forwards() throws {
        for p in prompts {
            _ = try model.generate(prompt: p, maxTokens: 1, sampling: .greedy, stopTokens: []) { _ in true }
        }
    }
    func extraction() throws { _ = try Extractor.extract(model: model, positive: pos, negative: neg, options: options) }
    Progress.say("bench: warm-up")
    try forwards(); try extraction()
    var best = (forward: Double.infinity, extract: Double.infinity)
    for k in 0..<runs {
        let f = try seconds(forwards), e = try seconds(extraction)
        Progress.say("bench: run \(k + 1): forwards \(String(format: "%.3f", f)) s, extract \(String(format: "%.3f", e)) s")
        best = (min(best.forward, f), min(best.extract, e))
    }
    let ratio = best.extract / best.forward
    if json {
        print(JSONValue.object([
            ("model", .string(modelPath)),
            ("threads", .int(LanguageModel.threads)),
            ("prompts", .int(prompts.count)),
            ("tokens", .int(tokens)),
            ("layers", .int(model.config.numLayers)),
            ("forward_seconds", .double((best.forward * 1000).rounded() / 1000)),
            ("extract_seconds", .double((best.extract * 1000).rounded() / 1000)),
            ("extract_over_forward", .double((ratio * 1000).rounded() / 1000)),
        ]).serialized())
    } else {
        print("prompts: \(prompts.count) (\(pos.count) positive, \(neg.count) negative), \(tokens) tokens, threads \(LanguageModel.threads)")
        print("forward passes: \(String(format: "%.3f", best.forward)) s")
        print("extract (\(model.config.numLayers) layers): \(String(format: "%.3f", best.extract)) s (\(String(format: "%.2f", ratio))x the forward passes)")
    }
    return 0
}
