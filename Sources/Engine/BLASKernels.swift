// Which OpenBLAS kernels this process runs.
//
// Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from the CPU model when the library
// loads. It does not know AVX-512 CPUs newer than it (AMD Zen 4 EPYC/Ryzen: it falls back to its
// Haswell AVX2 kernels), although its SkylakeX kernels run on them: on a 2-core Zen 4 they made
// SmolLM2-135M prefill 1.35x faster (763-776 -> 1016-1067 tokens/s). The choice is made in a library
// constructor, before any Swift code runs, and can only be changed through the environment variable
// OPENBLAS_CORETYPE, so the command line re-executes itself once with it set (`main.swift`).
// A user's own OPENBLAS_CORETYPE always wins; nothing changes on CPUs OpenBLAS recognises.

import COpenBLAS
import Foundation

public enum BLASKernels {
    /// The kernel family OpenBLAS selected for this process ("Haswell", "SkylakeX", ...).
    public static var current: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// AVX-512 subsets the SkylakeX kernels use. Linux lists a flag in /proc/cpuinfo only when
    /// both the CPU and the kernel support it (the kernel saves the ZMM state), which is the
    /// condition for running them.
    static let skylakeXFlags = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    /// The core type to ask OpenBLAS for, or nil to leave its choice alone: "SkylakeX" when it
    /// chose AVX2 kernels (Haswell or Zen) on a CPU whose `cpuinfo` flags have every subset above.
    public static func betterCoreType(current: String, cpuinfo: String) -> String? {
        guard ["haswell", "zen"].contains(current.lowercased()) else { return nil }
        guard let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).map(String.init))
        return skylakeXFlags.allSatisfy(flags.contains) ? "SkylakeX" : nil
    }

    /// The core type this process should be re-executed with, or nil (already set by the user or
    /// by a previous exec, or no better choice).
    public static func coreTypeToRequest() -> String? {
        guard getenv("OPENBLAS_CORETYPE") == nil,
              let data = FileManager.default.contents(atPath: "/proc/cpuinfo"),
              let text = String(data: data, encoding: .utf8) else { return nil }
        return betterCoreType(current: current, cpuinfo: text)
    }
}
