// What `edit-cli inspect` reports about a checkpoint: architecture (config.json model_type and
// architectures), tensors with their shard, parameter count, dtype summary, tied embeddings.
// Built from headers only (nothing is converted). `init(path:)` handles safetensors folders and
// files, `init(gguf:)` GGUF files (stored ggml types, GGUF tensor names); `apply(config:)` adds
// what a config.json says.
//
// Tied embeddings: config.json `tie_word_embeddings` (or `text_config.tie_word_embeddings`) when
// present; otherwise tied when an input embedding table exists and `lm_head.weight` does not;
// otherwise unknown (nil).

import Foundation

public struct CheckpointSummary {
    public struct Tensor {
        public var name: String
        public var dtype: String          // safetensors dtype ("BF16") or ggml type ("Q4_1")
        public var shape: [Int]           // row-major
        public var elementCount: Int
        public var byteCount: Int         // as stored
        public var shard: String          // file name
        public init(name: String, dtype: String, shape: [Int], elementCount: Int, byteCount: Int, shard: String) {
            self.name = name; self.dtype = dtype; self.shape = shape
            self.elementCount = elementCount; self.byteCount = byteCount; self.shard = shard
        }
    }
    public struct DTypeCount { public var dtype: String; public var tensors: Int; public var parameters: Int }

    public var path: String
    public var format: String               // "safetensors" or "gguf"
    public var modelType: String?           // e.g. "llama"
    public var architectures: [String]      // e.g. ["LlamaForCausalLM"]
    public var configTie: Bool?             // tie_word_embeddings from config.json
    public var hasEmbedding: Bool           // …embed_tokens.weight / wte.weight / token_embd.weight… present
    public var hasLMHead: Bool              // lm_head.weight (GGUF: output.weight) present
    public var tiedEmbeddings: Bool?        // see header comment
    public var parameters: Int              // sum of element counts
    public var totalBytes: Int              // sum of tensor byte sizes
    public var tensors: [Tensor]            // natural name order ("layers.2" before "layers.10")
    public var shards: [String]             // file names
    public var dtypes: [DTypeCount]         // largest parameter count first
    public var metadata: [String: String]   // __metadata__ of the first shard (GGUF: general.* strings)
    public var notes: [String] = []         // extra lines for the reader (e.g. why no config is known)

    static let embeddingSuffixes = ["embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight", "token_embd.weight"]
    static let headNames: Set<String> = ["lm_head.weight", "output.weight"]

    /// A safetensors folder (with config.json when present) or a single .safetensors file.
    public init(path: String) throws {
        if path.lowercased().hasSuffix(".gguf") {
            try self.init(gguf: path)
            return
        }
        let ckpt = try Checkpoint.open(path)
        // config.json sits in the model folder: MODEL itself, or the folder of the index given.
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let folder: String? = isDir.boolValue ? path
            : (path as NSString).lastPathComponent == "model.safetensors.index.json" ? (path as NSString).deletingLastPathComponent : nil
        let configPath = folder.map { ($0 as NSString).appendingPathComponent("config.json") }
        let config = try configPath.flatMap { try Self.readConfig($0) }
        let tensors = ckpt.tensorNames.compactMap { n in
            ckpt.info(n).map { Tensor(name: n, dtype: $0.dtype.rawValue, shape: $0.shape, elementCount: $0.elementCount,
                                      byteCount: $0.byteCount, shard: ckpt.shardName(of: n) ?? "?") }
        }
        self.init(path: path, format: "safetensors", tensors: tensors,
                  shards: ckpt.shards.map { ($0.path as NSString).lastPathComponent },
                  metadata: ckpt.shards.first?.metadata ?? [:])
        if let config { try apply(config: config, configPath: configPath ?? "config.json") }
    }

    /// A GGUF file: tensors under their GGUF names with their ggml types; model_type is
    /// general.architecture until `apply(config:)` says more.
    public init(gguf path: String) throws {
        let f = try GGUFFile(path: path)
        let shard = (path as NSString).lastPathComponent
        let tensors = f.tensors.map {
            Tensor(name: $0.name, dtype: $0.type.name, shape: $0.shape, elementCount: $0.elementCount, byteCount: $0.byteCount, shard: shard)
        }
        var meta: [String: String] = [:]
        for k in f.metadataKeys where k.hasPrefix("general.") {
            if let v = f.metadata[k]?.stringValue { meta[k] = v } else if let i = f.metadata[k]?.intValue { meta[k] = String(i) }
        }
        self.init(path: path, format: "gguf", tensors: tensors, shards: [shard], metadata: meta)
        modelType = f.architecture
    }

    /// Any list of tensors (no config yet).
    public init(path: String, format: String, tensors: [Tensor], shards: [String], metadata: [String: String]) {
        self.path = path
        self.format = format
        self.shards = shards
        self.metadata = metadata
        modelType = nil; architectures = []; configTie = nil
        hasLMHead = tensors.contains { Self.headNames.contains($0.name) }
        hasEmbedding = tensors.contains { t in Self.embeddingSuffixes.contains { t.name.hasSuffix($0) } }
        tiedEmbeddings = hasEmbedding ? !hasLMHead : nil
        var byDType: [String: (tensors: Int, params: Int)] = [:]
        for t in tensors {
            byDType[t.dtype, default: (0, 0)].tensors += 1
            byDType[t.dtype, default: (0, 0)].params += t.elementCount
        }
        self.tensors = tensors.sorted { naturalLess($0.name, $1.name) }
        parameters = tensors.reduce(0) { $0 + $1.elementCount }
        totalBytes = tensors.reduce(0) { $0 + $1.byteCount }
        dtypes = byDType.map { DTypeCount(dtype: $0.key, tensors: $0.value.tensors, parameters: $0.value.params) }
            .sorted { ($0.parameters, $1.dtype) > ($1.parameters, $0.dtype) }
    }

    /// Takes model_type, architectures and tie_word_embeddings (or text_config's) from a config.
    public mutating func apply(config: JSONValue, configPath: String = "config.json") throws {
        if let v = config["model_type"], !v.isNull {
            guard let s = v.stringValue else { throw SafeTensorsError(.invalidHeader, file: configPath, "model_type is not a string") }
            modelType = s
        }
        if let v = config["architectures"], !v.isNull {
            guard let a = v.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
                throw SafeTensorsError(.invalidHeader, file: configPath, "architectures is not a list of strings")
            }
            architectures = a.compactMap { $0.stringValue }
        }
        if let v = config["tie_word_embeddings"] ?? config["text_config"]?["tie_word_embeddings"], !v.isNull {
            guard let b = v.boolValue else { throw SafeTensorsError(.invalidHeader, file: configPath, "tie_word_embeddings is not true/false") }
            configTie = b
            tiedEmbeddings = b
        }
    }

    /// Parsed config.json, nil when the file does not exist; an error naming it when malformed.
    public static func readConfig(_ path: String) throws -> JSONValue? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafeTensorsError(.io, file: path, "cannot read")
        }
        let config: JSONValue
        do { config = try JSONValue.parse(data: [UInt8](data)) } catch {
            throw SafeTensorsError(.invalidHeader, file: path, "not valid JSON: \(error)")
        }
        guard config.objectPairs != nil else {
            throw SafeTensorsError(.invalidHeader, file: path, "expected a JSON object")
        }
        return config
    }

    public var json: JSONValue {
        .object([
            ("path", .string(path)),
            ("format", .string(format)),
            ("model_type", modelType.map { .string($0) } ?? .null),
            ("architectures", .array(architectures.map { .string($0) })),
            ("parameters", .int(parameters)),
            ("bytes", .int(totalBytes)),
            ("tensor_count", .int(tensors.count)),
            ("tied_embeddings", tiedEmbeddings.map { .bool($0) } ?? .null),
            ("tie_word_embeddings", configTie.map { .bool($0) } ?? .null),
            ("lm_head_present", .bool(hasLMHead)),
            ("dtypes", .object(dtypes.map { ($0.dtype, .object([("tensors", .int($0.tensors)), ("parameters", .int($0.parameters))])) })),
            ("shards", .array(shards.map { .string($0) })),
            ("notes", .array(notes.map { .string($0) })),
            ("metadata", .object(metadata.keys.sorted().map { ($0, .string(metadata[$0] ?? "")) })),
            ("tensors", .array(tensors.map { t in
                .object([("name", .string(t.name)), ("dtype", .string(t.dtype)),
                         ("shape", .array(t.shape.map { .int($0) })), ("shard", .string(t.shard))])
            })),
        ])
    }

    public var text: String {
        var lines: [String] = []
        lines.append("model:        \(path)")
        lines.append("architecture: \(modelType ?? "(no config.json model_type)")\(architectures.isEmpty ? "" : " " + architectures.joined(separator: ", "))")
        lines.append("parameters:   \(parameters) (\(Self.formatCount(parameters)))")
        lines.append("size:         \(totalBytes) bytes in \(shards.count) file\(shards.count == 1 ? "" : "s")")
        lines.append("dtypes:       " + dtypes.map { "\($0.dtype) \($0.tensors) tensor\($0.tensors == 1 ? "" : "s") / \($0.parameters) params" }.joined(separator: ", "))
        let why = configTie.map { "tie_word_embeddings=\($0) in \(format == "gguf" ? "the config.json convert writes" : "config.json")" }
            ?? (hasEmbedding ? "no tie_word_embeddings in config; \(format == "gguf" ? "output.weight" : "lm_head.weight") \(hasLMHead ? "present" : "absent")"
                             : "no tie_word_embeddings in config and no embedding table")
        lines.append("tied embeddings: \(tiedEmbeddings.map { $0 ? "yes" : "no" } ?? "unknown") (\(why))")
        if tiedEmbeddings == true && hasLMHead { lines.append("note: lm_head.weight is present although embeddings are tied; transformers replaces it with the embedding") }
        if tiedEmbeddings == false && !hasLMHead { lines.append("warning: embeddings are not tied but \(format == "gguf" ? "output.weight" : "lm_head.weight") is absent") }
        for n in notes { lines.append("note: \(n)") }
        lines.append("tensors (\(tensors.count)):")
        let w = min(tensors.map { $0.name.count }.max() ?? 0, 60)
        for t in tensors {
            let name = t.name.count < w ? t.name.padding(toLength: w, withPad: " ", startingAt: 0) : t.name
            let dt = t.dtype.padding(toLength: 8, withPad: " ", startingAt: 0)
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            lines.append("  \(name)  \(dt) \(shape.padding(toLength: max(shape.count, 14), withPad: " ", startingAt: 0))  \(t.shard)")
        }
        return lines.joined(separator: "\n")
    }

    static func formatCount(_ n: Int) -> String {
        let d = Double(n)
        if d >= 1e9 { return String(format: "%.2fB", d / 1e9) }
        if d >= 1e6 { return String(format: "%.1fM", d / 1e6) }
        if d >= 1e3 { return String(format: "%.1fK", d / 1e3) }
        return String(n)
    }
}

/// "layers.2" < "layers.10": runs of digits compare as numbers.
public func naturalLess(_ a: String, _ b: String) -> Bool {
    func runs(_ s: String) -> [(text: String, number: Int?)] {
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
        if let m = p.number, let n = q.number, m != n { return m < n }
        if p.text != q.text { return p.text < q.text }
    }
    return x.count < y.count
}
