import Foundation

extension CLI {
    static let demoHelp = """
    edit-cli demo: the whole pipeline on SmolLM2-135M-Instruct: extract, bake, verify, compare
      (not implemented yet)
    """
}

func runDemo(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("demo: not implemented yet in this build")
}
