// Minimal reader for NumPy .npy vectors, so a direction saved with `np.save` (repeng, notebooks)
// can be used in a recipe directly: {"file": "refusal.npy"} (the "tensor" key is then optional).
// Format: magic "\x93NUMPY", version (1|2|3).x, header length (u16 for v1, u32 for v2/3), then a
// Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (576,), } and raw data.

import Foundation

public enum NPY {
    public struct Error: Swift.Error, CustomStringConvertible { public var description: String }

    /// Reads a 1-D (or [1, n]) float array as f64.
    public static func readVector(path: String) throws -> [Double] {
        guard let data = FileManager.default.contents(atPath: path) else { throw Error(description: "\(path): cannot read") }
        let b = [UInt8](data)
        guard b.count >= 10, b[0] == 0x93, Array(b[1..<6]) == Array("NUMPY".utf8) else {
            throw Error(description: "\(path): not a .npy file (bad magic)")
        }
        let major = b[6]
        var hlen: Int, start: Int
        switch major {
        case 1: hlen = Int(b[8]) | Int(b[9]) << 8; start = 10
        case 2, 3:
            guard b.count >= 12 else { throw Error(description: "\(path): truncated header") }
            hlen = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24; start = 12
        default: throw Error(description: "\(path): unsupported .npy version \(major)")
        }
        guard hlen <= 65536, start + hlen <= b.count else { throw Error(description: "\(path): header length \(hlen) runs past the end") }
        let header = String(decoding: b[start..<(start + hlen)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            let rest = header[r.upperBound...].drop(while: { $0 == " " })
            if rest.first == "(" { return rest.firstIndex(of: ")").map { String(rest[rest.startIndex...$0]) } }
            if rest.first == "'" { let body = rest.dropFirst(); return body.firstIndex(of: "'").map { String(body[..<$0]) } }
            return String(rest.prefix(while: { $0 != "," && $0 != "}" }))
        }
        guard let descr = field("descr"), let shapeS = field("shape") else { throw Error(description: "\(path): header lacks descr or shape") }
        if field("fortran_order")?.trimmingCharacters(in: .whitespaces) == "True" {
            // A vector is the same in either order; only refuse true matrices below.
        }
        let dims = shapeS.trimmingCharacters(in: CharacterSet(charactersIn: "() ")).split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard dims.count == 1 || (dims.count == 2 && dims[0] == 1) else {
            throw Error(description: "\(path): shape \(shapeS), expected a vector (n,) or (1, n)")
        }
        let n = dims.last!  // programmer error: dims has 1 or 2 entries here
        let size: Int
        switch descr { case "<f4": size = 4; case "<f8": size = 8; case "<f2": size = 2
        default: throw Error(description: "\(path): dtype '\(descr)', expected little-endian float (<f2, <f4, <f8)") }
        let dataStart = start + hlen
        let (need, overflow) = n.multipliedReportingOverflow(by: size)
        guard n >= 0, !overflow else { throw Error(description: "\(path): shape \(shapeS) is not a valid vector length") }
        guard b.count - dataStart == need else {
            throw Error(description: "\(path): data holds \(b.count - dataStart) bytes, shape \(shapeS) of \(descr) needs \(need)")
        }
        return b.withUnsafeBytes { raw in
            (0..<n).map { k -> Double in
                let o = dataStart + k * size
                switch size {
                case 4: return Double(Float(bitPattern: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
                case 8: return raw.loadUnaligned(fromByteOffset: o, as: Double.self)
                default: return Double(Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))))
                }
            }
        }
    }
}
