import Foundation
import XCTest
@testable import SafeTensors

/// A file made of a literal header string (length prefix computed unless given) and data bytes.
func stFile(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    return stFile(headerBytes: h, data: data, declaredLength: declaredLength)
}

func stFile(headerBytes h: [UInt8], data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    var out = withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { [UInt8]($0) }
    out += h
    out += data
    return out
}

/// A fresh empty folder under the system temp folder, removed at the end of the test.
func makeTempDir(_ test: XCTestCase, _ label: String = "st") throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("\(label)-\(getpid())-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

func readBytes(_ path: String) throws -> [UInt8] {
    guard let d = FileManager.default.contents(atPath: path) else {
        throw SafeTensorsError(.io, file: path, "cannot read (test)")
    }
    return [UInt8](d)
}

func fixturesDir() -> String {
    // Tests/SafeTensorsTests/TestSupport.swift -> repository root
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent("fixtures/safetensors").path
}

/// Floats equal bit for bit, except that any NaN matches any NaN (NaN payloads differ between
/// torch's scalar and vector paths).
func sameFloat(_ a: Float, _ b: Float) -> Bool {
    (a.isNaN && b.isNaN) || a.bitPattern == b.bitPattern
}

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(s.utf8.count / 2)
    var hi: UInt8 = 0, odd = false
    for c in s.utf8 {
        let v: UInt8 = c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10
        if odd { out.append(hi << 4 | v) } else { hi = v }
        odd.toggle()
    }
    return out
}

/// Byte equality with a short message (first differing offset) instead of two dumped arrays.
func assertSameBytes(_ a: [UInt8], _ b: [UInt8], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    guard a != b else { return }
    let k = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
    XCTFail("\(label): \(a.count) vs \(b.count) bytes, first difference at offset \(k)", file: file, line: line)
}
