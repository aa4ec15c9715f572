// Shared helpers: the mutation operators, fixture paths, temp folders and peak-RSS measurement
// (the seeded PRNG and the edit-cli runner are in TestSupport).

import Foundation
import XCTest
import TestSupport

/// Mutations of a valid input: byte flips, truncations, insertions, duplicated spans, deleted
/// spans, and numeric field changes (a run of ASCII digits in text, or an aligned little-endian
/// u32/u64 in binary formats, replaced by an extreme value).
enum Mutator {
    static let extremeNumbers = ["0", "-1", "1", "255", "65536", "4294967295", "4294967296", "9223372036854775807",
                                 "9223372036854775808", "-9223372036854775808", "1e308", "1e400", "-0", "0.5", "99999999999999999999"]
    static let extremeIntegers: [UInt64] = [0, 1, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x1_0000_0000,
                                            0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, .max, 1 << 40, 1 << 20]
    static let textAlphabet = Array("{}[]\",:0123456789-.eE \\u%()|'".utf8)

    static func mutate(_ base: [UInt8], rng: inout SeededRandom, text: Bool) -> [UInt8] {
        var m = base
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            if m.isEmpty { m = [UInt8.random(in: 0...255, using: &rng)]; continue }
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: // replace 1-4 bytes
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    m[Int.random(in: 0..<m.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 1: // truncate
                m.removeLast(Int.random(in: 1...m.count, using: &rng))
            case 2: // insert random bytes (structural characters for text)
                let at = Int.random(in: 0...m.count, using: &rng)
                let n = Int.random(in: 1...8, using: &rng)
                m.insert(contentsOf: (0..<n).map { _ in
                    text ? textAlphabet[Int.random(in: 0..<textAlphabet.count, using: &rng)] : UInt8.random(in: 0...255, using: &rng)
                }, at: at)
            case 3: // duplicate a span somewhere else
                let a = Int.random(in: 0..<m.count, using: &rng)
                let b = min(m.count, a + Int.random(in: 1...64, using: &rng))
                let span = Array(m[a..<b])
                m.insert(contentsOf: span, at: Int.random(in: 0...m.count, using: &rng))
            case 4: // delete a span
                let a = Int.random(in: 0..<m.count, using: &rng)
                m.removeSubrange(a..<min(m.count, a + Int.random(in: 1...64, using: &rng)))
            default:
                m = text ? replaceNumber(m, rng: &rng) : replaceInteger(m, rng: &rng)
            }
        }
        return m
    }

    /// Replaces one run of digits with an extreme number.
    static func replaceNumber(_ m: [UInt8], rng: inout SeededRandom) -> [UInt8] {
        var runs: [Range<Int>] = []
        var i = 0
        while i < m.count {
            if m[i] >= 0x30 && m[i] <= 0x39 {
                var j = i
                while j < m.count && m[j] >= 0x30 && m[j] <= 0x39 { j += 1 }
                runs.append(i..<j); i = j
            } else { i += 1 }
        }
        guard !runs.isEmpty else { return m }
        var out = m
        out.replaceSubrange(runs[Int.random(in: 0..<runs.count, using: &rng)],
                            with: Array(extremeNumbers[Int.random(in: 0..<extremeNumbers.count, using: &rng)].utf8))
        return out
    }

    /// Overwrites an aligned 4- or 8-byte little-endian field with an extreme value, usually in
    /// the first 512 bytes where binary headers keep their counts and sizes.
    static func replaceInteger(_ m: [UInt8], rng: inout SeededRandom) -> [UInt8] {
        let width = Bool.random(using: &rng) ? 8 : 4
        guard m.count >= width else { return m }
        let limit = Bool.random(using: &rng) ? min(m.count - width, 512) : m.count - width
        let at = Int.random(in: 0...limit, using: &rng) & ~3
        let v = extremeIntegers[Int.random(in: 0..<extremeIntegers.count, using: &rng)]
        var out = m
        for k in 0..<width where at + k < out.count { out[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        return out
    }
}

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
let fixturesRoot = repoRoot + "/fixtures"

func readFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A fresh folder; `memory` puts it in /dev/shm when there is one (thousands of small files).
func makeTempDir(_ label: String, memory: Bool = false) throws -> String {
    let root = memory && FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
    let d = root.appendingPathComponent("reliability-\(label)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// Runs `body` and returns how much the process's peak resident set rose above the resident set
/// at the start (bytes), after resetting the peak (writing 5 to /proc/self/clear_refs). Nil where
/// that is unavailable.
func peakRSSGrowth(_ body: () throws -> Void) rethrows -> Int? {
    func field(_ name: String) -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix(name + ":") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }
    let reset = (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
    let before = field("VmRSS")
    try body()
    guard reset, let before, let peak = field("VmHWM") else { return nil }
    return max(0, peak - before)
}

/// Wall time of `body` in seconds.
func timed(_ body: () throws -> Void) rethrows -> Double {
    let t = Date()
    try body()
    return Date().timeIntervalSince(t)
}
