// One test per bug the fuzzers and the mutation sweeps found (fuzz/findings/ holds the inputs).
// Each states the behaviour a user must see: a typed error naming the file, exit code 2.

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
@testable import SafeTensors
@testable import Tokenizers
@testable import Engine

final class FindingsTests: XCTestCase {
    /// fuzz/findings/json-number-overflows-to-inf.json: `1e400` parsed to +infinity, which JSON
    /// cannot hold (it serialised back as null, so a round trip changed the value).
    func testJSONNumberOutOfDoubleRangeIsAnError() throws {
        for text in ["1e400", "[-2e308]", "{\"rope_theta\": 23333333335842e1803333333584}"] {
            XCTAssertThrowsError(try JSONValue.parse(text), text) { e in
                XCTAssertTrue("\(e)".contains("out of the range"), "\(e)")
            }
        }
        let bytes = try readFile("\(repoRoot)/fuzz/findings/json-number-overflows-to-inf.json")
        XCTAssertThrowsError(try JSONValue.parse(data: bytes))
        XCTAssertEqual(try JSONValue.parse("[1e308, 99999999999999999999, -0.0]").serialized(), "[1e+308,1e+20,0.0]")
    }

    /// NPY header with a shape whose byte size overflows Int (n * 4 trapped).
    func testNPYShapeOverflowIsAnError() throws {
        let dir = try makeTempDir("npy-overflow")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for shape in ["(4611686018427387904,)", "(9223372036854775807,)", "(-3,)"] {
            var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }"
            while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
            header += "\n"
            var b: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
            b += Array(header.utf8) + [0, 0, 128, 63]
            try writeFile(dir + "/v.npy", b)
            XCTAssertThrowsError(try NPY.readVector(path: dir + "/v.npy"), shape) { XCTAssertTrue($0 is NPY.Error) }
        }
    }

    /// Chat-template arithmetic that trapped on Int overflow: string repetition size, negation
    /// and floor division/modulo of Int.min by -1; and huge indents that allocated before the
    /// output limit was checked.
    func testTemplateIntegerOverflowsAreErrors() throws {
        func render(_ src: String) throws -> String {
            try ChatTemplate(source: src).render(["messages": .array([]), "x": .dict([("a", .int(1))])])
        }
        for src in ["{{ 'ab' * 9223372036854775807 }}", "{{ -(-9223372036854775807 - 1) }}",
                    "{{ (-9223372036854775807 - 1) // -1 }}", "{{ 'a\nb\nc'|indent(9223372036854775807) }}",
                    "{{ x|tojson(indent=9223372036854775807) }}", "{{ 'ab' * 4611686018427387904 }}"] {
            XCTAssertThrowsError(try render(src), src) { XCTAssertTrue($0 is TokenizerError, "\($0)") }
        }
        XCTAssertEqual(try render("{{ (-9223372036854775807 - 1) % -1 }}"), "0")
        XCTAssertEqual(try render("{{ x|tojson(indent=-1) }}"), "{\n\"a\": 1\n}")
    }

    /// BPE merged by rescanning the whole word for every merge: quadratic, so one pre-token of a
    /// million letters took hours. Long words now merge through a heap; this checks it gives the
    /// same tokens as the scan on every word of the corpus and on long synthetic words.
    func testHeapMergeEqualsScanMerge() throws {
        let scan = try Tokenizer(directory: "\(fixturesRoot)/tokenizers/smollm2")
        let heap = try Tokenizer(directory: "\(fixturesRoot)/tokenizers/smollm2")
        scan.model.mergeScanLimit = .max
        heap.model.mergeScanLimit = 1
        let corpus = try String(contentsOfFile: "\(fixturesRoot)/tokenizers/corpus.txt", encoding: .utf8)
        var rng = SeededRandom(seed: 42)
        var words = corpus.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        let letters = Array("abcdefghijklmnopqrstuvwxyzéü中")
        for _ in 0..<200 {
            words.append(String((0..<Int.random(in: 60...400, using: &rng)).map { _ in letters[Int.random(in: 0..<letters.count, using: &rng)] }))
        }
        words.append(String(repeating: "ab", count: 300))
        var checked = 0
        for w in words {
            XCTAssertEqual(heap.encode(w), scan.encode(w), w)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 1000)
        for dir in ["spstyle", "metaspace", "llama3style", "qwen2style", "gpt2style"] {
            let a = try Tokenizer(directory: "\(fixturesRoot)/tokenizers/\(dir)")
            let b = try Tokenizer(directory: "\(fixturesRoot)/tokenizers/\(dir)")
            a.model.mergeScanLimit = .max
            b.model.mergeScanLimit = 1
            for line in corpus.split(separator: "\n").prefix(300) { XCTAssertEqual(b.encode(String(line)), a.encode(String(line)), "\(dir): \(line)") }
        }
    }

    /// BPE vocabulary ids must fit the merge table's 32-bit ids (Int32(id) trapped).
    func testHugeVocabularyIdIsAnError() {
        let json = #"{"model":{"type":"BPE","vocab":{"a":0,"b":4294967296,"ab":2},"merges":["a b"]}}"#
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: Array(json.utf8), configJSON: nil)) { XCTAssertTrue($0 is TokenizerError, "\($0)") }
    }

    /// Reported to the Engine owner (Sources/Engine/Llama.swift:72, `H % nH`): a config.json with
    /// "num_attention_heads": 0 and no head_dim crashes with a division by zero instead of an
    /// error. Checked through the CLI so a crash fails this test instead of killing the suite.
    func testZeroAttentionHeadsIsAnErrorNotACrash() throws {
        guard let cli = editCLIPath() else { throw XCTSkip("edit-cli not built next to the test bundle") }
        let dir = try makeTempDir("zero-heads")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: "\(repoRoot)/fuzz/findings/config-zero-heads.json", toPath: dir + "/config.json")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: cli)
        p.arguments = ["logits", dir, "--tokens", "1,2", "--out", dir + "/l.safetensors"]
        p.standardError = Pipe()
        p.standardOutput = Pipe()
        p.environment = ["SWIFT_BACKTRACE": "enable=no"]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit, "edit-cli died from signal \(p.terminationStatus)")
        XCTAssertEqual(p.terminationStatus, 2)
    }
}
