// A minimal PNG encoder (8-bit RGB, filter 0, one IDAT) on zlib, and a line-chart raster for
// `extract --plot`.

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

    /// Line chart: one series per entry, values mapped to [min, max] of all series (or their own range).
    public static func lineChart(series: [(values: [Double], color: (UInt8, UInt8, UInt8), range: ClosedRange<Double>)],
                                 width: Int = 640, height: Int = 360) -> RGBImage {
        var img = RGBImage(width: width, height: height)
        let left = 40, right = width - 20, top = 20, bottom = height - 30
        let axis: (UInt8, UInt8, UInt8) = (60, 60, 60), grid: (UInt8, UInt8, UInt8) = (225, 225, 225)
        for k in 0...4 {
            let y = bottom - (bottom - top) * k / 4
            img.line(left, y, right, y, grid)
        }
        img.line(left, top, left, bottom, axis)
        img.line(left, bottom, right, bottom, axis)
        for (i, s) in series.enumerated() {
            img.fillRect(right - 14 - 18 * i, 4, 12, 10, s.color)     // legend swatch, right to left
            let n = s.values.count
            guard n > 0 else { continue }
            let span = max(s.range.upperBound - s.range.lowerBound, 1e-12)
            var prev: (Int, Int)?
            for (j, v) in s.values.enumerated() {
                let x = n == 1 ? (left + right) / 2 : left + (right - left) * j / (n - 1)
                let f = min(max((v.isFinite ? v : s.range.lowerBound) - s.range.lowerBound, 0) / span, 1)
                let y = bottom - Int((Double(bottom - top) * f).rounded())
                if let p = prev { img.line(p.0, p.1, x, y, s.color, thickness: 2) }
                img.fillRect(x - 2, y - 2, 5, 5, s.color)
                img.line(x, bottom, x, bottom + 4, axis)              // tick per layer
                prev = (x, y)
            }
        }
        return img
    }
}
