// Fuzz target: safetensors header and layout validation (SafeTensorsFile). On success every
// tensor's bytes must lie inside the file and convert to floats when the dtype has a float view.
import SafeTensors

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = inputBytes(data, size)
    do {
        let f = try SafeTensorsFile(bytes: bytes, name: "fuzz.safetensors")
        for n in f.tensorNames {
            guard let info = f.info(n) else { fatalError("listed tensor \(n) has no info") }
            let b = try f.bytes(n)
            if b.count != info.byteCount { fatalError("\(n): \(b.count) bytes, info says \(info.byteCount)") }
            if info.elementCount <= 1 << 16 {
                do { _ = try f.floats(n) } catch let e as SafeTensorsError where e.kind == .unsupported {}
            }
        }
    } catch is SafeTensorsError {
    } catch { unexpected(error) }
    return 0
}
