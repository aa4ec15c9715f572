// Deterministic mutation fuzzing: thousands of byte flips and truncations of valid files, each of
// which must either parse (and then read every tensor safely) or throw SafeTensorsError, never
// crash or throw anything else.

import Foundation
import XCTest
import TestSupport
@testable import SafeTensors

final class MutationTests: XCTestCase {
    /// Parses `bytes`; on success reads every tensor as bytes and floats. Returns the outcome.
    private func probe(_ bytes: [UInt8], label: String) -> SafeTensorsError.Kind? {
        do {
            let f = try SafeTensorsFile(bytes: bytes, name: label)
            for n in f.tensorNames {
                let info = try XCTUnwrap(f.info(n))
                let b = try f.bytes(n)
                XCTAssertEqual(b.count, info.byteCount)
                let start = b.baseAddress.map { $0 - UnsafeRawPointer(f.fileBytes.baseAddress!) } ?? 0 // programmer error: mapping exists
                XCTAssertTrue(start >= f.dataStart && start + b.count <= f.fileSize, "\(label): \(n) outside the file")
                XCTAssertEqual(try f.floats(n).count, info.elementCount)
            }
            return nil
        } catch let e as SafeTensorsError {
            return e.kind
        } catch {
            XCTFail("\(label): unexpected error type \(type(of: error)): \(error)")
            return nil
        }
    }

    private func baseFile() throws -> [UInt8] {
        let dir = try makeTempDir(self)
        let path = (dir as NSString).appendingPathComponent("base.safetensors")
        let records: [TensorRecord] = [
            TensorRecord(name: "a.weight", shape: [3, 4], floats: (0..<12).map { Float($0) / 3 }, as: .BF16),
            TensorRecord(name: "b", shape: [5], floats: [1, 2, 3, 4, 5]),
            TensorRecord(name: "c", dtype: .I64, shape: [2], source: .produce { [UInt8](repeating: 7, count: 16) }),
            TensorRecord(name: "d", dtype: .F8_E4M3, shape: [2, 2], source: .produce { [1, 2, 0x7F, 0xFF] }),
            TensorRecord(name: "s", dtype: .F16, shape: [], source: .produce { [0, 0x3C] }),
            TensorRecord(name: "e", dtype: .F32, shape: [0, 2], source: .produce { [] }),
            TensorRecord(name: "m", dtype: .BOOL, shape: [3], source: .produce { [1, 0, 1] }),
        ]
        try writeSafeTensors(path: path, tensors: records, metadata: ["note": "mutation base"])
        return try readBytes(path)
    }

    func testRandomFlipsAndTruncations() throws {
        let base = try baseFile()
        XCTAssertNil(probe(base, label: "base"))
        let headerEnd = 8 + base.withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self).littleEndian) }
        var rng = SeededRandom(seed: 0x5AFE_7E45)
        var outcomes: [String: Int] = [:]
        for trial in 0..<4000 {
            var m = base
            switch trial % 5 {
            case 0: // truncate anywhere
                m.removeLast(Int.random(in: 1...m.count, using: &rng))
            case 1, 2: // 1-3 random bytes anywhere in the header (or its length)
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    m[Int.random(in: 0..<headerEnd, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 3: // a digit or quote of the header replaced by a JSON-significant byte
                let specials = Array("0123456789-[]{}\",: e.".utf8)
                m[Int.random(in: 8..<headerEnd, using: &rng)] = specials[Int.random(in: 0..<specials.count, using: &rng)]
            default: // flip a bit anywhere, and sometimes append bytes
                let k = Int.random(in: 0..<m.count, using: &rng)
                m[k] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                if Bool.random(using: &rng) { m += [UInt8](repeating: 0x20, count: Int.random(in: 1...9, using: &rng)) }
            }
            let kind = probe(m, label: "trial \(trial)")
            outcomes[kind?.rawValue ?? "parsed", default: 0] += 1
        }
        // The mutations reach many different checks (not just one early rejection).
        XCTAssertGreaterThanOrEqual(outcomes.count, 8, "\(outcomes)")
        XCTAssertGreaterThan(outcomes["parsed"] ?? 0, 0, "\(outcomes)")
        print("mutation outcomes: \(outcomes.sorted { $0.key < $1.key })")
    }

    /// The same through the mmap path, fewer trials (each writes a file).
    func testMappedMutations() throws {
        let base = try baseFile()
        let dir = try makeTempDir(self)
        let path = (dir as NSString).appendingPathComponent("m.safetensors")
        var rng = SeededRandom(seed: 77)
        for trial in 0..<300 {
            var m = base
            if trial % 3 == 0 { m.removeLast(Int.random(in: 1...m.count, using: &rng)) }
            else { m[Int.random(in: 0..<min(m.count, 300), using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(m)))
            do {
                let f = try SafeTensorsFile(path: path)
                for n in f.tensorNames { _ = try f.floats(n) }
            } catch is SafeTensorsError {
            } catch {
                XCTFail("trial \(trial): unexpected error \(error)")
            }
        }
    }
}
