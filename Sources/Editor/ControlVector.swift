// llama.cpp control vectors <-> our vectors files.
//
// llama.cpp's format (common_control_vector_load_one, llama_adapter_cvec): a GGUF with
// general.architecture = "controlvector", controlvector.model_hint (string) and
// controlvector.layer_count (integer; neither is read by the loader), and 1-D F32 tensors
// "direction.N" of length n_embd. direction.N goes to cvec tensor N, which `build_cvec(cur, il)`
// adds right after the final residual add of block il = N (0-based): it is added to the output of
// block N, i.e. our `resid_post.N` in 0-based Hugging Face layer numbering. N = 0 is rejected by
// the loader ("invalid (zero) direction tensor layer index"), so resid_post.0 (output of block 0)
// cannot be addressed, and N = n_layer is never applied.
//
// Producers (checked in their sources):
//  - llama.cpp's cvector-generator measures the difference at l_out of block i and writes it as
//    direction.(i+1): its vectors are applied one block after the point they were measured at.
//  - repeng's ControlVector.export_gguf writes direction.L for its layer L, which it both reads
//    (hidden_states[L + 1], the output of block L) and applies (output of model.layers[L]):
//    measured and applied at resid_post.L. repeng may write direction.0, which llama.cpp rejects.
// A control vector file states where a vector is *applied*, so import maps direction.N ->
// resid_post.N for every producer (a cvector-generator vector was measured at resid_post.(N-1)).
// The mapping lives in `ControlVectorLayers` and nowhere else.

import Foundation
import SafeTensors

public struct ControlVectorError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var tensor: String?
    public var detail: String
    public init(file: String, tensor: String? = nil, _ detail: String) { self.file = file; self.tensor = tensor; self.detail = detail }
    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(detail)" }
        return "\(file): \(detail)"
    }
}

/// The one place that maps llama.cpp control-vector indices to our stream points.
public enum ControlVectorLayers {
    /// direction.N is added to the output of block N: our resid_post.N (0-based HF layers).
    public static func residPostLayer(forDirection n: Int) -> Int { n }

    /// The direction index for resid_post.L, or nil when llama.cpp cannot address it (L = 0).
    public static func directionIndex(forResidPost layer: Int) -> Int? { layer >= 1 ? layer : nil }
}

public enum ControlVectors {
    /// Reads a vectors file (tensors "<point>.<layer>", 1-D) and writes llama.cpp's control-vector
    /// GGUF. Only resid_post.L (L >= 1) can be expressed there; anything else is refused by name.
    /// Returns the direction indices written. With `skipBlockZero`, resid_post.0 (which `extract
    /// --layers all` writes) is left out and reported through `skipped` instead of refused.
    @discardableResult
    public static func export(vectors path: String, to out: String, modelHint: String?,
                              skipBlockZero: Bool = false, skipped: (String) -> Void = { _ in }) throws -> [Int] {
        let st = try SafeTensorsFile(path: path)
        var directions: [(Int, [Float])] = []
        var size: Int?
        for name in st.tensorNames {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, let layer = Int(parts[1]), layer >= 0, String(layer) == parts[1] else {
                throw ControlVectorError(file: path, tensor: name, "expected a name '<point>.<layer>' such as 'resid_post.12'")
            }
            guard parts[0] == "resid_post" else {
                let hint = parts[0] == "resid_pre" && layer >= 1 ? " (resid_pre.\(layer) is resid_post.\(layer - 1): rename it)" : ""
                throw ControlVectorError(file: path, tensor: name, "only resid_post.L vectors can be exported: llama.cpp adds direction.N to the output of block N\(hint)")
            }
            guard let n = ControlVectorLayers.directionIndex(forResidPost: layer) else {
                if skipBlockZero { skipped(name); continue }
                throw ControlVectorError(file: path, tensor: name, "resid_post.0 (the output of block 0) cannot be addressed by a llama.cpp control vector (direction.0 is rejected); leave it out, e.g. edit-cli extract ... --layers 1-N")
            }
            guard let info = st.info(name), info.shape.count == 1 else {
                throw ControlVectorError(file: path, tensor: name, "expected a 1-D vector, found shape \(st.info(name)?.shape ?? [])")
            }
            let v = try st.floats(name)
            if let bad = v.firstIndex(where: { !$0.isFinite }) {
                throw ControlVectorError(file: path, tensor: name, "value [\(bad)] is \(v[bad]), expected a finite number")
            }
            if let size, size != v.count {
                throw ControlVectorError(file: path, tensor: name, "has \(v.count) values, the others have \(size)")
            }
            size = v.count
            directions.append((n, v))
        }
        guard !directions.isEmpty else { throw ControlVectorError(file: path, "no resid_post.L vectors to export") }
        directions.sort { $0.0 < $1.0 }
        var w = GGUFWriter()
        w.set("general.architecture", .string("controlvector"))
        w.set("controlvector.model_hint", .string(modelHint ?? st.metadata["model_type"] ?? st.metadata["model"] ?? "unknown"))
        w.set("controlvector.layer_count", .uint32(UInt32(directions.count)))
        for (n, v) in directions {
            w.tensors.append(GGUFWriter.Tensor(name: "direction.\(n)", f32: v, shape: [v.count]))
        }
        try w.write(to: out)
        return directions.map(\.0)
    }

    public struct Imported: Sendable {
        public var modelHint: String?
        /// (resid_post layer, values), sorted by layer.
        public var vectors: [(layer: Int, values: [Float])]
    }

    /// Reads a control-vector GGUF (llama.cpp cvector-generator, repeng export_gguf, ours).
    public static func read(gguf path: String) throws -> Imported {
        let f = try GGUFFile(path: path)
        guard f.architecture == "controlvector" else {
            throw ControlVectorError(file: path, "general.architecture is '\(f.architecture ?? "missing")', expected 'controlvector'")
        }
        var byLayer: [Int: [Float]] = [:]
        var size: Int?
        for t in f.tensors {
            let parts = t.name.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == "direction", let n = Int(parts[1]), n >= 0 else {
                throw ControlVectorError(file: path, tensor: t.name, "expected tensors named 'direction.N' with N >= 0")
            }
            guard t.dims.count == 1 else {
                throw ControlVectorError(file: path, tensor: t.name, "expected a 1-D tensor, found dims \(t.dims)")
            }
            let v = try f.floats(t.name)
            if let size, size != v.count {
                throw ControlVectorError(file: path, tensor: t.name, "has \(v.count) values, the others have \(size)")
            }
            size = v.count
            let layer = ControlVectorLayers.residPostLayer(forDirection: n)
            guard byLayer[layer] == nil else {
                throw ControlVectorError(file: path, tensor: t.name, "a second tensor for direction \(n)")
            }
            byLayer[layer] = v
        }
        guard !byLayer.isEmpty else { throw ControlVectorError(file: path, "no direction.N tensors") }
        return Imported(modelHint: f.metadata["controlvector.model_hint"]?.stringValue,
                        vectors: byLayer.keys.sorted().map { ($0, byLayer[$0]!) }) // programmer error: keys from the dict
    }

    /// Writes the imported vectors as a vectors file: tensors "resid_post.L", f32.
    @discardableResult
    public static func importFile(gguf path: String, to out: String) throws -> Imported {
        let imp = try read(gguf: path)
        var meta: [String: String] = ["source": "llama.cpp control vector: direction.N -> resid_post.N",
                                      "control_vector": (path as NSString).lastPathComponent]
        if let h = imp.modelHint { meta["model_hint"] = h }
        try writeSafeTensors(path: out, tensors: imp.vectors.map { TensorRecord(name: "resid_post.\($0.layer)", shape: [$0.values.count], floats: $0.values) },
                             metadata: meta, sources: [path])
        return imp
    }
}
