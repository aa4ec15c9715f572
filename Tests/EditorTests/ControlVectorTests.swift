import XCTest
import Foundation
@testable import Editor
import SafeTensors

final class ControlVectorTests: XCTestCase {
    override func tearDown() { removeTempDirs() }

    /// llama.cpp adds direction.N to the output of block N (llama_adapter_cvec::apply puts file slot
    /// N at tensors[N]; build_cvec(cur, il) adds tensors[il] after block il's residual add).
    func testLayerMappingIsResidPostSameIndexAndBlockZeroIsUnreachable() {
        XCTAssertEqual(ControlVectorLayers.residPostLayer(forDirection: 1), 1)
        XCTAssertEqual(ControlVectorLayers.residPostLayer(forDirection: 29), 29)
        XCTAssertEqual(ControlVectorLayers.directionIndex(forResidPost: 12), 12)
        XCTAssertNil(ControlVectorLayers.directionIndex(forResidPost: 0))
        for l in 1..<40 {
            XCTAssertEqual(ControlVectorLayers.residPostLayer(forDirection: ControlVectorLayers.directionIndex(forResidPost: l)!), l)
        }
    }

    func testImportsRepengAndCvectorGeneratorFiles() throws {
        let values = try SafeTensorsFile(path: "\(convertFixtures)/cv_values.safetensors")
        for (file, ns) in [("cv_repeng", [0, 2, 3]), ("cv_generator", [1, 2, 3, 4])] {
            let imp = try ControlVectors.read(gguf: "\(convertFixtures)/\(file).gguf")
            XCTAssertEqual(imp.modelHint, "llama")
            XCTAssertEqual(imp.vectors.map(\.layer), ns, file)
            for (layer, v) in imp.vectors {
                XCTAssertEqual(v, try values.floats("\(file).\(layer)"), "\(file) direction.\(layer) -> resid_post.\(layer)")
            }
        }
    }

    func testImportWritesVectorsFile() throws {
        let out = try freshTempDir() + "/v.safetensors"
        try ControlVectors.importFile(gguf: "\(convertFixtures)/cv_generator.gguf", to: out)
        let st = try SafeTensorsFile(path: out)
        XCTAssertEqual(st.tensorNames, ["resid_post.1", "resid_post.2", "resid_post.3", "resid_post.4"])
        XCTAssertEqual(st.info("resid_post.1")?.shape, [16])
        XCTAssertEqual(st.metadata["model_hint"], "llama")
        let values = try SafeTensorsFile(path: "\(convertFixtures)/cv_values.safetensors")
        XCTAssertEqual(try st.floats("resid_post.3"), try values.floats("cv_generator.3"))
    }

    func testExportThenReadBack() throws {
        let dir = try freshTempDir()
        let a: [Float] = (0..<8).map { Float($0) * 0.5 - 1 }, b: [Float] = (0..<8).map { Float($0 * $0) }
        try writeSafeTensors(path: dir + "/v.safetensors", tensors: [TensorRecord(name: "resid_post.7", shape: [8], floats: a),
                                                                         TensorRecord(name: "resid_post.2", shape: [8], floats: b)],
                                 metadata: ["model_type": "qwen2"])
        let written = try ControlVectors.export(vectors: dir + "/v.safetensors", to: dir + "/cv.gguf", modelHint: nil)
        XCTAssertEqual(written, [2, 7])
        let f = try GGUFFile(path: dir + "/cv.gguf")
        XCTAssertEqual(f.architecture, "controlvector")
        XCTAssertEqual(f.metadata["controlvector.model_hint"], .string("qwen2"))
        XCTAssertEqual(f.metadata["controlvector.layer_count"]?.intValue, 2)
        XCTAssertEqual(f.tensorNames, ["direction.2", "direction.7"])
        XCTAssertEqual(f.tensorInfo("direction.7")?.type, .F32)
        XCTAssertEqual(f.tensorInfo("direction.7")?.dims, [8])
        XCTAssertEqual(try f.floats("direction.7"), a)
        XCTAssertEqual(try f.floats("direction.2"), b)
        let back = try ControlVectors.read(gguf: dir + "/cv.gguf")
        XCTAssertEqual(back.vectors.map(\.layer), [2, 7])
        XCTAssertEqual(back.vectors[1].values, a)
    }

    func testExportRefusesWhatLlamaCppCannotExpress() throws {
        let dir = try freshTempDir()
        let cases: [(String, [(String, [Int], [Float])], String)] = [
            ("zero", [("resid_post.0", [4], [1, 2, 3, 4])], "block 0"),
            ("mid", [("resid_mid.3", [4], [1, 2, 3, 4])], "only resid_post"),
            ("pre", [("resid_pre.3", [4], [1, 2, 3, 4])], "resid_post.2"),
            ("nan", [("resid_post.3", [4], [1, .nan, 3, 4])], "finite"),
            ("sizes", [("resid_post.1", [4], [1, 2, 3, 4]), ("resid_post.2", [2], [1, 2])], "the others have 4"),
            ("name", [("direction", [1], [1])], "<point>.<layer>"),
            ("matrix", [("resid_post.1", [2, 2], [1, 2, 3, 4])], "1-D"),
        ]
        for (name, tensors, message) in cases {
            try writeSafeTensors(path: dir + "/\(name).safetensors", tensors: tensors.map { TensorRecord(name: $0.0, shape: $0.1, floats: $0.2) })
            XCTAssertThrowsError(try ControlVectors.export(vectors: dir + "/\(name).safetensors", to: dir + "/\(name).gguf", modelHint: "x")) { e in
                XCTAssertTrue("\(e)".contains(message), "\(name): \(e)")
                XCTAssertTrue("\(e)".contains("\(name).safetensors"), "names the file: \(e)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/\(name).gguf"))
        }
    }

    func testImportRefusesOtherFiles() throws {
        XCTAssertThrowsError(try ControlVectors.read(gguf: "\(convertFixtures)/tiny_llama.gguf")) { e in
            XCTAssertTrue("\(e)".contains("expected 'controlvector'"), "\(e)")
        }
        var w = GGUFWriter()
        w.set("general.architecture", .string("controlvector"))
        w.tensors = [.init(name: "dir.1", f32: [1, 2], shape: [2])]
        let dir = try freshTempDir()
        try w.write(to: dir + "/bad.gguf")
        XCTAssertThrowsError(try ControlVectors.read(gguf: dir + "/bad.gguf")) { e in
            XCTAssertTrue("\(e)".contains("'dir.1'"), "\(e)")
        }
    }
}

final class ControlVectorSkipTests: XCTestCase {
    /// `extract --layers all` writes resid_post.0; the CLI's export skips it (with a note) and
    /// writes the others, while the library's default still refuses it.
    func testExportCanSkipBlockZero() throws {
        let dir = NSTemporaryDirectory() + "cv-skip-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vectors = dir + "/v.safetensors"
        try writeSafeTensors(path: vectors, tensors: [
            TensorRecord(name: "resid_post.0", shape: [2], floats: [1, 2]),
            TensorRecord(name: "resid_post.3", shape: [2], floats: [3, 4]),
        ])
        XCTAssertThrowsError(try ControlVectors.export(vectors: vectors, to: dir + "/a.gguf", modelHint: nil))
        var skipped: [String] = []
        let written = try ControlVectors.export(vectors: vectors, to: dir + "/b.gguf", modelHint: nil, skipBlockZero: true) { skipped.append($0) }
        XCTAssertEqual(written, [3])
        XCTAssertEqual(skipped, ["resid_post.0"])
        let back = try ControlVectors.read(gguf: dir + "/b.gguf")
        XCTAssertEqual(back.vectors.map(\.layer), [3])
    }
}
