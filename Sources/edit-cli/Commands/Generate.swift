import Foundation

extension CLI {
    static let generateHelp = """
    edit-cli generate: generate text, optionally with a steering recipe applied by hooks
      (not implemented yet)
    """
}

func runGenerate(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("generate: not implemented yet in this build")
}
