#!/usr/bin/env bash
# Scale benchmark: a synthetic sharded bf16 checkpoint with Llama-3-8B shapes (9 layers, ~6 GB) in
# $SCALE_DIR (default /work/cache/scale, not committed), then, each under /usr/bin/time -v:
#   1. cp -r of the shards, then sync (the floor: pure I/O; the writer fsyncs too);
#   2. a copy through CheckpointWriter with .bytes payloads from the mapped shards
#      (scripts/scale-bench-copy.swift), the path bake takes for untouched tensors;
#   3. edit-cli bake with a full-residual ablation ({"op":"ablate","point":"residual"}), when this
#      build's bake is implemented.
# Reports wall time and peak RSS of each; the target is peak RSS <= 1.5 GB for 2 and 3.
#   scripts/scale-bench.sh [--layers N]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
S=${SCALE_DIR:-/work/cache/scale}
layers=9
[ "${1:-}" = "--layers" ] && layers=$2
py=${PYTHON:-/work/venv/bin/python}
mkdir -p "$S"

if [ ! -f "$S/model/config.json" ]; then
  echo "generating $S/model ($layers layers)" >&2
  "$py" scripts/scale-bench-gen.py "$S/model" --layers "$layers"
fi
size=$(du -sb "$S/model" | cut -f1)
shard=2000000000

# Build the copy tool against the SafeTensors sources (static libraries, as scripts/fuzz does).
B=$S/build
mkdir -p "$B"
if [ ! -x "$B/scale-bench-copy" ] || [ -n "$(find Sources/SafeTensors Sources/StrictJSON scripts/scale-bench-copy.swift -newer "$B/scale-bench-copy")" ]; then
  echo "building scale-bench-copy" >&2
  for m in StrictJSON SafeTensors; do
    (cd "$B" && swiftc -O -parse-as-library -target-cpu haswell -module-name $m -emit-module -emit-module-path "$B/$m.swiftmodule" \
       -emit-library -static -o "$B/lib$m.a" -I "$B" "$root"/Sources/$m/*.swift)
  done
  swiftc -O -target-cpu haswell -I "$B" -L "$B" scripts/scale-bench-copy.swift -lSafeTensors -lStrictJSON -o "$B/scale-bench-copy"
fi

measure() { # label, command...
  local label=$1; shift
  local log=$S/time-$label.txt
  sync
  /usr/bin/time -v "$@" > "$S/out-$label.txt" 2> "$log" || { echo "$label failed:"; tail -5 "$log"; return 1; }
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$log" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$log" | awk '{print $NF}')
  printf "%-10s wall %8s   peak RSS %7.1f MB\n" "$label" "$wall" "$(echo "$rss / 1024" | bc -l)"
}

echo "checkpoint: $S/model, $(echo "$size / 1000000000" | bc -l | cut -c1-5) GB, $(ls "$S"/model/*.safetensors | wc -l) shards"
rm -rf "$S/out-cp" "$S/out-copy" "$S/out-bake"
cat "$S"/model/*.safetensors > /dev/null   # warm the page cache once, so every run reads from it
measure cp sh -c 'cp -r "$0" "$1" && sync' "$S/model" "$S/out-cp"
rm -rf "$S/out-cp"
measure copy "$B/scale-bench-copy" "$S/model" "$S/out-copy" "$shard"
rm -rf "$S/out-copy"
cli=$(swift build -c release --show-bin-path)/edit-cli
if [ -x "$cli" ] && "$cli" bake --help 2>&1 | grep -q -- "--recipe"; then
  measure bake "$cli" bake "$S/model" --recipe "$S/ablate_residual.json" --out "$S/out-bake"
  rm -rf "$S/out-bake"
else
  echo "bake       not measured: edit-cli bake is not implemented in this build (swift build -c release --product edit-cli)"
fi
