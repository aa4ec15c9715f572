// One error type for checkpoint I/O. Every case names the file (and tensor when there is one),
// so the CLI prints a single line the user can act on.

public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        case io                 // cannot open/read/map/write
        case headerTooSmall     // file shorter than 8 bytes, or header length past the end
        case headerTooLarge     // header length over the cap
        case invalidHeader      // not UTF-8 JSON object, wrong field types, duplicate names
        case unknownDType
        case invalidOffsets     // offsets out of range, overlapping, not contiguous, not covering data
        case sizeMismatch       // byte size differs from dtype x shape
        case missingTensor
        case shapeMismatch
        case invalidIndex       // model.safetensors.index.json problems
        case targetExists
        case unsupported
    }
    public var kind: Kind
    public var file: String
    public var tensor: String?
    public var detail: String

    public init(_ kind: Kind, file: String, tensor: String? = nil, _ detail: String) {
        self.kind = kind; self.file = file; self.tensor = tensor; self.detail = detail
    }

    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(detail)" }
        return "\(file): \(detail)"
    }
}
