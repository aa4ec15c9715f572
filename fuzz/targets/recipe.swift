// Fuzz target: steering recipes (Recipe JSON entries). Vector files are not read (no file system
// access from fuzz inputs); resolve() against a fixed model shape runs only for recipes without
// files, which cannot be built here, so parsing and validation is what is exercised.
import Engine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = inputBytes(data, size)
    guard let json = try? JSONValue.parse(data: bytes) else { return 0 }
    do {
        let r = try Recipe(json: json, baseFolder: "/nonexistent-fuzz-folder", label: "fuzz.json")
        _ = try? r.resolve(hiddenSize: 8, numLayers: 4)
    } catch is RecipeError {
    } catch { unexpected(error) }
    return 0
}
