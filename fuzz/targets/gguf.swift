// Fuzz target: GGUF reader (GGUFFile: header, metadata, tensor infos) and dequantisation of every
// tensor it accepts.
import SafeTensors

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = scratchFile(inputBytes(data, size), name: "in.gguf")
    do {
        let f = try GGUFFile(path: path)
        for t in f.tensors {
            _ = try f.bytes(t.name)
            if t.elementCount <= 1 << 16 {
                do { _ = try f.floats(t.name) } catch let e as GGUFError where e.kind == .unsupportedType {}
            }
        }
        _ = f.architecture
    } catch is GGUFError {
    } catch { unexpected(error) }
    return 0
}
