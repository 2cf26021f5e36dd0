// libzstd for ChunkStore: one-shot compression with reusable contexts.
#ifndef A67_CZSTD_SHIM_H
#define A67_CZSTD_SHIM_H
#include <zstd.h>
#include <stddef.h>

// ZSTD_CONTENTSIZE_UNKNOWN and _ERROR are macros on unsigned long long casts; give Swift constants.
static inline unsigned long long a67_zstd_content_size_unknown(void) { return ZSTD_CONTENTSIZE_UNKNOWN; }
static inline unsigned long long a67_zstd_content_size_error(void) { return ZSTD_CONTENTSIZE_ERROR; }
#endif
