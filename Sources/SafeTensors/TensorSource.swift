// The one interface every weight reader offers (safetensors file, sharded checkpoint, GGUF file),
// so the engine and the editor never care where tensors come from.

public struct TensorInfo: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]          // e.g. [576, 1536]; [] for a scalar
    public var byteCount: Int

    public init(name: String, dtype: DType, shape: [Int], byteCount: Int) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.byteCount = byteCount
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

public protocol TensorSource: AnyObject {
    /// Tensor names in a stable order (file order for safetensors).
    var tensorNames: [String] { get }
    /// Shape and dtype of a tensor, nil if absent.
    func info(_ name: String) -> TensorInfo?
    /// The tensor converted to f32, row-major. Throws for a missing tensor or a dtype with no float view.
    func floats(_ name: String) throws -> [Float]
}

extension TensorSource {
    public func contains(_ name: String) -> Bool { info(name) != nil }
}
