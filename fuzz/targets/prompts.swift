// Fuzz target: prompt files of verify and extract (PromptFile.load: text lines or JSON Lines).
// The first byte picks the file suffix (.txt or .jsonl), the rest is the file.
import Editor

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let bytes = Array(inputBytes(data, size).dropFirst())
    let path = scratchFile(bytes, name: data[0] & 1 == 0 ? "prompts.txt" : "prompts.jsonl")
    do {
        let prompts = try PromptFile.load(path)
        if prompts.isEmpty { fatalError("load returned no prompts without an error") }
    } catch is EditError {
    } catch { unexpected(error) }
    return 0
}
