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
        // Seeded random strings that stress the regex matchers and added-token matching.
        let fuzz = try XCTUnwrap(g["fuzz"]?.arrayValue)
        XCTAssertGreaterThan(fuzz.count, 200)
        var fuzzFailures = 0
        for c in fuzz {
            let text = try XCTUnwrap(c["text"]?.stringValue)
            let want = try XCTUnwrap(c["ids"]?.intArray)
            let got = tok.encode(text, addSpecialTokens: false)
            if got != want && fuzzFailures < 5 {
                fuzzFailures += 1
                XCTFail("\(name) fuzz \(show(text)):\n  want \(want) \(tok.tokens(want))\n  got  \(got) \(tok.tokens(got))")
            }
        }
        for c in try XCTUnwrap(g["decode_cases"]?.arrayValue) {
            let ids = try XCTUnwrap(c["ids"]?.intArray)
            XCTAssertEqual(tok.decode(ids), c["text"]?.stringValue, "\(name) decode \(ids.prefix(8))")
            if let s = c["text_skip_special"]?.stringValue {
                XCTAssertEqual(tok.decode(ids, skipSpecialTokens: true), s, "\(name) decode skip \(ids.prefix(8))")
            }
        }
    }

    /// The 64 KB corpus as one text, for the fixtures whose goldens include it.
    func testWholeCorpus() throws {
        let url = Fixtures.root.appendingPathComponent("corpus.txt")
        let text = try String(contentsOf: url, encoding: .utf8)
        var checked = 0
        for name in Fixtures.names {
            let g = try Fixtures.json("\(name)/goldens.json")
            guard let want = g["corpus_ids"]?.intArray else { continue }
            let tok = try Fixtures.tokenizer(name)
            let got = tok.encode(text, addSpecialTokens: false)
            if got != want {
                let k = zip(got, want).prefix(while: { $0 == $1 }).count
                XCTFail("\(name): corpus ids differ at \(k): want \(want[k..<min(k + 8, want.count)]) got \(got[k..<min(k + 8, got.count)])")
            }
            if name != "metaspace" { // metaspace lowercases, so it cannot round-trip
                XCTAssertEqual(tok.decode(want), text, "\(name): corpus round trip")
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 5)
    }

    func testSmolLM2() throws { try checkFixture("smollm2") }
    func testGPT2Style() throws { try checkFixture("gpt2style") }
    func testLlama3Style() throws { try checkFixture("llama3style") }
    func testQwen2Style() throws { try checkFixture("qwen2style") }
    func testSentencePieceStyle() throws { try checkFixture("spstyle") }
    func testMetaspace() throws { try checkFixture("metaspace") }
    func testMetaspaceAlways() throws { try checkFixture("metaspace_always") }
    func testContinuingSubwordPrefix() throws { try checkFixture("prefixstyle") }

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

    /// Swift's String == treats "é" and "e\u{301}" as equal; the vocabulary and the word cache must not.
    func testCanonicallyEquivalentWordsStayDistinct() throws {
        for name in ["smollm2", "prefixstyle"] {
            let tok = try Tokenizer(directory: Fixtures.dir(name)) // fresh: empty word cache
            let decomposed = tok.encode("e\u{301}", addSpecialTokens: false)
            let composed = tok.encode("\u{E9}", addSpecialTokens: false)
            XCTAssertNotEqual(decomposed, composed, name)
            if name == "smollm2" {
                XCTAssertEqual(Array(tok.decode(composed).utf8), Array("\u{E9}".utf8), "byte-exact round trip")
                XCTAssertEqual(Array(tok.decode(decomposed).utf8), Array("e\u{301}".utf8), "byte-exact round trip")
            }
        }
        let p = try Fixtures.tokenizer("prefixstyle")
        XCTAssertNotNil(p.tokenToId("\u{E9}"))
        XCTAssertNil(p.tokenToId("e\u{301}"), "lookups compare code points, not canonical equivalence")
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

final class ConcurrencyTests: XCTestCase {
    /// The shared word cache is locked: concurrent encodes give the single-threaded result.
    func testConcurrentEncodes() throws {
        let tok = try Tokenizer(directory: Fixtures.dir("smollm2"))
        let g = try Fixtures.json("smollm2/goldens.json")
        let cases = try XCTUnwrap(g["cases"]?.arrayValue).compactMap { c -> (String, [Int])? in
            guard let t = c["text"]?.stringValue, let ids = c["ids"]?.intArray else { return nil }
            return (t, ids)
        }
        let lock = NSLock()
        var mismatches = 0
        DispatchQueue.concurrentPerform(iterations: 8) { k in
            for (t, ids) in cases.shuffled() where tok.encode(t) != ids {
                lock.lock(); mismatches += 1; lock.unlock()
            }
            _ = k
        }
        XCTAssertEqual(mismatches, 0)
    }
}
