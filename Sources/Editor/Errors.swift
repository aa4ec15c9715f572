// Errors of the editor: one line each, naming the file, tensor or recipe entry.

public enum EditError: Error, CustomStringConvertible, Sendable {
    case io(String)
    case badInput(String)
    case unsupported(String)
    /// `bake` refuses an intervention it cannot fold exactly; `suggestion` names the nearest foldable form.
    case refused(entry: String, reason: String, suggestion: String?)
    case notAvailable(String)

    public var description: String {
        switch self {
        case .io(let s), .badInput(let s), .unsupported(let s), .notAvailable(let s): return s
        case let .refused(entry, reason, suggestion):
            var s = "\(entry): cannot be folded into weights: \(reason)"
            if let suggestion { s += "; \(suggestion)" }
            return s
        }
    }
}
