// Test helpers of the editor: fixture paths, temp folders, reference tensors, tensor comparison.

import Foundation
import XCTest
@testable import Editor

enum EditorFixtures {
    /// <repo>/fixtures
    static let root: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures").path
    }()
    static func model(_ name: String) -> String { root + "/models/" + name }
    static func recipe(_ model: String, _ r: String) -> String { root + "/models/\(model)/recipes/\(r).json" }

    static let models = ["llama", "llama3", "llama-linear", "llama-dynamic", "llama-bf16", "mistral",
                         "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gpt2", "gpt2-f16"]

    static func recipes(_ model: String) -> [String] {
        let dir = root + "/models/\(model)/recipes"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".json") }
            .map { String($0.dropLast(5)) }.sorted()
    }

    /// A fresh empty folder under the system temp dir (removed by the caller's defer).
    static func tempDir(_ tag: String) -> String {
        let p = NSTemporaryDirectory() + "editor-tests-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    static func tokens(_ model: String) throws -> [Int] {
        let f = try SafeTensorsFile(path: self.model(model) + "/reference.safetensors")
        guard let info = f.info("tokens") else { throw EditError.badInput("no tokens") }
        let raw = try f.bytes("tokens")
        return (0..<info.elementCount).map { Int(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self).littleEndian) }
    }

    static func reference(_ model: String, _ name: String) throws -> [Float] {
        try SafeTensorsFile(path: self.model(model) + "/reference.safetensors").floats(name)
    }
}

@discardableResult
func maxDiff(_ label: String, _ got: [Float], _ want: [Float], atol: Float, file: StaticString = #filePath, line: UInt = #line) -> Float {
    guard got.count == want.count else { XCTFail("\(label): size \(got.count), expected \(want.count)", file: file, line: line); return .infinity }
    var m: Float = 0
    var first: String?
    for i in got.indices {
        let d = abs(got[i] - want[i])
        if !(d <= m) { m = d.isNaN ? .infinity : d }
        if !(d <= atol), first == nil { first = "[\(i)] got \(got[i]) want \(want[i])" }
    }
    if let first { XCTFail("\(label): max |diff| \(m) > \(atol); first mismatch \(first)", file: file, line: line) }
    return m
}
