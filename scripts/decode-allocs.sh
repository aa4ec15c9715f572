#!/usr/bin/env bash
# Heap allocations per decoded token (issue: "keep decode memory-bound: no per-token allocation").
# Counts malloc calls with a small LD_PRELOAD shim (built here with gcc) over two `edit-cli bench`
# runs that differ only in the number of decode tokens, and prints the difference per token.
#
#   scripts/decode-allocs.sh [MODEL]      (default: /work/cache/smollm2-hf)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-/work/cache/smollm2-hf}"
BIN=.build/release/edit-cli
[ -x "$BIN" ] || swift build -c release -Xswiftc -target-cpu -Xswiftc haswell --product edit-cli
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cat > "$dir/count.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
static atomic_long count;
static void *(*real_malloc)(size_t);
void *malloc(size_t n) {
    if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc");
    atomic_fetch_add(&count, 1);
    return real_malloc(n);
}
__attribute__((destructor)) static void report(void) { fprintf(stderr, "mallocs: %ld\n", (long)count); }
C
gcc -O2 -shared -fPIC "$dir/count.c" -o "$dir/count.so" -ldl
count() { LD_PRELOAD="$dir/count.so" "$BIN" bench "$MODEL" --threads 2 --decode-tokens "$1" --runs 1 2>&1 | sed -n 's/^mallocs: //p'; }
a=$(count 16); b=$(count 80)
# bench runs a warm-up and one measured run: 2 x 64 more tokens in the second count.
echo "mallocs: $a with 16 decode tokens, $b with 80; per extra decoded token: $(( (b - a) / 128 ))"
