import XCTest
@testable import Engine

final class RecipeTests: XCTestCase {
    func recipe(_ s: String) throws -> Recipe { try Recipe(json: try JSONValue.parse(s), baseFolder: "/tmp", label: "r.json") }

    func testExpandsResidualAblationToEveryWriter() throws {
        let r = try recipe(#"{"interventions":[{"op":"ablate","point":"residual","direction":[3,4]}]}"#)
        let res = try r.resolve(hiddenSize: 2, numLayers: 2)
        XCTAssertEqual(res.map { $0.point }, [.embed, .residMid(0), .residPost(0), .residMid(1), .residPost(1)])
        XCTAssertEqual(res[0].vector, [0.6, 0.8])
    }

    func testHookedSemantics() throws {
        let r = try recipe(#"{"interventions":[{"op":"clamp","point":"attn_out","layer":0,"direction":[0,2],"value":5},{"op":"add","point":"resid_post","layers":[0],"vector":[1,1],"scale":2},{"op":"ablate","point":"mlp_out","layer":0,"direction":[1,0],"strength":0.5}]}"#)
        let res = try r.resolve(hiddenSize: 2, numLayers: 1)
        var x: [Float] = [1, 3]
        res[0].apply(to: &x, hidden: 2); XCTAssertEqual(x, [1, 5])
        res[1].apply(to: &x, hidden: 2); XCTAssertEqual(x, [3, 7])
        res[2].apply(to: &x, hidden: 2); XCTAssertEqual(x, [1.5, 7])
    }

    func testPositions() {
        XCTAssertTrue(Positions.last.selects(4, promptLength: 5, callLast: 4))
        XCTAssertFalse(Positions.last.selects(3, promptLength: 5, callLast: 4))
        XCTAssertTrue(Positions.last.selects(6, promptLength: 5, callLast: 6))   // a decode step
        XCTAssertTrue(Positions.generated.selects(5, promptLength: 5, callLast: 5))
        XCTAssertFalse(Positions.prompt.selects(5, promptLength: 5, callLast: 5))
        XCTAssertTrue(Positions.list([0, 2]).selects(2, promptLength: 5, callLast: 4))
    }

    func testErrorsNameTheEntry() throws {
        let cases: [(String, String)] = [
            (#"{"interventions":[{"op":"add","point":"resid_post","layer":1,"vector":[1,2],"scal":2}]}"#, "interventions[0]: unknown key 'scal'"),
            (#"{"interventions":[{"op":"add","point":"resid_post","layer":5,"vector":[1,2]}]}"#, "interventions[0]: layer 5 is out of range"),
            (#"{"interventions":[{"op":"add","point":"resid_post","layer":0,"vector":[1,2,3]}]}"#, "interventions[0]: vector has 3 values, expected hidden size 2"),
            (#"{"interventions":[{"op":"ablate","point":"residual","direction":[0,0]}]}"#, "interventions[0]: direction has zero length"),
            (#"{"interventions":[{"op":"add","point":"residual","vector":[1,0]}]}"#, "only for ablate"),
            (#"{"interventions":[{"op":"ablate","point":"resid_pre","direction":[1,0]}]}"#, "needs \"layer\""),
            (#"{"interventions":[{"op":"nudge","point":"embed","vector":[1,0]}]}"#, "unknown op 'nudge'"),
            (#"{"interventions":[{"op":"add","point":"embed","vector":[1,0],"positions":"first"}]}"#, "unknown positions 'first'"),
            (#"{"interventions":[{"op":"add","point":"embed","vector":{"file":"nope.safetensors","tensor":"v"}}]}"#, "interventions[0]: /tmp/nope.safetensors"),
        ]
        for (json, expected) in cases {
            do {
                _ = try recipe(json).resolve(hiddenSize: 2, numLayers: 2)
                XCTFail("accepted: \(json)")
            } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(error) does not contain \(expected)")
            }
        }
    }
}

final class NPYTests: XCTestCase {
    func testReadsFloat32VectorFromNpy() throws {
        // np.save of np.array([1.5, -2, 0.25], dtype=np.float32), header padded to 128 bytes.
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"
        header += String(repeating: " ", count: 128 - 10 - header.count - 1) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8)
        for f: Float in [1.5, -2, 0.25] { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes += $0 } }
        let path = NSTemporaryDirectory() + "/npytest-\(getpid()).npy"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try NPY.readVector(path: path), [1.5, -2, 0.25])
        let r = try Recipe(json: try JSONValue.parse(#"{"interventions":[{"op":"add","point":"embed","vector":{"file":"\#(path)"}}]}"#), baseFolder: "/")
        XCTAssertEqual(try r.resolve(hiddenSize: 3, numLayers: 1)[0].vector, [1.5, -2, 0.25])
        XCTAssertThrowsError(try r.resolve(hiddenSize: 4, numLayers: 1))
    }
}
