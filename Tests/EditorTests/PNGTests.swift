// The extract chart as a file: it decodes (signature, chunk CRCs, zlib inflate of the scanlines),
// and its text is really drawn: the font's glyph bits land where asked, the title band has ink
// and changes with the model name, the tick and legend rows have ink.

import CZlib
import Foundation
import XCTest
@testable import Editor

/// A decoder for what PNG.encode writes (8-bit RGB, filter 0): checks the signature and every CRC.
func decodeOwnPNG(_ png: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> RGBImage {
    XCTAssertEqual(Array(png.prefix(8)), PNG.signature, file: file, line: line)
    func be32(_ k: Int) -> Int { Int(png[k]) << 24 | Int(png[k + 1]) << 16 | Int(png[k + 2]) << 8 | Int(png[k + 3]) }
    var p = 8, w = 0, h = 0, idat: [UInt8] = [], types: [String] = []
    while p + 12 <= png.count {
        let len = be32(p)
        guard p + 12 + len <= png.count else { throw EditError.badInput("PNG: chunk at \(p) runs past the end") }
        let type = String(decoding: png[(p + 4)..<(p + 8)], as: UTF8.self)
        XCTAssertEqual(UInt32(be32(p + 8 + len)), PNG.crc32(Array(png[(p + 4)..<(p + 8 + len)])), "CRC of \(type)", file: file, line: line)
        if type == "IHDR" {
            w = be32(p + 8); h = be32(p + 12)
            XCTAssertEqual(Array(png[(p + 16)..<(p + 21)]), [8, 2, 0, 0, 0], file: file, line: line)
        }
        if type == "IDAT" { idat += png[(p + 8)..<(p + 8 + len)] }
        types.append(type)
        p += 12 + len
    }
    XCTAssertEqual(p, png.count, "trailing bytes", file: file, line: line)
    XCTAssertEqual(types, ["IHDR", "IDAT", "IEND"], file: file, line: line)
    let stride = 1 + 3 * w
    var outLen = uLong(h * stride + 1)                 // one spare byte: a longer stream would not fit exactly
    var raw = [UInt8](repeating: 0, count: Int(outLen))
    XCTAssertEqual(uncompress(&raw, &outLen, idat, uLong(idat.count)), Z_OK, file: file, line: line)
    XCTAssertEqual(Int(outLen), h * stride, file: file, line: line)
    var img = RGBImage(width: w, height: h)
    for y in 0..<h {
        XCTAssertEqual(raw[y * stride], 0, "filter byte of row \(y)", file: file, line: line)
        img.pixels.replaceSubrange((3 * y * w)..<(3 * (y + 1) * w), with: raw[(y * stride + 1)..<((y + 1) * stride)])
    }
    return img
}

final class PNGChartTests: XCTestCase {
    func report(layers: Int) -> ExtractResult {
        let reports = (0..<layers).map { l in
            LayerReport(layer: l, effectSize: 0.5 + 3 * sin(Double(l) / 4), accuracy: 0.5 + 0.5 * Double(l) / Double(layers),
                        norm: 1, relativeNorm: 0.1)
        }
        return ExtractResult(vectors: [:], reports: reports, positiveCount: 4, negativeCount: 4, options: ExtractOptions(layers: Array(0..<layers)))
    }

    /// Dark (text or axis) pixels in rows y0..<y1, columns x0..<x1.
    func ink(_ img: RGBImage, _ x0: Int, _ x1: Int, _ y0: Int, _ y1: Int) -> Int {
        var n = 0
        for y in y0..<y1 { for x in x0..<x1 {
            let k = 3 * (y * img.width + x)
            if Int(img.pixels[k]) + Int(img.pixels[k + 1]) + Int(img.pixels[k + 2]) < 200 { n += 1 }
        } }
        return n
    }

    func testGlyphBitsLandWhereAsked() {
        XCTAssertEqual(BitmapFont.table.count, 95)
        for (i, g) in BitmapFont.rows.enumerated() {
            XCTAssertEqual(g.count, 7, "glyph \(i + 32)")
            XCTAssertTrue(g.allSatisfy { $0 < 32 }, "glyph \(i + 32)")
        }
        // "H" at scale 2, at (3, 4): column 0 and 4 fully inked, row 3 across.
        var img = RGBImage(width: 20, height: 20)
        img.text("H", x: 3, y: 4, scale: 2, color: (0, 0, 0))
        for r in 0..<7 { for c in 0..<5 {
            let want = c == 0 || c == 4 || r == 3
            for dy in 0..<2 { for dx in 0..<2 {
                let k = 3 * ((4 + 2 * r + dy) * 20 + 3 + 2 * c + dx)
                XCTAssertEqual(img.pixels[k] == 0, want, "H row \(r) col \(c)")
            } }
        } }
        XCTAssertEqual(ink(img, 0, 20, 0, 20), 4 * (7 + 7 + 3))
        // Vertical text: the same ink, rotated (the "H" is symmetric, its box is 14 wide, 10 tall).
        var v = RGBImage(width: 20, height: 20)
        v.textVertical("H", x: 3, y: 4, scale: 2, color: (0, 0, 0))
        XCTAssertEqual(ink(v, 3, 17, 4, 14), 4 * (7 + 7 + 3))
        XCTAssertEqual(ink(v, 0, 20, 0, 20), 4 * (7 + 7 + 3))
        XCTAssertEqual(BitmapFont.width("layer", scale: 2), (5 * 6 - 1) * 2)
    }

    func testChartDecodesAndHasText() throws {
        for layers in [1, 12, 30, 80] {
            let png = try Extractor.plot(report(layers: layers), model: "/models/SmolLM2-135M-Instruct")
            let img = try decodeOwnPNG(png)
            XCTAssertEqual(img.width, 900); XCTAssertEqual(img.height, 500)
            // Title band (rows 10..<24): centred text, so ink in the middle third, none at the far edges.
            XCTAssertGreaterThan(ink(img, 300, 600, 10, 24), 200, "\(layers) layers: title")
            XCTAssertEqual(ink(img, 0, 4, 0, 30), 0, "\(layers) layers: left edge of the title band")
            // Legend row, x tick labels and the "layer" title at the bottom, both rotated axis labels.
            XCTAssertGreaterThan(ink(img, 0, 900, 32, 48), 200, "\(layers) layers: legend")
            XCTAssertGreaterThan(ink(img, 0, 900, 450, 470), 50, "\(layers) layers: x tick labels")
            XCTAssertGreaterThan(ink(img, 400, 500, 474, 492), 40, "\(layers) layers: x axis title")
            XCTAssertGreaterThan(ink(img, 6, 24, 100, 400), 100, "\(layers) layers: left axis label")
            XCTAssertGreaterThan(ink(img, 876, 894, 100, 400), 100, "\(layers) layers: right axis label")
        }
        // The title carries the model name: another name changes the title band and nothing below the legend.
        let a = try decodeOwnPNG(try Extractor.plot(report(layers: 12), model: "/models/SmolLM2-135M-Instruct"))
        let b = try decodeOwnPNG(try Extractor.plot(report(layers: 12), model: "other.gguf"))
        XCTAssertNotEqual(Array(a.pixels[0..<(3 * 900 * 26)]), Array(b.pixels[0..<(3 * 900 * 26)]))
        XCTAssertEqual(Array(a.pixels[(3 * 900 * 60)...]), Array(b.pixels[(3 * 900 * 60)...]))
    }

    func testNonFiniteValuesAndNiceTicks() throws {
        var r = report(layers: 6)
        r.reports[2].effectSize = .infinity
        r.reports[3].accuracy = .nan
        _ = try decodeOwnPNG(try Extractor.plot(r))
        let t = PNG.niceTicks(0, 4.87)
        XCTAssertEqual(t.step, 2); XCTAssertEqual(t.ticks, [0, 2, 4, 6]); XCTAssertEqual(t.range, 0...6)
        let u = PNG.niceTicks(-0.3, 0.7)
        XCTAssertEqual(u.step, 0.5, accuracy: 1e-12); XCTAssertEqual(u.ticks, [-0.5, 0, 0.5, 1])
    }
}
