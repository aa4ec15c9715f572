// Pure parts of the editor: SHA-256 known answers, PNG round trip, the fold functions on both
// layouts, norm-preserving projection, weight-space recipes, and extract against hand-computed
// means of transformers' captured states.

import CSHA256
import CZlib
import Foundation
import XCTest
@testable import Editor

final class SHA256Tests: XCTestCase {
    /// Runs `body` with the SHA-NI path on (when this CPU has it) and off, restoring the default.
    private func bothPaths(_ body: (String) -> Void) {
        let saved = SHA256.useSHAExtensions
        defer { SHA256.useSHAExtensions = saved }
        for on in [true, false] where !on || csha256_has_shani() == 1 {
            SHA256.useSHAExtensions = on
            body(on ? "SHA-NI" : "Swift")
        }
    }

    func testKnownAnswers() {
        bothPaths { _ in knownAnswers() }
    }

    func testSHAExtensionsMatchSwift() throws {
        try XCTSkipUnless(csha256_has_shani() == 1, "this CPU has no SHA extensions; the Swift path is the only one")
        var rng = SystemRandomNumberGenerator()
        let data = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for n in [0, 1, 63, 64, 65, 127, 128, 129, 1000, 4096, 70_000] {
            var digests: [String] = []
            bothPaths { _ in digests.append(SHA256.hash(data[0..<n])) }
            XCTAssertEqual(digests.count, 2)
            XCTAssertEqual(digests[0], digests[1], "\(n) bytes")
        }
    }

    private func knownAnswers() {
        // FIPS 180-4 examples.
        XCTAssertEqual(SHA256.hash(Array("".utf8)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hash(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hash([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testStreamingEqualsOneShot() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
        for split in [0, 1, 55, 56, 63, 64, 65, 999] {
            var s = SHA256()
            s.update(data[0..<split]); s.update(data[split...])
            XCTAssertEqual(SHA256.hex(s.finalize()), SHA256.hash(data), "split \(split)")
        }
    }

    /// hashFile reads ahead on a second thread through a ring of buffers: every size around the
    /// block and ring boundaries gives the one-shot digest; a missing file is an error naming it.
    func testFileReadAheadEqualsOneShot() throws {
        let dir = EditorFixtures.tempDir("sha")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = (0..<(3 * 4096 + 1000)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ ($0 >> 8)) }
        let block = 1024
        for n in [0, 1, 63, block - 1, block, block + 1, 2 * block, 3 * block, 3 * block + 7, 4 * block, 5 * block + 1, data.count] {
            let path = dir + "/f\(n)"
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(data[0..<n])))
            let expected = SHA256.hash(data[0..<n])
            XCTAssertEqual(try SHA256.hashFile(path, block: block, count: 3), expected, "\(n) bytes")
            XCTAssertEqual(try SHA256.hashFile(path, block: block, count: 1), expected, "\(n) bytes, one buffer")
            XCTAssertEqual(try SHA256.hashFile(path), expected, "\(n) bytes, default blocks")
        }
        XCTAssertThrowsError(try SHA256.hashFile(dir + "/missing")) { e in XCTAssertTrue("\(e)".contains("missing"), "\(e)") }
    }
}

final class PNGTests: XCTestCase {
    func testEncodeDecodes() throws {
        var img = RGBImage(width: 7, height: 5, background: (10, 20, 30))
        img.set(5, 1, (255, 0, 128))
        img.line(0, 0, 6, 4, (1, 2, 3))
        let png = try PNG.encode(img)
        XCTAssertEqual(Array(png.prefix(8)), PNG.signature)
        // Walk the chunks, checking each CRC; collect IDAT.
        var p = 8, types: [String] = [], idat: [UInt8] = []
        func be32(_ k: Int) -> Int { Int(png[k]) << 24 | Int(png[k + 1]) << 16 | Int(png[k + 2]) << 8 | Int(png[k + 3]) }
        while p < png.count {
            let len = be32(p)
            let type = String(decoding: png[(p + 4)..<(p + 8)], as: UTF8.self)
            let body = Array(png[(p + 4)..<(p + 8 + len)])
            XCTAssertEqual(UInt32(be32(p + 8 + len)), PNG.crc32(body), "CRC of \(type)")
            if type == "IHDR" {
                XCTAssertEqual(be32(p + 8), 7); XCTAssertEqual(be32(p + 12), 5)
                XCTAssertEqual(Array(png[(p + 16)..<(p + 21)]), [8, 2, 0, 0, 0])
            }
            if type == "IDAT" { idat += png[(p + 8)..<(p + 8 + len)] }
            types.append(type)
            p += 12 + len
        }
        XCTAssertEqual(types, ["IHDR", "IDAT", "IEND"])
        // Inflate and compare with the pixels (filter byte 0 per row).
        var outLen = uLong(5 * (1 + 21))
        var raw = [UInt8](repeating: 0, count: Int(outLen))
        XCTAssertEqual(uncompress(&raw, &outLen, idat, uLong(idat.count)), Z_OK)
        XCTAssertEqual(Int(outLen), 5 * 22)
        for y in 0..<5 {
            XCTAssertEqual(raw[y * 22], 0)
            XCTAssertEqual(Array(raw[(y * 22 + 1)..<((y + 1) * 22)]), Array(img.pixels[(y * 21)..<((y + 1) * 21)]))
        }
        XCTAssertEqual(Array(img.pixels[(3 * (1 * 7 + 5))..<(3 * (1 * 7 + 5) + 3)]), [255, 0, 128])
    }
}

final class FoldFunctionTests: XCTestCase {
    let r: [Double] = { let v = [0.3, -0.5, 0.2, 0.8]; let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot(); return v.map { $0 / n } }()

    /// Linear [hidden, in] and Conv1D [in, hidden] hold the same map; projecting either gives the same edited map.
    func testLayoutsAgree() {
        let h = 4, k = 3
        let w: [Float] = (0..<(h * k)).map { Float(sin(Double($0) * 1.7)) }        // Linear [4, 3]
        var t = [Float](repeating: 0, count: h * k)                                  // Conv1D [3, 4] = w^T
        for i in 0..<h { for j in 0..<k { t[j * h + i] = w[i * k + j] } }
        var a = w, b = t
        Fold.applyLinear([.project(r: r, strength: 0.7, preserveNorm: false)], to: &a, rows: h, cols: k, layout: .columns)
        Fold.applyLinear([.project(r: r, strength: 0.7, preserveNorm: false)], to: &b, rows: k, cols: h, layout: .rows)
        for i in 0..<h { for j in 0..<k { XCTAssertEqual(a[i * k + j], b[j * h + i], accuracy: 1e-6) } }
        // Strength 1 removes r from every written vector (column j of the Linear).
        var full = w
        Fold.applyLinear([.project(r: r, strength: 1, preserveNorm: false)], to: &full, rows: h, cols: k, layout: .columns)
        for j in 0..<k { XCTAssertEqual((0..<h).reduce(0.0) { $0 + r[$1] * Double(full[$1 * k + j]) }, 0, accuracy: 1e-6) }
    }

    func testNormPreservingKeepsWrittenNorms() {
        let h = 4, k = 5
        let w: [Float] = (0..<(h * k)).map { Float(cos(Double($0) * 0.9) + 0.1) }
        var a = w
        Fold.applyLinear([.project(r: r, strength: 1, preserveNorm: true)], to: &a, rows: h, cols: k, layout: .columns)
        for j in 0..<k {
            let before = (0..<h).reduce(0.0) { $0 + Double(w[$1 * k + j] * w[$1 * k + j]) }.squareRoot()
            let after = (0..<h).reduce(0.0) { $0 + Double(a[$1 * k + j] * a[$1 * k + j]) }.squareRoot()
            XCTAssertEqual(after, before, accuracy: 1e-5, "column \(j) keeps its norm")
            XCTAssertEqual((0..<h).reduce(0.0) { $0 + r[$1] * Double(a[$1 * k + j]) }, 0, accuracy: 1e-6, "and loses r")
        }
    }

    func testAffineOnBiasAndTable() {
        // clamp = project then add value*r; on a bias b: (I - r r^T) b + value r.
        var b: [Float] = [1, 2, 3, 4]
        let value = 2.5
        Fold.applyAffine([.project(r: r, strength: 1, preserveNorm: false), .add(r.map { $0 * value })], toRows: &b, count: 1, hidden: 4)
        XCTAssertEqual(zip(r, b).reduce(0.0) { $0 + $1.0 * Double($1.1) }, value, accuracy: 1e-6)
        // Constant scaled for Gemma's table (row + c / scale).
        var t: [Float] = [0, 0, 0, 0, 1, 1, 1, 1]
        Fold.applyAffine([.add([8, 8, 8, 8])], toRows: &t, count: 2, hidden: 4, constantScale: 1.0 / 8)
        XCTAssertEqual(t, [1, 1, 1, 1, 2, 2, 2, 2])
    }
}

final class WeightSpaceTests: XCTestCase {
    /// ablate-weights with a per-layer kernel and norm preservation: only the written vectors of
    /// the kernel's layers change, each keeps its norm and loses r; verify reports a distance.
    func testKernelNormPreserving() throws {
        let dir = EditorFixtures.tempDir("ws")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = "llama"
        let recipePath = dir + "/recipe.json"
        let text = """
        {"interventions": [{"op": "ablate-weights", "direction": {"file": "\(EditorFixtures.model(m))/vectors.safetensors", "tensor": "d"},
          "kernel": {"peak_layer": 1, "peak": 1.0, "edge": 0.5, "width": 0}, "norm_preserving": true, "writers": ["attn_out", "mlp_out"]}]}
        """
        try text.write(toFile: recipePath, atomically: true, encoding: .utf8)
        let out = dir + "/out"
        try Baker.bake(model: EditorFixtures.model(m), recipePath: recipePath, out: out, options: BakeOptions())
        let a = try Checkpoint(directory: EditorFixtures.model(m)), b = try Checkpoint(directory: out)
        XCTAssertEqual(Array(try a.bytes("model.layers.0.self_attn.o_proj.weight")), Array(try b.bytes("model.layers.0.self_attn.o_proj.weight")), "width 0: layer 0 untouched")
        XCTAssertEqual(Array(try a.bytes("model.embed_tokens.weight")), Array(try b.bytes("model.embed_tokens.weight")), "embed not in writers")
        let d = try SafeTensorsFile(path: EditorFixtures.model(m) + "/vectors.safetensors").floats("d").map(Double.init)
        let dn = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let w0 = try a.floats("model.layers.1.mlp.down_proj.weight"), w1 = try b.floats("model.layers.1.mlp.down_proj.weight")
        let h = 64, k = w0.count / 64
        for j in 0..<k {
            var n0 = 0.0, n1 = 0.0, dot = 0.0
            for i in 0..<h { n0 += Double(w0[i * k + j] * w0[i * k + j]); n1 += Double(w1[i * k + j] * w1[i * k + j]); dot += d[i] / dn * Double(w1[i * k + j]) }
            XCTAssertEqual(n1.squareRoot(), n0.squareRoot(), accuracy: 1e-5)
            XCTAssertEqual(dot, 0, accuracy: 1e-5)
        }
        let v = try Verifier.verify(original: EditorFixtures.model(m), edited: out, recipe: try Recipe.load(path: out + "/steering_recipe.json"),
                                    prompts: [try EditorFixtures.tokens(m)])
        XCTAssertEqual(v.mode, .distance)
        XCTAssertTrue(v.passed)
        XCTAssertGreaterThan(v.maxAbsDiff, 1e-3, "the edit changes the model")
    }
}

final class ExtractTests: XCTestCase {
    /// Causal attention: the last state of a prefix of length t+1 is row t of the full sequence's
    /// state, which the fixture stores from transformers. So the mean difference of prefixes is
    /// computable by hand from the reference.
    func testMeanDiffMatchesTransformersStates() throws {
        let m = "llama"
        let tokens = try EditorFixtures.tokens(m)
        let model = try LanguageModel.load(path: EditorFixtures.model(m))
        let posLens = [3, 5, 8], negLens = [4, 6, 12]
        let pos = posLens.map { Array(tokens.prefix($0)) }, neg = negLens.map { Array(tokens.prefix($0)) }
        let r = try Extractor.extract(model: model, positive: pos, negative: neg, options: ExtractOptions(layers: [0, 1]))
        let h = 64
        for l in [0, 1] {
            let ref = try EditorFixtures.reference(m, "resid_post.\(l)")
            var want = [Float](repeating: 0, count: h)
            for j in 0..<h {
                let p = posLens.reduce(0.0) { $0 + Double(ref[($1 - 1) * h + j]) } / 3
                let n = negLens.reduce(0.0) { $0 + Double(ref[($1 - 1) * h + j]) } / 3
                want[j] = Float(p - n)
            }
            maxDiff("resid_post.\(l) mean difference", try XCTUnwrap(r.vectors[l]), want, atol: 1e-4)
        }
        XCTAssertEqual(r.reports.count, 2)
        // Written file: tensors and metadata.
        let bytes = try Extractor.vectorsFile(r, model: "llama", chat: false)
        let path = EditorFixtures.tempDir("extract") + "/v.safetensors"
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.tensorNames, ["resid_post.0", "resid_post.1"])
        XCTAssertEqual(f.metadata["method"], "mean-diff")
        XCTAssertEqual(f.metadata["positive_count"], "3")
        XCTAssertEqual(try f.floats("resid_post.1"), r.vectors[1])
    }

    /// pca_diff on synthetic features: the principal direction of the centred paired differences, signed.
    func testPCADirection() {
        // Differences vary mostly along e0 (spread) and have a mean along e1.
        let pos: [[Double]] = [[3, 1, 0], [-3, 1, 0], [2, 1, 0.1], [-2, 1, -0.1]]
        let neg: [[Double]] = [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
        let v = Extractor.direction(pos, neg, method: .pca)
        XCTAssertEqual(abs(v[0]), 1, accuracy: 1e-3)
        let md = Extractor.direction(pos, neg, method: .meanDiff)
        XCTAssertEqual(md, [0, 1, 0])
        XCTAssertEqual(Extractor.cohensD([1, 2, 3], [1, 2, 3]), 0)
    }
}
