#!/usr/bin/env bash
# Engine vs PyTorch on the same model, threads and machine: prefill and decode tokens/s and ratios.
#
#   scripts/bench.sh [MODEL] [THREADS]      (defaults: /work/cache/smollm2-hf, 2)
#
# Needs a release build of edit-cli and a Python with torch + transformers ($PYTHON, default
# /work/venv/bin/python). Run it on a quiet machine: both sides are measured back to back, and the
# better of two alternating rounds is kept for each, so a burst of load hurts both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-/work/cache/smollm2-hf}"
THREADS="${2:-2}"
PROMPT="${PROMPT_TOKENS:-128}"
DECODE="${DECODE_TOKENS:-64}"
PYTHON="${PYTHON:-/work/venv/bin/python}"
BIN=.build/release/edit-cli
if [ ! -x "$BIN" ]; then
  swift build -c release -Xswiftc -target-cpu -Xswiftc haswell --product edit-cli
fi

num() { "$PYTHON" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
best() { "$PYTHON" -c "import sys; print(max(float(x) for x in sys.argv[1:]))" "$@"; }

LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
ep=(); ed=(); tp=(); td=()
for round in 1 2; do
  e=$("$BIN" bench "$MODEL" --threads "$THREADS" --prompt-tokens "$PROMPT" --decode-tokens "$DECODE" --json)
  t=$("$PYTHON" scripts/bench_torch.py "$MODEL" --threads "$THREADS" --prompt-tokens "$PROMPT" --decode-tokens "$DECODE" --json)
  ep+=("$(num "$e" prefill_tokens_per_s)"); ed+=("$(num "$e" decode_tokens_per_s)")
  tp+=("$(num "$t" prefill_tokens_per_s)"); td+=("$(num "$t" decode_tokens_per_s)")
done
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)
EP=$(best "${ep[@]}"); ED=$(best "${ed[@]}"); TP=$(best "${tp[@]}"); TD=$(best "${td[@]}")
"$PYTHON" - "$MODEL" "$THREADS" "$PROMPT" "$DECODE" "$EP" "$ED" "$TP" "$TD" "$LOAD_BEFORE" "$LOAD_AFTER" <<'PY'
import sys
model, threads, p, d = sys.argv[1:5]
ep, ed, tp, td = map(float, sys.argv[5:9])
print(f"model {model}, {threads} threads, prefill {p} tokens, decode {d} tokens "
      f"(1-min load average {sys.argv[9]} before, {sys.argv[10]} after)")
print(f"{'':10}{'engine':>10}{'pytorch':>10}{'ratio':>8}")
print(f"{'prefill':10}{ep:10.1f}{tp:10.1f}{ep / tp:8.2f}x   tokens/s")
print(f"{'decode':10}{ed:10.1f}{td:10.1f}{ed / td:8.2f}x   tokens/s")
PY
