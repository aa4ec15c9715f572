import Foundation

extension CLI {
    static let logitsHelp = """
    edit-cli logits: write the logits of a prompt, optionally with a steering recipe applied by hooks
      (not implemented yet)
    """
}

func runLogits(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("logits: not implemented yet in this build")
}
