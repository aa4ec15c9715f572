import Foundation

extension CLI {
    static let extractHelp = """
    edit-cli extract: contrastive steering vectors from positive/negative prompt files
      (not implemented yet)
    """
}

func runExtract(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("extract: not implemented yet in this build")
}
