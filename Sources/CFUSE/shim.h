// libfuse3's low-level API for FUSEMount. FUSE_USE_VERSION must precede the include.
#ifndef A67_CFUSE_SHIM_H
#define A67_CFUSE_SHIM_H
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#endif
