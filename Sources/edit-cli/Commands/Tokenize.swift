import Foundation

extension CLI {
    static let tokenizeHelp = """
    edit-cli tokenize: token ids (and pieces with --json) of a text, optionally chat-formatted
      (not implemented yet)
    """
}

func runTokenize(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("tokenize: not implemented yet in this build")
}
