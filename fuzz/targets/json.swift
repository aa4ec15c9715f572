// Fuzz target: StrictJSON parser (every JSON file: config.json, tokenizer.json, recipes, index).
// A successful parse must serialise and re-parse to an equal value.
import StrictJSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = inputBytes(data, size)
    do {
        let v = try JSONValue.parse(data: bytes)
        let again = try JSONValue.parse(v.serialized())
        if again != v { fatalError("round trip changed the value: \(v.serialized())") }
        _ = try JSONValue.parse(v.serialized(pretty: true))
    } catch is JSONParseError {
    } catch { unexpected(error) }
    return 0
}
