// Output safety of the writers: the real `edit-cli convert` killed with SIGKILL at several points
// while it writes, a source truncated under it, thrown errors, a full disk (a 2 MB tmpfs when this
// process may mount one, and RLIMIT_FSIZE always) and permission errors. Invariants:
//  1. the target is absent, or complete and valid (never partial);
//  2. the source is never modified (checksummed before and after);
//  3. a thrown error leaves no temporary folder; a SIGKILL leaves at most the dead process's
//     `.<target>.tmp-<pid>` folder, never anything at the target path.

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import TestSupport
@testable import SafeTensors
@testable import Editor

final class OutputSafetyTests: XCTestCase {
    // MARK: fixtures

    /// tiny_llama.gguf grown to `layers` layers (blk.0/1 repeated): about 125 KB of f32 output per
    /// layer, so a conversion runs long enough to be interrupted while it writes.
    static func makeLongGGUF(layers: Int, at path: String) throws {
        let src = try GGUFFile(path: "\(fixturesRoot)/gguf/tiny_llama.gguf")
        var w = GGUFWriter()
        for k in src.metadataKeys {
            w.set(k, k == "llama.block_count" ? .uint32(UInt32(layers)) : src.metadata[k]!) // programmer error: keys from the file
        }
        w.alignment = src.alignment
        func copy(_ name: String, as newName: String) throws {
            let t = try XCTUnwrap(src.tensorInfo(name))
            w.tensors.append(GGUFWriter.Tensor(name: newName, type: t.type, dims: t.dims, data: [UInt8](try src.bytes(name))))
        }
        for n in ["token_embd.weight", "output_norm.weight", "output.weight"] { try copy(n, as: n) }
        let perLayer = src.tensors.map(\.name).filter { $0.hasPrefix("blk.0.") }.map { String($0.dropFirst("blk.0.".count)) }
        for l in 0..<layers { for s in perLayer { try copy("blk.\(l % 2).\(s)", as: "blk.\(l).\(s)") } }
        try writeFile(path, w.serialized())
    }

    static func checksum(_ path: String) throws -> UInt64 {
        // FNV-1a over the file: enough to detect any modification here.
        let bytes = try readFile(path)
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h ^ UInt64(bytes.count)
    }

    /// The temporary folder of a writer: `.<target>.tmp-<pid>` plus whatever suffix it adds.
    static func find(prefix: String, in dir: String) -> String? {
        (try? FileManager.default.contentsOfDirectory(atPath: dir))?.first { $0.hasPrefix(prefix) }.map { dir + "/" + $0 }
    }

    static func folderSize(_ dir: String) -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return 0 }
        return names.reduce(0) { acc, n in
            acc + ((try? FileManager.default.attributesOfItem(atPath: dir + "/" + n)[.size] as? Int) ?? 0)
        }
    }

    func requireCLI() throws -> String {
        guard let cli = editCLIPath() else {
            throw XCTSkip("edit-cli is not built next to the test bundle (run `swift build -c release --product edit-cli` first)")
        }
        return cli
    }

    /// Every file of `out` equals the same file in `reference` (a conversion that ran to the end).
    func assertCompleteCopy(_ out: String, of reference: String, _ label: String) throws {
        let want = try FileManager.default.contentsOfDirectory(atPath: reference).sorted()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), want, label)
        for n in want where n != "model.safetensors" {
            XCTAssertEqual(try readFile(out + "/" + n), try readFile(reference + "/" + n), "\(label): \(n)")
        }
        XCTAssertEqual(try Self.checksum(out + "/model.safetensors"), try Self.checksum(reference + "/model.safetensors"), "\(label): model.safetensors")
        XCTAssertNoThrow(try Checkpoint(directory: out), label)
    }

    /// Runs the CLI with `arguments(out)` once per fraction into `dir/out<k>`, SIGKILLs it when its
    /// temporary folder holds `fraction` of `total` bytes, and checks: the target is absent or a
    /// complete copy of `reference`; nothing but the dead process's temporary folder is left; a
    /// rerun with --force into the same target then succeeds. Returns how many kills landed while
    /// the process was still writing.
    func killWhileWriting(_ cli: String, in dir: String, fractions: [Double], total: Int, reference: String,
                          label command: String, arguments: (String) -> [String]) throws -> Int {
        var killedWhileWriting = 0
        for (k, fraction) in fractions.enumerated() {
            let out = dir + "/out\(k)"
            let p = try Process.run(URL(fileURLWithPath: cli), arguments: arguments(out))
            let tempPrefix = ".out\(k).tmp-\(p.processIdentifier)"
            // Poll until the temporary folder holds `fraction` of the output, then SIGKILL.
            let deadline = Date().addingTimeInterval(60)
            var temp: String?
            while p.isRunning && Date() < deadline {
                if temp == nil { temp = Self.find(prefix: tempPrefix, in: dir) }
                if let temp, Double(Self.folderSize(temp)) >= fraction * Double(total) { break }
                usleep(200)
            }
            let wasRunning = p.isRunning
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            if wasRunning && p.terminationReason == .uncaughtSignal { killedWhileWriting += 1 }
            let label = "\(command) killed at \(fraction) of the output (status \(p.terminationStatus), running \(wasRunning))"
            if FileManager.default.fileExists(atPath: out) {
                try assertCompleteCopy(out, of: reference, label)
            }
            // Nothing but the dead process's temporary folder may be left beside the target.
            let stray = try FileManager.default.contentsOfDirectory(atPath: dir)
                .filter { $0.hasPrefix(".out\(k).") && !$0.hasPrefix(tempPrefix) }
            XCTAssertEqual(stray, [], label)
            print("kill test: \(label): target \(FileManager.default.fileExists(atPath: out) ? "complete" : "absent")")
            // A new run into the same target succeeds despite the leftover.
            let again = try runCLI(cli, arguments(out) + ["--force"])
            XCTAssertEqual(again.status, 0, again.stderr)
            try assertCompleteCopy(out, of: reference, "\(label), then rerun")
            try? FileManager.default.removeItem(atPath: out)
            if let temp { try? FileManager.default.removeItem(atPath: temp) }
        }
        return killedWhileWriting
    }

    // MARK: SIGKILL during convert

    func testConvertKilledAtAnyPointLeavesNoPartialTarget() throws {
        let cli = try requireCLI()
        let dir = try makeTempDir("kill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gguf = dir + "/long.gguf"
        try Self.makeLongGGUF(layers: 600, at: gguf)
        let sourceSum = try Self.checksum(gguf)

        // A complete run gives the reference output and its size.
        let reference = dir + "/reference"
        let full = try runCLI(cli, ["convert", gguf, "--out", reference])
        XCTAssertEqual(full.status, 0, full.stderr)
        let total = Self.folderSize(reference)
        XCTAssertGreaterThan(total, 50 << 20)

        let killedWhileWriting = try killWhileWriting(cli, in: dir, fractions: [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 0.999, 1.5],
                                                      total: total, reference: reference, label: "convert") { out in
            ["convert", gguf, "--out", out]
        }
        XCTAssertGreaterThanOrEqual(killedWhileWriting, 4, "most kills must land while the output is being written")
        XCTAssertEqual(try Self.checksum(gguf), sourceSum, "the source GGUF was modified")
    }

    // MARK: SIGKILL during bake

    /// A ~75 MB f32 safetensors model (the long GGUF converted) and a full-residual ablation
    /// recipe for it: a bake edits the embedding and every o_proj/down_proj (pwritten) and copies
    /// the rest in the kernel, so kills land in both lanes.
    static func makeBakeSource(in dir: String) throws -> (model: String, recipe: String) {
        let gguf = dir + "/long.gguf"
        try makeLongGGUF(layers: 600, at: gguf)
        let model = dir + "/model"
        _ = try GGUFConverter.convert(gguf: gguf, to: model)
        try FileManager.default.removeItem(atPath: gguf)
        let config = try JSONValue.parse(data: readFile(model + "/config.json"))
        let hidden = try XCTUnwrap(config["hidden_size"]?.intValue)
        let direction = (0..<hidden).map { k in String(format: "%.4f", sin(Double(k) + 1)) }.joined(separator: ", ")
        let recipe = dir + "/ablate.json"
        try writeFile(recipe, Array(#"{"interventions": [{"op": "ablate", "point": "residual", "direction": [\#(direction)]}]}"#.utf8))
        return (model, recipe)
    }

    func testBakeKilledAtAnyPointLeavesNoPartialTarget() throws {
        let cli = try requireCLI()
        let dir = try makeTempDir("killbake")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (model, recipe) = try Self.makeBakeSource(in: dir)
        let sourceSum = try Self.checksum(model + "/model.safetensors")

        let reference = dir + "/reference"
        let full = try runCLI(cli, ["bake", model, "--recipe", recipe, "--out", reference])
        XCTAssertEqual(full.status, 0, full.stderr)
        let total = Self.folderSize(reference)
        XCTAssertGreaterThan(total, 50 << 20)

        let killedWhileWriting = try killWhileWriting(cli, in: dir, fractions: [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999, 1.5],
                                                      total: total, reference: reference, label: "bake") { out in
            ["bake", model, "--recipe", recipe, "--out", out]
        }
        XCTAssertGreaterThanOrEqual(killedWhileWriting, 4, "most kills must land while the output is being written")
        XCTAssertEqual(try Self.checksum(model + "/model.safetensors"), sourceSum, "the source model was modified")
    }

    /// Untouched tensors are copied from the source file by the kernel; a source that shrinks
    /// before that copy is an error naming the file and tensor (not a SIGBUS), and nothing is left.
    func testSourceTruncatedBeforeKernelCopy() throws {
        let dir = try makeTempDir("truncsrc")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = dir + "/src.safetensors"
        let a = [Float](repeating: 0.25, count: 1 << 18), b = [Float](repeating: -1, count: 1 << 18)
        try writeSafeTensors(path: src, tensors: [TensorRecord(name: "a", shape: [a.count], floats: a),
                                                  TensorRecord(name: "b", shape: [b.count], floats: b)])
        let file = try SafeTensorsFile(path: src)
        // An intact source copies byte for byte through the kernel lane.
        let w = try CheckpointWriter(target: dir + "/ok")
        for n in ["a", "b"] { try w.add(TensorRecord(name: n, dtype: .F32, shape: [1 << 18], source: .bytes(try file.bytes(n)))) }
        try w.commit()
        let copy = try SafeTensorsFile(path: dir + "/ok/model.safetensors")
        XCTAssertEqual(try copy.floats("a"), a)
        XCTAssertEqual(try copy.floats("b"), b)
        // Now cut the source in the middle of "b" while it is mapped.
        let end = file.dataStart + file.entries["b"]!.begin + 1000
        XCTAssertEqual(truncate(src, off_t(end)), 0)
        let w2 = try CheckpointWriter(target: dir + "/cut")
        for n in ["a", "b"] { try w2.add(TensorRecord(name: n, dtype: .F32, shape: [1 << 18], source: .bytes(try file.bytes(n)))) }
        XCTAssertThrowsError(try w2.commit()) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .io, "\(e)")
            XCTAssertTrue("\(e)".contains("'b'") && "\(e)".contains("ended"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/cut"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["ok", "src.safetensors"], "temporary folder left behind")
    }

    /// The source shrinks under a running convert (another process truncates it). The reader maps
    /// the file, so touching a page past the new end raises SIGBUS and the process dies; the
    /// target must still be absent (or complete, if the truncation came too late to matter).
    func testSourceTruncatedDuringConvert() throws {
        let cli = try requireCLI()
        let dir = try makeTempDir("truncate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gguf = dir + "/long.gguf"
        try Self.makeLongGGUF(layers: 600, at: gguf)
        let size = try readFile(gguf).count
        let out = dir + "/out"
        let p = try Process.run(URL(fileURLWithPath: cli), arguments: ["convert", gguf, "--out", out])
        let deadline = Date().addingTimeInterval(60)
        var temp: String?
        while p.isRunning && Date() < deadline {
            if temp == nil { temp = Self.find(prefix: ".out.tmp-\(p.processIdentifier)", in: dir) }
            if let temp, Self.folderSize(temp) > 4 << 20 { break }
            usleep(200)
        }
        XCTAssertEqual(truncate(gguf, off_t(size / 2)), 0)
        p.waitUntilExit()
        let how = p.terminationReason == .uncaughtSignal ? "signal \(p.terminationStatus)" : "exit \(p.terminationStatus)"
        print("truncate test: convert ended with \(how); target \(FileManager.default.fileExists(atPath: out) ? "present" : "absent")")
        if FileManager.default.fileExists(atPath: out) {
            XCTAssertEqual(p.terminationStatus, 0)
            XCTAssertNoThrow(try Checkpoint(directory: out))
        } else {
            XCTAssertNotEqual(p.terminationStatus, 0)
        }
    }

    // MARK: thrown errors

    func testThrownErrorMidWriteRemovesTemporaryFolder() throws {
        let dir = try makeTempDir("throw")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        struct Boom: Error {}
        let w = try CheckpointWriter(target: dir + "/out", maxShardSize: 1000)
        try w.addFile(name: "config.json", contents: Array("{}".utf8))
        try w.add(TensorRecord(name: "a", shape: [200], floats: [Float](repeating: 1, count: 200)))
        try w.add(TensorRecord(name: "b", dtype: .F32, shape: [200], source: .produce { throw Boom() }))
        XCTAssertThrowsError(try w.commit()) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [], "target or temporary folder left behind")

        // convert: a GGUF whose tensor data is cut short is refused before anything is written.
        let gguf = dir + "/cut.gguf"
        var bytes = try readFile("\(fixturesRoot)/gguf/tiny_llama.gguf")
        bytes.removeLast(1000)
        try writeFile(gguf, bytes)
        XCTAssertThrowsError(try GGUFConverter.convert(gguf: gguf, to: dir + "/hf"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["cut.gguf"])
    }

    // MARK: disk full, permissions

    /// Mounts a 2 MB tmpfs when allowed (root in a container that permits it), else skips.
    func testDiskFullOnTmpfs() throws {
        let mnt = try makeTempDir("tmpfs")
        defer { try? FileManager.default.removeItem(atPath: mnt) }
        guard mount("tmpfs", mnt, "tmpfs", 0, "size=2m") == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (\(String(cString: strerror(errno)))); RLIMIT_FSIZE test covers ENOSPC-like failures")
        }
        defer { umount(mnt) }
        let w = try CheckpointWriter(target: mnt + "/out")
        try w.add(TensorRecord(name: "big", shape: [1 << 20], floats: [Float](repeating: 0.5, count: 1 << 20)))
        XCTAssertThrowsError(try w.commit()) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .io)
            XCTAssertTrue("\(e)".contains("No space left"), "\(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mnt), [], "disk full left files behind")

        // The real CLI on a full disk: exit 2, one line, nothing left.
        if let cli = editCLIPath() {
            let src = try makeTempDir("tmpfs-src")
            defer { try? FileManager.default.removeItem(atPath: src) }
            try Self.makeLongGGUF(layers: 40, at: src + "/long.gguf")   // ~5 MB of output
            let r = try runCLI(cli, ["convert", src + "/long.gguf", "--out", mnt + "/hf"])
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains("No space left"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mnt), [])

            // bake of the same model (converted on the real disk) into the full tmpfs: both lanes
            // of the writer and the late headers meet ENOSPC; exit 2, one line, nothing left.
            _ = try GGUFConverter.convert(gguf: src + "/long.gguf", to: src + "/model")
            let sum = try Self.checksum(src + "/model/model.safetensors")
            let config = try JSONValue.parse(data: readFile(src + "/model/config.json"))
            let hidden = try XCTUnwrap(config["hidden_size"]?.intValue)
            try writeFile(src + "/ablate.json", Array(#"{"interventions": [{"op": "ablate", "point": "residual", "direction": [\#((0..<hidden).map { String(Double($0 % 7) - 3) }.joined(separator: ", "))]}]}"#.utf8))
            let b = try runCLI(cli, ["bake", src + "/model", "--recipe", src + "/ablate.json", "--out", mnt + "/baked"])
            XCTAssertEqual(b.status, 2, b.stderr)
            XCTAssertTrue(b.stderr.contains("No space left"), b.stderr)
            XCTAssertEqual(b.stderr.split(separator: "\n").count, 1, b.stderr)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mnt), [], "bake on a full disk left files behind")
            XCTAssertEqual(try Self.checksum(src + "/model/model.safetensors"), sum, "the source was modified")
        }
    }

    /// A file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes write() fail with EFBIG at a chosen
    /// size, like a disk filling up in the middle of a shard; works without privileges.
    func testFileSizeLimitMidShard() throws {
        let cli = try requireCLI()
        let dir = try makeTempDir("fsize")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gguf = dir + "/long.gguf"
        try Self.makeLongGGUF(layers: 40, at: gguf)
        let sum = try Self.checksum(gguf)
        // ulimit -f counts 1024-byte blocks: 1 MB, well inside the ~5 MB model.safetensors.
        let r = try runCLI("/bin/sh", ["-c", "trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\"", cli, "convert", gguf, "--out", dir + "/hf"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("File too large"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["long.gguf"], "the failed write left files behind")
        XCTAssertEqual(try Self.checksum(gguf), sum)
    }

    func testPermissionDenied() throws {
        let dir = try makeTempDir("perm")
        defer { chmod(dir + "/ro", 0o755); try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/ro", withIntermediateDirectories: false)
        chmod(dir + "/ro", 0o555)
        if getuid() == 0 {
            // root ignores permission bits: the write succeeds. What remains testable is a parent
            // that is a file, and a target inside a read-only file system (/proc).
            XCTAssertThrowsError(try CheckpointWriter(target: "/proc/self/steering-out")) { e in
                XCTAssertEqual((e as? SafeTensorsError)?.kind, .io, "\(e)")
            }
            try writeFile(dir + "/file", [1])
            XCTAssertThrowsError(try CheckpointWriter(target: dir + "/file/out")) { e in
                XCTAssertTrue(e is SafeTensorsError, "\(e)")
            }
            try permissionDeniedAsNobody()
            return
        }
        XCTAssertThrowsError(try CheckpointWriter(target: dir + "/ro/out")) { e in
            XCTAssertEqual((e as? SafeTensorsError)?.kind, .io)
            XCTAssertTrue("\(e)".contains("Permission denied"), "\(e)")
        }
    }

    /// As root, the real CLI run as user nobody (setpriv from util-linux): output into a read-only
    /// folder and an unreadable source are each one line with "Permission denied", exit 2, and
    /// leave nothing behind.
    func permissionDeniedAsNobody() throws {
        guard let cli = editCLIPath(), FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            print("permission test: no edit-cli or setpriv here; only the root-side checks ran")
            return
        }
        let work = try makeTempDir("perm-nobody")
        defer { try? FileManager.default.removeItem(atPath: work) }
        XCTAssertEqual(chmod(work, 0o755), 0)
        let exe = work + "/edit-cli"
        try FileManager.default.copyItem(atPath: cli, toPath: exe)
        XCTAssertEqual(chmod(exe, 0o755), 0)
        let gguf = work + "/tiny.gguf"
        try FileManager.default.copyItem(atPath: "\(fixturesRoot)/gguf/tiny_llama.gguf", toPath: gguf)
        XCTAssertEqual(chmod(gguf, 0o644), 0)
        let model = work + "/model"
        _ = try GGUFConverter.convert(gguf: gguf, to: model)
        XCTAssertEqual(chmod(model, 0o755), 0)
        for f in try FileManager.default.contentsOfDirectory(atPath: model) { XCTAssertEqual(chmod(model + "/" + f, 0o644), 0) }
        let config = try JSONValue.parse(data: readFile(model + "/config.json"))
        let hidden = try XCTUnwrap(config["hidden_size"]?.intValue)
        let recipe = work + "/add.json"
        try writeFile(recipe, Array(#"{"interventions": [{"op": "add", "point": "resid_post", "layers": [0], "vector": [\#((0..<hidden).map { _ in "0.5" }.joined(separator: ", "))]}]}"#.utf8))
        XCTAssertEqual(chmod(recipe, 0o644), 0)
        try FileManager.default.createDirectory(atPath: work + "/ro", withIntermediateDirectories: false)
        XCTAssertEqual(chmod(work + "/ro", 0o555), 0)
        let secret = work + "/secret.gguf"
        try FileManager.default.copyItem(atPath: gguf, toPath: secret)
        XCTAssertEqual(chmod(secret, 0o600), 0)
        let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "EDIT_CLI_CACHE=" + work + "/cache", exe]
        let cases: [(String, [String])] = [
            ("convert into a read-only folder", ["convert", gguf, "--out", work + "/ro/out"]),
            ("bake into a read-only folder", ["bake", model, "--recipe", recipe, "--out", work + "/ro/out"]),
            ("convert an unreadable source", ["convert", secret, "--out", work + "/out"]),
        ]
        for (label, args) in cases {
            let r = try runCLI("/usr/bin/setpriv", asNobody + args)
            print("permission test as nobody: \(label): exit \(r.status): \(r.stderr)")
            XCTAssertEqual(r.status, 2, "\(label): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("Permission denied"), "\(label): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(label): \(r.stderr)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: work + "/ro"), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/out"))
    }

}
