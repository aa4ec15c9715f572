// Helpers shared by the test targets: a seeded PRNG, the edit-cli binary SwiftPM built beside the
// test bundle, and running it to the end.

import Foundation

/// splitmix64: the same sequence on every machine, so a failing random case is reproducible.
public struct SeededRandom: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The edit-cli binary SwiftPM built into the same products folder as this test bundle: beside
/// the runner (arguments[0]), beside an .xctest bundle, or up to four folders above the runner.
public func editCLIPath() -> String? {
    var candidates = [((CommandLine.arguments[0] as NSString).deletingLastPathComponent as NSString).appendingPathComponent("edit-cli")]
    for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") {
        candidates.append((b.bundlePath as NSString).deletingLastPathComponent + "/edit-cli")
    }
    if let exe = Bundle.main.executablePath {
        var d = (exe as NSString).deletingLastPathComponent
        for _ in 0..<4 {
            candidates.append(d + "/edit-cli")
            d = (d as NSString).deletingLastPathComponent
        }
    }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}

public struct CLIResult {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status; self.stdout = stdout; self.stderr = stderr
    }
}

/// Runs `exe` with `args` (in `directory` when given) to the end, collecting its exit status and
/// both outputs.
public func runCLI(_ exe: String, _ args: [String], in directory: URL? = nil) throws -> CLIResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    if let directory { p.currentDirectoryURL = directory }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}
