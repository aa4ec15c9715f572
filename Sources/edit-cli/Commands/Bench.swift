import Foundation

extension CLI {
    static let benchHelp = """
    edit-cli bench: prefill and decode tokens per second of the engine on this machine
      (not implemented yet)
    """
}

func runBench(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("bench: not implemented yet in this build")
}
