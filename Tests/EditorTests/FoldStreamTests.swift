// Streaming folds (bake's path for edited 2-D tensors) must write what the whole-tensor fold
// computes, whatever the block size: one row per block is the hardest case.

import Foundation
import XCTest
@testable import Editor

final class FoldStreamTests: XCTestCase {
    func testStreamedFoldEqualsWholeTensorFold() throws {
        var checked = 0
        for model in ["llama", "llama3", "gpt2", "gemma", "qwen2", "llama-bf16"] {
            for r in ["multi", "ablate_residual", "clamp_attn_out", "add_embed"] where EditorFixtures.recipes(model).contains(r) {
                let recipe = try Recipe.load(path: EditorFixtures.recipe(model, r))
                let folded: FoldedModel
                do { folded = try FoldedModel(model: EditorFixtures.model(model), recipe: recipe) } catch { continue } // refused recipes
                for name in folded.tensorNames where folded.canStream(name) {
                    let want = try folded.floats(name)
                    let info = try XCTUnwrap(folded.info(name))
                    let cols = info.shape[1]
                    for blockBytes in [1, 3 * cols * 4, 1 << 20] {
                        var bytes: [UInt8] = []
                        try folded.stream(name, as: .F32, blockBytes: blockBytes) { bytes += $0 }
                        XCTAssertEqual(bytes.count, want.count * 4, "\(model)/\(r)/\(name)")
                        let got = bytes.withUnsafeBytes { raw in (0..<want.count).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
                        let diff = zip(got, want).map { abs($0 - $1) }.max() ?? 0
                        // Single projections match bit for bit; several on one writer differ by f32 rounding
                        // of the intermediate weights (the stream derives them in exact algebra).
                        XCTAssertLessThanOrEqual(diff, 1e-6, "\(model)/\(r)/\(name) block \(blockBytes)")
                    }
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 20)
    }
}
