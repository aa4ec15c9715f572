// Fuzz target: tokenizer.json (the whole pipeline factory) and, when it loads, encoding and
// decoding a fixed text.
import Tokenizers

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = inputBytes(data, size)
    do {
        let t = try Tokenizer(tokenizerJSON: bytes, configJSON: nil)
        let ids = t.encode("Hello wörld, 12345 <|im_start|>  tabs\tand\nnewlines 🤗")
        _ = t.decode(ids)
        _ = t.tokens(ids)
    } catch is TokenizerError {
    } catch { unexpected(error) }
    return 0
}
