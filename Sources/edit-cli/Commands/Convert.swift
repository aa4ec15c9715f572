import Foundation

extension CLI {
    static let convertHelp = """
    edit-cli convert: convert a GGUF model to a Hugging Face safetensors folder
      (not implemented yet)
    """
}

func runConvert(_ args: inout Arguments) throws -> Int32 {
    throw UsageError("convert: not implemented yet in this build")
}
