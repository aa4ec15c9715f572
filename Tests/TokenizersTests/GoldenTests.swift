// Encoding and decoding must equal the Python `tokenizers` library (0.23.3) exactly, on every
// fixture tokenizer and every tricky text of make_goldens.py.

import Foundation
import StrictJSON
import XCTest
@testable import Tokenizers

final class GoldenTests: XCTestCase {
    func checkFixture(_ name: String) throws {
        let tok = try Fixtures.tokenizer(name)
        let g = try Fixtures.json("\(name)/goldens.json")
        XCTAssertEqual(tok.vocabSize, g["vocab_size"]?.intValue, "\(name): vocab size")
        let cases = try XCTUnwrap(g["cases"]?.arrayValue)
        XCTAssertGreaterThan(cases.count, 30)
        var failures = 0
        for c in cases {
            let text = try XCTUnwrap(c["text"]?.stringValue)
            let want = try XCTUnwrap(c["ids"]?.intArray)
            let got = tok.encode(text)
            let detailed = tok.encodeWithTokens(text)
            XCTAssertEqual(detailed.ids, got)
            if got != want {
                failures += 1
                XCTFail("\(name) encode \(show(text)):\n  want \(want)\n  got  \(got)\n  want tokens \(c["tokens"]!.serialized())\n  got tokens  \(tok.tokens(got))")
                continue
            }
            XCTAssertEqual(detailed.tokens, c["tokens"]?.arrayValue?.compactMap { $0.stringValue }, "\(name) tokens \(show(text))")
            XCTAssertEqual(tok.encode(text, addSpecialTokens: false), c["ids_no_special"]?.intArray, "\(name) no-special \(show(text))")
            XCTAssertEqual(tok.decode(want), c["decode"]?.stringValue, "\(name) decode \(show(text))")
            XCTAssertEqual(tok.decode(want, skipSpecialTokens: true), c["decode_skip_special"]?.stringValue, "\(name) decode skip \(show(text))")
            if failures > 5 { break }
        }
        for c in try XCTUnwrap(g["decode_cases"]?.arrayValue) {
            let ids = try XCTUnwrap(c["ids"]?.intArray)
            XCTAssertEqual(tok.decode(ids), c["text"]?.stringValue, "\(name) decode \(ids.prefix(8))")
            if let s = c["text_skip_special"]?.stringValue {
                XCTAssertEqual(tok.decode(ids, skipSpecialTokens: true), s, "\(name) decode skip \(ids.prefix(8))")
            }
        }
    }

    func testSmolLM2() throws { try checkFixture("smollm2") }
    func testGPT2Style() throws { try checkFixture("gpt2style") }
    func testLlama3Style() throws { try checkFixture("llama3style") }
    func testQwen2Style() throws { try checkFixture("qwen2style") }
    func testSentencePieceStyle() throws { try checkFixture("spstyle") }
    func testMetaspace() throws { try checkFixture("metaspace") }
    func testMetaspaceAlways() throws { try checkFixture("metaspace_always") }

    /// Streaming decode emits exactly decode(ids) in total, and never a partial character.
    func testStreamingDecoderMatchesDecode() throws {
        for name in Fixtures.names {
            let tok = try Fixtures.tokenizer(name)
            let g = try Fixtures.json("\(name)/goldens.json")
            for c in try XCTUnwrap(g["cases"]?.arrayValue) {
                let ids = try XCTUnwrap(c["ids"]?.intArray)
                for skip in [false, true] {
                    let sd = StreamingDecoder(tokenizer: tok, skipSpecialTokens: skip)
                    var out = ""
                    for id in ids {
                        let piece = sd.push(id)
                        XCTAssertFalse(piece.hasSuffix("\u{FFFD}") && !tok.decode(ids).contains("\u{FFFD}"), "\(name): partial character emitted")
                        out += piece
                    }
                    out += sd.finish()
                    XCTAssertEqual(out, tok.decode(ids, skipSpecialTokens: skip), "\(name) streaming \(show(c["text"]?.stringValue ?? ""))")
                }
            }
        }
    }

    /// A character split over byte tokens is held back until complete.
    func testStreamingHoldsBackPartialCharacters() throws {
        let tok = try Fixtures.tokenizer("spstyle")
        // U+1D518 is F0 9D 94 98: four byte-fallback tokens in this small vocabulary
        let ids = tok.encode("a\u{1D518}", addSpecialTokens: false)
        let bytes = ["<0xF0>", "<0x9D>", "<0x94>", "<0x98>"].compactMap { tok.tokenToId($0) }
        XCTAssertEqual(bytes.count, 4)
        XCTAssertTrue(ids.suffix(4).elementsEqual(bytes), "expected byte fallback, got \(tok.tokens(ids))")
        let sd = StreamingDecoder(tokenizer: tok)
        var emitted: [String] = []
        for id in ids { emitted.append(sd.push(id)) }
        XCTAssertEqual(Array(emitted.suffix(4)), ["", "", "", "\u{1D518}"], "the character comes out whole, once complete")
        XCTAssertEqual(emitted.joined() + sd.finish(), tok.decode(ids))
        // an unfinished character is flushed by finish() as U+FFFD
        let sd2 = StreamingDecoder(tokenizer: tok)
        var out = ""
        for id in ids.dropLast() { out += sd2.push(id) }
        XCTAssertEqual(out, "a")
        XCTAssertEqual(sd2.finish(), "\u{FFFD}\u{FFFD}\u{FFFD}")
    }

    func testSpecialIdsAndLookups() throws {
        let tok = try Fixtures.tokenizer("smollm2")
        XCTAssertEqual(tok.tokenToId("<|im_start|>"), 1)
        XCTAssertEqual(tok.idToToken(2), "<|im_end|>")
        XCTAssertEqual(tok.bosTokenId, 1)
        XCTAssertEqual(tok.eosTokenIds, [2])
        XCTAssertEqual(tok.vocabSize, 49152)
        XCTAssertNil(tok.tokenToId("definitely not a token"))
        XCTAssertNil(tok.idToToken(10_000_000))
        XCTAssertEqual(tok.decode([1, 2], skipSpecialTokens: true), "")
        let sp = try Fixtures.tokenizer("spstyle")
        XCTAssertEqual(sp.bosTokenId, sp.tokenToId("<s>"))
        XCTAssertEqual(sp.encode("").first, sp.bosTokenId, "TemplateProcessing adds BOS")
        XCTAssertEqual(sp.encode("", addSpecialTokens: false), [])
    }
}
