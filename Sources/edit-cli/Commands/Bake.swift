import Foundation

extension CLI {
    static let bakeHelp = """
    edit-cli bake: fold a steering recipe into the weights and write a new checkpoint
      (not implemented yet)
    """
}

func runBake(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("bake: not implemented yet in this build")
}
