// Writing a new file with direct I/O (O_DIRECT): the bytes go from a few aligned staging buffers
// to the disk, not through the page cache.
//
// Why: through the page cache, every 4 KB page of a new file is allocated, charged, reserved by
// the file system (ext4 delayed allocation) and later written back; for a 600 MB checkpoint that
// kernel work was most of a bake's CPU (~0.45 CPU-s of 0.55 on SmolLM2, measured), and on two
// cores it competed with the source checksum. Direct writes of 4 MB chunks into a preallocated
// file, several in flight, cost ~0.13 CPU-s for the same bytes (C probe, 538 MB: copy_file_range
// + fsync 0.21-0.25 CPU-s / 0.35-0.42 s; pread + O_DIRECT, 4 MB x 2-4 in flight, fallocate
// first: 0.10-0.15 CPU-s / 0.27-0.38 s).
//
// How: the file is produced front to back into `chunkSize` buffers; a full buffer is handed to
// one of `ioThreads` threads that pwrite it at its offset while the producer fills the next. The
// file is preallocated (fallocate) to its size rounded up to the alignment, so the writes land in
// reserved blocks inside the file (ext4 then runs them concurrently) and a full disk is an error
// before anything is written. The first aligned block(s), holding the safetensors header, are
// also kept in memory and written again at the end with the final header (late metadata); the
// zero padding of the last block is cut off with ftruncate, then the file is fsync'd.
//
// When the file system has no direct I/O (open fails with EINVAL, or a write is refused with
// EINVAL because its alignment is larger than ours), the same writes go through the page cache:
// same bytes, only slower. `SafeTensorsLayout` uses the older buffered two-lane writer when the
// direct open is refused.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFileIO
import Foundation

final class DirectFileStream: @unchecked Sendable {
    /// Offsets, lengths and buffer addresses of direct writes are multiples of this (the largest
    /// logical block size of common disks).
    static let alignment = 4096
    /// Size of one staging buffer (one write).
    nonisolated(unsafe) static var chunkSize = 4 << 20
    /// Writes in flight at once.
    nonisolated(unsafe) static var ioThreads = 3
    /// Off: every file goes through the buffered writer (tests cover both paths with it).
    nonisolated(unsafe) static var enabled = true
    /// Tests only: asked before each write attempt with its file offset and length, from the I/O
    /// threads; an errno it returns makes that attempt fail as if the kernel had returned it
    /// (error propagation from the I/O threads, the EINVAL fallback to the page cache).
    nonisolated(unsafe) static var injectedWriteError: ((_ offset: Int, _ count: Int) -> Int32?)?
    /// Files opened with direct I/O so far (tests check which path ran).
    static var opened: Int { openedLock.lock(); defer { openedLock.unlock() }; return openedCount }
    nonisolated(unsafe) private static var openedCount = 0
    private static let openedLock = NSLock()

    let path: String
    let fd: Int32
    /// Bytes of the finished file.
    let logicalSize: Int
    /// [0, head.count) of the file, kept to be written again with the final header.
    private let head: UnsafeMutableRawBufferPointer
    private let chunk: Int

    // Producer state (the creating thread only).
    private var current: UnsafeMutableRawPointer
    private var fill = 0              // bytes in `current`
    private var chunkOffset = 0       // file offset of `current`

    // Shared with the I/O threads, under `condition`.
    private let condition = NSCondition()
    private var freeBuffers: [UnsafeMutableRawPointer] = []
    private var queue: [(buffer: UnsafeMutableRawPointer, offset: Int, count: Int)] = []
    private var error: Error?
    private var closing = false
    private var running = 0
    private var allBuffers: [UnsafeMutableRawPointer] = []

    /// Creates `path` (must not exist) for a file of `logicalSize` bytes whose first `headBytes`
    /// will be rewritten by `finish`. Nil when direct I/O is off or refused at open (the caller
    /// writes the file another way); throws when the file cannot be created or the disk has no
    /// room for it.
    static func create(path: String, logicalSize: Int, headBytes: Int) throws -> DirectFileStream? {
        guard enabled else { return nil }
        let fd = cfileio_create_direct(path, 0o644)
        if fd < 0 {
            if errno == EINVAL { return nil }
            throw posixError(path, "cannot create")
        }
        let aligned = roundUp(logicalSize)
        if aligned > 0 {
            let e = cfileio_preallocate(fd, Int64(aligned))
            if e == ENOSPC || e == EDQUOT || e == EFBIG {
                close(fd); unlink(path)
                throw SafeTensorsError(.io, file: path, "cannot reserve \(logicalSize) bytes: \(String(cString: strerror(e)))")
            }
            // Other errors (EOPNOTSUPP...): the writes allocate as they go.
        }
        openedLock.lock(); openedCount += 1; openedLock.unlock()
        return DirectFileStream(path: path, fd: fd, logicalSize: logicalSize, headBytes: headBytes)
    }

    private init(path: String, fd: Int32, logicalSize: Int, headBytes: Int) {
        self.path = path
        self.fd = fd
        self.logicalSize = logicalSize
        let aligned = Self.roundUp(logicalSize)
        chunk = max(Self.alignment, min(Self.chunkSize, aligned))
        let headCount = min(Self.roundUp(max(headBytes, 1)), max(aligned, Self.alignment))
        head = .allocate(byteCount: headCount, alignment: Self.alignment)
        head.initializeMemory(as: UInt8.self, repeating: 0)
        // One buffer per write in flight, one being filled, one spare; fewer for small files.
        let chunks = max(1, aligned / chunk)
        let count = min(Self.ioThreads + 2, chunks + 1)
        // Buffers of whole 2 MB pages ask for transparent huge pages: pinning a 4 MB buffer for a
        // direct write then takes 2 pages instead of 1024 (gup was ~4% of a bake's samples).
        let huge = chunk % (2 << 20) == 0
        for _ in 0..<count {
            let b = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: huge ? 2 << 20 : Self.alignment)
            if huge { _ = cfileio_advise_huge_pages(b, UInt(chunk)) }
            allBuffers.append(b)
        }
        current = allBuffers[0]
        freeBuffers = Array(allBuffers.dropFirst())
        let threads = min(Self.ioThreads, max(1, chunks))
        running = threads
        for _ in 0..<threads {
            let t = Thread { [self] in ioLoop() }
            t.stackSize = 1 << 18
            t.start()
        }
    }

    /// Stops the I/O threads after their current write (pending ones are dropped), e.g. after an
    /// error; the caller then removes the file. The threads hold the stream until stopped.
    func abandon() { stopThreads() }

    deinit {
        stopThreads()
        close(fd)
        head.deallocate()
        for b in allBuffers { b.deallocate() }
    }

    static func roundUp(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// Bytes appended so far.
    var position: Int { chunkOffset + fill }

    /// Appends `bytes` to the file.
    func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        try checkRoom(left)
        while left > 0 {
            let n = min(left, chunk - fill)
            (current + fill).copyMemory(from: p, byteCount: n)
            fill += n; p += n; left -= n
            if fill == chunk { try submit() }
        }
    }

    /// Appends `count` bytes of the file `source` from `offset` (pread into the staging buffer:
    /// one kernel copy, no page faults on a mapping). A source that ends early is an error naming
    /// `tensor`.
    func append(from source: Int32, offset: Int, count: Int, tensor: String) throws {
        try checkRoom(count)
        var off = offset, left = count
        while left > 0 {
            let n = pread(source, current + fill, min(left, chunk - fill), off_t(off))
            if n < 0 {
                if errno == EINTR { continue }
                throw posixError(path, "cannot read tensor '\(tensor)' from its source")
            }
            if n == 0 {
                throw sourceEndedEarly(path, tensor: tensor, missing: left)
            }
            fill += n; off += n; left -= n
            if fill == chunk { try submit() }
        }
    }

    /// Writes the last (zero-padded) chunk and waits for every write; rethrows a write error.
    func finishData() throws {
        guard position == logicalSize else {
            throw SafeTensorsError(.invalidTensor, file: path, "wrote \(position) bytes, the layout has \(logicalSize)") // programmer error
        }
        if fill > 0 {
            let padded = Self.roundUp(fill)
            (current + fill).initializeMemory(as: UInt8.self, repeating: 0, count: padded - fill)
            try submit(length: padded)
        }
        condition.lock()
        while (!queue.isEmpty || freeBuffers.count + 1 < allBuffers.count) && error == nil { condition.wait() }
        let e = error
        condition.unlock()
        stopThreads()
        if let e { throw e }
    }

    /// Writes `prefix` (length prefix and final header, as long as the placeholder one) over the
    /// start of the file, cuts the padding, fsyncs and closes. Call after `finishData`.
    func finish(prefix: [UInt8]) throws {
        guard prefix.count <= head.count else {
            throw SafeTensorsError(.invalidTensor, file: path, "header grew past the kept head (\(prefix.count) > \(head.count) bytes)") // programmer error
        }
        prefix.withUnsafeBytes { head.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } // programmer error: non-empty
        try writeAligned(UnsafeRawBufferPointer(head), at: 0)
        guard ftruncate(fd, off_t(logicalSize)) == 0 else { throw posixError(path, "cannot set the file size") }
        guard fsync(fd) == 0 else { throw posixError(path, "cannot fsync") }
    }

    // MARK: internals

    private func checkRoom(_ n: Int) throws {
        guard n <= logicalSize - position else {
            throw SafeTensorsError(.invalidTensor, file: path, "more bytes than the layout holds (\(position) + \(n) > \(logicalSize))") // programmer error
        }
    }

    /// Hands `current` to the I/O threads and takes a free buffer (waiting for one).
    private func submit(length: Int? = nil) throws {
        let count = length ?? fill
        // Keep the head region for `finish`.
        if chunkOffset < head.count {
            let n = min(head.count - chunkOffset, count)
            (head.baseAddress! + chunkOffset).copyMemory(from: current, byteCount: n) // programmer error: allocated
        }
        condition.lock()
        defer { condition.unlock() }
        if let e = error { throw e }
        queue.append((current, chunkOffset, count))
        condition.broadcast()
        while freeBuffers.isEmpty && error == nil { condition.wait() }
        if let e = error { throw e }
        current = freeBuffers.removeLast()
        chunkOffset += count
        fill = 0
    }

    private func ioLoop() {
        condition.lock()
        while true {
            while queue.isEmpty && !closing { condition.wait() }
            if closing { break }   // finishData drained the queue first; abandon drops it
            let job = queue.removeFirst()
            condition.unlock()
            var failure: Error?
            do { try writeAligned(UnsafeRawBufferPointer(start: job.buffer, count: job.count), at: job.offset) } catch { failure = error }
            condition.lock()
            if let failure, error == nil { error = failure }
            freeBuffers.append(job.buffer)
            condition.broadcast()
        }
        running -= 1
        condition.broadcast()
        condition.unlock()
    }

    private func stopThreads() {
        condition.lock()
        closing = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    /// pwrite of whole aligned blocks. EINVAL on the first try means the device wants a larger
    /// alignment or the file system refuses direct I/O after all: O_DIRECT is turned off for the
    /// file and the write repeated through the page cache.
    private func writeAligned(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0, buffered = false
        while done < bytes.count {
            let n: Int
            if let inject = Self.injectedWriteError, let e = inject(offset + done, bytes.count - done) {
                errno = e; n = -1
            } else {
                n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done)) // programmer error: non-empty
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EINVAL && !buffered && cfileio_clear_direct(fd) == 0 { buffered = true; continue }
                throw posixError(path, "cannot write")
            }
            done += n
        }
    }
}
