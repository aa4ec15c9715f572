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

    public static func bake(model: String, recipePath: String, out: String, options: BakeOptions,
                            log: (String) -> Void = { _ in }) throws -> BakeReport {
        let recipe = try Recipe.load(path: recipePath)
        return try bake(model: model, recipe: recipe, out: out, options: options, log: log)
    }

    public static func bake(model: String, recipe: Recipe, out: String, options: BakeOptions,
                            log: (String) -> Void = { _ in }) throws -> BakeReport {
        let fm = FileManager.default
        if fm.fileExists(atPath: out) && !options.force {
            throw EditError.io("\(out): already exists (use --force to replace it)")
        }
        if URL(fileURLWithPath: out).standardizedFileURL.path == URL(fileURLWithPath: model).standardizedFileURL.path {
            throw EditError.badInput("\(out): the output folder is the source model; bake never modifies its source")
        }
        let configPath = (model as NSString).appendingPathComponent("config.json")
        guard let cdata = fm.contents(atPath: configPath) else { throw EditError.io("\(configPath): cannot read") }
        let config: JSONValue
        do { config = try JSONValue.parse(data: [UInt8](cdata)) } catch { throw EditError.badInput("\(configPath): not valid JSON: \(error)") }
        let source = try Checkpoint(directory: model)
        let names = Set(source.tensorNames)
        let arch = try ModelArchitecture(config: config, names: names, file: configPath)
        try checkWriters(arch, source)
        let plan = try FoldPlanner.plan(recipe: recipe, architecture: arch, tensors: source, approximate: options.approximate)
        log("plan: \(plan.summary.joined(separator: "; "))")

        var report = BakeReport(output: out)
        report.summary = plan.summary
        report.approximations = plan.approximations

        // Output dtype per tensor.
        func outDType(_ d: DType) -> DType {
            guard let t = options.dtype.dtype, d.isFloatingPoint else { return d }
            return t
        }

        // Which tensors each writer edits, and how.
        var roles: [String: TensorRole] = [:]
        let embedDType = outDType(source.info(arch.embedding)?.dtype ?? .F32)
        for (w, ops) in plan.ops where !ops.isEmpty {
            let projects = ops.contains { !$0.isConstant }
            switch w {
            case .embed:
                if let wpe = arch.positional {
                    if projects { roles[arch.embedding] = .linear(.embed, .rows) }
                    roles[wpe] = .affineRows(.embed, 1)
                } else {
                    roles[arch.embedding] = .affineRows(.embed, 1 / arch.embeddingScale(dtype: embedDType))
                }
            case .attn(let l):
                let o = arch.attnOut(l)
                if projects { roles[o.weight] = .linear(w, o.layout) }
                if names.contains(o.bias) || plan.constantWriters.contains(w) { roles[o.bias] = .affineRows(w, 1) }
            case .mlp(let l):
                let o = arch.mlpOut(l)
                if projects { roles[o.weight] = .linear(w, o.layout) }
                if names.contains(o.bias) || plan.constantWriters.contains(w) { roles[o.bias] = .affineRows(w, 1) }
            }
        }

        // New bias tensors: every sibling projection of a switched-on flag, for every layer.
        var newAfter: [String: [(name: String, shape: [Int], dtype: DType)]] = [:]
        func addBias(for proj: String) throws {
            let wname = proj + ".weight", bname = proj + ".bias"
            guard !names.contains(bname) else { return }
            guard let wi = source.info(wname), wi.shape.count == 2 else {
                throw EditError.badInput("\(model): tensor '\(wname)' missing or not 2-D (needed for its bias slot)")
            }
            newAfter[wname, default: []].append((bname, [wi.shape[0]], outDType(wi.dtype)))
            report.added.append(bname)
        }
        for flag in plan.biasFlags.sorted() {
            for l in 0..<arch.numLayers {
                for p in (flag == "attention_bias" ? arch.attentionProjections(l) : arch.mlpProjections(l)) { try addBias(for: p) }
            }
        }

        // Untie: the edited table keeps writing into the stream, lm_head keeps the original.
        var configChanges: [(String, JSONValue)] = []
        let writeLMHead = arch.tiedEmbeddings && roles[arch.embedding] != nil
        if writeLMHead {
            configChanges.append(("tie_word_embeddings", .bool(false)))
            report.added.append(names.contains("lm_head.weight") ? "lm_head.weight (replaced by the original table)" : "lm_head.weight")
        }
        for flag in plan.biasFlags.sorted() { configChanges.append((flag, .bool(true))) }
        if plan.asLlama {
            configChanges.append(("model_type", .string("llama")))
            configChanges.append(("architectures", .array([.string("LlamaForCausalLM")])))
        }
        if let t = options.dtype.dtype {
            let s: String = t == .F32 ? "float32" : t == .BF16 ? "bfloat16" : "float16"
            configChanges.append((config["torch_dtype"] != nil && config["dtype"] == nil ? "torch_dtype" : "dtype", .string(s)))
        }
        let newConfig = updatedConfig(config, changes: configChanges, dropKeys: plan.asLlama ? ["use_sliding_window", "sliding_window", "max_window_layers", "layer_types"] : [])
        report.configChanges = configChanges.map { "\($0.0) = \($0.1.serialized())" }

        // Recipe copy (self-contained) and checksums.
        let (recipeJSON, vectorsBytes) = try selfContainedRecipe(recipe)
        let recipeBytes = Array((recipeJSON.serialized(pretty: true) + "\n").utf8)
        log("checksumming \(source.shards.count) source shard(s)")
        var sourceSums: [JSONValue] = []
        for s in source.shards {
            sourceSums.append(.object([("file", .string((s.path as NSString).lastPathComponent)), ("sha256", .string(try SHA256.hashFile(s.path)))]))
        }
        var metadata: [(String, String)] = [
            ("steering.tool", "edit-cli bake"),
            (recipeKey, recipeJSON.serialized()),
            (recipeSHAKey, SHA256.hash(recipeBytes)),
            (vectorsSHAKey, SHA256.hash(vectorsBytes)),
            (sourceKey, JSONValue.array(sourceSums).serialized()),
        ]
        if !plan.approximations.isEmpty { metadata.append((approximateKey, "true")) }

        // Sharding rule.
        var maxShard = options.maxShardSize
        if maxShard == nil && source.shards.count > 1 {
            let largest = source.shards.map(\.fileSize).max() ?? 0
            let ratio: Double = options.dtype.dtype.map { t in
                Double(t.size) / Double(source.info(arch.embedding)?.dtype.size ?? t.size)
            } ?? 1
            maxShard = Int(Double(largest) * ratio)
        }

        let writer = try OutputWriter(target: out, force: options.force, maxShardSize: maxShard, metadata: metadata)
        for name in source.tensorNames {
            guard let info = source.info(name) else { continue }
            let od = outDType(info.dtype)
            if let role = roles[name] {
                let ops = plan.ops[role.writer] ?? []
                writer.add(OutputTensor(name: name, dtype: od, shape: info.shape, payload: .produce {
                    var x = try source.floats(name)
                    try apply(role: role, ops: ops, to: &x, shape: info.shape, hidden: arch.hiddenSize, name: name)
                    return try encode(x, as: od, name: name)
                }))
                report.edited.append(name)
            } else if name == "lm_head.weight" && writeLMHead {
                continue   // written below from the original table
            } else if od == info.dtype {
                writer.add(OutputTensor(name: name, dtype: od, shape: info.shape, payload: .bytes(try source.bytes(name))))
            } else {
                writer.add(OutputTensor(name: name, dtype: od, shape: info.shape, payload: .produce {
                    try encode(try source.floats(name), as: od, name: name)
                }))
            }
            for nb in newAfter[name] ?? [] {
                let bias = nb.name
                let role = roles[bias]
                let ops = role.map { plan.ops[$0.writer] ?? [] } ?? []
                writer.add(OutputTensor(name: bias, dtype: nb.dtype, shape: nb.shape, payload: .produce {
                    var x = [Float](repeating: 0, count: nb.shape[0])
                    if let role { try apply(role: role, ops: ops, to: &x, shape: nb.shape, hidden: arch.hiddenSize, name: bias) }
                    return try encode(x, as: nb.dtype, name: bias)
                }))
            }
        }
        // Constants at writers whose bias exists neither in the source nor as a new slot would be lost.
        for (name, role) in roles where source.info(name) == nil && !report.added.contains(name) {
            throw EditError.badInput("\(model): internal plan needs '\(name)' (for \(role.writer)), which neither exists nor is created") // programmer error, reported
        }
        if writeLMHead {
            guard let ei = source.info(arch.embedding) else { throw EditError.badInput("\(model): no tensor '\(arch.embedding)'") }
            let od = outDType(ei.dtype)
            if od == ei.dtype {
                writer.add(OutputTensor(name: "lm_head.weight", dtype: od, shape: ei.shape, payload: .bytes(try source.bytes(arch.embedding))))
            } else {
                writer.add(OutputTensor(name: "lm_head.weight", dtype: od, shape: ei.shape, payload: .produce {
                    try encode(try source.floats(arch.embedding), as: od, name: "lm_head.weight")
                }))
            }
        }

        writer.addFile(name: "config.json", contents: Array((newConfig.serialized(pretty: true) + "\n").utf8))
        writer.addFile(name: recipeFile, contents: recipeBytes)
        writer.addFile(name: vectorsFile, contents: vectorsBytes)
        var readme = ""
        if let r = fm.contents(atPath: (model as NSString).appendingPathComponent("README.md")), let s = String(data: r, encoding: .utf8) {
            readme = s.hasSuffix("\n") ? s + "\n" : s + "\n\n"
        }
        readme += modelCard(model: model, plan: plan, report: report, options: options, recipeSHA: SHA256.hash(recipeBytes), sources: sourceSums)
        writer.addFile(name: "README.md", contents: Array(readme.utf8))
        for f in (try? fm.contentsOfDirectory(atPath: model))?.sorted() ?? [] where shouldCopy(f) {
            let p = (model as NSString).appendingPathComponent(f)
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue { writer.copyFile(from: p, as: f) }
        }
        log("writing \(out)")
        try writer.commit()
        report.shards = maxShard == nil ? 1 : ((try? fm.contentsOfDirectory(atPath: out))?.filter { $0.hasSuffix(".safetensors") && $0.hasPrefix("model") }.count ?? 0)
        return report
    }

    /// Tokenizer, generation and license files travel with the weights.
    static func shouldCopy(_ f: String) -> Bool {
        if f.hasPrefix(".") { return false }
        let exact: Set<String> = ["special_tokens_map.json", "generation_config.json", "vocab.json", "vocab.txt", "merges.txt",
                                  "added_tokens.json", "LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "USE_POLICY.md"]
        return exact.contains(f) || f.hasPrefix("tokenizer") || f.contains("chat_template")
    }

    static func checkWriters(_ arch: ModelArchitecture, _ src: Checkpoint) throws {
        let h = arch.hiddenSize
        func expect(_ name: String, _ check: ([Int]) -> Bool, _ want: String) throws {
            guard let i = src.info(name) else { throw EditError.badInput("\(src.directory): missing tensor '\(name)' (expected \(want))") }
            guard check(i.shape) else { throw EditError.badInput("\(src.directory): tensor '\(name)': expected \(want), found \(i.shape)") }
            guard i.dtype.isFloatingPoint else { throw EditError.badInput("\(src.directory): tensor '\(name)': expected a float dtype, found \(i.dtype.rawValue)") }
        }
        try expect(arch.embedding, { $0.count == 2 && $0[1] == h }, "[vocab, \(h)]")
        if let p = arch.positional { try expect(p, { $0.count == 2 && $0[1] == h }, "[positions, \(h)]") }
        for l in 0..<arch.numLayers {
            for o in [arch.attnOut(l), arch.mlpOut(l)] {
                if o.layout == .columns { try expect(o.weight, { $0.count == 2 && $0[0] == h }, "[\(h), in]") }
                else { try expect(o.weight, { $0.count == 2 && $0[1] == h }, "[in, \(h)] (Conv1D)") }
                if src.info(o.bias) != nil { try expect(o.bias, { $0 == [h] }, "[\(h)]") }
            }
        }
    }

    static func apply(role: TensorRole, ops: [WriterOp], to x: inout [Float], shape: [Int], hidden: Int, name: String) throws {
        switch role {
        case let .linear(_, layout):
            guard shape.count == 2 else { throw EditError.badInput("\(name): expected a 2-D weight, found \(shape)") }
            Fold.applyLinear(ops, to: &x, rows: shape[0], cols: shape[1], layout: layout)
        case let .affineRows(_, scale):
            guard let last = shape.last, last == hidden else { throw EditError.badInput("\(name): expected rows of \(hidden), found \(shape)") }
            Fold.applyAffine(ops, toRows: &x, count: x.count / hidden, hidden: hidden, constantScale: scale)
        }
    }

    static func encode(_ x: [Float], as dtype: DType, name: String) throws -> [UInt8] {
        do { return try x.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype) } } catch {
            throw EditError.unsupported("\(name): cannot write \(dtype.rawValue)")
        }
    }

    static func updatedConfig(_ c: JSONValue, changes: [(String, JSONValue)], dropKeys: [String]) -> JSONValue {
        guard var pairs = c.objectPairs else { return c }
        pairs.removeAll { dropKeys.contains($0.0) }
        for (k, v) in changes {
            if let i = pairs.firstIndex(where: { $0.0 == k }) { pairs[i].1 = v } else { pairs.append((k, v)) }
        }
        return .object(pairs)
    }
}

/// What an edited tensor is to its writer.
enum TensorRole {
    case linear(WriterID, WriterLayout)     // weight: the linear part of the writer's map
    case affineRows(WriterID, Double)       // bias / table rows / wpe rows: the whole map; constants scaled
    var writer: WriterID {
        switch self {
        case .linear(let w, _), .affineRows(let w, _): return w
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
        return (.object([("interventions", .array(out))]), safeTensorsBytes(tensors, metadata: [("format", "pt")]))
    }

    static func modelCard(model: String, plan: FoldPlan, report: BakeReport, options: BakeOptions, recipeSHA: String, sources: [JSONValue]) -> String {
        var s = "## Steering edit (edit-cli bake)\n\n"
        s += "These weights are `\((model as NSString).lastPathComponent)` with a steering recipe folded into them, so the model "
        s += "behaves like the original with the recipe applied by forward hooks, in any runtime.\n\n"
        s += "Recipe (`\(recipeFile)`, vectors in `\(vectorsFile)`, sha256 `\(recipeSHA)`):\n\n"
        for line in plan.summary { s += "- \(line)\n" }
        s += "\nWhat changed:\n\n"
        s += "- edited tensors: \(report.edited.count) (\(report.edited.prefix(6).joined(separator: ", "))\(report.edited.count > 6 ? ", ..." : ""))\n"
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

/// A complete single .safetensors file in memory (small files: vectors, recipes' companions).
public func safeTensorsBytes(_ tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])], metadata: [(String, String)]) -> [UInt8] {
    var header: [(String, JSONValue)] = []
    if !metadata.isEmpty { header.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))) }
    var offset = 0
    for t in tensors {
        header.append((t.name, .object([
            ("dtype", .string(t.dtype.rawValue)),
            ("shape", .array(t.shape.map { .int($0) })),
            ("data_offsets", .array([.int(offset), .int(offset + t.bytes.count)])),
        ])))
        offset += t.bytes.count
    }
    var h = Array(JSONValue.object(header).serialized().utf8)
    while h.count % 8 != 0 { h.append(0x20) }
    var out = [UInt8]()
    out.reserveCapacity(8 + h.count + offset)
    withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
    out += h
    for t in tensors { out += t.bytes }
    return out
}
