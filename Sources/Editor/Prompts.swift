// Prompt files for verify and extract: one prompt per line (.txt; blank lines skipped), or JSON
// Lines with a "prompt" string field (.jsonl / .json lines starting with "{").

import Foundation
import Tokenizers

public enum PromptFile {
    public static func load(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw EditError.io("\(path): cannot read the prompt file") }
        guard let text = String(data: data, encoding: .utf8) else { throw EditError.badInput("\(path): not valid UTF-8") }
        var out: [String] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        let jsonl = path.hasSuffix(".jsonl") || lines.first(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty })?.hasPrefix("{") == true
        for (i, line) in lines.enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            if jsonl {
                let v: JSONValue
                do { v = try JSONValue.parse(line) } catch { throw EditError.badInput("\(path):\(i + 1): not valid JSON: \(error)") }
                guard let p = v["prompt"]?.stringValue else { throw EditError.badInput("\(path):\(i + 1): expected an object with a \"prompt\" string") }
                out.append(p)
            } else {
                out.append(line)
            }
        }
        guard !out.isEmpty else { throw EditError.badInput("\(path): no prompts") }
        return out
    }

    /// Token ids of each prompt; `chat` wraps it as one user message with the generation prompt.
    public static func encode(_ prompts: [String], tokenizer: Tokenizer, chat: Bool) throws -> [[Int]] {
        try prompts.map { p in
            if chat {
                let text = try tokenizer.applyChatTemplate(messages: [["role": "user", "content": p]], addGenerationPrompt: true)
                return tokenizer.encode(text, addSpecialTokens: false)
            }
            return tokenizer.encode(p)
        }
    }
}
