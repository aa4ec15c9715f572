// A GGUF model seen through Hugging Face eyes, without writing anything: tensors under their HF
// names, dequantized to f32 with the convert fixes applied (Q/K unpermute, gemma norm - 1), plus the
// config.json / tokenizer.json / tokenizer_config.json that `convert` would write.
//
// And `GGUFModelCache.resolveModelPath`: lets any command take a .gguf where it takes a model
// folder, by converting once into a cache folder.

import Foundation
import SafeTensors

public final class GGUFHFSource: TensorSource, @unchecked Sendable {
    public let file: GGUFFile
    let plan: GGUFConverter.Plan
    private let index: [String: Int]

    init(file: GGUFFile, plan: GGUFConverter.Plan) {
        self.file = file
        self.plan = plan
        var idx: [String: Int] = [:]
        for (k, t) in plan.tensors.enumerated() { idx[t.hf] = k }
        index = idx
    }

    /// Opens a GGUF model (llama, qwen2, qwen3, gemma, gemma2, gemma3) as an HF-named source.
    public convenience init(path: String) throws {
        let f = try GGUFFile(path: path)
        let plan = try GGUFConverter.makePlan(f)
        for t in plan.tensors where !(f.tensorInfo(t.gguf)?.type.canDequantize ?? false) {
            throw ConvertError(.unsupported, file: path, "tensor '\(t.gguf)': ggml type \(f.tensorInfo(t.gguf)?.type.name ?? "?") cannot be dequantized by this build")
        }
        self.init(file: f, plan: plan)
    }

    /// config.json as `convert` writes it.
    public var config: JSONValue { plan.config }
    public var generationConfig: JSONValue { plan.generationConfig }
    /// (tokenizer.json, tokenizer_config.json) as `convert` writes them (built on each call).
    public func tokenizerFiles() throws -> (tokenizer: JSONValue, config: JSONValue) {
        let t = try GGUFTokenizerBuilder.build(file, architecture: plan.architecture, contextLength: plan.contextLength)
        return (t.tokenizerJSON, t.tokenizerConfig)
    }

    public var tensorNames: [String] { plan.tensors.map(\.hf) }

    public func info(_ name: String) -> TensorInfo? {
        guard let k = index[name] else { return nil }
        let t = plan.tensors[k]
        return TensorInfo(name: name, dtype: .F32, shape: t.shape, byteCount: t.shape.reduce(1, *) * 4)
    }

    public func floats(_ name: String) throws -> [Float] {
        guard let k = index[name] else {
            throw ConvertError(.missingTensor, file: file.path, "no tensor '\(name)' in this model")
        }
        let count = plan.tensors[k].shape.reduce(1, *)
        return try [Float](unsafeUninitializedCapacity: count) { out, n in
            try fill(k, into: UnsafeMutableBufferPointer(rebasing: out[0..<count]))
            n = count
        }
    }

    /// Dequantizes plan tensor k into `out` (exactly its element count) and applies its fix.
    func fill(_ k: Int, into out: UnsafeMutableBufferPointer<Float>) throws {
        let t = plan.tensors[k]
        let src = try file.bytes(t.gguf)
        let type = file.tensorInfo(t.gguf)!.type // programmer error: plan names come from the file
        precondition(out.count == t.shape.reduce(1, *) && out.count > 0, "programmer error: buffer size")
        switch t.fix {
        case .none:
            GGUFDequantize.dequantize(type, src.baseAddress!, count: out.count, into: out.baseAddress!) // programmer error: non-empty
        case .minusOne:
            GGUFDequantize.dequantize(type, src.baseAddress!, count: out.count, into: out.baseAddress!) // programmer error: non-empty
            for i in 0..<out.count { out[i] -= 1 }
        case .unpermute(let heads):
            let scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: out.count)
            defer { scratch.deallocate() }
            GGUFDequantize.dequantize(type, src.baseAddress!, count: out.count, into: scratch.baseAddress!) // programmer error: non-empty
            try GGUFConverter.unpermuteRows(UnsafeBufferPointer(scratch), into: out, shape: t.shape, heads: heads, name: t.gguf, file: file.path)
        }
    }
}

public enum GGUFModelCache {
    /// Where converted models are kept: $EDIT_CLI_CACHE, else $XDG_CACHE_HOME/edit-cli, else
    /// $HOME/.cache/edit-cli (the account's home folder when HOME is unset, as the shell scripts
    /// resolve `~`); with a "gguf" subfolder.
    public static var defaultRoot: String {
        let env = ProcessInfo.processInfo.environment
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        let base = env["EDIT_CLI_CACHE"] ?? env["XDG_CACHE_HOME"].map { $0 + "/edit-cli" }
            ?? (home as NSString).appendingPathComponent(".cache/edit-cli")
        return (base as NSString).appendingPathComponent("gguf")
    }

    /// For a path ending in ".gguf": a Hugging Face folder converted from it (converted on first
    /// use, then reused while the file's path, size and modification time are unchanged).
    /// Any other path is returned unchanged.
    public static func resolveModelPath(_ path: String, cacheRoot: String? = nil, progress: ((String) -> Void)? = nil) throws -> String {
        guard path.lowercased().hasSuffix(".gguf") else { return path }
        let abs = URL(fileURLWithPath: path).standardizedFileURL.path
        let attrs: [FileAttributeKey: Any]
        do { attrs = try FileManager.default.attributesOfItem(atPath: abs) } catch {
            throw ConvertError(.io, file: path, "cannot read: \(error.localizedDescription)")
        }
        let size = (attrs[.size] as? NSNumber)?.int64Value ?? -1
        let mtime = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        // FNV-1a over "path|size|mtime": a stable key without a crypto dependency.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in "\(abs)|\(size)|\(mtime)".utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        let root = cacheRoot ?? defaultRoot
        do { try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true) } catch {
            throw ConvertError(.io, file: root, "cannot create the cache folder: \(error.localizedDescription)")
        }
        let stem = ((abs as NSString).lastPathComponent as NSString).deletingPathExtension
        let dir = (root as NSString).appendingPathComponent("\(stem)-\(String(h, radix: 16))")
        if FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("config.json")) { return dir }
        progress?("converting \(path) into \(dir) (once)")
        do {
            _ = try GGUFConverter.convert(gguf: abs, to: dir, progress: progress)
        } catch let e as SafeTensorsError where e.kind == .targetExists && FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("config.json")) {
            // Another process finished the same conversion first (the rename is atomic).
        }
        return dir
    }
}
