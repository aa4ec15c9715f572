// Test helpers: fixture paths relative to this file, reading reference tensors, and
// `checkTensor` (llm.c style) that reports the first mismatches and the max abs difference.

import Foundation
import XCTest
@testable import Engine
import SafeTensors

enum Fixtures {
    /// <repo>/fixtures
    static let root: String = {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures").path
    }()
    static var models: String { root + "/models" }

    static let modelNames = ["llama", "llama3", "llama-linear", "llama-dynamic", "llama-bf16", "mistral",
                             "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gpt2", "gpt2-f16"]

    static func path(_ model: String) -> String { models + "/" + model }
}

struct Reference {
    let file: SafeTensorsFile

    init(_ path: String) throws { file = try SafeTensorsFile(path: path) }

    func floats(_ name: String) throws -> [Float] { try file.floats(name) }

    func has(_ name: String) -> Bool { file.info(name) != nil }

    /// An I64 tensor as [Int].
    func ints(_ name: String) throws -> [Int] {
        guard let info = file.info(name) else { throw ModelError("reference: no tensor \(name)") }
        guard info.dtype == .I64 else { throw ModelError("reference: \(name) is \(info.dtype.rawValue), expected I64") }
        let raw = try file.bytes(name)
        return (0..<info.elementCount).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self).littleEndian) }
    }
}

/// Fails with the first few mismatches when max |got - want| > atol; returns the max difference.
@discardableResult
func checkTensor(_ label: String, _ got: [Float], _ want: [Float], atol: Float,
                 file: StaticString = #filePath, line: UInt = #line) -> Float {
    guard got.count == want.count else {
        XCTFail("\(label): size \(got.count), expected \(want.count)", file: file, line: line)
        return .infinity
    }
    var maxDiff: Float = 0
    var bad: [String] = []
    for i in 0..<got.count {
        let d = abs(got[i] - want[i])
        if !(d <= atol) {
            if bad.count < 5 { bad.append("[\(i)] got \(got[i]) want \(want[i])") }
        }
        if d > maxDiff || d.isNaN { maxDiff = d.isNaN ? .infinity : d }
    }
    if !bad.isEmpty {
        XCTFail("\(label): max |diff| \(maxDiff) > \(atol); first mismatches: \(bad.joined(separator: ", "))",
                file: file, line: line)
    }
    return maxDiff
}
