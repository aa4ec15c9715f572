import Foundation
import StrictJSON
import Tokenizers

extension CLI {
    static let tokenizeHelp = """
    edit-cli tokenize MODEL --text TEXT [--chat] [--json]

    Prints the token ids of TEXT, space separated, as the model's tokenizer.json encodes it
    (with the post-processor's special tokens, e.g. BOS).

      MODEL      a model folder with tokenizer.json (tokenizer_config.json for BOS/EOS and the chat template)
      --text     the text to encode
      --chat     wrap TEXT as one user message with the chat template (generation prompt added);
                 the rendered template already holds its special tokens, so none are added again
      --json     print {"ids": [...], "pieces": [...], "text": ...} instead; pieces are the
                 tokenizer's token strings (e.g. "Ġworld")
    """
}

func runTokenize(_ args: inout Arguments) throws -> Int32 {
    let model = try args.positional("MODEL")
    let text = try args.required("--text")
    let chat = args.flag("--chat")
    let json = args.flag("--json")
    try args.finish()

    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: model, isDirectory: &isDir) else {
        throw UsageError("tokenize: \(model): no such file or folder")
    }
    guard isDir.boolValue else {
        if model.hasSuffix(".gguf") {
            throw UsageError("tokenize: \(model): reading the tokenizer from a .gguf file is not supported yet; convert it first (edit-cli convert MODEL.gguf --out DIR) and pass the folder")
        }
        throw UsageError("tokenize: \(model): expected a model folder with tokenizer.json")
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
