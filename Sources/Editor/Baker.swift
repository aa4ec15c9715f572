// `bake`: fold a recipe into a checkpoint and write a complete model folder (DESIGN.md section 6).
//
// 1. Read config.json and the (possibly sharded) weights; plan the fold (refusals happen here,
//    before anything is written).
// 2. Tensors in source order: untouched ones are copied byte for byte from the mapping (or
//    converted when --dtype asks for another float type); edited ones are produced one at a time
//    (read as f32, edited with f64 directions, encoded in the output dtype).
// 3. New tensors: bias slots (zeros except where a constant lands) right after their weight;
//    `lm_head.weight` (the original table) when a tied embedding table is edited.
// 4. config.json updated (tie_word_embeddings, attention_bias/mlp_bias, Llama re-expression,
//    dtype); tokenizer/generation files copied; steering_recipe.json + steering_vectors.safetensors
//    (self-contained copy of the recipe); README.md with a section saying what was changed;
//    recipe and source-shard checksums in each shard's __metadata__.

import Foundation

public enum OutputDType: String, Sendable {
    case keep, f32, bf16, f16
    public var dtype: DType? {
        switch self {
        case .keep: return nil
        case .f32: return .F32
        case .bf16: return .BF16
        case .f16: return .F16
        }
    }
}

public struct BakeOptions: Sendable {
    public var dtype: OutputDType = .keep
    public var maxShardSize: Int? = nil      // nil: the source's rule (single file, or its largest shard)
    public var force = false
    public var approximate = false
    public init(dtype: OutputDType = .keep, maxShardSize: Int? = nil, force: Bool = false, approximate: Bool = false) {
        self.dtype = dtype; self.maxShardSize = maxShardSize; self.force = force; self.approximate = approximate
    }
}

public struct BakeReport: Sendable {
    public var output: String
    public var edited: [String] = []         // tensors whose values changed
    public var added: [String] = []          // tensors the source did not have
    public var configChanges: [String] = []
    public var approximations: [String] = []
    public var summary: [String] = []
    public var shards = 0
}

public enum Baker {
    /// Metadata keys written into every output shard.
    public static let recipeKey = "steering.recipe"
    public static let recipeSHAKey = "steering.recipe_sha256"
    public static let vectorsSHAKey = "steering.vectors_sha256"
    public static let sourceKey = "steering.source_shards"
    public static let approximateKey = "steering.approximate"
    public static let recipeFile = "steering_recipe.json"
    public static let vectorsFile = "steering_vectors.safetensors"

    @discardableResult
    public static func bake(model: String, recipePath: String, out: String, options: BakeOptions,
                            log: (String) -> Void = { _ in }) throws -> BakeReport {
        let recipe = try Recipe.load(path: recipePath)
        return try bake(model: model, recipe: recipe, out: out, options: options, log: log)
    }

    @discardableResult
    public static func bake(model: String, recipe: Recipe, out: String, options: BakeOptions,
                            log: (String) -> Void = { _ in }) throws -> BakeReport {
        let fm = FileManager.default
        if fm.fileExists(atPath: out) && !options.force {
            throw EditError.io("\(out): already exists (use --force to replace it)")
        }
        if URL(fileURLWithPath: out).standardizedFileURL.path == URL(fileURLWithPath: model).standardizedFileURL.path {
            throw EditError.badInput("\(out): the output folder is the source model; bake never modifies its source")
        }
        let folded = try FoldedModel(model: model, recipe: recipe, outputDType: options.dtype.dtype, approximate: options.approximate)
        let source = folded.source, plan = folded.plan
        log("plan: \(plan.summary.joined(separator: "; "))")

        var report = BakeReport(output: out)
        report.summary = plan.summary
        report.approximations = plan.approximations
        report.edited = folded.editedNames
        report.added = folded.addedNames
        report.configChanges = folded.configChanges.map { "\($0.0) = \($0.1.serialized())" }

        // Recipe copy (self-contained) and checksums.
        let (recipeJSON, vectorsBytes) = try selfContainedRecipe(recipe)
        let recipeBytes = Array((recipeJSON.serialized(pretty: true) + "\n").utf8)
        // The source shards' SHA-256 is computed on another thread while the shards are written;
        // their headers get it last (LateMetadata: 64 zeros stand in for each digest until then).
        log("checksumming \(source.shards.count) source shard(s) while writing")
        let shards = source.shards
        let hashing = BackgroundWork { try shards.map { try SHA256.hashFileCached($0.path) } }
        func sums(_ digests: [String]) -> [JSONValue] {
            zip(shards, digests).map { .object([("file", .string(($0.path as NSString).lastPathComponent)), ("sha256", .string($1))]) }
        }
        let placeholder = JSONValue.array(sums(shards.map { _ in String(repeating: "0", count: 64) })).serialized()
        var metadata: [String: String] = [
            "steering.tool": "edit-cli bake",
            recipeKey: recipeJSON.serialized(),
            recipeSHAKey: SHA256.hash(recipeBytes),
            vectorsSHAKey: SHA256.hash(vectorsBytes),
        ]
        if !plan.approximations.isEmpty { metadata[approximateKey] = "true" }

        // Sharding rule: the source's (one file, or shards no larger than its largest), unless told.
        var maxShard = options.maxShardSize
        if maxShard == nil && source.shards.count > 1 {
            let largest = source.shards.map(\.fileSize).max() ?? 0
            let srcSize = source.info(folded.architecture.embedding)?.dtype.size ?? 4
            let ratio = options.dtype.dtype.map { Double($0.size) / Double(srcSize) } ?? 1
            maxShard = max(1, Int(Double(largest) * ratio))
        }

        let late = LateMetadata(placeholder: placeholder) { JSONValue.array(sums(try hashing.value())).serialized() }
        let writer = try CheckpointWriter(target: out, force: options.force, maxShardSize: maxShard, metadata: metadata,
                                          lateMetadata: [sourceKey: late], sources: source.shards.map(\.path))
        for name in folded.tensorNames {
            guard let info = folded.info(name) else { continue } // programmer error: names come from folded
            if let raw = folded.unchangedBytes(name) {
                try writer.add(TensorRecord(name: name, dtype: info.dtype, shape: info.shape, source: .bytes(raw)))
            } else if folded.canStream(name) {
                // Large edited tensors are folded block by block: memory stays at one block.
                try writer.add(TensorRecord(name: name, dtype: info.dtype, shape: info.shape, source: .stream { emit in
                    try folded.stream(name, as: info.dtype, emit: emit)
                }))
            } else {
                try writer.add(TensorRecord(name: name, dtype: info.dtype, shape: info.shape, source: .produce {
                    try encode(try folded.floats(name), as: info.dtype, name: name)
                }))
            }
        }
        try writer.addFile(name: "config.json", contents: Array((folded.config.serialized(pretty: true) + "\n").utf8))
        try writer.addFile(name: recipeFile, contents: recipeBytes)
        try writer.addFile(name: vectorsFile, contents: vectorsBytes)
        var readme = ""
        if let r = fm.contents(atPath: (model as NSString).appendingPathComponent("README.md")), let s = String(data: r, encoding: .utf8) {
            readme = s.hasSuffix("\n") ? s + "\n" : s + "\n\n"
        }
        try writer.addLateFile(name: "README.md") { [report] in
            readme += modelCard(model: model, plan: plan, report: report, options: options, recipeSHA: SHA256.hash(recipeBytes),
                                sources: sums(try hashing.value()))
            return Array(readme.utf8)
        }
        for f in (try? fm.contentsOfDirectory(atPath: model))?.sorted() ?? [] where shouldCopy(f) {
            let p = (model as NSString).appendingPathComponent(f)
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue { try writer.copyFile(from: p, as: f) }
        }
        log("writing \(out)")
        try writer.commit()
        report.shards = writer.shardFileNames.count
        return report
    }

    /// Tokenizer, generation and license files travel with the weights.
    static func shouldCopy(_ f: String) -> Bool {
        if f.hasPrefix(".") { return false }
        let exact: Set<String> = ["special_tokens_map.json", "generation_config.json", "vocab.json", "vocab.txt", "merges.txt",
                                  "added_tokens.json", "LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "USE_POLICY.md"]
        return exact.contains(f) || f.hasPrefix("tokenizer") || f.contains("chat_template")
    }

    static func encode(_ x: [Float], as dtype: DType, name: String) throws -> [UInt8] {
        do { return try x.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype) } } catch {
            throw EditError.unsupported("\(name): cannot write \(dtype.rawValue)")
        }
    }

}

extension Baker {
    /// The recipe with every vector copied into one safetensors file beside it, so the output
    /// folder is self-contained (only "interventions", as fixtures/gen/hooks.py expects).
    static func selfContainedRecipe(_ recipe: Recipe) throws -> (JSONValue, [UInt8]) {
        guard let entries = recipe.json["interventions"]?.arrayValue else {
            throw EditError.badInput("\(recipe.path ?? "recipe"): no interventions")
        }
        var tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] = []
        var out: [JSONValue] = []
        for (i, iv) in recipe.interventions.enumerated() {
            let key: String
            if case .add = iv.op { key = "vector" } else { key = "direction" }
            let tname = "interventions.\(i).\(key)"
            switch iv.vector {
            case .inline(let vals):
                var b = [UInt8](); b.reserveCapacity(vals.count * 8)
                for v in vals { withUnsafeBytes(of: v.bitPattern.littleEndian) { b += $0 } }
                tensors.append((tname, .F64, [vals.count], b))
            case let .file(path, tensor):
                let f: SafeTensorsFile
                do { f = try SafeTensorsFile(path: path) } catch { throw EditError.io("\(error)") }
                guard let info = f.info(tensor) else { throw EditError.badInput("\(path): no tensor '\(tensor)'") }
                tensors.append((tname, info.dtype, [info.elementCount], Array(try f.bytes(tensor))))
            }
            guard var pairs = entries[i].objectPairs else { continue }
            pairs.removeAll { $0.0 == "comment" }
            if let k = pairs.firstIndex(where: { $0.0 == key }) {
                pairs[k].1 = .object([("file", .string(vectorsFile)), ("tensor", .string(tname))])
            }
            out.append(.object(pairs))
        }
        return (.object([("interventions", .array(out))]), try safeTensorsData(tensors: tensors.map {
            TensorRecord(name: $0.name, dtype: $0.dtype, shape: $0.shape, source: .produce { [bytes = $0.bytes] in bytes })
        }))
    }

    static func modelCard(model: String, plan: FoldPlan, report: BakeReport, options: BakeOptions, recipeSHA: String, sources: [JSONValue]) -> String {
        var s = "## Steering edit (edit-cli bake)\n\n"
        s += "These weights are `\((model as NSString).lastPathComponent)` with a steering recipe folded into them, so the model "
        s += "behaves like the original with the recipe applied by forward hooks, in any runtime.\n\n"
        s += "Recipe (`\(recipeFile)`, vectors in `\(vectorsFile)`, sha256 `\(recipeSHA)`):\n\n"
        for line in plan.summary { s += "- \(line)\n" }
        s += "\nWhat changed:\n\n"
        s += "- edited tensors: \(report.edited.count)" + (report.edited.isEmpty ? "\n" : " (\(report.edited.prefix(6).joined(separator: ", "))\(report.edited.count > 6 ? ", ..." : ""))\n")
        if !report.added.isEmpty { s += "- added tensors: \(report.added.count) (\(report.added.prefix(6).joined(separator: ", "))\(report.added.count > 6 ? ", ..." : ""))\n" }
        for c in report.configChanges { s += "- config.json: `\(c)`\n" }
        if plan.asLlama { s += "- re-expressed as `LlamaForCausalLM` (same math) because the source architecture has no loadable bias slot\n" }
        if plan.weightSpace { s += "- includes weight-space edits with no hooked counterpart: `edit-cli verify` reports their distance from the original\n" }
        for a in plan.approximations { s += "- APPROXIMATE: \(a)\n" }
        s += "- dtype: \(options.dtype == .keep ? "as the source" : options.dtype.rawValue); untouched tensors copied byte for byte\n"
        s += "\nCheck it with `edit-cli verify ORIGINAL THIS_FOLDER --prompts PROMPTS.txt`. Source shard checksums: \(JSONValue.array(sources).serialized())\n"
        return s
    }
}

/// Work started on its own thread now, its result (or error) collected later with `value()`.
final class BackgroundWork<T>: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<T, Error>?

    init(_ work: @escaping () throws -> T) {
        let thread = Thread { [self] in
            let r = Result { try work() }
            condition.lock(); result = r; condition.broadcast(); condition.unlock()
        }
        thread.start()
    }

    /// Waits for the work and returns its result or rethrows its error.
    func value() throws -> T {
        condition.lock()
        while result == nil { condition.wait() }
        let r = result! // programmer error: set before the loop ends
        condition.unlock()
        return try r.get()
    }
}
