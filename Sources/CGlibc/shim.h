// glibc extras that Swift's Glibc module does not export: malloc tuning (mallopt), sync_file_range
// (a GNU extension), and starting a child process set up between fork and exec. ChunkStore owns this shim.
#ifndef A67_CGLIBC_SHIM_H
#define A67_CGLIBC_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <fcntl.h>
// Only headers whose definitions do not change under _GNU_SOURCE: Swift's Glibc module includes them
// without it, and clang refuses two different definitions (sys/resource.h, sys/types.h differ).
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <unistd.h>
#include <sys/syscall.h>

// Starts writeback of a byte range without waiting for it, so that a later fsync has little left.
static inline int a67_start_writeback(int fd, long long offset, long long count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}

// From sys/wait.h and sys/resource.h, which this header may not include (see above).
pid_t waitpid(pid_t pid, int *status, int options);
struct a67_rlimit { unsigned long long current, maximum; };
#define A67_RLIMIT_CORE 4
#define A67_RLIMIT_NOFILE 7
static inline int a67_set_rlimit(int resource, unsigned long long value) {
    struct a67_rlimit limit = {value, value};
    return (int)syscall(SYS_prlimit64, 0, resource, &limit, (void *)0);
}

// What a67_spawn sets up in the child between fork and exec. Strings and arrays belong to the caller.
struct a67_spawn_options {
    const char *path;           // the program, an absolute path (resolved by the caller: no PATH search here)
    char *const *argv;          // NULL-terminated
    char *const *envp;          // NULL-terminated
    const char *directory;      // working directory (entered after dropping privileges), or NULL
    int output_fd;              // becomes stdout and stderr; stdin is /dev/null
    int new_session;            // setsid(): the child leads its own session and process group
    const char *const *cgroup_procs; // NULL-terminated cgroup.procs files the child writes "0" to (joins)
    int set_ids;                // drop to uid/gid (and no supplementary groups)
    uid_t uid;
    gid_t gid;
    long long open_files;       // RLIMIT_NOFILE (soft and hard) when > 0
    int no_core;                // RLIMIT_CORE 0
};

// Which step of the child's setup failed (reported with its errno).
enum { A67_SPAWN_FORK = 1, A67_SPAWN_SESSION, A67_SPAWN_CGROUP, A67_SPAWN_RLIMIT, A67_SPAWN_FILES,
       A67_SPAWN_IDS, A67_SPAWN_DIRECTORY, A67_SPAWN_EXEC };

// Forks and, in the child, sets up what `o` asks, then execs. Only async-signal-safe calls run in the
// child (the parent has threads). Returns the child's pid once it has exec'd; on failure returns -1 with
// *failed_errno and *failed_step set (the child, if any, has been reaped). Blocks until the exec: the
// child reports through a close-on-exec pipe that closes when the exec succeeds.
static inline pid_t a67_spawn(const struct a67_spawn_options *o, int *failed_errno, int *failed_step) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) { *failed_errno = errno; *failed_step = A67_SPAWN_FORK; return -1; }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   // no handler of the parent runs in the child
    pid_t pid = fork();
    if (pid == 0) {
        int step = 0;
        for (int sig = 1; sig < NSIG; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP) continue;
            signal(sig, SIG_DFL);
        }
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (o->new_session && setsid() < 0) { step = A67_SPAWN_SESSION; goto fail; }
        for (const char *const *c = o->cgroup_procs; c && *c; c++) {
            int fd = open(*c, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, "0", 1) != 1) { step = A67_SPAWN_CGROUP; goto fail; }
            close(fd);
        }
        if (o->no_core) {
            if (a67_set_rlimit(A67_RLIMIT_CORE, 0) != 0) { step = A67_SPAWN_RLIMIT; goto fail; }
        }
        if (o->open_files > 0) {
            if (a67_set_rlimit(A67_RLIMIT_NOFILE, (unsigned long long)o->open_files) != 0) { step = A67_SPAWN_RLIMIT; goto fail; }
        }
        int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(o->output_fd, 1) < 0 || dup2(o->output_fd, 2) < 0) {
            step = A67_SPAWN_FILES; goto fail;
        }
        // Nothing else the agent holds open reaches the instance.
        close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        if (o->set_ids) {
            if (setgroups(0, NULL) != 0 || setgid(o->gid) != 0 || setuid(o->uid) != 0) { step = A67_SPAWN_IDS; goto fail; }
        }
        if (o->directory && chdir(o->directory) != 0) { step = A67_SPAWN_DIRECTORY; goto fail; }
        execve(o->path, o->argv, o->envp);
        step = A67_SPAWN_EXEC;
    fail:;
        int failure[2] = {errno, step};
        ssize_t ignored = write(report[1], failure, sizeof failure);
        (void)ignored;
        _exit(127);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    if (pid < 0) { close(report[0]); *failed_errno = fork_errno; *failed_step = A67_SPAWN_FORK; return -1; }
    int failure[2];
    ssize_t n;
    do { n = read(report[0], failure, sizeof failure); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof failure) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *failed_errno = failure[0];
        *failed_step = failure[1];
        return -1;
    }
    return pid;
}
#endif
