// See cpool.h. One job at a time: `state` holds (generation << 32 | next index to claim); a
// participant reads the job's fields, then claims an index with a compare-and-swap of the state
// it read them under. Before the fields of a new job are written, the old generation is retired:
// the state moves to a generation of its own whose index (UINT32_MAX) no job reaches, and only
// then to the new job's generation with index 0. So a claim made with fields read under an older
// state fails (without that step, a worker that saw a finished job's final state and then the
// next job's larger count claimed one index too many: found by the pool test as an index run
// twice, about once in 100,000 regions).
// Sleeping: a worker that has seen no new job for SPIN_NS waits on a condition variable; the
// caller signals only when `sleepers` says someone waits (both sides use sequentially consistent
// atomics, and the wait itself is under the mutex, so no wake-up is lost).
#define _GNU_SOURCE
#include "cpool.h"
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define RELAX() _mm_pause()
#else
#define RELAX() ((void)0)
#endif

#define MAX_WORKERS 63
#define SPIN_NS 2000000L   // 2 ms: longer than any gap between regions of a forward pass
#define YIELD_AFTER 4096   // pauses before a spinning thread also yields its CPU to others

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;  // one job at a time
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static _Atomic uint64_t state;          // generation << 32 | next index
static _Atomic int done;                // indices finished in the current job
static _Atomic int sleepers;
static int started;                     // workers started (under run_lock)
static _Thread_local int in_region;     // set while this thread runs a region's calls
// The current job; atomics (relaxed: `state` orders them) because a worker may still read them
// while the next job is being set up, and then discards what it read.
static _Atomic(cpool_fn) job_fn;
static void *_Atomic job_ctx;
static _Atomic int job_n;

// CPUs this process may run on: more spinning threads than that only take turns (with --threads
// 8 on 2 cores a prefill ran 4x slower), so the pool never has more participants.
int cpool_usable_cpus(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

// Claims and runs indices of generation `gen` until none is left.
static void drain(uint32_t gen) {
    for (;;) {
        uint64_t s = atomic_load(&state);
        if ((uint32_t)(s >> 32) != gen) return;
        // The fields are read before the claim; a successful claim proves they belong to `gen`.
        cpool_fn fn = atomic_load_explicit(&job_fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&job_ctx, memory_order_relaxed);
        int n = atomic_load_explicit(&job_n, memory_order_relaxed);
        uint32_t i = (uint32_t)s;
        if (i >= (uint32_t)n) return;
        if (!atomic_compare_exchange_weak(&state, &s, s + 1)) continue;
        in_region = 1;
        fn(ctx, (int)i);
        in_region = 0;
        atomic_fetch_add(&done, 1);
    }
}

static void *worker(void *arg) {
    (void)arg;
    uint32_t seen = (uint32_t)(atomic_load(&state) >> 32);
    for (;;) {
        long idle_since = now_ns();
        unsigned spins = 0;
        while ((uint32_t)(atomic_load(&state) >> 32) == seen) {
            RELAX();
            if (++spins >= YIELD_AFTER) sched_yield();
            if (spins % 1024 == 0 && now_ns() - idle_since > SPIN_NS) {
                pthread_mutex_lock(&sleep_lock);
                atomic_fetch_add(&sleepers, 1);
                while ((uint32_t)(atomic_load(&state) >> 32) == seen) pthread_cond_wait(&wake, &sleep_lock);
                atomic_fetch_sub(&sleepers, 1);
                pthread_mutex_unlock(&sleep_lock);
            }
        }
        seen = (uint32_t)(atomic_load(&state) >> 32);
        drain(seen);
    }
    return 0;
}

void cpool_run(int n, int threads, cpool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (n == 1 || threads <= 1 || in_region) {   // a region inside a region runs inline
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&run_lock);
    static int cpus;
    if (!cpus) cpus = cpool_usable_cpus();
    int want = (threads < cpus ? threads : cpus) - 1;
    if (want > MAX_WORKERS) want = MAX_WORKERS;
    while (started < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker, 0) != 0) { pthread_attr_destroy(&attr); break; }
        pthread_attr_destroy(&attr);
        started++;
    }
    uint32_t retired = (uint32_t)(atomic_load(&state) >> 32) + 1, gen = retired + 1;
    atomic_store(&state, (uint64_t)retired << 32 | UINT32_MAX);   // no claim succeeds from here
    atomic_store_explicit(&job_fn, fn, memory_order_relaxed);
    atomic_store_explicit(&job_ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&job_n, n, memory_order_relaxed);
    atomic_store(&done, 0);
    atomic_store(&state, (uint64_t)gen << 32);        // publishes the fields above
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    drain(gen);
    // The last indices may be on a worker that another thread displaced: yield after a while.
    for (unsigned spins = 0; atomic_load(&done) < n; spins++) {
        RELAX();
        if (spins >= YIELD_AFTER) sched_yield();
    }
    pthread_mutex_unlock(&run_lock);
}
