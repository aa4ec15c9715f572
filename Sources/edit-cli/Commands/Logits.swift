import Foundation
import SafeTensors
import Engine
import Editor
import Tokenizers

extension CLI {
    static let logitsHelp = """
    edit-cli logits MODEL (--prompt TEXT | --tokens 1,2,3) [--chat] [--recipe R] [--threads N] --out FILE.safetensors
      Run MODEL (a Hugging Face folder) on one sequence and write tensor "logits", float32
      [tokens, vocab], every position. With --recipe, the recipe's interventions are applied by hooks
      (the whole input counts as prompt: "last" is its last position).
      --tokens 1,2,3   token ids, comma-separated
      --prompt TEXT    text, encoded with the model's tokenizer.json (--chat: as one user message
                       through the chat template, generation prompt added)
      MODEL may also be a .gguf file (converted once into a cache folder).
      --threads N      compute threads (default: all cores)
      example: edit-cli logits ./SmolLM2-135M-Instruct --tokens 504,3458,282 --recipe r.json --out l.safetensors
    """
}

func runLogits(_ args: inout Arguments) throws -> Int32 {
    let modelPath = try args.positional("MODEL")
    let prompt = try args.option("--prompt")
    let tokenList = try args.option("--tokens")
    let chat = args.flag("--chat")
    let recipePath = try args.option("--recipe")
    let out = try args.required("--out")
    let threads = try args.int("--threads")
    try args.finish()
    try EngineCLI.setThreads(threads, command: "logits")

    let (folder, model) = try EngineCLI.loadModel(modelPath)
    let tokens = try EngineCLI.inputTokens(prompt: prompt, tokens: tokenList, chat: chat, command: "logits", folder: folder).ids
    let ivs = try EngineCLI.interventions(recipePath, model: model)
    // One forward over the whole input: a listed position past its end could never be reached.
    for iv in ivs {
        if case .list(let l) = iv.positions, let bad = l.first(where: { $0 >= tokens.count }) {
            throw InputError("\(recipePath ?? "recipe"): interventions[\(iv.entry)]: position \(bad) is past the end of the \(tokens.count)-token input (positions are 0-\(tokens.count - 1))")
        }
    }
    Progress.say("logits: \(tokens.count) tokens through \(model.config.modelType) (\(model.config.numLayers) layers)")
    let (logits, _) = try model.logits(tokens: tokens, interventions: ivs)
    var meta = ["format": "pt", "model": modelPath, "tokens": tokens.map(String.init).joined(separator: ",")]
    if let recipePath { meta["recipe"] = recipePath }
    try writeSafeTensors(path: out, tensors: [TensorRecord(name: "logits", shape: [tokens.count, model.config.vocabSize], floats: logits)],
                         metadata: meta)
    Progress.say("logits: wrote \(out) [\(tokens.count), \(model.config.vocabSize)]")
    return 0
}

/// Shared by the engine's commands (logits, generate, bench).
enum EngineCLI {
    static func setThreads(_ n: Int?, command: String) throws {
        guard let n else { return }
        guard n >= 1 else { throw UsageError("\(command): --threads must be >= 1, found \(n)") }
        LanguageModel.threads = n
    }

    /// The model folder (a .gguf is converted once into a cache folder) and the model loaded from it.
    static func loadModel(_ path: String) throws -> (folder: String, model: LanguageModel) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw InputError("\(path): no such file or folder")
        }
        let folder = try GGUFModelCache.resolveModelPath(path, progress: { Progress.say($0) })
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw InputError("\(path): expected a Hugging Face model folder (config.json + safetensors) or a .gguf file")
        }
        Progress.say("loading \(folder)")
        return (folder, try LanguageModel.load(path: folder))
    }

    /// The folder's tokenizer, nil when it has no tokenizer.json.
    static func tokenizer(_ folder: String) throws -> Tokenizer? {
        guard FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("tokenizer.json")) else { return nil }
        return try Tokenizer(directory: folder)
    }

    /// Token ids from --tokens or --prompt (exactly one), and the tokenizer when the folder has one.
    static func inputTokens(prompt: String?, tokens: String?, chat: Bool, command: String,
                            folder: String) throws -> (ids: [Int], tokenizer: Tokenizer?) {
        switch (prompt, tokens) {
        case (nil, nil): throw UsageError("\(command): give --prompt TEXT or --tokens 1,2,3")
        case (.some, .some): throw UsageError("\(command): give --prompt or --tokens, not both")
        case (_, .some(let list)):
            if chat { throw UsageError("\(command): --chat applies to --prompt, not to --tokens") }
            return (try parseTokens(list, command: command), try tokenizer(folder))
        case (.some(let text), nil):
            guard let tok = try tokenizer(folder) else {
                throw UsageError("\(command): \(folder) has no tokenizer.json; pass token ids with --tokens 1,2,3")
            }
            if chat {
                let rendered = try tok.applyChatTemplate(messages: [["role": "user", "content": text]], addGenerationPrompt: true)
                // The rendered template holds its own special tokens: add none again (as `tokenize --chat`).
                return (tok.encode(rendered, addSpecialTokens: false), tok)
            }
            return (tok.encode(text), tok)
        }
    }

    static func parseTokens(_ s: String, command: String) throws -> [Int] {
        let parts = s.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var out: [Int] = []
        for (i, p) in parts.enumerated() {
            guard let v = Int(p), v >= 0 else {
                throw UsageError("\(command): --tokens entry \(i) is '\(p)', expected a non-negative integer")
            }
            out.append(v)
        }
        guard !out.isEmpty else { throw UsageError("\(command): --tokens is empty") }
        return out
    }

    static func interventions(_ recipePath: String?, model: LanguageModel) throws -> [ResolvedIntervention] {
        guard let recipePath else { return [] }
        let recipe = try Recipe.load(path: recipePath)
        return try recipe.resolve(hiddenSize: model.config.hiddenSize, numLayers: model.config.numLayers)
    }
}
