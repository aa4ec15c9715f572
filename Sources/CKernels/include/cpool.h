// A tiny fork-join pool for the engine's parallel regions (GEMM panels, row-parallel kernels,
// attention). Workers spin for a short while after each region before they sleep, so the
// back-to-back regions of a forward pass start within a microsecond or so; libdispatch's
// concurrentPerform woke a sleeping worker through the kernel for each of the ~300 regions of a
// 128-token prefill. Regions are run one at a time (calls from several threads are serialised); a region
// started inside a region runs on the calling thread.
#ifndef CPOOL_H
#define CPOOL_H

typedef void (*cpool_fn)(void *ctx, int index);

/// Runs fn(ctx, i) for i in 0..<n on the calling thread and up to `threads - 1` workers (started
/// on first use; never more than the CPUs this process may use, minus one); returns when every
/// call has returned.
void cpool_run(int n, int threads, cpool_fn fn, void *ctx);

/// CPUs this process may run on (its affinity mask), at least 1.
int cpool_usable_cpus(void);

#endif
