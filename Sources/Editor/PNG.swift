// A minimal PNG encoder (8-bit RGB, filter 0, one IDAT) on zlib, and a line-chart raster with
// text (BitmapFont) for `extract --plot`.

import CZlib
import Foundation

public struct RGBImage {
    public let width: Int, height: Int
    public var pixels: [UInt8]                 // [height, width, 3]
    public init(width: Int, height: Int, background: (UInt8, UInt8, UInt8) = (255, 255, 255)) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { pixels[3 * i] = background.0; pixels[3 * i + 1] = background.1; pixels[3 * i + 2] = background.2 }
    }

    public mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let k = 3 * (y * width + x)
        pixels[k] = c.0; pixels[k + 1] = c.1; pixels[k + 2] = c.2
    }

    /// A line `thickness` pixels wide (Bresenham, stamped with a square brush).
    public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8), thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        let r = thickness / 2
        while true {
            for a in -r...r { for b in -r...r { set(x + a, y + b, c) } }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    /// `s` in `BitmapFont`, top-left corner at (x, y), each font cell drawn as a `scale` x `scale` block.
    public mutating func text(_ s: String, x: Int, y: Int, scale: Int = 2, color: (UInt8, UInt8, UInt8)) {
        for (i, ch) in s.enumerated() {
            for (r, bits) in BitmapFont.glyph(ch).enumerated() {
                for col in 0..<BitmapFont.glyphWidth where bits & (0x10 >> UInt8(col)) != 0 {
                    fillRect(x + (i * BitmapFont.advance + col) * scale, y + r * scale, scale, scale, color)
                }
            }
        }
    }

    /// `s` rotated a quarter turn counter-clockwise (reading bottom to top); (x, y) is the top-left
    /// of its box, which is 7 * scale wide and `BitmapFont.width(s, scale:)` tall.
    public mutating func textVertical(_ s: String, x: Int, y: Int, scale: Int = 2, color: (UInt8, UInt8, UInt8)) {
        let h = BitmapFont.width(s, scale: 1)
        for (i, ch) in s.enumerated() {
            for (r, bits) in BitmapFont.glyph(ch).enumerated() {
                for col in 0..<BitmapFont.glyphWidth where bits & (0x10 >> UInt8(col)) != 0 {
                    let px = i * BitmapFont.advance + col
                    fillRect(x + r * scale, y + (h - 1 - px) * scale, scale, scale, color)
                }
            }
        }
    }

    /// A one-pixel circle outline.
    public mutating func ring(_ cx: Int, _ cy: Int, radius: Int, _ c: (UInt8, UInt8, UInt8)) {
        let r2lo = (Double(radius) - 0.5) * (Double(radius) - 0.5), r2hi = (Double(radius) + 0.5) * (Double(radius) + 0.5)
        for dy in -radius - 1...radius + 1 {
            for dx in -radius - 1...radius + 1 {
                let d2 = Double(dx * dx + dy * dy)
                if d2 >= r2lo && d2 < r2hi { set(cx + dx, cy + dy, c) }
            }
        }
    }

    public mutating func fillRect(_ x: Int, _ y: Int, _ w: Int, _ h: Int, _ c: (UInt8, UInt8, UInt8)) {
        for j in y..<(y + h) { for i in x..<(x + w) { set(i, j, c) } }
    }
}

public enum PNG {
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(CZlib.crc32(0, $0.baseAddress, uInt($0.count))) }
    }

    public static func encode(_ img: RGBImage) throws -> [UInt8] {
        // Scanlines, each prefixed by filter type 0 (None).
        var raw = [UInt8]()
        raw.reserveCapacity(img.height * (1 + 3 * img.width))
        for y in 0..<img.height {
            raw.append(0)
            raw += img.pixels[(3 * y * img.width)..<(3 * (y + 1) * img.width)]
        }
        var destLen = compressBound(uLong(raw.count))
        var z = [UInt8](repeating: 0, count: Int(destLen))
        let rc = compress2(&z, &destLen, raw, uLong(raw.count), 9)
        guard rc == Z_OK else { throw EditError.io("PNG: zlib compress failed (\(rc))") }
        z.removeSubrange(Int(destLen)...)

        var out = signature
        func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
        func chunk(_ type: String, _ data: [UInt8]) {
            let t = Array(type.utf8)
            out += be32(UInt32(data.count)) + t + data + be32(crc32(t + data))
        }
        chunk("IHDR", be32(UInt32(img.width)) + be32(UInt32(img.height)) + [8, 2, 0, 0, 0])
        chunk("IDAT", z)
        chunk("IEND", [])
        return out
    }

    /// A line chart with a title, axis labels, tick labels on both y axes, a legend and an optional
    /// marked x position; text in `BitmapFont` at integer scale `textScale`.
    public static func lineChart(_ c: LineChart, width: Int = 900, height: Int = 500, textScale: Int = 2) -> RGBImage {
        var img = RGBImage(width: width, height: height)
        let s = max(textScale, 1)
        let ink: RGB = (30, 30, 30), axis: RGB = (60, 60, 60), grid: RGB = (228, 228, 228), mark: RGB = (120, 120, 120)
        let lineH = BitmapFont.glyphHeight * s
        let leftLabels = c.left.ticks.map(c.left.format), rightLabels = c.right.ticks.map(c.right.format)
        let leftW = leftLabels.map { BitmapFont.width($0, scale: s) }.max() ?? 0
        let rightW = rightLabels.map { BitmapFont.width($0, scale: s) }.max() ?? 0

        // Title (shrunk to scale 1 if it does not fit), legend row under it.
        var y0 = 10
        let titleScale = BitmapFont.width(c.title, scale: s) <= width - 20 ? s : 1
        img.text(c.title, x: max((width - BitmapFont.width(c.title, scale: titleScale)) / 2, 4), y: y0, scale: titleScale, color: ink)
        y0 += BitmapFont.glyphHeight * titleScale + 10
        // Legend: a swatch and a name per series, then the marker's dashed line and label; wraps.
        var items: [(color: RGB?, label: String)] = c.series.map { ($0.color, $0.name) }
        if let m = c.marker { items.append((nil, m.label)) }
        var rows: [[(color: RGB?, label: String)]] = [[]]
        var rowW = 0
        for it in items {
            let w = 28 + BitmapFont.width(it.label, scale: s)
            if !rows[rows.count - 1].isEmpty && rowW + 24 + w > width - 16 { rows.append([]); rowW = 0 }
            rowW += (rows[rows.count - 1].isEmpty ? 0 : 24) + w
            rows[rows.count - 1].append(it)
        }
        for row in rows {
            let w = row.reduce(0) { $0 + 28 + BitmapFont.width($1.label, scale: s) } + 24 * (row.count - 1)
            var lx = max((width - w) / 2, 4)
            for it in row {
                let cy = y0 + lineH / 2
                if let col = it.color {
                    img.line(lx, cy, lx + 20, cy, col, thickness: 2)
                    img.fillRect(lx + 8, cy - 2, 5, 5, col)
                } else {
                    var y = y0 - 2
                    while y < y0 + lineH + 2 { img.line(lx + 10, y, lx + 10, min(y + 3, y0 + lineH + 2), mark); y += 6 }
                }
                img.text(it.label, x: lx + 28, y: y0, scale: s, color: ink)
                lx += 28 + BitmapFont.width(it.label, scale: s) + 24
            }
            y0 += lineH + 8
        }
        y0 -= lineH + 8

        // Plot area: room for the rotated axis labels, tick labels and the x-axis text.
        let left = 8 + lineH + 10 + leftW + 8
        let right = width - (8 + lineH + 10 + rightW + 12)
        let top = y0 + lineH + 16
        let bottom = height - (8 + lineH + 10 + lineH + 8)
        guard right > left + 10, bottom > top + 10 else { return img }
        func yOf(_ v: Double, _ r: ClosedRange<Double>) -> Int {
            let span = max(r.upperBound - r.lowerBound, 1e-12)
            let f = min(max((v - r.lowerBound) / span, 0), 1)
            return bottom - Int((Double(bottom - top) * f).rounded())
        }
        let n = c.xLabels.count
        func xOf(_ j: Int) -> Int { n <= 1 ? (left + right) / 2 : left + (right - left) * j / (n - 1) }

        // Grid and left ticks.
        for (t, label) in zip(c.left.ticks, leftLabels) {
            let y = yOf(t, c.left.range)
            img.line(left, y, right, y, grid)
            img.line(left - 4, y, left, y, axis)
            img.text(label, x: left - 8 - BitmapFont.width(label, scale: s), y: y - lineH / 2, scale: s, color: ink)
        }
        for (t, label) in zip(c.right.ticks, rightLabels) {
            let y = yOf(t, c.right.range)
            img.line(right, y, right + 4, y, axis)
            img.text(label, x: right + 12, y: y - lineH / 2, scale: s, color: ink)
        }
        img.line(left, top, left, bottom, axis)
        img.line(right, top, right, bottom, axis)
        img.line(left, bottom, right, bottom, axis)
        img.textVertical(c.left.label, x: 8, y: (top + bottom) / 2 - BitmapFont.width(c.left.label, scale: s) / 2, scale: s, color: ink)
        img.textVertical(c.right.label, x: width - 8 - lineH, y: (top + bottom) / 2 - BitmapFont.width(c.right.label, scale: s) / 2,
                         scale: s, color: ink)

        // X ticks: a mark at every point, a label where there is room.
        let labelW = (c.xLabels.map { BitmapFont.width($0, scale: s) }.max() ?? 0) + 8
        let pitch = n > 1 ? Double(right - left) / Double(n - 1) : Double(right - left)
        let every = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].first { Double($0) * pitch >= Double(labelW) } ?? max(n, 1)
        for j in 0..<n {
            let x = xOf(j)
            let labelled = c.xLabelAt?(j, every) ?? (j % every == 0)
            img.line(x, bottom, x, bottom + (labelled ? 6 : 3), axis)
            if labelled {
                img.text(c.xLabels[j], x: x - BitmapFont.width(c.xLabels[j], scale: s) / 2, y: bottom + 9, scale: s, color: ink)
            }
        }
        img.text(c.xTitle, x: (left + right - BitmapFont.width(c.xTitle, scale: s)) / 2, y: bottom + 9 + lineH + 8, scale: s, color: ink)

        // Marked position: a dashed vertical line (its label is in the legend).
        if let (j, _) = c.marker, j >= 0, j < n {
            let x = xOf(j)
            var y = top
            while y < bottom { img.line(x, y, x, min(y + 5, bottom), mark); y += 9 }
        }

        // Series: segments between finite neighbours, a dot per finite value.
        for sr in c.series {
            let r = sr.axis == .left ? c.left.range : c.right.range
            var prev: (Int, Int)?
            for (j, v) in sr.values.enumerated() where j < n {
                guard v.isFinite else { prev = nil; continue }
                let p = (xOf(j), yOf(v, r))
                if let q = prev { img.line(q.0, q.1, p.0, p.1, sr.color, thickness: 2) }
                prev = p
            }
            for (j, v) in sr.values.enumerated() where j < n && v.isFinite {
                let p = (xOf(j), yOf(v, r))
                if let (m, _) = c.marker, m == j { img.ring(p.0, p.1, radius: 7, sr.color) }
                img.fillRect(p.0 - 2, p.1 - 2, 5, 5, sr.color)
            }
        }
        return img
    }

    /// About `count` round tick values (1, 2 or 5 times a power of ten) covering `lo...hi`.
    public static func niceTicks(_ lo: Double, _ hi: Double, count: Int = 5) -> (range: ClosedRange<Double>, ticks: [Double], step: Double) {
        let span = hi > lo ? hi - lo : max(abs(hi), 1)
        let raw = span / Double(max(count - 1, 1))
        let mag = pow(10, floor(log10(raw)))
        let step = ([1.0, 2, 5, 10].first { $0 * mag >= raw } ?? 10) * mag
        let a = floor(lo / step) * step, b = max(ceil(hi / step) * step, a + step)
        let k = Int(((b - a) / step).rounded())
        return (a...b, (0...k).map { a + Double($0) * step }, step)
    }
}

public typealias RGB = (UInt8, UInt8, UInt8)

public struct ChartAxis {
    public var label: String
    public var range: ClosedRange<Double>
    public var ticks: [Double]
    public var format: (Double) -> String
    public init(label: String, range: ClosedRange<Double>, ticks: [Double], format: @escaping (Double) -> String) {
        self.label = label; self.range = range; self.ticks = ticks; self.format = format
    }
}

public struct ChartSeries {
    public enum Side { case left, right }
    public var name: String
    public var values: [Double]
    public var color: RGB
    public var axis: Side
    public init(name: String, values: [Double], color: RGB, axis: Side) {
        self.name = name; self.values = values; self.color = color; self.axis = axis
    }
}

public struct LineChart {
    public var title: String
    public var xTitle: String
    public var xLabels: [String]                   // one per point
    /// Which x labels to draw given the index and the stride the space allows (default: index % stride == 0).
    public var xLabelAt: ((Int, Int) -> Bool)?
    public var left: ChartAxis, right: ChartAxis
    public var series: [ChartSeries]
    public var marker: (index: Int, label: String)?
    public init(title: String, xTitle: String, xLabels: [String], xLabelAt: ((Int, Int) -> Bool)? = nil, left: ChartAxis, right: ChartAxis,
                series: [ChartSeries], marker: (index: Int, label: String)? = nil) {
        self.title = title; self.xTitle = xTitle; self.xLabels = xLabels; self.xLabelAt = xLabelAt
        self.left = left; self.right = right; self.series = series; self.marker = marker
    }
}
