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
