// The one hand-written C shim of nsinspect.
//
// It holds what Swift cannot import (variadic ioctl/syscall, macros) or what libc lacks (pidfd_getfd,
// pidfd ioctls), and the fork+setns+exec child, which must run only async-signal-safe calls between
// fork and exec because a Swift process is always multithreaded. Every function returns -1 and sets
// errno on failure unless it says otherwise.
#ifndef NSINSPECT_SHIM_H
#define NSINSPECT_SHIM_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/stat.h>

#ifdef __cplusplus
extern "C" {
#endif

// Namespace type flags (CLONE_NEW*), as plain constants for Swift.
extern const int NSI_CLONE_NEWNET;
extern const int NSI_CLONE_NEWNS;
extern const int NSI_CLONE_NEWUSER;

/// pidfd_open(2): a descriptor that pins a process, so a PID reused later cannot be mistaken for it.
int nsi_pidfd_open(pid_t pid, unsigned int flags);
/// pidfd_getfd(2): a duplicate of another process's descriptor (needs PTRACE_MODE_ATTACH_REALCREDS).
int nsi_pidfd_getfd(int pidfd, int targetfd, unsigned int flags);
/// pidfd_send_signal(2); signal 0 checks that the process still exists.
int nsi_pidfd_send_signal(int pidfd, int sig);
/// ioctl(PIDFD_GET_NET_NAMESPACE) (Linux 6.11): the network namespace of a pinned process as an nsfs fd.
int nsi_pidfd_get_netns(int pidfd);

/// ioctl(NS_GET_NSTYPE): the CLONE_NEW* type of an nsfs descriptor.
int nsi_ns_get_nstype(int nsfd);
/// ioctl(NS_GET_ID) (Linux 6.18): the namespace's 64-bit id; for a network namespace this is its cookie.
int nsi_ns_get_id(int nsfd, uint64_t *id);
/// ioctl(SIOCGSKNS): the network namespace a socket belongs to, as a new nsfs descriptor.
int nsi_socket_get_netns(int sockfd);
/// getsockopt(SO_NETNS_COOKIE) (Linux 5.14): the never-reused cookie of a socket's namespace.
int nsi_socket_netns_cookie(int sockfd, uint64_t *cookie);

int nsi_setns(int fd, int nstype);
int nsi_unshare(int flags);
pid_t nsi_gettid(void);

/// Runs fn(ctx) on a new pthread and joins it. Namespace work (setns, unshare) happens on such a thread
/// so the caller's thread never changes namespace; the thread exits afterwards and is never reused.
/// Returns 0, or an errno value if the thread could not be created.
int nsi_run_on_new_thread(void (*fn)(void *), void *ctx);

/// Runs fn(ctx, i) for i in 0..<count, each on a new pthread, all at once, and joins them all.
/// Returns 0, or an errno value if a thread could not be created (those created are still joined).
int nsi_run_on_new_threads(void (*fn)(void *, int), void *ctx, int count);
/// Starts `count` threads running fn(ctx, index) and returns without waiting: NULL (and *error) if none
/// could be started, else a group that nsi_threads_join waits for and frees. If only some could be
/// started, *error is set and the group holds those.
void *nsi_threads_start(void (*fn)(void *, int), void *ctx, int count, int *error);
void nsi_threads_join(void *group);

/// What the child of nsi_spawn does before execve.
struct nsi_spawn_options {
    int netns_fd;          // -1: keep the parent's network namespace
    int private_mounts;    // unshare(CLONE_NEWNS), make / a slave, remount /sys (what `ip netns exec` does)
    const char *const *etc_binds; // NULL or NULL-terminated list of source, target pairs to bind-mount
    int stdin_fd;          // -1: inherit
    int stdout_fd;
    int stderr_fd;
    int new_process_group; // setpgid(0, 0)
    int die_with_parent;   // prctl(PR_SET_PDEATHSIG, SIGKILL)
};

/// The step of the child that failed, reported by nsi_spawn.
enum nsi_spawn_step {
    NSI_STEP_NONE = 0,
    NSI_STEP_PIPE = 1,
    NSI_STEP_FORK = 2,
    NSI_STEP_SETNS = 3,
    NSI_STEP_UNSHARE_MOUNTS = 4,
    NSI_STEP_MAKE_SLAVE = 5,
    NSI_STEP_MOUNT_SYS = 6,
    NSI_STEP_DUP2 = 7,
    NSI_STEP_EXEC = 8,
    NSI_STEP_SETPGID = 9,
};

/// fork(2) a child that enters the namespace and execve(2)s `path` (already resolved: no PATH search
/// after fork). The child reports a failure through a close-on-exec pipe, so on return either the
/// program runs (returns its pid) or nothing runs (returns -1, *failed_step and errno say why).
pid_t nsi_spawn(const char *path, char *const argv[], char *const envp[],
                const struct nsi_spawn_options *options, int *failed_step);

/// O_PATH (a _GNU_SOURCE constant Glibc's Swift module does not export).
extern const int NSI_O_PATH;
/// pipe2(2) (also _GNU_SOURCE).
int nsi_pipe2(int fds[2], int flags);
/// stat(2) and lstat(2): in Swift the struct and the function share a name.
int nsi_stat(const char *path, struct stat *st);
int nsi_lstat(const char *path, struct stat *st);

/// getdents64(2) into `buffer`: records of struct linux_dirent64 { u64 ino; s64 off; u16 reclen;
/// u8 type; char name[]; }. Reading a directory this way avoids fdopendir's extra fcntl and fstat.
long nsi_getdents64(int fd, void *buffer, unsigned long length);

/// recvmmsg(2) of up to `count` datagrams into consecutive buffers of `size` bytes each, waiting for
/// the first only (MSG_WAITFORONE); lengths[i] receives each datagram's size (0: not from the kernel,
/// ignore; UINT_MAX: truncated). Returns how many arrived.
int nsi_recv_datagrams(int fd, void *buffers, unsigned int size, unsigned int count, unsigned int *lengths);

/// The process environment (the C global `environ`, which Swift 6 cannot read safely).
char **nsi_environ(void);

/// waitpid(2) restarted on EINTR. Returns the raw status in *status.
int nsi_wait(pid_t pid, int *status, int nohang);
int nsi_wifexited(int status);
int nsi_wexitstatus(int status);
int nsi_wifsignaled(int status);
int nsi_wtermsig(int status);

/// ioctl(fd, request, int*) and ioctl(fd, request, void*): Swift cannot call the variadic ioctl.
int nsi_ioctl_ptr(int fd, unsigned long request, void *arg);

/// mount(2)/umount2(2) wrappers that keep the flag constants in C.
int nsi_bind_mount(const char *source, const char *target);
int nsi_make_shared_rec(const char *target);
int nsi_bind_mount_rec(const char *source, const char *target);
int nsi_umount_detach(const char *target);

/// flock(LOCK_EX) restarted on EINTR.
int nsi_flock_exclusive(int fd);

/// Effective capabilities of the calling process (bit n = capability n), from capget(2).
int nsi_effective_caps(uint64_t *caps);
/// Raise RLIMIT_NOFILE's soft limit to its hard limit (a census may hold one fd per namespace).
int nsi_raise_nofile_limit(void);

/// Grows the process's descriptor table to hold at least `count` descriptors (capped by RLIMIT_NOFILE),
/// by duplicating a descriptor to a high number and closing it. The kernel grows the table by copying
/// it, and while several threads share it, waits for an RCU grace period first (expand_fdtable calls
/// synchronize_rcu): milliseconds each time. A command that opens thousands of namespaces while its
/// worker threads run grows the table once, before starting them. Returns 0 or -1 (errno).
int nsi_grow_descriptor_table(int count);

/// Unblocks SIGINT, SIGTERM and SIGHUP in the calling thread: a process started with them blocked (as
/// some launchers do) could otherwise never be stopped.
void nsi_unblock_stop_signals(void);

/// Signal helpers for the CLI: ignore/restore SIGINT and SIGQUIT while waiting for a child, like system(3).
void nsi_ignore_interactive_signals(int ignore);

/// The one stop request of the process: a sigaction handler for SIGINT, SIGTERM and SIGHUP (without
/// SA_RESTART, so a blocking poll returns EINTR and its loop looks at the flag) sets a sig_atomic_t that
/// every long-running loop reads. Returns 0 or -1 (errno).
int nsi_install_stop_handler(void);
int nsi_stop_requested(void);
/// Requests a stop as the handler would (a program's own reasons, tests); `nsi_clear_stop` forgets it.
void nsi_request_stop(void);
void nsi_clear_stop(void);

/// A connected AF_UNIX stream socket (close-on-exec) to `path`, or -1 with errno (ENAMETOOLONG when the
/// path does not fit sun_path).
int nsi_unix_connect(const char *path);

#ifdef __cplusplus
}
#endif
#endif
