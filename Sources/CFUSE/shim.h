// libfuse3's low-level API for FUSEMount. FUSE_USE_VERSION must precede the include.
// The helpers below stand in for macros (FUSE_ARGS_INIT) and bit-fields Swift cannot reach.
#ifndef A67_CFUSE_SHIM_H
#define A67_CFUSE_SHIM_H
#define FUSE_USE_VERSION 312  // 3.12: fuse_session_loop_mt takes the fuse_loop_cfg_* config (below 312 it reads an older struct)
#include <fuse_lowlevel.h>
#include <sys/statvfs.h>

static inline struct fuse_session *a67_fuse_session_new(int argc, char **argv, const struct fuse_lowlevel_ops *ops,
                                                        void *userdata) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_session *se = fuse_session_new(&args, ops, sizeof(*ops), userdata);
    fuse_opt_free_args(&args);
    return se;
}

/// The multithreaded loop: up to `max_threads` workers, each reading /dev/fuse and running an operation.
static inline int a67_fuse_loop_mt(struct fuse_session *se, unsigned int max_threads) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (!config) return -1;
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_cfg_set_idle_threads(config, max_threads);
    fuse_loop_cfg_set_max_threads(config, max_threads);
    int result = fuse_session_loop_mt(se, config);
    fuse_loop_cfg_destroy(config);
    return result;
}

static inline void a67_fi_set_keep_cache(struct fuse_file_info *fi, int keep) { fi->keep_cache = keep ? 1 : 0; }

/// Large requests (1 MiB writes and readahead) and readdirplus.
static inline void a67_conn_configure(struct fuse_conn_info *conn) {
    conn->max_readahead = 1 << 20;
    if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
}
#endif
