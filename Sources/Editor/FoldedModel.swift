// The folded checkpoint as a TensorSource: the source's tensors with the plan applied, new bias
// slots, the untied lm_head, and the updated config. `bake` writes it; `verify` runs it in memory
// (exact f32, or rounded through a dtype) to measure the rounding floor.

import Foundation

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

public final class FoldedModel: TensorSource, @unchecked Sendable {
    public let source: Checkpoint
    public let architecture: ModelArchitecture
    public let plan: FoldPlan
    public let sourceConfig: JSONValue
    public let config: JSONValue                        // config.json of the folded model
    public private(set) var configChanges: [(String, JSONValue)] = []
    public private(set) var tensorNames: [String] = []  // output order
    public private(set) var editedNames: [String] = []
    public private(set) var addedNames: [String] = []
    /// Element type written per tensor; nil: as the source.
    public let outputDType: DType?
    /// When set, floats() returns values rounded through this dtype (for the rounding floor).
    public var roundThrough: DType?

    let streamScratch = StreamScratch()
    private var roles: [String: TensorRole] = [:]
    private var infos: [String: TensorInfo] = [:]
    private var newTensors: [String: [Int]] = [:]      // name -> shape, zero-initialised
    private var lmHeadFromTable = false

    public convenience init(model: String, recipe: Recipe, outputDType: DType? = nil, approximate: Bool = false) throws {
        let configPath = (model as NSString).appendingPathComponent("config.json")
        guard let cdata = FileManager.default.contents(atPath: configPath) else { throw EditError.io("\(configPath): cannot read") }
        let config: JSONValue
        do { config = try JSONValue.parse(data: [UInt8](cdata)) } catch { throw EditError.badInput("\(configPath): not valid JSON: \(error)") }
        let source = try Checkpoint(directory: model)
        let arch = try ModelArchitecture(config: config, names: Set(source.tensorNames), file: configPath)
        try FoldedModel.checkWriters(arch, source)
        let plan = try FoldPlanner.plan(recipe: recipe, architecture: arch, tensors: source, approximate: approximate)
        try self.init(source: source, config: config, architecture: arch, plan: plan, outputDType: outputDType)
    }

    public init(source: Checkpoint, config: JSONValue, architecture arch: ModelArchitecture, plan: FoldPlan, outputDType: DType?) throws {
        self.source = source; self.sourceConfig = config; self.architecture = arch; self.plan = plan
        self.outputDType = outputDType
        let names = Set(source.tensorNames)
        func outDType(_ d: DType) -> DType {
            guard let t = outputDType, d.isFloatingPoint else { return d }
            return t
        }

        // 1. Which source tensors each writer edits, and how.
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
            case .attn(let l), .mlp(let l):
                let isAttn: Bool = { if case .attn = w { return true }; return false }()
                let o = isAttn ? arch.attnOut(l) : arch.mlpOut(l)
                if projects { roles[o.weight] = .linear(w, o.layout) }
                if names.contains(o.bias) || plan.constantWriters.contains(w) { roles[o.bias] = .affineRows(w, 1) }
            }
        }

        // 2. New bias tensors: every sibling projection of a switched-on flag, for every layer.
        var newAfter: [String: [String]] = [:]
        for flag in plan.biasFlags.sorted() {
            for l in 0..<arch.numLayers {
                for p in (flag == "attention_bias" ? arch.attentionProjections(l) : arch.mlpProjections(l)) {
                    let wname = p + ".weight", bname = p + ".bias"
                    guard !names.contains(bname) else { continue }
                    guard let wi = source.info(wname), wi.shape.count == 2 else {
                        throw EditError.badInput("\(source.directory): tensor '\(wname)' missing or not 2-D (needed for its bias slot)")
                    }
                    newAfter[wname, default: []].append(bname)
                    newTensors[bname] = [wi.shape[0]]
                    infos[bname] = TensorInfo(name: bname, dtype: outDType(wi.dtype), shape: [wi.shape[0]], byteCount: wi.shape[0] * outDType(wi.dtype).size)
                }
            }
        }
        for (name, role) in roles where !names.contains(name) && newTensors[name] == nil {
            throw EditError.badInput("\(source.directory): the fold needs '\(name)' (for \(role.writer)), which neither exists nor gets a bias slot") // programmer error, reported
        }

        // 3. Untie: the edited table keeps writing into the stream, lm_head keeps the original.
        lmHeadFromTable = arch.tiedEmbeddings && roles[arch.embedding] != nil
        if lmHeadFromTable {
            configChanges.append(("tie_word_embeddings", .bool(false)))
            if let ei = source.info(arch.embedding) {
                infos["lm_head.weight"] = TensorInfo(name: "lm_head.weight", dtype: outDType(ei.dtype), shape: ei.shape, byteCount: ei.elementCount * outDType(ei.dtype).size)
            }
        }
        for flag in plan.biasFlags.sorted() { configChanges.append((flag, .bool(true))) }
        if plan.asLlama {
            configChanges.append(("model_type", .string("llama")))
            configChanges.append(("architectures", .array([.string("LlamaForCausalLM")])))
        }
        if let t = outputDType {
            let s: String = t == .F32 ? "float32" : t == .BF16 ? "bfloat16" : "float16"
            configChanges.append((config["torch_dtype"] != nil && config["dtype"] == nil ? "torch_dtype" : "dtype", .string(s)))
        }
        self.config = FoldedModel.updatedConfig(config, changes: configChanges,
                                                dropKeys: plan.asLlama ? ["use_sliding_window", "sliding_window", "max_window_layers", "layer_types"] : [])

        // 4. Output order: source order, new biases right after their weight, lm_head last.
        for name in source.tensorNames {
            if name == "lm_head.weight" && lmHeadFromTable { continue }
            guard let si = source.info(name) else { continue }
            let od = outDType(si.dtype)
            infos[name] = TensorInfo(name: name, dtype: od, shape: si.shape, byteCount: si.elementCount * od.size)
            tensorNames.append(name)
            if roles[name] != nil { editedNames.append(name) }
            for b in newAfter[name] ?? [] { tensorNames.append(b); addedNames.append(b) }
        }
        if lmHeadFromTable {
            tensorNames.append("lm_head.weight")
            addedNames.append(names.contains("lm_head.weight") ? "lm_head.weight (replaced by the original table)" : "lm_head.weight")
        }
    }

    public func info(_ name: String) -> TensorInfo? { infos[name] }

    /// The edit role of a tensor (nil: unchanged or new).
    func role(of name: String) -> TensorRole? { newTensors[name] == nil ? roles[name] : nil }

    /// The source tensor a folded tensor is computed from.
    func sourceName(of name: String) -> String {
        (name == "lm_head.weight" && lmHeadFromTable) ? architecture.embedding : name
    }

    /// The source bytes when a tensor is written unchanged (same values, same dtype); nil otherwise.
    public func unchangedBytes(_ name: String) -> UnsafeRawBufferPointer? {
        guard roles[name] == nil, newTensors[name] == nil, roundThrough == nil, let out = infos[name] else { return nil }
        let srcName = (name == "lm_head.weight" && lmHeadFromTable) ? architecture.embedding : name
        guard let si = source.info(srcName), si.dtype == out.dtype else { return nil }
        return try? source.bytes(srcName)
    }

    /// Folded values in f32 (edits computed in f32 with f64 directions), optionally rounded through `roundThrough`.
    public func floats(_ name: String) throws -> [Float] {
        guard let out = infos[name] else {
            throw SafeTensorsError(.missingTensor, file: source.directory, tensor: name, "not in the folded model")
        }
        var x: [Float]
        if let shape = newTensors[name] {
            x = [Float](repeating: 0, count: shape.reduce(1, *))
        } else if name == "lm_head.weight" && lmHeadFromTable {
            x = try source.floats(architecture.embedding)
        } else {
            x = try source.floats(name)
        }
        if let role = roles[name] {
            try FoldedModel.apply(role: role, ops: plan.ops[role.writer] ?? [], to: &x, shape: out.shape, hidden: architecture.hiddenSize, name: name)
        }
        if let r = roundThrough, out.dtype.isFloatingPoint { FoldedModel.round(&x, through: r) }
        return x
    }

    static func round(_ x: inout [Float], through d: DType) {
        switch d {
        case .BF16: for i in x.indices { x[i] = FloatConversion.bf16ToFloat(FloatConversion.floatToBF16(x[i])) }
        case .F16: for i in x.indices { x[i] = Float(Float16(x[i])) }
        default: break
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

    static func updatedConfig(_ c: JSONValue, changes: [(String, JSONValue)], dropKeys: [String]) -> JSONValue {
        guard var pairs = c.objectPairs else { return c }
        pairs.removeAll { dropKeys.contains($0.0) }
        for (k, v) in changes {
            if let i = pairs.firstIndex(where: { $0.0 == k }) { pairs[i].1 = v } else { pairs.append((k, v)) }
        }
        return .object(pairs)
    }
}
