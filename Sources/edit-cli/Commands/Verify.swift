import Editor
import Foundation
import Tokenizers

extension CLI {
    static let verifyHelp = """
    edit-cli verify ORIGINAL EDITED [--recipe R] (--prompts FILE | --tokens 1,2,3) [--chat]
                    [--atol X] [--greedy-tokens 16] [--json]

    Runs ORIGINAL with the recipe applied by hooks and EDITED as it is, and reports per prompt:
    max |logit difference| over every position, mean and max KL(hooked || edited), top-1
    agreement, and how many greedy tokens (default 16) both generate identically.
      --recipe R      default: EDITED/steering_recipe.json (written by bake)
      --prompts FILE  one prompt per line (.txt) or JSON Lines with a "prompt" field
      --tokens LIST   one token-id sequence instead of prompts
      --atol X        tolerance on max |logit difference|; default 1e-4 * max(1, max|logit|)
                      + 2 * rounding floor, where the floor is what rounding the folded weights
                      to EDITED's dtype alone costs (0 for f32), shown in the report
      --json          the report as JSON on stdout
    Exit 0 when equivalent within tolerance, 1 when not, 2 on bad input. Weight-space edits
    (ablate-weights) have no hooked twin: the report is their distance from the original and the
    exit code is 0 unless --atol is given and exceeded.
      example: edit-cli verify ./SmolLM2-135M-Instruct ./SmolLM2-joyful --prompts prompts.txt --json
    """
}

func runVerify(_ args: inout Arguments) throws -> Int32 {
    let recipeArg = try args.option("--recipe")
    let promptsPath = try args.option("--prompts")
    let tokenList = try args.option("--tokens")
    let chat = args.flag("--chat")
    let atol = try args.double("--atol")
    let greedyTokens = try args.int("--greedy-tokens") ?? 16
    let json = args.flag("--json")
    let originalArg = try args.positional("ORIGINAL")
    let edited = try args.positional("EDITED")
    try args.finish()
    if let a = atol, a < 0 { throw UsageError("verify: --atol must be >= 0, found \(a)") }
    guard greedyTokens >= 0 else { throw UsageError("verify: --greedy-tokens must be >= 0") }

    let original = try GGUFModelCache.resolveModelPath(originalArg, progress: { Progress.say($0) })
    let recipePath = recipeArg ?? (edited as NSString).appendingPathComponent(Baker.recipeFile)
    guard FileManager.default.fileExists(atPath: recipePath) else {
        throw UsageError("verify: \(recipePath) not found (give --recipe R; bake writes steering_recipe.json into EDITED)")
    }
    let recipe = try Recipe.load(path: recipePath)
    let prompts: [[Int]]
    switch (promptsPath, tokenList) {
    case (nil, nil): throw UsageError("verify: give --prompts FILE or --tokens 1,2,3")
    case (.some, .some): throw UsageError("verify: give --prompts or --tokens, not both")
    case (_, .some(let list)):
        if chat { throw UsageError("verify: --chat applies to --prompts, not to --tokens") }
        prompts = [try EngineCLI.parseTokens(list, command: "verify")]
    case (.some(let path), nil):
        let tok = try Tokenizer(directory: original)
        prompts = try PromptFile.encode(try PromptFile.load(path), tokenizer: tok, chat: chat)
    }
    let r = try Verifier.verify(original: original, edited: edited, recipe: recipe, prompts: prompts,
                                options: VerifyOptions(atol: atol, greedyTokens: greedyTokens), log: Progress.say)
    if json {
        print(r.json.serialized(pretty: true))
    } else {
        func e(_ x: Double) -> String { String(format: "%.3e", x) }
        print("verify \(edited) against \(original) + \(recipePath) (\(prompts.count) prompt(s), \(prompts.reduce(0) { $0 + $1.count }) tokens)")
        print("  mode               \(r.mode.rawValue)\(r.approximate ? " (bake used --approximate)" : "")")
        print("  max |logit diff|   \(e(r.maxAbsDiff))   (max |logit| \(String(format: "%.2f", r.maxAbsLogit)))")
        print("  rounding floor     \(r.roundingFloor.map(e) ?? "not measured")   (\(r.editedDType.rawValue))")
        print("  tolerance          \(e(r.tolerance))\(atol == nil ? " (default rule)" : " (--atol)")")
        print("  KL mean / max      \(e(r.meanKL)) / \(e(r.maxKL))")
        print("  top-1 agreement    \(String(format: "%.4f", r.top1Agreement))")
        print("  greedy agreement   \(String(format: "%.4f", r.greedyAgreement))   (\(greedyTokens) tokens per prompt)")
        switch r.mode {
        case .equivalence: print(r.passed ? "EQUIVALENT within tolerance" : "NOT EQUIVALENT: max |logit diff| exceeds the tolerance")
        case .distance: print(r.passed ? "weight-space edit: distance reported (no hooked twin)" : "distance exceeds --atol")
        }
    }
    return r.passed ? 0 : 1
}
