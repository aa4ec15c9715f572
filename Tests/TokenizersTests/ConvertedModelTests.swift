// The tokenizer that `edit-cli convert` writes from the SmolLM2 GGUF must behave exactly like the
// transformers export committed in fixtures/tokenizers/smollm2. scripts/test sets SMOLLM2_HF to the
// converted folder when the GGUF is cached; without it the test is skipped (and says so).

import Foundation
import XCTest
@testable import Tokenizers

final class ConvertedModelTests: XCTestCase {
    func testConvertedSmolLM2TokenizerMatchesFixture() throws {
        guard let dir = ProcessInfo.processInfo.environment["SMOLLM2_HF"] else {
            throw XCTSkip("SMOLLM2_HF is not set (scripts/test sets it when the SmolLM2 GGUF is cached)")
        }
        let converted = try Tokenizer(directory: dir)
        let reference = try Fixtures.tokenizer("smollm2")
        XCTAssertEqual(converted.vocabSize, reference.vocabSize)
        XCTAssertEqual(converted.bosTokenId, reference.bosTokenId)
        XCTAssertTrue(reference.eosTokenIds.allSatisfy { converted.eosTokenIds.contains($0) })
        let g = try Fixtures.json("smollm2/goldens.json")
        for c in try XCTUnwrap(g["cases"]?.arrayValue) {
            let text = try XCTUnwrap(c["text"]?.stringValue)
            XCTAssertEqual(converted.encode(text), c["ids"]?.intArray, "encode \(show(text))")
        }
        let corpus = try String(contentsOf: Fixtures.root.appendingPathComponent("corpus.txt"), encoding: .utf8)
        XCTAssertEqual(converted.encode(corpus, addSpecialTokens: false), g["corpus_ids"]?.intArray)
        let messages = [["role": "user", "content": "Hi"], ["role": "assistant", "content": "Hello!"]]
        XCTAssertEqual(try converted.applyChatTemplate(messages: messages, addGenerationPrompt: true),
                       try reference.applyChatTemplate(messages: messages, addGenerationPrompt: true))
    }
}
