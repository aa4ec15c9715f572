// File calls that Swift's Glibc module does not expose (O_DIRECT and fallocate need _GNU_SOURCE).
// Used by SafeTensors' direct-I/O writer; on systems without them the calls report "unsupported".
#ifndef CFILEIO_H
#define CFILEIO_H

/// Creates `path` (which must not exist) for writing with O_DIRECT; -1 and errno on failure
/// (EINVAL when the file system or the system has no direct I/O).
int cfileio_create_direct(const char *path, int mode);

/// Reserves `length` bytes from offset 0 of `fd` (fallocate, mode 0: the file size grows to
/// `length`). 0 on success, else the errno value (EOPNOTSUPP when the file system cannot).
int cfileio_preallocate(int fd, long long length);

/// Asks for transparent huge pages for [addr, addr + length) (madvise MADV_HUGEPAGE); a no-op
/// where the system has none. 0 or the errno value.
int cfileio_advise_huge_pages(void *addr, unsigned long length);

/// Turns O_DIRECT off for `fd` (later writes go through the page cache). 0 or the errno value.
int cfileio_clear_direct(int fd);

#endif
