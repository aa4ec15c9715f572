#!/usr/bin/env bash
# Bake time against copying the same checkpoint (issue targets: copy time + 20%), same machine,
# same minutes: rounds of `cp -r` + sync, a first bake (empty checksum cache, so the source's
# SHA-256 is computed) and a rebake (checksum remembered), each under /usr/bin/time; the output is
# deleted, synced and left to settle between runs (deleting gigabytes on this disk slows the next
# writes for a while). Prints every round, then the median of each.
#
#   scripts/bake-bench.sh MODEL RECIPE [ROUNDS]
#   e.g. scripts/bake-bench.sh ~/.cache/edit-cli/smollm2/SmolLM2-135M-Instruct ablate.json
#        scripts/bake-bench.sh /work/cache/scale/model /work/cache/scale/ablate_residual.json
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=$1; RECIPE=$2; ROUNDS=${3:-3}; PAUSE=${PAUSE:-5}
BIN=$PWD/.build/release/edit-cli
[ -x "$BIN" ] || swift build -c release -Xswiftc -target-cpu -Xswiftc haswell --product edit-cli
work=$(mktemp -d "$(dirname "$(realpath "$MODEL")")/.bake-bench.XXXXXX")   # same file system as the model
trap 'rm -rf "$work"' EXIT
cat "$MODEL"/*.safetensors > /dev/null     # page cache warm for every run
settle() { rm -rf "$work/out"; sync; sleep "$PAUSE"; }
run() { # label command...: wall seconds and peak RSS (MB) into $work/$label.times
  local label=$1; shift
  settle
  /usr/bin/time -o "$work/t" -f "%e %M" "$@" > /dev/null 2> "$work/err" || { cat "$work/err"; exit 1; }
  read -r wall kb < "$work/t"
  echo "$wall $((kb / 1024))" >> "$work/$label.times"
  printf "  %-8s %6.2f s  %5d MB\n" "$label" "$wall" "$((kb / 1024))"
}
echo "model $MODEL ($(du -sh "$MODEL" | cut -f1)), recipe $RECIPE, $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
  echo "round $r"
  run cp sh -c 'cp -r "$0" "$1" && sync' "$MODEL" "$work/out"
  rm -rf "$work/cache"
  run first env EDIT_CLI_CACHE="$work/cache" "$BIN" bake "$MODEL" --recipe "$RECIPE" --out "$work/out"
  run rebake env EDIT_CLI_CACHE="$work/cache" "$BIN" bake "$MODEL" --recipe "$RECIPE" --out "$work/out" --force
done
settle
median() { sort -n "$work/$1.times" | awk '{a[NR]=$1; m[NR]=$2} END {i=int((NR+1)/2); printf "%.2f s (peak RSS %d MB)", a[i], m[i]}'; }
cpm=$(sort -n "$work/cp.times" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
for l in cp first rebake; do
  v=$(sort -n "$work/$l.times" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf "median %-7s %s  = %.2fx cp\n" "$l" "$(median $l)" "$(echo "$v / $cpm" | bc -l)"
done
