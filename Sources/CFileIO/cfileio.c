#define _GNU_SOURCE
#include "cfileio.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>

int cfileio_create_direct(const char *path, int mode) {
#if defined(__linux__) && defined(O_DIRECT)
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, mode);
#else
    (void)path; (void)mode;
    errno = EINVAL;
    return -1;
#endif
}

int cfileio_preallocate(int fd, long long length) {
#if defined(__linux__)
    return fallocate(fd, 0, 0, (off_t)length) == 0 ? 0 : errno;
#else
    (void)fd; (void)length;
    return EOPNOTSUPP;
#endif
}

int cfileio_clear_direct(int fd) {
#if defined(__linux__) && defined(O_DIRECT)
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return errno;
    return fcntl(fd, F_SETFL, flags & ~O_DIRECT) == 0 ? 0 : errno;
#else
    (void)fd;
    return 0;
#endif
}

int cfileio_advise_huge_pages(void *addr, unsigned long length) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    return madvise(addr, length, MADV_HUGEPAGE) == 0 ? 0 : errno;
#else
    (void)addr; (void)length;
    return 0;
#endif
}
