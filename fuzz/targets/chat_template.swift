// Fuzz target: Jinja chat templates (lexer, parser, interpreter with its limits), rendered with
// a small conversation as transformers' apply_chat_template would pass it.
import Tokenizers

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let source = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let t = try ChatTemplate(source: source, file: "fuzz.jinja")
        t.maxOutputBytes = 1 << 20
        t.maxLoopIterations = 100_000
        let msg: (String, String) -> JinjaValue = { r, c in .dict([("role", .string(r)), ("content", .string(c))]) }
        _ = try t.render([
            "messages": .array([msg("system", "Be brief."), msg("user", "Hi"), msg("assistant", "Hello"), msg("user", "2+2?")]),
            "add_generation_prompt": .bool(true),
            "bos_token": .string("<s>"), "eos_token": .string("</s>"),
        ])
    } catch is TokenizerError {
    } catch { unexpected(error) }
    return 0
}
