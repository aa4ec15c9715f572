// The one place that maps config.json's model_type to an architecture.

import Foundation

/// An architecture family: resolves its config.json and names its weights.
protocol Architecture {
    static var modelTypes: [String] { get }
    static func resolve(_ c: ConfigReader, modelType: String) throws -> ModelConfig
    static func weightTable(_ c: ModelConfig) -> [WeightSpec]
    /// The name under which the checkpoint stores a table entry (aliases, e.g. GPT-2 without prefix).
    static func checkpointName(_ name: String, in source: TensorSource) -> String
}

extension Architecture {
    static func checkpointName(_ name: String, in source: TensorSource) -> String { name }
}

enum Architectures {
    static let all: [Architecture.Type] = [LlamaFamily.self, GemmaFamily.self, GPT2.self]

    static var supported: [String] { all.flatMap { $0.modelTypes } }

    static func lookup(_ modelType: String, file: String) throws -> Architecture.Type {
        if let a = all.first(where: { $0.modelTypes.contains(modelType) }) { return a }
        var hint = ""
        if modelType == "gemma3" { hint = " (multimodal Gemma3 checkpoints are not supported; text-only gemma3_text is)" }
        throw ModelError("\(file): model_type '\(modelType)' is not supported\(hint); supported: \(supported.joined(separator: ", "))")
    }

    static func lookup(family: Family) -> Architecture.Type {
        switch family {
        case .llama: return LlamaFamily.self
        case .gemma: return GemmaFamily.self
        case .gpt2: return GPT2.self
        }
    }
}

extension ModelConfig {
    /// Reads a model folder's config.json (and generation_config.json for extra EOS tokens).
    public static func load(directory: String) throws -> ModelConfig {
        let path = (directory as NSString).appendingPathComponent("config.json")
        let c = try ConfigReader.load(path: path)
        return try resolve(c, directory: directory)
    }

    /// Resolves a parsed config.json object; `directory` (optional) supplies generation_config.json.
    public static func resolve(json: JSONValue, file: String = "config.json", directory: String? = nil) throws -> ModelConfig {
        guard json.objectPairs != nil else { throw ModelError("\(file): expected a JSON object") }
        return try resolve(ConfigReader(json: json, file: file), directory: directory)
    }

    static func resolve(_ c: ConfigReader, directory: String?) throws -> ModelConfig {
        guard let modelType = try c.string("model_type") else {
            throw ModelError("\(c.file): missing 'model_type'")
        }
        var cfg = try Architectures.lookup(modelType, file: c.file).resolve(c, modelType: modelType)
        if let directory {
            let gpath = (directory as NSString).appendingPathComponent("generation_config.json")
            if FileManager.default.fileExists(atPath: gpath) {
                let g = try ConfigReader.load(path: gpath)
                for e in try g.ints("eos_token_id") ?? [] where !cfg.eosTokenIds.contains(e) { cfg.eosTokenIds.append(e) }
            }
        }
        return cfg
    }

    /// The checkpoint tensors this configuration needs: name, shape as stored, role.
    public var weightTable: [WeightSpec] { Architectures.lookup(family: family).weightTable(self) }
}
