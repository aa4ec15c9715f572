// SHA-256 (FIPS 180-4), streaming. Used for the source-shard and recipe checksums that `bake`
// records in every output shard's __metadata__.

import CSHA256
import Foundation

public struct SHA256 {
    private var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var buffer = [UInt8]()      // < 64 pending bytes
    private var length: UInt64 = 0      // bytes hashed so far

    /// The round constants, from CSHA256 (one table for both compressions).
    private static let k: [UInt32] = withUnsafeBytes(of: csha256_k) { Array($0.bindMemory(to: UInt32.self)) }

    /// Whether whole blocks go to the SHA-NI compression of CSHA256 (~5x faster than `compress`
    /// here); `compress` stays the reference and the fallback. Tests switch it to compare both.
    nonisolated(unsafe) static var useSHAExtensions = csha256_has_shani() == 1

    public init() { buffer.reserveCapacity(64) }

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        length &+= UInt64(data.count)
        var p = 0
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, data.count)
            buffer.append(contentsOf: data[0..<take])
            p = take
            if buffer.count == 64 {
                buffer.withUnsafeBytes { compress($0.baseAddress!) } // programmer error: 64 bytes
                buffer.removeAll(keepingCapacity: true)
            }
        }
        let blocks = (data.count - p) / 64
        if blocks > 0 && SHA256.useSHAExtensions {
            h.withUnsafeMutableBufferPointer { state in
                csha256_shani_blocks(state.baseAddress!, data.baseAddress!.assumingMemoryBound(to: UInt8.self) + p, blocks) // programmer error: 8 words, count > 0
            }
            p += 64 * blocks
        }
        while data.count - p >= 64 {
            compress(data.baseAddress! + p) // programmer error: count > 0
            p += 64
        }
        if p < data.count { buffer.append(contentsOf: data[p..<data.count]) }
    }

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let a = Array(bytes)
        a.withUnsafeBytes { update($0) }
    }

    public mutating func finalize() -> [UInt8] {
        let bitLength = length &* 8
        var pad: [UInt8] = [0x80]
        let rem = (buffer.count + 1) % 64
        pad += [UInt8](repeating: 0, count: rem <= 56 ? 56 - rem : 120 - rem)
        for i in (0..<8).reversed() { pad.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        pad.withUnsafeBytes { update($0) }
        precondition(buffer.isEmpty) // programmer error: padding completes the last block
        var out = [UInt8]()
        for w in h { out += [UInt8(w >> 24), UInt8((w >> 16) & 0xff), UInt8((w >> 8) & 0xff), UInt8(w & 0xff)] }
        return out
    }

    @inline(__always) private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    private mutating func compress(_ block: UnsafeRawPointer) {
        // The message schedule lives on the stack: an array per 64-byte block cost a heap
        // allocation each and made hashing a checkpoint slower than copying it.
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            SHA256.k.withUnsafeBufferPointer { k in
                for i in 0..<16 { w[i] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
                for i in 16..<64 {
                    let x = w[i - 15], y = w[i - 2]
                    let s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3)
                    let s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >> 10)
                    w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                }
                var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
                for i in 0..<64 {
                    let S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                    let ch = (e & f) ^ (~e & g)
                    let t1 = hh &+ S1 &+ ch &+ k[i] &+ w[i]
                    let S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                    let maj = (a & b) ^ (a & c) ^ (b & c)
                    let t2 = S0 &+ maj
                    hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
                }
                h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
            }
        }
    }

    public static func hex(_ digest: [UInt8]) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    public static func hash<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var s = SHA256(); s.update(bytes); return hex(s.finalize())
    }
}

extension SHA256 {
    /// `hashFile`, remembered per file in the cache folder (`<cache>/checksums/`), keyed by the file's
    /// real path and validated by its device, inode, size and modification time in nanoseconds (the
    /// rule git's index uses). Hashing is ~400 MB/s here in Swift (~1.8 GB/s with SHA-NI), so a
    /// second bake of the same source reuses the checksum. Any cache problem falls back to hashing.
    public static func hashFileCached(_ path: String, cacheRoot: String? = nil) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0, let real = realpath(path, nil) else { return try hashFile(path) }
        let realPath = String(cString: real)
        free(real)
        let stamp = "\(st.st_dev) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec) \(st.st_mtim.tv_nsec)"
        let root = cacheRoot ?? ((GGUFModelCache.defaultRoot as NSString).deletingLastPathComponent as NSString).appendingPathComponent("checksums")
        let entry = (root as NSString).appendingPathComponent(hash(Array(realPath.utf8)))
        if let data = FileManager.default.contents(atPath: entry), let text = String(data: data, encoding: .utf8) {
            let parts = text.split(separator: "\n", omittingEmptySubsequences: false)
            if parts.count >= 2, parts[0] == stamp, parts[1].count == 64, parts[1].allSatisfy({ $0.isHexDigit }) {
                return String(parts[1])
            }
        }
        let digest = try hashFile(path)
        // Only remember it if the file did not change while it was being hashed.
        var after = stat()
        if stat(path, &after) == 0, after.st_size == st.st_size, after.st_mtim.tv_sec == st.st_mtim.tv_sec,
           after.st_mtim.tv_nsec == st.st_mtim.tv_nsec {
            try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let tmp = entry + ".tmp-\(getpid())"
            if FileManager.default.createFile(atPath: tmp, contents: Data((stamp + "\n" + digest + "\n" + realPath + "\n").utf8)) {
                if rename(tmp, entry) != 0 { unlink(tmp) }
            }
        }
        return digest
    }
}

extension SHA256 {
    /// Hex digest of a file, read by a second thread into a ring of `count` buffers of `block`
    /// bytes while this thread hashes: the kernel's copy into user memory runs beside the hashing
    /// instead of in series with it. In a first bake the hash of the source is the longest thread
    /// (SHA-NI: ~0.29 s for SmolLM2's 538 MB, on one core); reading in series added ~0.04 s, and
    /// hashing the mapping instead added as much in page faults and unmapping. The buffers are
    /// small and reused (fresh pages cost 1-2 s per GiB here).
    public static func hashFile(_ path: String, block: Int = 1 << 20, count: Int = 4) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw EditError.io("\(path): cannot open for checksumming: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let ring = ReadAheadRing(fd: fd, block: block, count: count)
        defer { ring.stop() }
        var s = SHA256()
        while let piece = try ring.next(path: path) {
            s.update(piece)
            ring.consumed()
        }
        return hex(s.finalize())
    }
}

/// A reader thread filling buffers in order; the consumer takes them in the same order.
final class ReadAheadRing: @unchecked Sendable {
    private let fd: Int32
    private let block: Int
    private let buffers: [UnsafeMutableRawPointer]
    private var filled: [Int]          // bytes in each buffer, -1 while free
    private var readerError: Int32 = 0
    private var stopping = false
    private var readerRunning = true   // false once it reached the end, failed or was stopped
    private var head = 0               // next buffer the consumer takes
    private let condition = NSCondition()

    init(fd: Int32, block: Int, count: Int) {
        self.fd = fd
        self.block = block
        buffers = (0..<count).map { _ in .allocate(byteCount: block, alignment: 64) }
        filled = Array(repeating: -1, count: count)
        let t = Thread { [self] in run() }
        t.stackSize = 1 << 18
        t.start()
    }

    deinit { for b in buffers { b.deallocate() } }

    private func run() {
        var slot = 0, offset = 0
        while true {
            condition.lock()
            while filled[slot] >= 0 && !stopping { condition.wait() }
            if stopping { break }
            condition.unlock()
            var n = 0, err: Int32 = 0
            while n < block {
                let r = pread(fd, buffers[slot] + n, block - n, off_t(offset + n))
                if r < 0 { if errno == EINTR { continue }; err = errno; break }
                if r == 0 { break }
                n += r
            }
            offset += n
            condition.lock()
            if err != 0 { readerError = err; break }
            filled[slot] = n
            condition.broadcast()
            if n < block { break }
            condition.unlock()
            slot = (slot + 1) % buffers.count
        }
        readerRunning = false
        condition.broadcast()
        condition.unlock()
    }

    /// The next piece, nil at the end of the file.
    func next(path: String) throws -> UnsafeRawBufferPointer? {
        condition.lock()
        defer { condition.unlock() }
        while filled[head] < 0 && readerRunning { condition.wait() }
        if filled[head] < 0 {
            if readerError != 0 { throw EditError.io("\(path): cannot read for checksumming: \(String(cString: strerror(readerError)))") }
            return nil
        }
        let n = filled[head]
        return n == 0 ? nil : UnsafeRawBufferPointer(start: buffers[head], count: n)
    }

    /// Gives the piece returned by `next` back to the reader.
    func consumed() {
        condition.lock()
        filled[head] = -1
        head = (head + 1) % buffers.count
        condition.broadcast()
        condition.unlock()
    }

    /// Stops the reader and waits for it.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while readerRunning { condition.wait() }
        condition.unlock()
    }
}
