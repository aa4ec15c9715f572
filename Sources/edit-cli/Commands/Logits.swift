import Foundation
import SafeTensors
import Engine

extension CLI {
    static let logitsHelp = """
    edit-cli logits MODEL (--prompt TEXT | --tokens 1,2,3) [--chat] [--recipe R] --out FILE.safetensors
      Run MODEL (a Hugging Face folder) on one sequence and write tensor "logits", float32
      [tokens, vocab], every position. With --recipe, the recipe's interventions are applied by hooks
      (the whole input counts as prompt: "last" is its last position).
      --tokens 1,2,3   token ids, comma-separated
      --prompt TEXT    text to tokenize (needs the tokenizer module; --chat applies the chat template)
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

    let model = try EngineCLI.loadModel(modelPath)
    let tokens = try EngineCLI.inputTokens(prompt: prompt, tokens: tokenList, chat: chat, command: "logits", model: modelPath)
    let ivs = try EngineCLI.interventions(recipePath, model: model)
    Progress.say("logits: \(tokens.count) tokens through \(model.config.modelType) (\(model.config.numLayers) layers)")
    let (logits, _) = try model.logits(tokens: tokens, interventions: ivs)
    var meta = ["format": "pt", "model": modelPath, "tokens": tokens.map(String.init).joined(separator: ",")]
    if let recipePath { meta["recipe"] = recipePath }
    try EngineCLI.writeF32(path: out, name: "logits", shape: [tokens.count, model.config.vocabSize], values: logits, metadata: meta)
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

    static func loadModel(_ path: String) throws -> LanguageModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw UsageError("\(path): no such file or folder")
        }
        guard isDir.boolValue else {
            if path.hasSuffix(".gguf") {
                throw UsageError("\(path): the engine reads Hugging Face folders; convert first with edit-cli convert \(path) --out DIR")
            }
            throw UsageError("\(path): expected a Hugging Face model folder (config.json + safetensors)")
        }
        Progress.say("loading \(path)")
        return try LanguageModel.load(path: path)
    }

    /// Token ids from --tokens, or the not-yet error for --prompt (exactly one of them).
    static func inputTokens(prompt: String?, tokens: String?, chat: Bool, command: String, model: String) throws -> [Int] {
        switch (prompt, tokens) {
        case (nil, nil): throw UsageError("\(command): give --prompt TEXT or --tokens 1,2,3")
        case (.some, .some): throw UsageError("\(command): give --prompt or --tokens, not both")
        case (_, .some(let list)):
            if chat { throw UsageError("\(command): --chat applies to --prompt, not to --tokens") }
            return try parseTokens(list, command: command)
        case (.some, nil):
            throw UsageError("\(command): --prompt needs the tokenizer, which this build does not have yet; pass --tokens 1,2,3")
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

    /// One F32 tensor as a .safetensors file, written to a temp file beside `path` and renamed into place.
    static func writeF32(path: String, name: String, shape: [Int], values: [Float], metadata: [String: String]) throws {
        let count = values.count
        var header: [(String, JSONValue)] = [("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))]
        header.append((name, .object([
            ("dtype", .string("F32")),
            ("shape", .array(shape.map { .int($0) })),
            ("data_offsets", .array([.int(0), .int(count * 4)])),
        ])))
        var text = Array(JSONValue.object(header).serialized().utf8)
        while text.count % 8 != 0 { text.append(0x20) }
        var bytes = [UInt8]()
        bytes.reserveCapacity(8 + text.count + count * 4)
        withUnsafeBytes(of: UInt64(text.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: text)
        values.withUnsafeBufferPointer { v in
            for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        }
        let dir = (path as NSString).deletingLastPathComponent
        let temp = (dir.isEmpty ? "" : dir + "/") + "." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temp, contents: Data(bytes)) else {
            throw UsageError("\(path): cannot write (temporary file \(temp))")
        }
        if rename(temp, path) != 0 {
            let e = String(cString: strerror(errno))
            unlink(temp)
            throw UsageError("\(path): cannot rename into place: \(e)")
        }
    }
}
