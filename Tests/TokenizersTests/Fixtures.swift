// Locating and reading the committed fixtures of fixtures/tokenizers/ (made by make_goldens.py).

import Foundation
import StrictJSON
import XCTest
@testable import Tokenizers

enum Fixtures {
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/tokenizers")

    static let names = ["smollm2", "gpt2style", "llama3style", "qwen2style", "spstyle", "metaspace", "metaspace_always", "prefixstyle"]

    static func dir(_ name: String) -> String { root.appendingPathComponent(name).path }

    static func json(_ path: String) throws -> JSONValue {
        let url = root.appendingPathComponent(path)
        guard let d = FileManager.default.contents(atPath: url.path) else {
            throw TokenizerError("fixture \(url.path) is missing (run fixtures/tokenizers/make_goldens.py)")
        }
        return try JSONValue.parse(data: [UInt8](d))
    }

    static var tokenizerCache: [String: Tokenizer] = [:]
    static func tokenizer(_ name: String) throws -> Tokenizer {
        if let t = tokenizerCache[name] { return t }
        let t = try Tokenizer(directory: dir(name))
        tokenizerCache[name] = t
        return t
    }
}

/// Shows a short, readable form of a string in failure messages.
func show(_ s: String) -> String {
    var out = ""
    JSONValue.writeString(s.count > 80 ? String(s.prefix(80)) + "..." : s, into: &out)
    return out
}
