// Fuzz target: the .npy vector reader used by recipes.
import Engine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = scratchFile(inputBytes(data, size), name: "in.npy")
    do { _ = try NPY.readVector(path: path) } catch is NPY.Error {
    } catch { unexpected(error) }
    return 0
}
