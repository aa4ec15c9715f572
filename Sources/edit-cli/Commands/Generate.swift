import Foundation
import Engine
import Tokenizers

extension CLI {
    static let generateHelp = """
    edit-cli generate MODEL (--prompt TEXT | --tokens 1,2,3) [--chat] [--recipe R] [--max-tokens N]
                     [--temperature T] [--top-p P] [--seed S] [--threads N] [--ids]
      Generate with the KV cache, optionally with a steering recipe applied by hooks. Stops at an EOS
      token of config.json / generation_config.json or after --max-tokens (default 64).
      Sampling: greedy unless --temperature > 0 (then --top-p, default 1, and --seed, default 0).
      Positions in the recipe are absolute; "last" is the last token of each forward call (the last
      prompt token, then every generated token).
      Prints the generated text as it comes (the prompt is not repeated); without a tokenizer.json,
      or with --ids, prints the generated token ids instead. MODEL may be a .gguf file.
      example: edit-cli generate ./SmolLM2-135M-Instruct --tokens 504,3458 --recipe r.json --max-tokens 32
    """
}

func runGenerate(_ args: inout Arguments) throws -> Int32 {
    let modelPath = try args.positional("MODEL")
    let prompt = try args.option("--prompt")
    let tokenList = try args.option("--tokens")
    let chat = args.flag("--chat")
    let recipePath = try args.option("--recipe")
    let maxTokens = try args.int("--max-tokens") ?? 64
    let temperature = try args.double("--temperature") ?? 0
    let topP = try args.double("--top-p") ?? 1
    let seed = try args.int("--seed") ?? 0
    let threads = try args.int("--threads")
    let printIds = args.flag("--ids")
    try args.finish()
    guard maxTokens >= 1 else { throw UsageError("generate: --max-tokens must be >= 1, found \(maxTokens)") }
    guard temperature >= 0 else { throw UsageError("generate: --temperature must be >= 0, found \(temperature)") }
    guard topP > 0, topP <= 1 else { throw UsageError("generate: --top-p must be in (0, 1], found \(topP)") }
    guard seed >= 0 else { throw UsageError("generate: --seed must be >= 0, found \(seed)") }
    try EngineCLI.setThreads(threads, command: "generate")

    let (folder, model) = try EngineCLI.loadModel(modelPath)
    let (tokens, tok) = try EngineCLI.inputTokens(prompt: prompt, tokens: tokenList, chat: chat, command: "generate", folder: folder)
    let ivs = try EngineCLI.interventions(recipePath, model: model)
    let sampling = Sampling(temperature: Float(temperature), topP: Float(topP), seed: UInt64(seed))
    let stop = Set(model.config.eosTokenIds).union(tok?.eosTokenIds ?? [])
    let stream = printIds ? nil : tok.map { StreamingDecoder(tokenizer: $0, skipSpecialTokens: true) }
    var first = true
    let out = try model.generate(prompt: tokens, interventions: ivs, maxTokens: maxTokens, sampling: sampling,
                                 stopTokens: stop) { t in
        if let stream {
            print(stream.push(t), terminator: "")
        } else {
            print(first ? "\(t)" : ",\(t)", terminator: "")
        }
        first = false
        fflush(stdout)
        return true
    }
    if let stream { print(stream.finish(), terminator: "") }
    print("")
    Progress.say("generate: \(out.count) tokens")
    return 0
}
