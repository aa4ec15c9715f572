// swift-tools-version:5.9
// No package dependencies: the build machine cannot fetch any. System libraries only.
import PackageDescription

let package = Package(
    name: "SteeringBake",
    products: [
        .library(name: "StrictJSON", targets: ["StrictJSON"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "Editor", targets: ["Editor"]),
        .executable(name: "edit-cli", targets: ["edit-cli"]),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // SHA-256 with the x86 SHA extensions (checksums of whole checkpoints), chosen at run time.
        .target(name: "CSHA256"),
        // The engine's C kernels: f32 GEMM/matvec on weights packed at load (AVX2+FMA chosen at run
        // time) and a spinning fork-join pool for its parallel regions.
        .target(name: "CKernels"),
        // O_DIRECT and fallocate for the checkpoint writer (not exposed by Swift's Glibc module).
        .target(name: "CFileIO"),
        .target(name: "StrictJSON"),
        .target(name: "SafeTensors", dependencies: ["StrictJSON", "CFileIO"]),
        .target(name: "Tokenizers", dependencies: ["StrictJSON"]),
        .target(name: "Engine", dependencies: ["SafeTensors", "Tokenizers", "COpenBLAS", "CKernels"]),
        .target(name: "Editor", dependencies: ["SafeTensors", "Engine", "CZlib", "CSHA256"]),
        .executableTarget(name: "edit-cli", dependencies: ["SafeTensors", "Tokenizers", "Engine", "Editor"]),
        // Helpers of several test targets: seeded PRNG, the built edit-cli and running it.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "TestSupport", "CFileIO"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "SafeTensors", "CKernels"]),
        .testTarget(name: "EditorTests", dependencies: ["Editor", "Engine", "SafeTensors", "TestSupport"]),
        // Mutation sweeps over every parser of user files, and crash/kill tests of the writers.
        .testTarget(name: "ReliabilityTests", dependencies: ["SafeTensors", "Tokenizers", "Engine", "Editor", "TestSupport"]),
    ]
)
