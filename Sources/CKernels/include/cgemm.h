// f32 linear layers on weights packed once at load: y[m, n] = x[m, k] W[n, k]^T.
//
// W is stored as panels of CGEMM_NR output rows, k-major inside a panel: P[p][k][0..NR), the
// last panel zero-padded. A GEMM tile is 4 rows of x by one panel (12 AVX2 accumulators, one
// broadcast of x and three loads of W per 12 FMAs); the decode matvec streams the same panels.
// cgemm_linear splits the panels into ranges run on the pool (cpool.h).
// AVX2+FMA is chosen at run time; other CPUs get plain C loops with the same results up to
// rounding.
#ifndef CGEMM_H
#define CGEMM_H
#include <stddef.h>

#define CGEMM_NR 24

/// Panels of a weight with n output rows.
static inline int cgemm_panels(int n) { return (n + CGEMM_NR - 1) / CGEMM_NR; }

/// Floats of a packed weight [n, k].
static inline size_t cgemm_packed_count(int n, int k) { return (size_t)cgemm_panels(n) * (size_t)k * CGEMM_NR; }

/// Packs row-major w[n, k] into `packed` (cgemm_packed_count(n, k) floats).
void cgemm_pack(const float *w, int n, int k, float *packed);

/// y[m, n] (row stride n) = x[m, k] (row stride k) W^T: the matvec when m == 1, else the GEMM,
/// the panels split into up to `threads` ranges run on the pool (cpool.h) when the work is large
/// enough. Allocates nothing.
void cgemm_linear(int m, int n, int k, const float *x, const float *packed, float *y, int threads);

/// 1 when the AVX2+FMA kernels run (this CPU has them and cgemm_set_portable(1) was not called).
int cgemm_uses_avx2(void);

/// on = 1: use the portable loops even where AVX2 exists (for tests of those loops).
void cgemm_set_portable(int on);

#endif
