// Incremental decoding for streaming output.
//
// Decoding token by token does not work directly: a character may be split over several byte
// tokens, and decoders treat the first token of a sequence specially (Metaspace drops its leading
// space). So, as text-generation servers do, the decoder keeps a window of ids: it decodes the
// window with and without the newest ids and emits the difference once it no longer ends in an
// incomplete character (U+FFFD). The concatenation of everything emitted (plus `finish()`) equals
// `decode(allIds)` for the decoders of this module.

public final class StreamingDecoder {
    let tokenizer: Tokenizer
    let skipSpecialTokens: Bool
    private var ids: [Int] = []
    private var prefixOffset = 0
    private var readOffset = 0

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text that became complete (possibly empty).
    public func push(_ id: Int) -> String {
        ids.append(id)
        let prefixText = tokenizer.decode(Array(ids[prefixOffset..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let newText = tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        guard newText.utf8.count > prefixText.utf8.count, !newText.hasSuffix("\u{FFFD}"),
              newText.utf8.starts(with: prefixText.utf8) else { return "" }
        let delta = String(decoding: Array(newText.utf8)[prefixText.utf8.count...], as: UTF8.self)
        prefixOffset = readOffset
        readOffset = ids.count
        return delta
    }

    /// Text still held back (an incomplete character at the end becomes U+FFFD).
    public func finish() -> String {
        let prefixText = tokenizer.decode(Array(ids[prefixOffset..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let newText = tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        prefixOffset = ids.count
        readOffset = ids.count
        guard newText.utf8.count > prefixText.utf8.count, newText.utf8.starts(with: prefixText.utf8) else { return "" }
        return String(decoding: Array(newText.utf8)[prefixText.utf8.count...], as: UTF8.self)
    }
}
