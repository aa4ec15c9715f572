import Foundation

extension CLI {
    static let controlVectorHelp = """
    edit-cli control-vector: export/import llama.cpp control vectors
      (not implemented yet)
    """
}

func runControlVector(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("control-vector: not implemented yet in this build")
}
