// Steering recipes (DESIGN.md section 3): parsing, validation, and the hooked semantics.
//
// A recipe is JSON {"interventions": [entry, ...]}. Each entry:
//   op         "add" | "ablate" | "clamp" | "ablate-weights" (weight-space edit, bake only)
//   point      "resid_pre" | "resid_mid" | "resid_post" | "embed" | "attn_out" | "mlp_out" | "residual"
//   layer / layers   one layer or a list (not for "embed"/"residual"); layer numbers are 0-based
//   vector     (add) {"file": F, "tensor": T} or an inline list of numbers
//   direction  (ablate, clamp, ablate-weights) same forms; normalised to unit length in f64
//   scale (add, default 1), strength (ablate, default 1), value (clamp, required)
//   positions  "all" (default) | "prompt" | "generated" | "last" | [absolute indices]
//              ("last" = last position of each forward call: see Positions.selects)
//   ablate-weights only: "strength" or "kernel" {"peak_layer", "peak", "edge", "width"},
//                        "norm_preserving" (bool), "writers" (["embed","attn_out","mlp_out"])
// Relative files resolve against the recipe's folder. Every check happens in load()/resolve(),
// before any work starts; errors name the entry ("recipe.json: interventions[2]: ...").

import Foundation
@_exported import SafeTensors

public enum HookPoint: Hashable, Sendable, CustomStringConvertible, Comparable {
    case embed                // output of the embedding stage (== resid_pre.0 as a state), [tokens, hidden]
    case residPre(Int)        // stream entering block L, [tokens, hidden]
    case residMid(Int)        // stream after block L's attention add, [tokens, hidden]
    case residPost(Int)       // stream leaving block L (== resid_pre.(L+1)), [tokens, hidden]
    case attnOut(Int)         // term block L's attention branch adds (post-normed in Gemma2/3), [tokens, hidden]
    case mlpOut(Int)          // term block L's MLP branch adds, [tokens, hidden]

    public var description: String {
        switch self {
        case .embed: return "embed"
        case .residPre(let l): return "resid_pre.\(l)"
        case .residMid(let l): return "resid_mid.\(l)"
        case .residPost(let l): return "resid_post.\(l)"
        case .attnOut(let l): return "attn_out.\(l)"
        case .mlpOut(let l): return "mlp_out.\(l)"
        }
    }

    public var layer: Int? {
        switch self {
        case .embed: return nil
        case .residPre(let l), .residMid(let l), .residPost(let l), .attnOut(let l), .mlpOut(let l): return l
        }
    }

    /// Order in which the points occur in a forward pass.
    var order: (Int, Int) {
        switch self {
        case .embed: return (-1, 0)
        case .residPre(let l): return (l, 0)
        case .attnOut(let l): return (l, 1)
        case .residMid(let l): return (l, 2)
        case .mlpOut(let l): return (l, 3)
        case .residPost(let l): return (l, 4)
        }
    }
    public static func < (a: HookPoint, b: HookPoint) -> Bool { a.order < b.order }

    /// Parses "resid_post.12", "embed", "attn_out.3".
    public init?(_ s: String) {
        if s == "embed" { self = .embed; return }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let l = Int(parts[1]), l >= 0 else { return nil }
        switch parts[0] {
        case "resid_pre": self = .residPre(l)
        case "resid_mid": self = .residMid(l)
        case "resid_post": self = .residPost(l)
        case "attn_out": self = .attnOut(l)
        case "mlp_out": self = .mlpOut(l)
        default: return nil
        }
    }
}

public enum Positions: Equatable, Sendable {
    case all, prompt, generated, last
    case list([Int])

    /// Whether absolute position `p` is selected, in a sequence whose prompt has `promptLength` tokens,
    /// during a forward call whose last position is `callLast`.
    /// "last" is the last position of each forward call, as a PyTorch hook editing `x[:, -1]` does:
    /// the last prompt token in prefill, then every generated token of a KV-cache decode.
    /// For `logits` the whole input is one call.
    @inline(__always) public func selects(_ p: Int, promptLength: Int, callLast: Int) -> Bool {
        switch self {
        case .all: return true
        case .prompt: return p < promptLength
        case .generated: return p >= promptLength
        case .last: return p == callLast
        case .list(let l): return l.contains(p)
        }
    }
}

public enum PointKind: String, Sendable, CaseIterable {
    case residPre = "resid_pre", residMid = "resid_mid", residPost = "resid_post"
    case embed, attnOut = "attn_out", mlpOut = "mlp_out", residual

    public var takesLayer: Bool { self != .embed && self != .residual }
}

/// Weight-space ablation with no hooked counterpart (bake only; `verify` reports distance).
public struct WeightAblation: Sendable, Equatable {
    public enum Strength: Sendable, Equatable {
        case constant(Double)
        /// heretic-style kernel: `peak` at `peakLayer`, falling linearly to `edge` at distance `width`,
        /// zero beyond.
        case kernel(peakLayer: Double, peak: Double, edge: Double, width: Double)
    }
    public var strength: Strength
    public var normPreserving: Bool
    public var writers: Set<String>       // subset of "embed", "attn_out", "mlp_out"

    public func strength(atLayer l: Int) -> Double {
        switch strength {
        case .constant(let s): return s
        case let .kernel(p, peak, edge, width):
            let d = abs(Double(l) - p)
            if d > width { return 0 }
            return width == 0 ? peak : peak + (edge - peak) * d / width
        }
    }
}

public enum Op: Sendable, Equatable {
    case add(scale: Float)
    case ablate(strength: Float)
    case clamp(value: Float)
    case ablateWeights(WeightAblation)

    public var name: String {
        switch self {
        case .add: return "add"
        case .ablate: return "ablate"
        case .clamp: return "clamp"
        case .ablateWeights: return "ablate-weights"
        }
    }
}

public enum VectorRef: Sendable, Equatable {
    case file(path: String, tensor: String)   // path already resolved against the recipe folder
    case inline([Double])
}

public struct Intervention: Sendable {
    public var index: Int            // position in the recipe's list
    public var op: Op
    public var point: PointKind
    public var layers: [Int]?        // nil for embed / residual / all-layer ablate-weights
    public var vector: VectorRef
    public var positions: Positions
}

public struct RecipeError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// One intervention at one concrete hook point, vector loaded.
public struct ResolvedIntervention: Sendable {
    public var op: Op
    public var point: HookPoint
    public var vector: [Float]        // add: v as given; ablate/clamp: unit r (normalised in f64)
    public var positions: Positions
    public var entry: Int             // index of the recipe entry it came from

    /// Applies the op to one row of the stream (or of a writer's term), in place.
    @inline(__always) public func apply(to row: UnsafeMutablePointer<Float>, hidden: Int) {
        vector.withUnsafeBufferPointer { v in
            switch op {
            case .add(let s):
                for i in 0..<hidden { row[i] += s * v[i] }
            case .ablate(let strength):
                var dot: Float = 0
                for i in 0..<hidden { dot += v[i] * row[i] }
                let c = strength * dot
                for i in 0..<hidden { row[i] -= c * v[i] }
            case .clamp(let value):
                var dot: Float = 0
                for i in 0..<hidden { dot += v[i] * row[i] }
                let c = value - dot
                for i in 0..<hidden { row[i] += c * v[i] }
            case .ablateWeights:
                break  // never resolved for hooks
            }
        }
    }

    /// Applies to every selected row of a [tokens, hidden] state whose first row is absolute position `start`.
    public func apply(toState x: UnsafeMutablePointer<Float>, tokens: Int, hidden: Int, start: Int, promptLength: Int) {
        for t in 0..<tokens where positions.selects(start + t, promptLength: promptLength, callLast: start + tokens - 1) {
            apply(to: x + t * hidden, hidden: hidden)
        }
    }
}

public struct Recipe: Sendable {
    public var interventions: [Intervention]
    public var path: String?               // file it came from (errors and provenance)
    public var json: JSONValue             // as written, for steering_recipe.json and metadata

    var label: String { path ?? "recipe" }

    public static func load(path: String) throws -> Recipe {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RecipeError("\(path): cannot read the recipe file")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(data: [UInt8](data)) } catch {
            throw RecipeError("\(path): not valid JSON: \(error)")
        }
        let folder = (path as NSString).deletingLastPathComponent
        return try Recipe(json: json, baseFolder: folder.isEmpty ? "." : folder, label: path)
    }

    public init(json: JSONValue, baseFolder: String, label: String? = nil) throws {
        self.path = label
        self.json = json
        let name = label ?? "recipe"
        guard let top = json.objectPairs else { throw RecipeError("\(name): expected a JSON object with \"interventions\"") }
        for (k, _) in top where !["interventions", "name", "description"].contains(k) {
            throw RecipeError("\(name): unknown key '\(k)' (expected interventions, name, description)")
        }
        guard let list = json["interventions"]?.arrayValue else {
            throw RecipeError("\(name): \"interventions\" must be a list")
        }
        guard !list.isEmpty else { throw RecipeError("\(name): \"interventions\" is empty") }
        interventions = []
        for (i, e) in list.enumerated() {
            interventions.append(try Recipe.parseEntry(e, index: i, base: baseFolder, name: name))
        }
    }

    static func parseEntry(_ e: JSONValue, index i: Int, base: String, name: String) throws -> Intervention {
        let at = "\(name): interventions[\(i)]"
        guard let pairs = e.objectPairs else { throw RecipeError("\(at): expected an object") }
        let allowed: Set<String> = ["op", "point", "layer", "layers", "vector", "direction", "scale", "strength",
                                    "value", "positions", "kernel", "norm_preserving", "writers", "comment"]
        var seen = Set<String>()
        for (k, _) in pairs {
            guard allowed.contains(k) else { throw RecipeError("\(at): unknown key '\(k)'") }
            guard seen.insert(k).inserted else { throw RecipeError("\(at): key '\(k)' appears twice") }
        }
        func number(_ k: String) throws -> Double? {
            guard let v = e[k] else { return nil }
            guard let d = v.doubleValue, d.isFinite else { throw RecipeError("\(at): '\(k)' must be a finite number") }
            return d
        }
        guard let opName = e["op"]?.stringValue else { throw RecipeError("\(at): missing \"op\" (add, ablate, clamp, ablate-weights)") }
        let pointName = e["point"]?.stringValue ?? (opName == "ablate-weights" ? "residual" : nil)
        guard let pointName else { throw RecipeError("\(at): missing \"point\"") }
        guard let point = PointKind(rawValue: pointName) else {
            throw RecipeError("\(at): unknown point '\(pointName)' (expected one of \(PointKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        // Which value keys each op accepts.
        let opKeys: [String: Set<String>] = [
            "add": ["vector", "scale"], "ablate": ["direction", "strength"], "clamp": ["direction", "value"],
            "ablate-weights": ["direction", "strength", "kernel", "norm_preserving", "writers"],
        ]
        guard let accepted = opKeys[opName] else {
            throw RecipeError("\(at): unknown op '\(opName)' (expected add, ablate, clamp, ablate-weights)")
        }
        for k in ["vector", "direction", "scale", "strength", "value", "kernel", "norm_preserving", "writers"] where e[k] != nil && !accepted.contains(k) {
            throw RecipeError("\(at): '\(k)' does not apply to op '\(opName)'")
        }
        let op: Op
        switch opName {
        case "add": op = .add(scale: Float(try number("scale") ?? 1))
        case "ablate": op = .ablate(strength: Float(try number("strength") ?? 1))
        case "clamp":
            guard let v = try number("value") else { throw RecipeError("\(at): clamp needs \"value\"") }
            op = .clamp(value: Float(v))
        default:
            var strength = WeightAblation.Strength.constant(try number("strength") ?? 1)
            if let k = e["kernel"] {
                guard e["strength"] == nil else { throw RecipeError("\(at): give either \"strength\" or \"kernel\", not both") }
                guard let kp = k.objectPairs else { throw RecipeError("\(at): \"kernel\" must be an object") }
                var vals: [String: Double] = [:]
                for (kk, kv) in kp {
                    guard ["peak_layer", "peak", "edge", "width"].contains(kk) else { throw RecipeError("\(at): kernel: unknown key '\(kk)' (expected peak_layer, peak, edge, width)") }
                    guard let d = kv.doubleValue, d.isFinite else { throw RecipeError("\(at): kernel.\(kk) must be a finite number") }
                    vals[kk] = d
                }
                guard let p = vals["peak_layer"], let pk = vals["peak"], let w = vals["width"] else {
                    throw RecipeError("\(at): kernel needs peak_layer, peak and width (edge defaults to 0)")
                }
                guard w >= 0 else { throw RecipeError("\(at): kernel.width must be >= 0, found \(w)") }
                strength = .kernel(peakLayer: p, peak: pk, edge: vals["edge"] ?? 0, width: w)
            }
            var np = false
            if let v = e["norm_preserving"] {
                guard let b = v.boolValue else { throw RecipeError("\(at): norm_preserving must be true or false") }
                np = b
            }
            var writers: Set<String> = ["embed", "attn_out", "mlp_out"]
            if let w = e["writers"] {
                guard let arr = w.arrayValue, !arr.isEmpty else { throw RecipeError("\(at): writers must be a non-empty list") }
                writers = []
                for x in arr {
                    guard let s = x.stringValue, ["embed", "attn_out", "mlp_out"].contains(s) else {
                        throw RecipeError("\(at): writers entries must be \"embed\", \"attn_out\" or \"mlp_out\"")
                    }
                    writers.insert(s)
                }
            }
            guard point == .residual else { throw RecipeError("\(at): ablate-weights acts on the writers of the residual stream; point must be \"residual\" (or omitted)") }
            op = .ablateWeights(WeightAblation(strength: strength, normPreserving: np, writers: writers))
        }
        if point == .residual, case .add = op { throw RecipeError("\(at): point \"residual\" is only for ablate (add at one point instead)") }
        if point == .residual, case .clamp = op { throw RecipeError("\(at): point \"residual\" is only for ablate (clamp at one point instead)") }

        // Layers.
        var layers: [Int]?
        if let l = e["layer"] {
            guard e["layers"] == nil else { throw RecipeError("\(at): give either \"layer\" or \"layers\", not both") }
            guard let v = l.intValue else { throw RecipeError("\(at): \"layer\" must be an integer") }
            layers = [v]
        } else if let l = e["layers"] {
            guard let arr = l.arrayValue, !arr.isEmpty else { throw RecipeError("\(at): \"layers\" must be a non-empty list of integers") }
            var out: [Int] = []
            for x in arr {
                guard let v = x.intValue else { throw RecipeError("\(at): \"layers\" must be a non-empty list of integers") }
                guard !out.contains(v) else { throw RecipeError("\(at): layer \(v) is listed twice") }
                out.append(v)
            }
            layers = out
        }
        if point.takesLayer && layers == nil { throw RecipeError("\(at): point '\(pointName)' needs \"layer\" or \"layers\"") }
        if point == .embed && layers != nil { throw RecipeError("\(at): point 'embed' takes no layer") }
        if point == .residual, case .ablate = op, layers != nil {
            throw RecipeError("\(at): point 'residual' covers every layer; to ablate at some layers use attn_out/mlp_out with \"layers\"")
        }
        if let ls = layers, let bad = ls.first(where: { $0 < 0 }) { throw RecipeError("\(at): layer \(bad) is negative") }

        // Vector.
        let key = (opName == "add") ? "vector" : "direction"
        guard let vj = e[key] else { throw RecipeError("\(at): op '\(opName)' needs \"\(key)\"") }
        let vector: VectorRef
        if let arr = vj.arrayValue {
            var vals: [Double] = []
            for x in arr {
                guard let d = x.doubleValue, d.isFinite else { throw RecipeError("\(at): \"\(key)\" has a non-finite or non-numeric entry") }
                vals.append(d)
            }
            vector = .inline(vals)
        } else if let vp = vj.objectPairs {
            for (k, _) in vp where k != "file" && k != "tensor" { throw RecipeError("\(at): \(key): unknown key '\(k)' (expected file, tensor)") }
            guard let f = vj["file"]?.stringValue, !f.isEmpty else {
                throw RecipeError("\(at): \"\(key)\" needs a \"file\" string")
            }
            let t = vj["tensor"]?.stringValue ?? ""
            if t.isEmpty && !f.hasSuffix(".npy") {
                throw RecipeError("\(at): \"\(key)\" needs a \"tensor\" name (only .npy files hold a single unnamed array)")
            }
            let full = f.hasPrefix("/") ? f : (base as NSString).appendingPathComponent(f)
            vector = .file(path: full, tensor: t)
        } else {
            throw RecipeError("\(at): \"\(key)\" must be {\"file\", \"tensor\"} or a list of numbers")
        }

        // Positions.
        var positions = Positions.all
        if let p = e["positions"] {
            if let s = p.stringValue {
                switch s {
                case "all": positions = .all
                case "prompt": positions = .prompt
                case "generated": positions = .generated
                case "last": positions = .last
                default: throw RecipeError("\(at): unknown positions '\(s)' (expected all, prompt, generated, last, or a list of indices)")
                }
            } else if let arr = p.arrayValue, !arr.isEmpty {
                var idx: [Int] = []
                for x in arr {
                    guard let v = x.intValue, v >= 0 else { throw RecipeError("\(at): positions must be non-negative integers") }
                    idx.append(v)
                }
                positions = .list(idx)
            } else {
                throw RecipeError("\(at): positions must be a string or a non-empty list of indices")
            }
            if case .ablateWeights = op, positions != .all { throw RecipeError("\(at): ablate-weights edits weights; positions must be \"all\"") }
        }
        return Intervention(index: i, op: op, point: point, layers: layers, vector: vector, positions: positions)
    }

    /// Entries that are weight-space edits (no hooked counterpart).
    public var weightSpaceEntries: [Intervention] {
        interventions.filter { if case .ablateWeights = $0.op { return true }; return false }
    }

    /// Loads an entry's vector and checks its size and values. Directions come back unit-length (f64).
    public func loadVector(_ iv: Intervention, hiddenSize: Int) throws -> [Double] {
        let at = "\(label): interventions[\(iv.index)]"
        var v: [Double]
        switch iv.vector {
        case .inline(let vals): v = vals
        case let .file(path, _) where path.hasSuffix(".npy"):
            do { v = try NPY.readVector(path: path) } catch { throw RecipeError("\(at): \(error)") }
        case let .file(path, tensor):
            let f: SafeTensorsFile
            do { f = try SafeTensorsFile(path: path) } catch { throw RecipeError("\(at): \(error)") }
            guard let info = f.info(tensor) else {
                let names = f.tensorNames.prefix(8).joined(separator: ", ")
                throw RecipeError("\(at): \(path) has no tensor '\(tensor)' (it has: \(names)\(f.tensorNames.count > 8 ? ", ..." : ""))")
            }
            guard info.dtype.isFloatingPoint else { throw RecipeError("\(at): \(path): tensor '\(tensor)' is \(info.dtype.rawValue), expected a float vector") }
            let isVector = info.shape.count == 1 || (info.shape.count == 2 && info.shape[0] == 1)
            guard isVector else { throw RecipeError("\(at): \(path): tensor '\(tensor)' has shape \(info.shape), expected [\(hiddenSize)]") }
            if info.dtype == .F64 {
                let b = try f.bytes(tensor)
                v = (0..<info.elementCount).map { b.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self) }
            } else {
                v = try f.floats(tensor).map(Double.init)
            }
        }
        guard v.count == hiddenSize else {
            throw RecipeError("\(at): vector has \(v.count) values, expected hidden size \(hiddenSize)")
        }
        guard v.allSatisfy({ $0.isFinite }) else { throw RecipeError("\(at): vector contains NaN or Inf") }
        if case .add = iv.op { return v }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 0 else { throw RecipeError("\(at): direction has zero length") }
        return v.map { $0 / norm }
    }

    /// Validates every entry against a model's dimensions (layers in range, vector sizes, values)
    /// and expands it into hook-level interventions. Weight-space entries are validated but not
    /// returned (they have no hooked counterpart).
    public func resolve(hiddenSize: Int, numLayers: Int) throws -> [ResolvedIntervention] {
        var out: [ResolvedIntervention] = []
        for iv in interventions {
            let at = "\(label): interventions[\(iv.index)]"
            if let ls = iv.layers, let bad = ls.first(where: { $0 >= numLayers }) {
                throw RecipeError("\(at): layer \(bad) is out of range (the model has \(numLayers) layers: 0-\(numLayers - 1))")
            }
            let v64 = try loadVector(iv, hiddenSize: hiddenSize)
            let v = v64.map { Float($0) }
            if case .ablateWeights = iv.op { continue }
            var points: [HookPoint] = []
            switch iv.point {
            case .embed: points = [.embed]
            case .residual:
                // Every state of the stream: resid_pre.0 and after every writer. At strength 1 this
                // equals ablating every writer's output (what bake folds); at other strengths not.
                points = [.embed]
                for l in 0..<numLayers { points += [.residMid(l), .residPost(l)] }
            case .residPre: points = iv.layers!.map { HookPoint.residPre($0) } // programmer error: parse requires layers
            case .residMid: points = iv.layers!.map { HookPoint.residMid($0) } // programmer error: parse requires layers
            case .residPost: points = iv.layers!.map { HookPoint.residPost($0) } // programmer error: parse requires layers
            case .attnOut: points = iv.layers!.map { HookPoint.attnOut($0) } // programmer error: parse requires layers
            case .mlpOut: points = iv.layers!.map { HookPoint.mlpOut($0) } // programmer error: parse requires layers
            }
            for p in points { out.append(ResolvedIntervention(op: iv.op, point: p, vector: v, positions: iv.positions, entry: iv.index)) }
        }
        return out
    }
}
