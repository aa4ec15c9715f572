// One error type for checkpoint I/O. Every failure has its own `Kind` (mirroring
// huggingface/safetensors `SafeTensorError`), and every message names the file (and the tensor
// when there is one), so the CLI prints a single line the user can act on.

public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        // Reading one file (the order of the checks in SafeTensorsFile).
        case io                  // cannot open/stat/map/read/write
        case headerTooSmall      // file shorter than the 8-byte length prefix
        case headerTooLarge      // header length over SafeTensorsFile.headerLimit
        case invalidHeaderLength // 8 + header length runs past the end of the file
        case headerNotUTF8       // header bytes are not valid UTF-8
        case invalidHeaderStart  // header does not start with '{'
        case headerNotJSON       // header is not valid JSON
        case invalidHeader       // valid JSON but wrong structure: not an object, missing/extra/mistyped fields
        case duplicateName       // the same tensor name (or __metadata__) twice in one header
        case unknownDType        // dtype string not in DType
        case overflow            // shape product or byte count overflows Int
        case sizeMismatch        // data_offsets span differs from dtype size x product(shape)
        case invalidOffsets      // end < begin, or tensors overlap / leave gaps (sorted by begin)
        case incompleteData      // tensors do not cover exactly the bytes after the header
        // Looking tensors up.
        case missingTensor
        case shapeMismatch
        case unsupported         // e.g. a dtype with no float view, or a format not handled yet
        // Sharded checkpoints.
        case invalidIndex        // model.safetensors.index.json problems
        // Writing.
        case invalidTensor       // writer input: bad name, shape, or payload size
        case targetExists        // output exists and --force was not given
        case overwritesSource    // output would replace one of the input files/folders
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
