// See cgemm.h. Loop order of the GEMM: blocks of KC columns of k (a panel's block, 24 KB, stays
// in L1 while every 4-row tile of x passes over it; the x block stays in L2), then panels, then
// 4-row tiles. The first k block stores its tile, later ones add to it.
#include "cgemm.h"
#include "cpool.h"
#include <stdatomic.h>
#include <string.h>

#define NR CGEMM_NR
#define MR 4
#define KC 256

void cgemm_pack(const float *w, int n, int k, float *packed) {
    int np = cgemm_panels(n);
    for (int p = 0; p < np; p++) {
        float *dst = packed + (size_t)p * k * NR;
        for (int j = 0; j < NR; j++) {
            int r = p * NR + j;
            if (r < n) {
                const float *src = w + (size_t)r * k;
                for (int i = 0; i < k; i++) dst[(size_t)i * NR + j] = src[i];
            } else {
                for (int i = 0; i < k; i++) dst[(size_t)i * NR + j] = 0;
            }
        }
    }
}

// Portable tile: t[MR][NR] = sum over kc of x rows (xr[i]) times the panel block b.
static void tile_c(int kc, const float *const xr[MR], const float *b, float t[MR][NR]) {
    for (int i = 0; i < MR; i++) for (int j = 0; j < NR; j++) t[i][j] = 0;
    for (int q = 0; q < kc; q++) {
        const float *bq = b + (size_t)q * NR;
        for (int i = 0; i < MR; i++) {
            float a = xr[i][q];
            for (int j = 0; j < NR; j++) t[i][j] += a * bq[j];
        }
    }
}

static void matvec_c(int n, int k, const float *x, const float *packed, float *y, int p0, int p1) {
    for (int p = p0; p < p1; p++) {
        float acc[NR] = {0};
        const float *b = packed + (size_t)p * k * NR;
        for (int q = 0; q < k; q++) for (int j = 0; j < NR; j++) acc[j] += x[q] * b[(size_t)q * NR + j];
        int cols = n - p * NR < NR ? n - p * NR : NR;
        memcpy(y + p * NR, acc, (size_t)cols * sizeof(float));
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

// The 4 x 24 tile: t[4][24] = sum over kc of x rows xr[i] times the panel block b. Inline
// assembly keeps the 12 accumulators in ymm4..ymm15, W in ymm0..ymm2 and the broadcast in ymm3:
// written with intrinsics, clang (SwiftPM's C compiler) spilled an accumulator inside the loop and
// ran at half the speed gcc's code did. xr rows may repeat (short tiles); the caller keeps what it
// needs. Needs kc >= 1.
static void tile_avx2(long kc, const float *const xr[MR], const float *b, float t[MR * NR]) {
    const float *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3];
    long q = 0;
    __asm__ volatile(
        "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"   "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
        "vxorps %%ymm6, %%ymm6, %%ymm6\n\t"   "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"
        "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"   "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"
        "vxorps %%ymm10, %%ymm10, %%ymm10\n\t" "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
        "vxorps %%ymm12, %%ymm12, %%ymm12\n\t" "vxorps %%ymm13, %%ymm13, %%ymm13\n\t"
        "vxorps %%ymm14, %%ymm14, %%ymm14\n\t" "vxorps %%ymm15, %%ymm15, %%ymm15\n\t"
        "1:\n\t"
        "vmovups (%[b]), %%ymm0\n\t"
        "vmovups 32(%[b]), %%ymm1\n\t"
        "vmovups 64(%[b]), %%ymm2\n\t"
        "vbroadcastss (%[x0],%[q],4), %%ymm3\n\t"
        "vfmadd231ps %%ymm0, %%ymm3, %%ymm4\n\t"
        "vfmadd231ps %%ymm1, %%ymm3, %%ymm5\n\t"
        "vfmadd231ps %%ymm2, %%ymm3, %%ymm6\n\t"
        "vbroadcastss (%[x1],%[q],4), %%ymm3\n\t"
        "vfmadd231ps %%ymm0, %%ymm3, %%ymm7\n\t"
        "vfmadd231ps %%ymm1, %%ymm3, %%ymm8\n\t"
        "vfmadd231ps %%ymm2, %%ymm3, %%ymm9\n\t"
        "vbroadcastss (%[x2],%[q],4), %%ymm3\n\t"
        "vfmadd231ps %%ymm0, %%ymm3, %%ymm10\n\t"
        "vfmadd231ps %%ymm1, %%ymm3, %%ymm11\n\t"
        "vfmadd231ps %%ymm2, %%ymm3, %%ymm12\n\t"
        "vbroadcastss (%[x3],%[q],4), %%ymm3\n\t"
        "vfmadd231ps %%ymm0, %%ymm3, %%ymm13\n\t"
        "vfmadd231ps %%ymm1, %%ymm3, %%ymm14\n\t"
        "vfmadd231ps %%ymm2, %%ymm3, %%ymm15\n\t"
        "add $96, %[b]\n\t"
        "inc %[q]\n\t"
        "cmp %[kc], %[q]\n\t"
        "jl 1b\n\t"
        "vmovups %%ymm4, (%[t])\n\t"    "vmovups %%ymm5, 32(%[t])\n\t"  "vmovups %%ymm6, 64(%[t])\n\t"
        "vmovups %%ymm7, 96(%[t])\n\t"  "vmovups %%ymm8, 128(%[t])\n\t" "vmovups %%ymm9, 160(%[t])\n\t"
        "vmovups %%ymm10, 192(%[t])\n\t" "vmovups %%ymm11, 224(%[t])\n\t" "vmovups %%ymm12, 256(%[t])\n\t"
        "vmovups %%ymm13, 288(%[t])\n\t" "vmovups %%ymm14, 320(%[t])\n\t" "vmovups %%ymm15, 352(%[t])\n\t"
        "vzeroupper\n\t"
        : [b] "+r"(b), [q] "+r"(q)
        : [x0] "r"(x0), [x1] "r"(x1), [x2] "r"(x2), [x3] "r"(x3), [kc] "r"(kc), [t] "r"(t)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
          "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

AVX2 static void gemm_avx2(int m, int n, int k, const float *x, const float *packed, float *y, int p0, int p1) {
    float t[MR * NR];
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC;
        for (int p = p0; p < p1; p++) {
            const float *b = packed + ((size_t)p * k + k0) * NR;
            int cols = n - p * NR < NR ? n - p * NR : NR;
            for (int r = 0; r < m; r += MR) {
                int rows = m - r < MR ? m - r : MR;
                const float *xr[MR];
                for (int i = 0; i < MR; i++) xr[i] = x + (size_t)(r + (i < rows ? i : 0)) * k + k0;
                tile_avx2(kc, xr, b, t);
                float *out = y + (size_t)r * n + p * NR;
                if (cols == NR) {
                    for (int i = 0; i < rows; i++) {
                        float *o = out + (size_t)i * n;
                        const float *ti = t + i * NR;
                        for (int v = 0; v < NR; v += 8) {
                            __m256 a = _mm256_loadu_ps(ti + v);
                            if (k0 > 0) a = _mm256_add_ps(a, _mm256_loadu_ps(o + v));
                            _mm256_storeu_ps(o + v, a);
                        }
                    }
                } else {
                    for (int i = 0; i < rows; i++)
                        for (int j = 0; j < cols; j++)
                            out[(size_t)i * n + j] = (k0 > 0 ? out[(size_t)i * n + j] : 0) + t[i * NR + j];
                }
            }
        }
    }
}

// One panel at a time, k unrolled by two into two accumulator sets (FMA latency), summed at the end.
AVX2 static void matvec_avx2(int n, int k, const float *x, const float *packed, float *y, int p0, int p1) {
    for (int p = p0; p < p1; p++) {
        const float *b = packed + (size_t)p * k * NR;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, d0 = a0, d1 = a0, d2 = a0;
        int q = 0;
        for (; q + 2 <= k; q += 2, b += 2 * NR) {
            __m256 u = _mm256_broadcast_ss(x + q), v = _mm256_broadcast_ss(x + q + 1);
            a0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(b), a0);
            a1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(b + 8), a1);
            a2 = _mm256_fmadd_ps(u, _mm256_loadu_ps(b + 16), a2);
            d0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(b + 24), d0);
            d1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(b + 32), d1);
            d2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(b + 40), d2);
        }
        if (q < k) {
            __m256 u = _mm256_broadcast_ss(x + q);
            a0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(b), a0);
            a1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(b + 8), a1);
            a2 = _mm256_fmadd_ps(u, _mm256_loadu_ps(b + 16), a2);
        }
        float acc[NR];
        _mm256_storeu_ps(acc, _mm256_add_ps(a0, d0));
        _mm256_storeu_ps(acc + 8, _mm256_add_ps(a1, d1));
        _mm256_storeu_ps(acc + 16, _mm256_add_ps(a2, d2));
        int cols = n - p * NR < NR ? n - p * NR : NR;
        memcpy(y + p * NR, acc, (size_t)cols * sizeof(float));
    }
}

static _Atomic int portable_only;   // cgemm_set_portable(1): tests of the portable loops

int cgemm_uses_avx2(void) {
    // Pool workers ask at once: the cached answer is an atomic (a plain static was a data race
    // under ThreadSanitizer, though every thread stored the same value).
    static _Atomic int cached = -1;
    int c = atomic_load_explicit(&cached, memory_order_relaxed);
    if (c < 0) {
        __builtin_cpu_init();
        c = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        atomic_store_explicit(&cached, c, memory_order_relaxed);
    }
    return c && !atomic_load_explicit(&portable_only, memory_order_relaxed);
}

void cgemm_set_portable(int on) { atomic_store_explicit(&portable_only, on, memory_order_relaxed); }
#else
int cgemm_uses_avx2(void) { return 0; }
void cgemm_set_portable(int on) { (void)on; }
#endif

static void gemm_c(int m, int n, int k, const float *x, const float *packed, float *y, int p0, int p1) {
    float t[MR][NR];
    for (int p = p0; p < p1; p++) {
        const float *b = packed + (size_t)p * k * NR;
        int cols = n - p * NR < NR ? n - p * NR : NR;
        for (int r = 0; r < m; r += MR) {
            int rows = m - r < MR ? m - r : MR;
            const float *xr[MR];
            for (int i = 0; i < MR; i++) xr[i] = x + (size_t)(r + (i < rows ? i : 0)) * k;
            tile_c(k, xr, b, t);
            for (int i = 0; i < rows; i++) memcpy(y + (size_t)(r + i) * n + p * NR, t[i], (size_t)cols * sizeof(float));
        }
    }
}

// y[m, n] = x[m, k] W^T, output columns of panels [p0, p1).
static void gemm_panels(int m, int n, int k, const float *x, const float *packed, float *y, int p0, int p1) {
#if defined(__x86_64__)
    if (cgemm_uses_avx2()) { gemm_avx2(m, n, k, x, packed, y, p0, p1); return; }
#endif
    gemm_c(m, n, k, x, packed, y, p0, p1);
}

// y[n] = W x for the rows of panels [p0, p1).
static void matvec_panels(int n, int k, const float *x, const float *packed, float *y, int p0, int p1) {
#if defined(__x86_64__)
    if (cgemm_uses_avx2()) { matvec_avx2(n, k, x, packed, y, p0, p1); return; }
#endif
    matvec_c(n, k, x, packed, y, p0, p1);
}

// cgemm_linear: the panels in `parts` contiguous ranges on the pool (a struct on this stack is
// the context, so a call allocates nothing).
struct linear_job { int m, n, k, panels, parts; const float *x, *packed; float *y; };

static void linear_part(void *ctx, int i) {
    const struct linear_job *j = ctx;
    int p0 = j->panels * i / j->parts, p1 = j->panels * (i + 1) / j->parts;
    if (j->m == 1) matvec_panels(j->n, j->k, j->x, j->packed, j->y, p0, p1);
    else gemm_panels(j->m, j->n, j->k, j->x, j->packed, j->y, p0, p1);
}

void cgemm_linear(int m, int n, int k, const float *x, const float *packed, float *y, int threads) {
    int panels = cgemm_panels(n);
    int parts = (double)m * n * k >= 65536 ? threads : 1;
    if (parts > panels) parts = panels;
    if (parts < 1) parts = 1;
    struct linear_job j = { m, n, k, panels, parts, x, packed, y };
    if (parts == 1) linear_part(&j, 0);
    else cpool_run(parts, threads, linear_part, &j);
}
