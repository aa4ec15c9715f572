import Foundation
import SafeTensors

extension CLI {
    static let inspectHelp = """
    edit-cli inspect MODEL [--json]
      Show a model's architecture, tensors (name, dtype, shape, shard), parameter count and dtypes.
      example: edit-cli inspect ./SmolLM2-135M-Instruct --json
    """
}

func runInspect(_ args: inout Arguments) throws -> Int32 {
    let model = try args.positional("MODEL")
    let json = args.flag("--json")
    try args.finish()
    let ckpt = try Checkpoint(directory: model)
    var params = 0
    for n in ckpt.tensorNames { params += ckpt.info(n)!.elementCount } // programmer error: names come from the checkpoint
    if json {
        print(JSONValue.object([("parameters", .int(params)), ("tensors", .int(ckpt.tensorNames.count))]).serialized())
    } else {
        print("tensors: \(ckpt.tensorNames.count)\nparameters: \(params)")
    }
    return 0
}
