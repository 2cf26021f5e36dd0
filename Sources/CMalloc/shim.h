// glibc's malloc tuning (mallopt), which Swift's Glibc module does not export. ChunkStore owns it.
#ifndef A67_CMALLOC_SHIM_H
#define A67_CMALLOC_SHIM_H
#include <malloc.h>
#endif
