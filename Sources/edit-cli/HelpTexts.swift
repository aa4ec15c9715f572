// Help text per command (shown by `edit-cli COMMAND --help`); each text lives beside its command.
let helpTexts: [String: String] = [
    "inspect": CLI.inspectHelp,
    "tokenize": CLI.tokenizeHelp,
    "logits": CLI.logitsHelp,
    "generate": CLI.generateHelp,
    "extract": CLI.extractHelp,
    "bake": CLI.bakeHelp,
    "verify": CLI.verifyHelp,
    "convert": CLI.convertHelp,
    "control-vector": CLI.controlVectorHelp,
    "bench": CLI.benchHelp,
    "demo": CLI.demoHelp,
]
