import Editor
import Engine
import Foundation

extension CLI {
    static let bakeHelp = """
    edit-cli bake MODEL --recipe R --out DIR [--dtype keep|f32|bf16|f16] [--max-shard-size 5GB]
                  [--force] [--approximate]

    Folds a steering recipe into the weights and writes a complete model folder (DESIGN.md 4, 6):
    shards (the source's sharding rule unless --max-shard-size), index when sharded, updated
    config.json, tokenizer/generation files, steering_recipe.json, checksums in each shard's
    __metadata__, and a README.md section saying what changed. Untouched tensors are copied byte
    for byte; edits are computed in f32 with f64 directions and written in the source dtype
    unless --dtype says otherwise. The output appears atomically; an existing DIR is replaced
    only with --force; the source is never modified.

    Refused (exit 2, nothing written), with the reason and the nearest foldable form:
      ablate/clamp at a single stream point (resid_pre.L for L > 0, resid_mid, resid_post),
      positions other than "all", ablate at "residual" with strength != 1, adds at mlp_out or
      resid_post on Qwen3/Gemma (no MLP bias slot), and Gemma2/Gemma3 post-norm writers unless
      --approximate (ablation then projects against g*r; verify reports the deviation).
      example: edit-cli bake ./SmolLM2-135M-Instruct --recipe joyful.recipe.json --out ./SmolLM2-joyful
    """
}

func runBake(_ args: inout Arguments) throws -> Int32 {
    let recipe = try args.required("--recipe")
    let out = try args.required("--out")
    var options = BakeOptions()
    if let d = try args.option("--dtype") {
        guard let t = OutputDType(rawValue: d) else { throw UsageError("bake: --dtype expects keep, f32, bf16 or f16, found '\(d)'") }
        options.dtype = t
    }
    if let m = try args.option("--max-shard-size") {
        guard let v = CheckpointWriter.parseSize(m) else { throw UsageError("bake: --max-shard-size expects a size like 5GB, 500MB or 2GiB, found '\(m)'") }
        options.maxShardSize = v
    }
    options.force = args.flag("--force")
    options.approximate = args.flag("--approximate")
    let modelArg = try args.positional("MODEL")
    try args.finish()
    BLASKernels.stopIdleWorkers()   // no BLAS here; its idle workers would spin on our cores
    // A .gguf is baked from its (cached) conversion to a Hugging Face folder.
    let model = try GGUFModelCache.resolveModelPath(modelArg, progress: { Progress.say($0) })
    let report = try Baker.bake(model: model, recipePath: recipe, out: out, options: options, log: Progress.say)
    print("baked \(out): \(report.edited.count) tensors edited, \(report.added.count) added, \(report.shards) shard(s)")
    for line in report.summary { print("  recipe: \(line)") }
    for c in report.configChanges { print("  config: \(c)") }
    for a in report.approximations { print("  APPROXIMATE: \(a)") }
    return 0
}
