// Which OpenBLAS kernels this process runs, for benchmark reports. OpenBLAS (DYNAMIC_ARCH) picks
// them from the CPU when it loads, unless OPENBLAS_CORETYPE names them: the machines this project
// is benchmarked on set OPENBLAS_CORETYPE=Haswell (AVX2), so the published figures are AVX2 ones.

import COpenBLAS

public enum BLASKernels {
    /// The kernel family OpenBLAS selected for this process ("Haswell", "SkylakeX", ...).
    public static var current: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }
}

extension BLASKernels {
    /// Stops OpenBLAS's worker threads now. OpenBLAS starts them when it loads, and each spins
    /// (sched_yield) for ~0.1 s before sleeping, at start and after every threaded call: in a
    /// SmolLM2 bake (0.4 s, no BLAS at all) that was ~0.07 CPU-s taken from the bake's own
    /// threads on two cores. The next threaded BLAS call starts them again, so this is safe
    /// whenever no BLAS call is running (commands call it before any work).
    public static func stopIdleWorkers() {
        _ = blas_thread_shutdown_()
    }
}
