import Foundation

extension CLI {
    static let verifyHelp = """
    edit-cli verify: compare the hooked original with an edited checkpoint, numerically
      (not implemented yet)
    """
}

func runVerify(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("verify: not implemented yet in this build")
}
