// edit-cli: the command line of the steering toolkit. Each command lives in its own file under
// Commands/ as `func run<Name>(_ args: inout Arguments) throws -> Int32` plus its help text.

import Foundation

let commands: [(name: String, summary: String, run: (inout Arguments) throws -> Int32)] = [
    ("inspect", "show architecture, tensors, dtypes and parameter count of a model", runInspect),
    ("tokenize", "token ids (and pieces with --json) of a text, optionally chat-formatted", runTokenize),
    ("logits", "write the logits of a prompt, optionally with a steering recipe applied by hooks", runLogits),
    ("generate", "generate text, optionally with a steering recipe applied by hooks", runGenerate),
    ("extract", "contrastive steering vectors from positive/negative prompt files", runExtract),
    ("bake", "fold a steering recipe into the weights and write a new checkpoint", runBake),
    ("verify", "compare the hooked original with an edited checkpoint, numerically", runVerify),
    ("convert", "convert a GGUF model to a Hugging Face safetensors folder", runConvert),
    ("control-vector", "export/import llama.cpp control vectors", runControlVector),
    ("bench", "prefill and decode tokens per second of the engine on this machine", runBench),
    ("demo", "the whole pipeline on SmolLM2-135M-Instruct: extract, bake, verify, compare", runDemo),
]

setvbuf(stdout, nil, _IOFBF, 1 << 16)
exit(CLI.main(commands: commands))
