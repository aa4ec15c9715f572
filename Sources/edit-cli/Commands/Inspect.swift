// edit-cli inspect MODEL [--json]: what is in a checkpoint, read from the safetensors headers
// (nothing is converted) and config.json when present.

import Foundation
import SafeTensors

extension CLI {
    static let inspectHelp = """
    edit-cli inspect MODEL [--json]
      Show a model's architecture (model_type, architectures from config.json), tensors (name,
      dtype, shape, shard), parameter count, dtype summary and whether embeddings are tied.
      MODEL is a Hugging Face folder (model.safetensors or shards with model.safetensors.index.json)
      or a single .safetensors file. --json prints one JSON object to stdout.
      example: edit-cli inspect ./SmolLM2-135M-Instruct --json
    """
}

/// A checkpoint summary, as printed by `inspect` (also usable by other commands).
struct InspectReport {
    var path: String
    var modelType: String?          // config.json model_type, e.g. "llama"
    var architectures: [String]     // config.json architectures, e.g. ["LlamaForCausalLM"]
    var configTie: Bool?            // config.json tie_word_embeddings (or text_config's)
    var hasLMHead: Bool             // lm_head.weight present
    var hasEmbedding: Bool          // an input embedding table (…embed_tokens.weight, wte.weight…) present
    var tiedEmbeddings: Bool?       // configTie, else embedding present and lm_head absent; nil: unknown
    var parameters: Int
    var totalBytes: Int
    var tensors: [(info: TensorInfo, shard: String)]
    var shards: [String]
    var dtypes: [(dtype: String, tensors: Int, parameters: Int)]   // by parameter count, largest first
    var metadata: [String: String]  // __metadata__ of the first shard

    init(path: String) throws {
        if path.lowercased().hasSuffix(".gguf") {
            throw SafeTensorsError(.unsupported, file: path, "GGUF input is not supported by inspect yet; convert it with `edit-cli convert` or pass a safetensors folder/file")
        }
        let ckpt = try Checkpoint.open(path)
        self.path = path
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let configPath = isDir.boolValue ? (path as NSString).appendingPathComponent("config.json") : nil
        var modelType: String?, architectures: [String] = [], tie: Bool?
        if let configPath, FileManager.default.fileExists(atPath: configPath) {
            guard let data = FileManager.default.contents(atPath: configPath) else {
                throw SafeTensorsError(.io, file: configPath, "cannot read")
            }
            let config: JSONValue
            do { config = try JSONValue.parse(data: [UInt8](data)) } catch {
                throw SafeTensorsError(.invalidHeader, file: configPath, "not valid JSON: \(error)")
            }
            guard config.objectPairs != nil else {
                throw SafeTensorsError(.invalidHeader, file: configPath, "expected a JSON object")
            }
            if let v = config["model_type"] {
                guard let s = v.stringValue else { throw SafeTensorsError(.invalidHeader, file: configPath, "model_type is not a string") }
                modelType = s
            }
            if let v = config["architectures"], !v.isNull {
                guard let a = v.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
                    throw SafeTensorsError(.invalidHeader, file: configPath, "architectures is not a list of strings")
                }
                architectures = a.compactMap { $0.stringValue }
            }
            if let v = config["tie_word_embeddings"] ?? config["text_config"]?["tie_word_embeddings"] {
                guard let b = v.boolValue else { throw SafeTensorsError(.invalidHeader, file: configPath, "tie_word_embeddings is not true/false") }
                tie = b
            }
        }
        self.modelType = modelType
        self.architectures = architectures
        configTie = tie
        hasLMHead = ckpt.contains("lm_head.weight")
        hasEmbedding = ckpt.tensorNames.contains { n in
            ["embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight"].contains { n.hasSuffix($0) }
        }
        tiedEmbeddings = tie ?? (hasEmbedding ? !hasLMHead : nil)
        var params = 0
        var byDType: [String: (Int, Int)] = [:]
        tensors = []
        for name in ckpt.tensorNames {
            guard let info = ckpt.info(name), let shard = ckpt.shardName(of: name) else { continue }
            params += info.elementCount
            let d = byDType[info.dtype.rawValue] ?? (0, 0)
            byDType[info.dtype.rawValue] = (d.0 + 1, d.1 + info.elementCount)
            tensors.append((info, shard))
        }
        tensors.sort { naturalLess($0.info.name, $1.info.name) }
        parameters = params
        totalBytes = ckpt.totalBytes
        shards = ckpt.shards.map { ($0.path as NSString).lastPathComponent }
        dtypes = byDType.map { ($0.key, $0.value.0, $0.value.1) }.sorted { ($0.parameters, $1.dtype) > ($1.parameters, $0.dtype) }
        metadata = ckpt.shards.first?.metadata ?? [:]
    }

    var json: JSONValue {
        func str(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
        return .object([
            ("path", .string(path)),
            ("format", .string("safetensors")),
            ("model_type", str(modelType)),
            ("architectures", .array(architectures.map { .string($0) })),
            ("parameters", .int(parameters)),
            ("bytes", .int(totalBytes)),
            ("tensor_count", .int(tensors.count)),
            ("tied_embeddings", tiedEmbeddings.map { .bool($0) } ?? .null),
            ("tie_word_embeddings", configTie.map { .bool($0) } ?? .null),
            ("lm_head_present", .bool(hasLMHead)),
            ("dtypes", .object(dtypes.map { ($0.dtype, .object([("tensors", .int($0.tensors)), ("parameters", .int($0.parameters))])) })),
            ("shards", .array(shards.map { .string($0) })),
            ("metadata", .object(metadata.keys.sorted().map { ($0, .string(metadata[$0] ?? "")) })),
            ("tensors", .array(tensors.map { t in
                .object([("name", .string(t.info.name)), ("dtype", .string(t.info.dtype.rawValue)),
                         ("shape", .array(t.info.shape.map { .int($0) })), ("shard", .string(t.shard))])
            })),
        ])
    }

    var text: String {
        var lines: [String] = []
        lines.append("model:        \(path)")
        lines.append("architecture: \(modelType ?? "(no config.json model_type)")\(architectures.isEmpty ? "" : " " + architectures.joined(separator: ", "))")
        lines.append("parameters:   \(parameters) (\(formatCount(parameters)))")
        lines.append("size:         \(totalBytes) bytes in \(shards.count) file\(shards.count == 1 ? "" : "s")")
        lines.append("dtypes:       " + dtypes.map { "\($0.dtype) \($0.tensors) tensor\($0.tensors == 1 ? "" : "s") / \($0.parameters) params" }.joined(separator: ", "))
        let why = configTie.map { "tie_word_embeddings=\($0) in config.json" }
            ?? (hasEmbedding ? "no tie_word_embeddings in config; lm_head.weight \(hasLMHead ? "present" : "absent")"
                             : "no tie_word_embeddings in config and no embedding table")
        let tiedText = tiedEmbeddings.map { $0 ? "yes" : "no" } ?? "unknown"
        lines.append("tied embeddings: \(tiedText) (\(why))")
        if tiedEmbeddings == true && hasLMHead { lines.append("note: lm_head.weight is present although embeddings are tied; transformers overwrites it with the embedding") }
        if tiedEmbeddings == false && !hasLMHead { lines.append("warning: embeddings are not tied but lm_head.weight is absent") }
        lines.append("tensors (\(tensors.count)):")
        let w = min(tensors.map { $0.info.name.count }.max() ?? 0, 60)
        for t in tensors {
            let name = t.info.name.count < w ? t.info.name.padding(toLength: w, withPad: " ", startingAt: 0) : t.info.name
            let dt = t.info.dtype.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            let shape = "[" + t.info.shape.map(String.init).joined(separator: ", ") + "]"
            lines.append("  \(name)  \(dt) \(shape.padding(toLength: max(shape.count, 14), withPad: " ", startingAt: 0))  \(t.shard)")
        }
        return lines.joined(separator: "\n")
    }
}

/// "layers.2" < "layers.10": digit runs compare as numbers.
func naturalLess(_ a: String, _ b: String) -> Bool {
    func runs(_ s: String) -> [(String, Int?)] {
        var out: [(String, Int?)] = []
        var cur = "", digits = false
        for c in s {
            let d = c.isASCII && c.isNumber
            if !cur.isEmpty && d != digits { out.append((cur, digits ? Int(cur) : nil)); cur = "" }
            cur.append(c); digits = d
        }
        if !cur.isEmpty { out.append((cur, digits ? Int(cur) : nil)) }
        return out
    }
    let (x, y) = (runs(a), runs(b))
    for (p, q) in zip(x, y) {
        if let m = p.1, let n = q.1, m != n { return m < n }
        if p.0 != q.0 { return p.0 < q.0 }
    }
    return x.count < y.count
}

private func formatCount(_ n: Int) -> String {
    let d = Double(n)
    if d >= 1e9 { return String(format: "%.2fB", d / 1e9) }
    if d >= 1e6 { return String(format: "%.1fM", d / 1e6) }
    if d >= 1e3 { return String(format: "%.1fK", d / 1e3) }
    return String(n)
}

func runInspect(_ args: inout Arguments) throws -> Int32 {
    let model = try args.positional("MODEL")
    let json = args.flag("--json")
    try args.finish()
    let report = try InspectReport(path: model)
    print(json ? report.json.serialized() : report.text)
    return 0
}
