// Hostile sizes: headers and metadata that claim gigabytes, counts in the millions, deep nesting,
// million-character prompts. Each must end in a clear typed error (or a correct result) quickly and
// with bounded memory: nothing is allocated from a size the input merely claims.

import Foundation
import XCTest
import TestSupport
@testable import SafeTensors
@testable import Tokenizers
@testable import Engine
import Editor

final class ResourceLimitTests: XCTestCase {
    static let mb = 1 << 20

    func assertBoundedMemory(_ limitMB: Int, _ label: String, file: StaticString = #filePath, line: UInt = #line,
                             _ body: () throws -> Void) rethrows {
        let grown = try peakRSSGrowth(body)
        if let grown {
            print("resource \(label): peak RSS grew \(grown / Self.mb) MB")
            XCTAssertLessThan(grown, limitMB * Self.mb, "\(label): peak RSS grew \(grown / Self.mb) MB", file: file, line: line)
        }
    }

    func stKind(_ body: () throws -> Void) -> SafeTensorsError.Kind? {
        do { try body(); return nil } catch let e as SafeTensorsError { return e.kind } catch {
            XCTFail("untyped error \(error)"); return nil
        }
    }

    func ggufKind(_ bytes: [UInt8]) throws -> GGUFError.Kind? {
        let dir = try makeTempDir("gguf-limits")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile(dir + "/f.gguf", bytes)
        do { _ = try GGUFFile(path: dir + "/f.gguf"); return nil } catch let e as GGUFError { return e.kind }
    }

    // MARK: safetensors

    func testSafeTensorsHeaderLengthClaimingGigabytes() throws {
        for claimed: UInt64 in [50_000_000_000, UInt64.max, 1 << 63, 99_999_999] {
            var bytes = withUnsafeBytes(of: claimed.littleEndian) { [UInt8]($0) }
            bytes += Array("{}      ".utf8)
            assertBoundedMemory(20, "safetensors header length \(claimed)") {
                let kind = stKind { _ = try SafeTensorsFile(bytes: bytes, name: "claims.safetensors") }
                XCTAssertTrue(kind == .headerTooLarge || kind == .invalidHeaderLength, "\(claimed): \(String(describing: kind))")
            }
        }
        // The same through the mmap path.
        let dir = try makeTempDir("st-limits")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var bytes = withUnsafeBytes(of: UInt64(80_000_000).littleEndian) { [UInt8]($0) }
        bytes += Array("{}".utf8)
        try writeFile(dir + "/x.safetensors", bytes)
        XCTAssertEqual(stKind { _ = try SafeTensorsFile(path: dir + "/x.safetensors") }, .invalidHeaderLength)
    }

    func testSafeTensorsTensorClaimingTerabytes() throws {
        let header = #"{"w":{"dtype":"F32","shape":[1048576,1048576,1048576],"data_offsets":[0,4]}}"#
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { [UInt8]($0) }
        bytes += Array(header.utf8) + [0, 0, 0, 0]
        assertBoundedMemory(20, "safetensors tensor of 2^60 elements") {
            let kind = stKind { _ = try SafeTensorsFile(bytes: bytes, name: "huge.safetensors") }
            XCTAssertTrue(kind == .overflow || kind == .sizeMismatch, String(describing: kind))
        }
    }

    /// A million tensors is a legal header (about 60 MB, under the 100 MB limit): it must load in
    /// bounded time and memory, and a header over the limit must be refused before parsing.
    func testSafeTensorsMillionTensors() throws {
        var header = "{"
        header.reserveCapacity(64 * 1_000_000)
        for k in 0..<1_000_000 {
            if k > 0 { header += "," }
            header += "\"t\(k)\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}"
        }
        header += "}"
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { [UInt8]($0) }
        bytes += Array(header.utf8)
        header = ""
        var count = 0
        let seconds = try timed {
            try assertBoundedMemory(1500, "safetensors header of 1M tensors (\(bytes.count / Self.mb) MB)") {
                let f = try SafeTensorsFile(bytes: bytes, name: "million.safetensors")
                count = f.tensorNames.count
            }
        }
        print("resource: 1M-tensor header parsed in \(String(format: "%.2f", seconds)) s")
        XCTAssertEqual(count, 1_000_000)
        XCTAssertLessThan(seconds, 30)
    }

    // MARK: GGUF

    func ggufHeader(tensorCount: UInt64, kvCount: UInt64, rest: [UInt8] = []) -> [UInt8] {
        var b = Array("GGUF".utf8)
        b += withUnsafeBytes(of: UInt32(3).littleEndian) { [UInt8]($0) }
        b += withUnsafeBytes(of: tensorCount.littleEndian) { [UInt8]($0) }
        b += withUnsafeBytes(of: kvCount.littleEndian) { [UInt8]($0) }
        return b + rest + [UInt8](repeating: 0, count: 64)
    }

    func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { [UInt8]($0) } }
    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { [UInt8]($0) } }

    func testGGUFCountsClaimingMillions() throws {
        try assertBoundedMemory(20, "gguf claimed counts") {
            for (t, kv) in [(UInt64(5_000_000), UInt64(0)), (0, 5_000_000), (UInt64.max, 0), (0, UInt64.max), (1 << 62, 1 << 62)] {
                let kind = try ggufKind(ggufHeader(tensorCount: t, kvCount: kv))
                XCTAssertNotNil(kind, "tensor_count \(t), kv_count \(kv) must be refused")
            }
        }
    }

    func testGGUFStringAndArrayLengthsClaimingGigabytes() throws {
        try assertBoundedMemory(20, "gguf claimed lengths") {
            // a key whose length claims 2^40 bytes
            XCTAssertNotNil(try ggufKind(ggufHeader(tensorCount: 0, kvCount: 1, rest: u64(1 << 40))))
            // an array of 2^40 u8 values
            let key = Array("big".utf8)
            let arr = u64(UInt64(key.count)) + key + u32(9) + u32(0) + u64(1 << 40)
            XCTAssertNotNil(try ggufKind(ggufHeader(tensorCount: 0, kvCount: 1, rest: arr)))
            // an array of 2^32 strings each claiming nothing (8 bytes each = 32 GB)
            let arr2 = u64(UInt64(key.count)) + key + u32(9) + u32(8) + u64(1 << 32)
            XCTAssertNotNil(try ggufKind(ggufHeader(tensorCount: 0, kvCount: 1, rest: arr2)))
            // arrays nested 100 deep
            var nested = u64(UInt64(key.count)) + key + u32(9)
            for _ in 0..<100 { nested += u32(9) + u64(1) }
            nested += u32(0) + u64(1) + [7]
            XCTAssertNotNil(try ggufKind(ggufHeader(tensorCount: 0, kvCount: 1, rest: nested)))
            // a tensor with 2^62 elements
            let name = Array("t".utf8)
            let tensor = u64(1) + name + u32(2) + u64(1 << 31) + u64(1 << 31) + u32(0) + u64(0)
            XCTAssertNotNil(try ggufKind(ggufHeader(tensorCount: 1, kvCount: 0, rest: tensor)))
        }
    }

    // MARK: JSON and nesting

    func testDeeplyNestedJSONEverywhere() throws {
        for depth in [200, 100_000, 1_000_000] {
            let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            XCTAssertThrowsError(try JSONValue.parse(text)) { XCTAssertTrue($0 is JSONParseError) }
            let obj = String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
            XCTAssertThrowsError(try JSONValue.parse(obj)) { XCTAssertTrue($0 is JSONParseError) }
        }
        let deep = "{\"model_type\":\"llama\",\"x\":" + String(repeating: "[", count: 500_000) + String(repeating: "]", count: 500_000) + "}"
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: Array(deep.utf8), configJSON: nil)) { XCTAssertTrue($0 is TokenizerError) }
        let dir = try makeTempDir("deep")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile(dir + "/config.json", Array(deep.utf8))
        XCTAssertThrowsError(try ModelConfig.load(directory: dir)) { XCTAssertTrue($0 is ModelError, "\($0)") }
        try writeFile(dir + "/recipe.json", Array(deep.utf8))
        XCTAssertThrowsError(try Recipe.load(path: dir + "/recipe.json")) { XCTAssertTrue($0 is RecipeError, "\($0)") }
    }

    // MARK: chat templates

    func renderError(_ source: String) -> String? {
        do {
            let t = try ChatTemplate(source: source, file: "hostile.jinja")
            _ = try t.render(["messages": .array([]), "add_generation_prompt": .bool(true)])
            return nil
        } catch let e as TokenizerError { return e.message } catch { return "untyped: \(error)" }
    }

    /// Every way of nesting an expression (brackets, prefix operators, and left-associative
    /// chains, whose trees are as deep as they are long) is refused past the parser's depth
    /// limit, so neither the parser, the evaluator nor freeing the tree can overflow the stack.
    func testDeeplyNestedTemplates() {
        for depth in [1_000, 50_000] {
            let cases: [(String, String)] = [
                ("if blocks", String(repeating: "{% if true %}", count: depth) + "x" + String(repeating: "{% endif %}", count: depth)),
                ("for blocks", String(repeating: "{% for i in [1] %}", count: depth) + "x" + String(repeating: "{% endfor %}", count: depth)),
                ("parentheses", "{{ " + String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth) + " }}"),
                ("list literals", "{{ " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + " }}"),
                ("dict literals", "{{ " + String(repeating: "{1:", count: depth) + "1" + String(repeating: "}", count: depth) + " }}"),
                ("not", "{{ " + String(repeating: "not ", count: depth) + "true }}"),
                ("unary minus", "{{ " + String(repeating: "-", count: depth) + "1 }}"),
                ("sum", "{{ 1" + String(repeating: " + 1", count: depth) + " }}"),
                ("product", "{{ 1" + String(repeating: " * 1", count: depth) + " }}"),
                ("concatenation", "{{ 'a'" + String(repeating: " ~ 'a'", count: depth) + " }}"),
                ("and", "{{ true" + String(repeating: " and true", count: depth) + " }}"),
                ("comparisons", "{{ 1" + String(repeating: " == 1", count: depth) + " }}"),
                ("tests", "{{ 1" + String(repeating: " is defined", count: depth) + " }}"),
                ("power", "{{ 1" + String(repeating: " ** 1", count: depth) + " }}"),
                ("attributes", "{{ x" + String(repeating: ".a", count: depth) + " }}"),
                ("subscripts", "{{ x" + String(repeating: "[0]", count: depth) + " }}"),
                ("calls", "{{ x" + String(repeating: "()", count: depth) + " }}"),
                ("filters", "{{ 'a'" + String(repeating: "|upper", count: depth) + " }}"),
                ("conditionals", "{{ " + String(repeating: "1 if true else ", count: depth) + "1 }}"),
            ]
            for (what, source) in cases {
                let e = renderError(source)
                XCTAssertNotNil(e, "\(depth) nested \(what) must be refused")
                XCTAssertFalse(e?.hasPrefix("untyped") ?? false, "\(what): \(e ?? "")")
            }
        }
        // Real templates stay far below the limits.
        XCTAssertNil(renderError("{{ (((1 + 2) * 3) ~ 'x')|upper|lower|trim }}{% if 1 == 1 and not false %}ok{% endif %}"))
    }

    /// Values nested at run time (a loop wrapping a list in a list) are bounded too.
    func testDeeplyNestedValuesBuiltAtRunTime() {
        let src = "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}{{ ns.x|tojson }}{{ ns.x|length }}"
        let e = renderError(src)
        XCTAssertTrue(e?.contains("value nesting deeper") ?? false, e ?? "rendered")
        for cycle in ["{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}",
                      "{% set a = namespace() %}{% set b = namespace(x=a) %}{% set a.y = [b] %}{{ a }}",
                      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = {'k': ns.x} %}{% endfor %}{{ ns.x }}",
                      "{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = namespace(v=ns.x) %}{% endfor %}{{ ns.x }}"] {
            let e = renderError(cycle)
            XCTAssertNotNil(e, cycle)
            XCTAssertFalse(e?.hasPrefix("untyped") ?? false, e ?? "")
        }
    }

    func testTemplateOutputAndLoopBombs() throws {
        assertBoundedMemory(200, "template bombs") {
            let bombs = [
                "{{ 'ab' * 9223372036854775807 }}",
                "{{ 'ab' * 4611686018427387904 }}",
                "{{ 'x' * 1000000000 }}",
                "{% for i in range(1000000000000) %}x{% endfor %}",
                "{% for i in range(0, 9223372036854775807, 1) %}{% endfor %}",
                "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
                "{% set s = 'xxxxxxxxxxxxxxxx' %}{% for i in range(40) %}{% set s = s ~ s %}{% endfor %}{{ s|length }}",
                "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
                "{{ [1] * 9223372036854775807 }}",
                "{{ 9223372036854775807 + 1 }}",
                "{{ -9223372036854775808 // -1 }}",
                "{{ -9223372036854775808 % -1 }}",
                "{{ 2 ** 100000 }}",
                "{{ 1 // 0 }}",
                "{{ 1 % 0 }}",
            ]
            for b in bombs {
                let e = renderError(b)
                XCTAssertFalse(e?.hasPrefix("untyped") ?? false, "\(b): \(e ?? "")")
                print("resource template \(b.prefix(60)): \(e ?? "rendered")")
            }
        }
    }

    // MARK: prompts

    func testMillionCharacterPrompts() throws {
        let t = try Tokenizer(directory: "\(fixturesRoot)/tokenizers/smollm2")
        let corpus = try String(contentsOfFile: "\(fixturesRoot)/tokenizers/corpus.txt", encoding: .utf8)
        var text = ""
        while text.utf8.count < 1_000_000 { text += corpus }
        var ids: [Int] = []
        let natural = timed {
            assertBoundedMemory(300, "1M-character prompt") { ids = t.encode(text) }
        }
        print("resource: 1M-character natural prompt -> \(ids.count) tokens in \(String(format: "%.2f", natural)) s")
        XCTAssertLessThan(natural, 20)
        XCTAssertEqual(t.decode(ids), text)

        // One pre-token of a million letters (no spaces): BPE must not be quadratic in it.
        let word = String(repeating: "ab", count: 500_000)
        let single = timed { ids = t.encode(word) }
        print("resource: 1M-character single word -> \(ids.count) tokens in \(String(format: "%.2f", single)) s")
        XCTAssertLessThan(single, 20)
        XCTAssertEqual(t.decode(ids), word)

        // The same million characters as one line of a prompt file (verify, extract).
        let dir = try makeTempDir("prompt-file")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile(dir + "/p.txt", Array((text.replacingOccurrences(of: "\n", with: " ") + "\nshort\n").utf8))
        var prompts: [String] = []
        try assertBoundedMemory(100, "1M-character prompt file") { prompts = try PromptFile.load(dir + "/p.txt") }
        XCTAssertEqual(prompts.count, 2)
        XCTAssertEqual(prompts[0].utf8.count, text.utf8.count)

        let template = try XCTUnwrap(t.chatTemplate)
        _ = template
        let chat = try t.applyChatTemplate(messages: [["role": "user", "content": text]], addGenerationPrompt: true)
        XCTAssertTrue(chat.contains(text.prefix(1000)))
    }

    /// A prompt-file line longer than the model's context: `edit-cli extract` refuses it before
    /// running anything (it used to run for minutes at gigabytes), one line naming the prompt,
    /// its token count and the limit, exit 2.
    func testPromptLongerThanTheContextIsRefusedUpFront() throws {
        guard let cli = editCLIPath() else { throw XCTSkip("edit-cli is not built next to the test bundle") }
        let dir = try makeTempDir("long-prompt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try GGUFConverter.convert(gguf: "\(fixturesRoot)/gguf/tiny_llama.gguf", to: dir + "/model")
        let corpus = try String(contentsOfFile: "\(fixturesRoot)/tokenizers/corpus.txt", encoding: .utf8)
        var text = ""
        while text.utf8.count < 1_000_000 { text += corpus }
        try writeFile(dir + "/pos.txt", Array(("short one\n" + text.replacingOccurrences(of: "\n", with: " ") + "\n").utf8))
        try writeFile(dir + "/neg.txt", Array("short two\nshort three\n".utf8))
        var r = CLIResult(status: -1, stdout: "", stderr: "")
        let seconds = try timed {
            r = try runCLI(cli, ["extract", dir + "/model", "--positive", dir + "/pos.txt", "--negative", dir + "/neg.txt",
                                 "--out", dir + "/v.safetensors"])
        }
        print("resource: extract with a 1M-character prompt line: exit \(r.status) in \(String(format: "%.2f", seconds)) s: \(r.stderr)")
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("positive prompt 2") && r.stderr.contains("max_position_embeddings"), r.stderr)
        XCTAssertLessThan(seconds, 30)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/v.safetensors"))
    }
}
