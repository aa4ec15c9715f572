#!/usr/bin/env bash
# Extraction vs the bare forward passes (issue: "extraction over 64 prompt pairs costs no more than
# the forward passes"): 64 contrasting pairs written here, then `edit-cli bench --positive
# --negative`, which times one forward per prompt (as generate runs it) and `extract` over all
# layers on the same prompts in the same process.
#
#   scripts/bench-extract.sh [MODEL] [THREADS]     (defaults: the SmolLM2 folder of the cache, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${EDIT_CLI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edit-cli}"
MODEL="${1:-$cache/smollm2/SmolLM2-135M-Instruct}"
THREADS="${2:-2}"
BIN=.build/release/edit-cli
[ -x "$BIN" ] || swift build -c release -Xswiftc -target-cpu -Xswiftc haswell --product edit-cli
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
subjects=(morning garden letter holiday meeting concert journey weekend dinner painting project lesson
          visit game market film river song book city team museum festival class train beach
          kitchen party garden-walk interview exam road)
n=0
for s in "${subjects[@]}"; do
  for form in "Today the %s made me feel" "Thinking about the %s, I am"; do
    [ $n -lt 64 ] || break
    printf "$form wonderful, joyful and full of hope.\n" "$s" >> "$dir/pos.txt"
    printf "$form miserable, gloomy and full of dread.\n" "$s" >> "$dir/neg.txt"
    n=$((n + 1))
  done
done
echo "$(wc -l < "$dir/pos.txt") pairs; model $MODEL; $THREADS threads" >&2
"$BIN" bench "$MODEL" --positive "$dir/pos.txt" --negative "$dir/neg.txt" --threads "$THREADS"
