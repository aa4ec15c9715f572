// One test per bug the fuzzers and the mutation sweeps found (fuzz/findings/ holds the inputs).
// Each states the behaviour a user must see: a typed error naming the file, exit code 2.

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import TestSupport
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

    // BPE merging was quadratic in the word length (hours for a million-letter word): fixed on
    // main by the tokenizers helper with a heap for long words (the same fix this branch had);
    // ResourceLimitTests.testMillionCharacterPrompts keeps it bounded.

    /// BPE vocabulary ids must fit the merge table's 32-bit ids (Int32(id) trapped).
    func testHugeVocabularyIdIsAnError() {
        let json = #"{"model":{"type":"BPE","vocab":{"a":0,"b":4294967296,"ab":2},"merges":["a b"]}}"#
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: Array(json.utf8), configJSON: nil)) { XCTAssertTrue($0 is TokenizerError, "\($0)") }
    }

    /// fuzz/findings/config-zero-heads.json (fuzz: config): "num_attention_heads": 0 and no
    /// head_dim divided by zero in Llama.swift (fixed on main by the Engine owner). Checked through
    /// the CLI, so a crash fails this test instead of killing the suite.
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
