// Encoding speed, measured and printed (not checked against a threshold: machines differ).
// Cold = a fresh tokenizer (empty word cache) encoding the 64 KB corpus once; warm = the same text
// again (every word cached). Run with -c release; the figures appear as "encode throughput".

import Foundation
import XCTest
@testable import Tokenizers

final class ThroughputTests: XCTestCase {
    func testReportEncodeThroughput() throws {
        let text = try String(contentsOf: Fixtures.root.appendingPathComponent("corpus.txt"), encoding: .utf8)
        let mb = Double(text.utf8.count) / 1e6
        for name in (ProcessInfo.processInfo.environment["TOK_BENCH"].map { [$0] } ?? ["smollm2", "llama3style", "qwen2style", "spstyle", "metaspace"]) {
            var cold = Double.infinity, warm = Double.infinity
            var reference: [Int]?
            for _ in 0..<3 {
                let tok = try Tokenizer(directory: Fixtures.dir(name))
                var t0 = Date()
                let ids = tok.encode(text, addSpecialTokens: false)
                cold = min(cold, Date().timeIntervalSince(t0))
                t0 = Date()
                let again = tok.encode(text, addSpecialTokens: false)
                warm = min(warm, Date().timeIntervalSince(t0))
                XCTAssertEqual(ids, again, "the word cache does not change results")
                if let r = reference { XCTAssertEqual(ids, r) } else { reference = ids }
            }
            print(String(format: "encode throughput %@: cold %.2f MB/s, warm %.2f MB/s (%d bytes, %d tokens)",
                         name, mb / cold, mb / warm, text.utf8.count, reference?.count ?? 0))
        }
    }
}
