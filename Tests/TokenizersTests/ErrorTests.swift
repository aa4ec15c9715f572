// Bad tokenizer files give one-line errors that name the file and the entry.

import Foundation
import StrictJSON
import XCTest
@testable import Tokenizers

final class ErrorTests: XCTestCase {
    /// A minimal valid byte-level tokenizer.json with one stage replaced.
    func tokenizerJSON(model: String? = nil, normalizer: String = "null", preTokenizer: String = #"{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}"#,
                       postProcessor: String = "null", decoder: String = #"{"type": "ByteLevel"}"#, added: String = "[]") -> [UInt8] {
        let m = model ?? #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}"#
        return Array("""
        {"version": "1.0", "added_tokens": \(added), "normalizer": \(normalizer), "pre_tokenizer": \(preTokenizer),
         "post_processor": \(postProcessor), "decoder": \(decoder), "model": \(m)}
        """.utf8)
    }

    func assertError(_ json: [UInt8], config: [UInt8]? = nil, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: json, configJSON: config), file: file, line: line) { e in
            XCTAssertEqual("\(e)", expected, file: file, line: line)
            XCTAssertFalse("\(e)".contains("\n"), "one line", file: file, line: line)
        }
    }

    func testMinimalTokenizerWorks() throws {
        let t = try Tokenizer(tokenizerJSON: tokenizerJSON(), configJSON: nil)
        XCTAssertEqual(t.encode("ab a"), [2, 3, 0])
        XCTAssertEqual(t.decode([2, 3, 0]), "ab a")
        XCTAssertEqual(t.vocabSize, 4)
        XCTAssertNil(t.bosTokenId)
        XCTAssertEqual(t.eosTokenIds, [])
        XCTAssertNil(t.chatTemplate)
        XCTAssertThrowsError(try t.applyChatTemplate(messages: [], addGenerationPrompt: true)) {
            XCTAssertEqual("\($0)", "tokenizer_config.json: this tokenizer has no chat_template")
        }
    }

    func testUnknownStageTypes() {
        assertError(tokenizerJSON(preTokenizer: #"{"type": "BertPreTokenizer"}"#), "tokenizer.json: pre_tokenizer type 'BertPreTokenizer' is not supported")
        assertError(tokenizerJSON(normalizer: #"{"type": "BertNormalizer"}"#), "tokenizer.json: normalizer type 'BertNormalizer' is not supported")
        assertError(tokenizerJSON(decoder: #"{"type": "WordPiece"}"#), "tokenizer.json: decoder type 'WordPiece' is not supported")
        assertError(tokenizerJSON(postProcessor: #"{"type": "Weird"}"#), "tokenizer.json: post_processor type 'Weird' is not supported")
        assertError(tokenizerJSON(model: #"{"type": "Unigram", "vocab": []}"#), "tokenizer.json: model type 'Unigram' is not supported (only BPE)")
        assertError(tokenizerJSON(preTokenizer: #"{"type": "Sequence", "pretokenizers": [{"type": "Nope"}]}"#), "tokenizer.json: pre_tokenizer type 'Nope' is not supported")
    }

    func testBadEntries() {
        assertError(tokenizerJSON(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}"#),
                    "tokenizer.json: model 'BPE': merge 0 uses 'c', which is not in the vocabulary")
        assertError(tokenizerJSON(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}"#),
                    "tokenizer.json: model 'BPE': merge 0 makes 'ab', which is not in the vocabulary")
        assertError(tokenizerJSON(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["ab"]}"#),
                    "tokenizer.json: model 'BPE': merge 0 'ab' is not two tokens separated by a space")
        assertError(tokenizerJSON(model: #"{"type": "BPE", "vocab": {"a": -1}, "merges": []}"#),
                    "tokenizer.json: model 'BPE': vocab entry 'a' has id -1, expected an integer in 0..<2^31")
        assertError(tokenizerJSON(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}"#),
                    "tokenizer.json: model 'BPE': unk_token '<unk>' is not in the vocabulary")
        assertError(tokenizerJSON(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}"#),
                    "tokenizer.json: model 'BPE': dropout 0.1 is not supported (inference needs dropout null)")
        assertError(tokenizerJSON(preTokenizer: #"{"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Sideways"}"#),
                    "tokenizer.json: pre_tokenizer 'Split': behavior 'Sideways' is not supported")
        assertError(tokenizerJSON(preTokenizer: #"{"type": "Metaspace", "prepend_scheme": "sometimes"}"#),
                    "tokenizer.json: pre_tokenizer 'Metaspace': prepend_scheme 'sometimes' is not one of first, always, never")
        assertError(tokenizerJSON(postProcessor: #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {}}"#),
                    "tokenizer.json: post_processor 'TemplateProcessing': special token '<s>' is not in special_tokens")
        assertError(tokenizerJSON(added: #"[{"id": 5}]"#), "tokenizer.json: added_tokens[0]: 'content' must be a string, found nothing")
        assertError(Array("{\"model\": ".utf8), "tokenizer.json: unexpected end of input at byte 10")
        assertError(tokenizerJSON(), config: Array(#"{"bos_token": "<s>"}"#.utf8),
                    "tokenizer_config.json: bos_token '<s>' is not in the vocabulary of tokenizer.json")
        assertError(tokenizerJSON(), config: Array(#"{"chat_template": "{% if %}"}"#.utf8),
                    "tokenizer_config.json chat_template: line 1: unexpected end of expression")
    }

    func testMissingFolder() {
        XCTAssertThrowsError(try Tokenizer(directory: "/nonexistent/model")) {
            XCTAssertEqual("\($0)", "/nonexistent/model: no tokenizer.json in this folder")
        }
    }

    func testSplitBehaviorsAndDigits() throws {
        // Split on a literal "-" with each behavior; Digits contiguous (expected values printed by
        // tokenizers 0.23.3: pre_tokenizers.Split("-", behavior=...).pre_tokenize_str("a-b--c"))
        func pieces(_ pre: String, _ text: String) throws -> [String] {
            let vocab = (0..<128).compactMap { Unicode.Scalar($0) }.enumerated().map { (k, u) -> String in
                var key = ""
                JSONValue.writeString(String(u), into: &key)
                return "\(key): \(k)"
            }
            let json = """
            {"added_tokens": [], "normalizer": null, "pre_tokenizer": \(pre), "post_processor": null, "decoder": null,
             "model": {"type": "BPE", "vocab": {\(vocab.joined(separator: ","))}, "merges": []}}
            """
            let t = try Tokenizer(tokenizerJSON: Array(json.utf8), configJSON: nil)
            guard let pt = t.preTokenizer else { return [] }
            return pt.split([Piece(original: text, atStart: true)]).map { $0.text }
        }
        let split = { (b: String) in #"{"type": "Split", "pattern": {"String": "-"}, "behavior": "\#(b)", "invert": false}"# }
        XCTAssertEqual(try pieces(split("Removed"), "a-b--c"), ["a", "b", "c"])
        XCTAssertEqual(try pieces(split("Isolated"), "a-b--c"), ["a", "-", "b", "-", "-", "c"])
        XCTAssertEqual(try pieces(split("MergedWithPrevious"), "a-b--c"), ["a-", "b-", "-", "c"])
        XCTAssertEqual(try pieces(split("MergedWithNext"), "a-b--c"), ["a", "-b", "-", "-c"])
        XCTAssertEqual(try pieces(split("Contiguous"), "a-b--c"), ["a", "-", "b", "--", "c"])
        XCTAssertEqual(try pieces(#"{"type": "Digits", "individual_digits": false}"#, "ab123c4"), ["ab", "123", "c", "4"])
        XCTAssertEqual(try pieces(#"{"type": "Digits", "individual_digits": true}"#, "ab12"), ["ab", "1", "2"])
        // a pattern with no hand-written matcher goes through NSRegularExpression
        XCTAssertEqual(try pieces(#"{"type": "Split", "pattern": {"Regex": "[0-9]+"}, "behavior": "Isolated", "invert": false}"#, "x12y3"), ["x", "12", "y", "3"])
    }
}
