// The edit-cli binary as a user meets it: bad inputs must give exit 2 and exactly one stderr line
// naming the file or entry (no stack trace), refusals leave no output folder, and verify tells our
// own bake (exit 0) from one made with a wrong recipe (exit 1).
// Runs the edit-cli built beside the test bundle (swift test builds it); skipped when it is absent.

import Foundation
import XCTest
import TestSupport

final class CLIErrorTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let llama = repo.appendingPathComponent("fixtures/models/llama").path

    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("cli-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    func binary() throws -> String {
        guard let path = editCLIPath() else { throw XCTSkip("edit-cli binary not found beside the test bundle") }
        return path
    }

    func run(_ args: [String]) throws -> CLIResult { try runCLI(try binary(), args, in: tmp) }

    /// Exit 2, one stderr line that contains every `mentions`.
    func expectBadInput(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(args)
        XCTAssertEqual(r.status, 2, "exit code of edit-cli \(args.joined(separator: " ")); stderr: \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        XCTAssertEqual(lines.count, 1, "stderr must be one line: \(r.stderr)", file: file, line: line)
        for m in mentions {
            XCTAssertTrue(r.stderr.contains(m), "stderr should mention '\(m)': \(r.stderr)", file: file, line: line)
        }
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = tmp.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func recipe(_ name: String, _ entry: String) throws -> String {
        try write(name, "{\"interventions\": [\(entry)]}\n")
    }

    var vectors: String { Self.llama + "/vectors.safetensors" }

    func testLogitsBadInputs() throws {
        let out = tmp.appendingPathComponent("l.safetensors").path
        try expectBadInput(["logits", tmp.appendingPathComponent("nope").path, "--tokens", "1,2", "--out", out], mentions: ["nope"])
        try expectBadInput(["logits", Self.llama, "--tokens", "1,x", "--out", out], mentions: ["--tokens", "'x'"])
        try expectBadInput(["logits", Self.llama, "--tokens", "1,99999", "--out", out], mentions: ["99999", "256"])
        try expectBadInput(["logits", Self.llama, "--tokens", "1,2", "--out", out, "--bogus"], mentions: ["--bogus"])
        try expectBadInput(["logits", Self.llama, "--tokens", "1,2"], mentions: ["--out"])

        let malformed = try write("malformed.json", "{\"interventions\": [")
        try expectBadInput(["logits", Self.llama, "--tokens", "1,2", "--out", out, "--recipe", malformed], mentions: ["malformed.json", "JSON"])
        let layer = try recipe("layer.json", "{\"op\": \"add\", \"point\": \"resid_post\", \"layer\": 7, \"vector\": {\"file\": \"\(vectors)\", \"tensor\": \"v\"}, \"scale\": 1}")
        try expectBadInput(["logits", Self.llama, "--tokens", "1,2", "--out", out, "--recipe", layer], mentions: ["layer.json", "interventions[0]", "7"])
        let tensor = try recipe("tensor.json", "{\"op\": \"add\", \"point\": \"resid_post\", \"layer\": 1, \"vector\": {\"file\": \"\(vectors)\", \"tensor\": \"nope\"}, \"scale\": 1}")
        try expectBadInput(["logits", Self.llama, "--tokens", "1,2", "--out", out, "--recipe", tensor], mentions: ["tensor.json", "nope"])
        let op = try recipe("op.json", "{\"op\": \"frob\", \"point\": \"resid_post\", \"layer\": 1, \"vector\": {\"file\": \"\(vectors)\", \"tensor\": \"v\"}}")
        try expectBadInput(["logits", Self.llama, "--tokens", "1,2", "--out", out, "--recipe", op], mentions: ["op.json", "frob"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testWrongVectorSize() throws {
        // A vectors file with a 10-value tensor, written with the layout of safetensors.
        let values = [Float](repeating: 1, count: 10)
        let header = "{\"v\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[0,40]}}"
        var data = Data()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        let vpath = tmp.appendingPathComponent("v10.safetensors").path
        try data.write(to: URL(fileURLWithPath: vpath))
        let r = try recipe("size.json", "{\"op\": \"add\", \"point\": \"resid_post\", \"layer\": 1, \"vector\": {\"file\": \"\(vpath)\", \"tensor\": \"v\"}, \"scale\": 1}")
        try expectBadInput(["logits", Self.llama, "--tokens", "1,2", "--out", tmp.appendingPathComponent("l.safetensors").path, "--recipe", r],
                           mentions: ["size.json", "10", "64"])
        try expectBadInput(["bake", Self.llama, "--recipe", r, "--out", tmp.appendingPathComponent("baked").path], mentions: ["size.json", "10", "64"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("baked").path))
    }

    /// A copy of the llama fixture with one file replaced.
    func brokenCopy(_ name: String, edit: (URL) throws -> Void) throws -> String {
        let dst = tmp.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Self.llama + "/" + f, toPath: dst.appendingPathComponent(f).path)
        }
        try edit(dst)
        return dst.path
    }

    func testBrokenModels() throws {
        let out = tmp.appendingPathComponent("l.safetensors").path
        let falcon = try brokenCopy("falcon") { d in
            let c = d.appendingPathComponent("config.json")
            let s = try String(contentsOf: c, encoding: .utf8).replacingOccurrences(of: "\"model_type\": \"llama\"", with: "\"model_type\": \"falcon\"")
            try s.write(to: c, atomically: true, encoding: .utf8)
        }
        try expectBadInput(["logits", falcon, "--tokens", "1,2", "--out", out], mentions: ["config.json", "falcon"])

        let truncated = try brokenCopy("truncated") { d in
            let m = d.appendingPathComponent("model.safetensors")
            let data = try Data(contentsOf: m)
            try data.prefix(data.count / 2).write(to: m)
        }
        try expectBadInput(["logits", truncated, "--tokens", "1,2", "--out", out], mentions: ["model.safetensors"])
        try expectBadInput(["inspect", truncated], mentions: ["model.safetensors"])
        try expectBadInput(["bake", truncated, "--recipe", Self.llama + "/recipes/add_embed.json", "--out", tmp.appendingPathComponent("b").path],
                           mentions: ["model.safetensors"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("b").path))

        let badJSON = try brokenCopy("badjson") { d in
            try "{\"hidden_size\": 64".write(to: d.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        }
        try expectBadInput(["logits", badJSON, "--tokens", "1,2", "--out", out], mentions: ["config.json"])
    }

    func testBakeRefusalAndVerify() throws {
        let refusedOut = tmp.appendingPathComponent("refused").path
        try expectBadInput(["bake", Self.llama, "--recipe", Self.llama + "/recipes/add_last.json", "--out", refusedOut],
                           mentions: ["add_last.json", "positions"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: refusedOut))
        try expectBadInput(["bake", Self.llama, "--recipe", Self.llama + "/recipes/add_embed.json", "--out", refusedOut, "--dtype", "f8"],
                           mentions: ["--dtype", "f8"])

        let right = Self.llama + "/recipes/add_resid_post.json"
        let baked = tmp.appendingPathComponent("baked").path
        var r = try run(["bake", Self.llama, "--recipe", right, "--out", baked])
        XCTAssertEqual(r.status, 0, r.stderr)
        try expectBadInput(["bake", Self.llama, "--recipe", right, "--out", baked], mentions: ["baked", "--force"])
        r = try run(["verify", Self.llama, baked, "--tokens", "5,17,42,9,200"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("EQUIVALENT"), r.stdout)

        // The same entry with scale 4.4 instead of 4: baked fine, but verify against the right recipe fails.
        let wrongText = try String(contentsOfFile: right, encoding: .utf8)
            .replacingOccurrences(of: "../vectors.safetensors", with: vectors)
            .replacingOccurrences(of: "4.0", with: "4.4")
        XCTAssertNotEqual(wrongText, try String(contentsOfFile: right, encoding: .utf8))
        let wrong = try write("wrong.json", wrongText)
        let wrongBaked = tmp.appendingPathComponent("wrong-baked").path
        r = try run(["bake", Self.llama, "--recipe", wrong, "--out", wrongBaked])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try run(["verify", Self.llama, wrongBaked, "--recipe", right, "--tokens", "5,17,42,9,200"])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("NOT EQUIVALENT"), r.stdout)
    }

    func testHelpHasSynopsisAndExample() throws {
        for c in ["convert", "inspect", "logits", "generate", "bench", "extract", "bake", "verify", "control-vector", "demo"] {
            let r = try run([c, "--help"])
            XCTAssertEqual(r.status, 0, c)
            XCTAssertTrue(r.stdout.hasPrefix("edit-cli \(c)"), "\(c) --help starts with its synopsis: \(r.stdout.prefix(80))")
            XCTAssertTrue(r.stdout.contains("example: edit-cli \(c)"), "\(c) --help has an example")
        }
        let r = try run(["frobnicate"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("frobnicate"))
    }
}
