// Fuzz target: config.json decoding into the engine's ModelConfig (every architecture), then the
// weight table it implies.
import Engine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = inputBytes(data, size)
    guard let json = try? JSONValue.parse(data: bytes) else { return 0 }
    do {
        let c = try ModelConfig.resolve(json: json)
        _ = c.weightTable
    } catch is ModelError {
    } catch { unexpected(error) }
    return 0
}
