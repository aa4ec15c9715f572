// Shared by every fuzz target: the libFuzzer input as bytes, and a per-process scratch file for
// parsers that only read paths.
import Foundation

func inputBytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Writes `bytes` to /dev/shm (or /tmp) as `name` and returns the path; reused across runs.
func scratchFile(_ bytes: [UInt8], name: String) -> String {
    let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let path = "\(dir)/fuzz-\(getpid())-\(name)"
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
    return path
}

/// Fails the run (libFuzzer reports a crash) when a parser throws something that is not its typed error.
func unexpected(_ error: Error) -> Never {
    fatalError("untyped error \(type(of: error)): \(error)")
}
