// glibc extras that Swift's Glibc module does not export: malloc tuning (mallopt) and
// sync_file_range (a GNU extension). ChunkStore owns this shim.
#ifndef A67_CGLIBC_SHIM_H
#define A67_CGLIBC_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <fcntl.h>

// Starts writeback of a byte range without waiting for it, so that a later fsync has little left.
static inline int a67_start_writeback(int fd, long long offset, long long count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}
#endif
