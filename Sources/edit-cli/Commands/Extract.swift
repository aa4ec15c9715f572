import Editor
import Foundation
import Tokenizers

extension CLI {
    static let extractHelp = """
    edit-cli extract MODEL --positive FILE --negative FILE [--layers 0-29|all|3,5,7]
                     [--method mean-diff|pca] [--position last|mean] [--chat]
                     --out VECTORS.safetensors [--report R.json] [--plot P.png]

    Contrastive steering vectors at resid_post.L for every requested layer, from one forward pass
    per prompt. Prompt files: one prompt per line (.txt) or JSON Lines with a "prompt" field.
      --layers     "all" (default), a range "3-7", or a list "3,5,7" (0-based)
      --method     mean-diff (default): mean(positive) - mean(negative);
                   pca: first principal component of the paired differences (repeng's pca_diff),
                   unit length, sign so positives project higher (files must pair line by line)
      --position   last (default): the last prompt token's state; mean: the mean over the prompt
      --chat       wrap each prompt as a user message with the chat template
      --out        tensors "resid_post.<L>" (F32), metadata: model, method, position, counts
      --report     per-layer JSON: Cohen's d of the projections, leave-one-pair-out sign accuracy,
                   |v| relative to the mean residual norm (also printed as a table)
      --plot       PNG chart per layer: effect size (Cohen's d, left axis), sign accuracy (right
                   axis, 0..1), best layer marked
      example: edit-cli extract ./SmolLM2-135M-Instruct --positive joyful.txt --negative gloomy.txt --out vectors.safetensors --report report.json --plot layers.png
    """
}

func parseLayers(_ s: String, numLayers n: Int) throws -> [Int] {
    if s == "all" { return Array(0..<n) }
    var out: [Int] = []
    for part in s.split(separator: ",") {
        let p = part.trimmingCharacters(in: .whitespaces)
        if let dash = p.firstIndex(of: "-"), dash != p.startIndex {
            guard let a = Int(p[..<dash]), let b = Int(p[p.index(after: dash)...]), a <= b else {
                throw UsageError("extract: --layers range '\(p)' is not A-B with A <= B")
            }
            out += Array(a...b)
        } else {
            guard let v = Int(p) else { throw UsageError("extract: --layers entry '\(p)' is not an integer, a range A-B, or all") }
            out.append(v)
        }
    }
    for l in out where l < 0 || l >= n { throw UsageError("extract: layer \(l) is out of range (the model has \(n) layers: 0-\(n - 1))") }
    guard !out.isEmpty else { throw UsageError("extract: --layers is empty") }
    var seen = Set<Int>()
    return out.filter { seen.insert($0).inserted }
}

func runExtract(_ args: inout Arguments) throws -> Int32 {
    let posPath = try args.required("--positive")
    let negPath = try args.required("--negative")
    let layersArg = try args.option("--layers") ?? "all"
    let methodArg = try args.option("--method") ?? "mean-diff"
    let positionArg = try args.option("--position") ?? "last"
    let chat = args.flag("--chat")
    let out = try args.required("--out")
    let reportPath = try args.option("--report")
    let plotPath = try args.option("--plot")
    let modelPath = try args.positional("MODEL")
    try args.finish()
    guard let method = ExtractOptions.Method(rawValue: methodArg) else { throw UsageError("extract: --method expects mean-diff or pca, found '\(methodArg)'") }
    guard let position = ExtractOptions.Position(rawValue: positionArg) else { throw UsageError("extract: --position expects last or mean, found '\(positionArg)'") }

    let (folder, model) = try EngineCLI.loadModel(modelPath)
    let layers = try parseLayers(layersArg, numLayers: model.config.numLayers)
    let tok = try Tokenizer(directory: folder)
    let pos = try PromptFile.encode(try PromptFile.load(posPath), tokenizer: tok, chat: chat)
    let neg = try PromptFile.encode(try PromptFile.load(negPath), tokenizer: tok, chat: chat)
    let r = try Extractor.extract(model: model, positive: pos, negative: neg,
                                  options: ExtractOptions(layers: layers, method: method, position: position), log: Progress.say)
    try writeFileAtomically(Extractor.vectorsFile(r, model: modelPath, chat: chat), to: out)
    print("layer   effect size (d)   accuracy   |v|/mean|x|")
    for l in r.reports {
        print(String(format: "%5d   %15.3f   %8.3f   %11.4f", l.layer, l.effectSize, l.accuracy, l.relativeNorm))
    }
    if let reportPath { try writeFileAtomically(Array((r.reportJSON.serialized(pretty: true) + "\n").utf8), to: reportPath) }
    if let plotPath { try writeFileAtomically(try Extractor.plot(r, model: modelPath), to: plotPath) }
    print("wrote \(out) (\(layers.count) vectors, \(pos.count) positive / \(neg.count) negative prompts)")
    return 0
}

/// Writes bytes to a temp file beside `path`, then renames it into place.
func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let temp = (dir.isEmpty ? "" : dir + "/") + "." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: temp, contents: Data(bytes)) else { throw UsageError("\(path): cannot write") }
    guard rename(temp, path) == 0 else { unlink(temp); throw UsageError("\(path): cannot rename \(temp) into place") }
}
