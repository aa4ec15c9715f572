import Foundation
import Editor
import StrictJSON
import Tokenizers

extension CLI {
    static let tokenizeHelp = """
    edit-cli tokenize MODEL --text TEXT [--chat] [--json]

    Prints the token ids of TEXT, space separated, as the model's tokenizer.json encodes it
    (with the post-processor's special tokens, e.g. BOS).

      MODEL      a model folder with tokenizer.json (tokenizer_config.json for BOS/EOS and the chat
                 template), or a .gguf file (its tokenizer is rebuilt once into the cache)
      --text     the text to encode
      --chat     wrap TEXT as one user message with the chat template (generation prompt added);
                 the rendered template already holds its special tokens, so none are added again
      --json     print {"ids": [...], "pieces": [...], "text": ...} instead; pieces are the
                 tokenizer's token strings (e.g. "Ġworld")
      example: edit-cli tokenize ./SmolLM2-135M-Instruct --text "Hello world" --chat --json
    """
}

func runTokenize(_ args: inout Arguments) throws -> Int32 {
    let modelArg = try args.positional("MODEL")
    let text = try args.required("--text")
    let chat = args.flag("--chat")
    let json = args.flag("--json")
    try args.finish()

    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: modelArg, isDirectory: &isDir) else {
        throw UsageError("tokenize: \(modelArg): no such file or folder")
    }
    // A .gguf's tokenizer comes from its (cached) conversion to a Hugging Face folder.
    let model = try GGUFModelCache.resolveModelPath(modelArg, progress: { Progress.say($0) })
    guard FileManager.default.fileExists(atPath: model, isDirectory: &isDir), isDir.boolValue else {
        throw UsageError("tokenize: \(modelArg): expected a model folder with tokenizer.json or a .gguf file")
    }
    let tok = try Tokenizer(directory: model)
    var input = text
    if chat {
        input = try tok.applyChatTemplate(messages: [["role": "user", "content": text]], addGenerationPrompt: true)
    }
    // A chat-rendered prompt holds its own BOS (if the template adds one); do not add specials twice.
    let enc = tok.encodeWithTokens(input, addSpecialTokens: !chat)
    if json {
        let obj: JSONValue = .object([
            ("text", .string(input)),
            ("ids", .array(enc.ids.map { .int($0) })),
            ("pieces", .array(enc.tokens.map { .string($0) })),
        ])
        print(obj.serialized())
    } else {
        print(enc.ids.map(String.init).joined(separator: " "))
    }
    return 0
}
