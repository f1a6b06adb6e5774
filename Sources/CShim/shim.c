#define _GNU_SOURCE
#include "nsinspect_shim.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/netlink.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#define NSI_NSIO 0xb7
#define NSI_NS_GET_NSTYPE _IO(NSI_NSIO, 0x3)
#define NSI_NS_GET_ID _IOR(NSI_NSIO, 0xd, uint64_t)
#define NSI_PIDFD_GET_NET_NAMESPACE _IO(0xFF, 4)
#ifndef SIOCGSKNS
#define SIOCGSKNS 0x894C
#endif
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

const int NSI_CLONE_NEWNET = CLONE_NEWNET;
const int NSI_CLONE_NEWNS = CLONE_NEWNS;
const int NSI_CLONE_NEWUSER = CLONE_NEWUSER;

int nsi_pidfd_open(pid_t pid, unsigned int flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }
int nsi_pidfd_getfd(int pidfd, int targetfd, unsigned int flags) {
    return (int)syscall(SYS_pidfd_getfd, pidfd, targetfd, flags);
}
int nsi_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}
int nsi_pidfd_get_netns(int pidfd) { return ioctl(pidfd, NSI_PIDFD_GET_NET_NAMESPACE, 0); }

int nsi_ns_get_nstype(int nsfd) { return ioctl(nsfd, NSI_NS_GET_NSTYPE); }
int nsi_ns_get_id(int nsfd, uint64_t *id) { return ioctl(nsfd, NSI_NS_GET_ID, id); }
int nsi_socket_get_netns(int sockfd) { return ioctl(sockfd, SIOCGSKNS); }
int nsi_socket_netns_cookie(int sockfd, uint64_t *cookie) {
    socklen_t len = sizeof(*cookie);
    return getsockopt(sockfd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len);
}

int nsi_setns(int fd, int nstype) { return setns(fd, nstype); }
int nsi_unshare(int flags) { return unshare(flags); }
pid_t nsi_gettid(void) { return (pid_t)syscall(SYS_gettid); }

struct nsi_thread_call { void (*fn)(void *); void *ctx; };

static void *nsi_thread_main(void *arg) {
    struct nsi_thread_call *call = arg;
    call->fn(call->ctx);
    return NULL;
}

int nsi_run_on_new_thread(void (*fn)(void *), void *ctx) {
    struct nsi_thread_call call = { fn, ctx };
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, nsi_thread_main, &call);
    if (rc != 0) return rc;
    return pthread_join(thread, NULL);
}

struct nsi_thread_slot { void (*fn)(void *, int); void *ctx; int index; };

static void *nsi_thread_slot_main(void *arg) {
    struct nsi_thread_slot *slot = arg;
    slot->fn(slot->ctx, slot->index);
    return NULL;
}

struct nsi_thread_group {
    int count;
    pthread_t threads[64];
    struct nsi_thread_slot slots[64];
};

void *nsi_threads_start(void (*fn)(void *, int), void *ctx, int count, int *error) {
    if (count <= 0) count = 1;
    if (count > 64) count = 64;
    struct nsi_thread_group *group = calloc(1, sizeof(*group));
    if (!group) { *error = ENOMEM; return NULL; }
    for (int i = 0; i < count; i++) {
        group->slots[i] = (struct nsi_thread_slot){ fn, ctx, i };
        int rc = pthread_create(&group->threads[i], NULL, nsi_thread_slot_main, &group->slots[i]);
        if (rc != 0) {
            *error = rc;
            if (group->count == 0) { free(group); return NULL; }
            return group;
        }
        group->count++;
    }
    *error = 0;
    return group;
}

int nsi_run_on_new_threads(void (*fn)(void *, int), void *ctx, int count) {
    if (count <= 0) return 0;
    int error = 0;
    void *group = nsi_threads_start(fn, ctx, count, &error);
    nsi_threads_join(group);
    return error;
}

void nsi_threads_join(void *group) {
    struct nsi_thread_group *g = group;
    if (!g) return;
    for (int i = 0; i < g->count; i++) pthread_join(g->threads[i], NULL);
    free(g);
}

/* ---- spawn ---------------------------------------------------------------------------------- */

struct nsi_child_failure { int step; int err; };

/* Only async-signal-safe calls from here until execve: the parent is multithreaded. */
static void nsi_child_fail(int pipe_fd, int step) {
    struct nsi_child_failure failure = { step, errno };
    ssize_t ignored = write(pipe_fd, &failure, sizeof(failure));
    (void)ignored;
    _exit(127);
}

static void nsi_child(const char *path, char *const argv[], char *const envp[],
                      const struct nsi_spawn_options *o, int pipe_fd) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* Ignored signals stay ignored across execve: undo what the Swift runtime set up. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGQUIT, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    if (o->die_with_parent) prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (o->new_process_group && setpgid(0, 0) < 0) nsi_child_fail(pipe_fd, NSI_STEP_SETPGID);
    if (o->netns_fd >= 0 && setns(o->netns_fd, CLONE_NEWNET) < 0) nsi_child_fail(pipe_fd, NSI_STEP_SETNS);
    if (o->private_mounts) {
        if (unshare(CLONE_NEWNS) < 0) nsi_child_fail(pipe_fd, NSI_STEP_UNSHARE_MOUNTS);
        /* Don't let any mount propagate back to the parent's mount namespace. */
        if (mount("", "/", "none", MS_SLAVE | MS_REC, NULL) < 0) nsi_child_fail(pipe_fd, NSI_STEP_MAKE_SLAVE);
        /* A sysfs mounted from inside the namespace shows its interfaces under /sys/class/net. */
        unsigned long flags = 0;
        if (umount2("/sys", MNT_DETACH) < 0) {
            struct statvfs st;
            if (statvfs("/sys", &st) == 0 && (st.f_flag & ST_RDONLY)) flags = MS_RDONLY;
        }
        if (mount("nsinspect", "/sys", "sysfs", flags, NULL) < 0) nsi_child_fail(pipe_fd, NSI_STEP_MOUNT_SYS);
        if (o->etc_binds) {
            /* /etc/netns/NAME/FILE over /etc/FILE, as iproute2 does; a failure is not fatal there either. */
            for (const char *const *p = o->etc_binds; p[0] && p[1]; p += 2) mount(p[0], p[1], "none", MS_BIND, NULL);
        }
    }
    if (o->stdin_fd >= 0 && dup2(o->stdin_fd, 0) < 0) nsi_child_fail(pipe_fd, NSI_STEP_DUP2);
    if (o->stdout_fd >= 0 && dup2(o->stdout_fd, 1) < 0) nsi_child_fail(pipe_fd, NSI_STEP_DUP2);
    if (o->stderr_fd >= 0 && dup2(o->stderr_fd, 2) < 0) nsi_child_fail(pipe_fd, NSI_STEP_DUP2);
    execve(path, argv, envp);
    nsi_child_fail(pipe_fd, NSI_STEP_EXEC);
}

pid_t nsi_spawn(const char *path, char *const argv[], char *const envp[],
                const struct nsi_spawn_options *options, int *failed_step) {
    int fds[2];
    *failed_step = NSI_STEP_NONE;
    if (pipe2(fds, O_CLOEXEC) < 0) { *failed_step = NSI_STEP_PIPE; return -1; }
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(fds[0]); close(fds[1]);
        *failed_step = NSI_STEP_FORK; errno = saved;
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        nsi_child(path, argv, envp, options, fds[1]);
    }
    close(fds[1]);
    struct nsi_child_failure failure;
    ssize_t n;
    do { n = read(fds[0], &failure, sizeof(failure)); } while (n < 0 && errno == EINTR);
    close(fds[0]);
    if (n == (ssize_t)sizeof(failure)) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *failed_step = failure.step;
        errno = failure.err;
        return -1;
    }
    return pid;
}

long nsi_getdents64(int fd, void *buffer, unsigned long length) {
    return syscall(SYS_getdents64, fd, buffer, length);
}

int nsi_recv_datagrams(int fd, void *buffers, unsigned int size, unsigned int count, unsigned int *lengths) {
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    struct sockaddr_nl senders[64];
    if (count > 64) count = 64;
    memset(messages, 0, sizeof(messages));
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = (char *)buffers + (size_t)i * size;
        vectors[i].iov_len = size;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &senders[i];
        messages[i].msg_hdr.msg_namelen = sizeof(senders[i]);
    }
    int n;
    do { n = recvmmsg(fd, messages, count, MSG_WAITFORONE, NULL); } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        /* Only the kernel (port id 0) may answer: anything else is dropped (length 0). A datagram cut
           short would lose messages: marked with UINT_MAX for the caller to report. */
        if (senders[i].nl_pid != 0) lengths[i] = 0;
        else if (messages[i].msg_hdr.msg_flags & MSG_TRUNC) lengths[i] = 0xffffffffu;
        else lengths[i] = messages[i].msg_len;
    }
    return n;
}

const int NSI_O_PATH = O_PATH;
int nsi_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int nsi_stat(const char *path, struct stat *st) { return stat(path, st); }
int nsi_lstat(const char *path, struct stat *st) { return lstat(path, st); }

extern char **environ;
char **nsi_environ(void) { return environ; }

int nsi_wait(pid_t pid, int *status, int nohang) {
    int rc;
    do { rc = waitpid(pid, status, nohang ? WNOHANG : 0); } while (rc < 0 && errno == EINTR);
    return rc;
}
int nsi_wifexited(int status) { return WIFEXITED(status); }
int nsi_wexitstatus(int status) { return WEXITSTATUS(status); }
int nsi_wifsignaled(int status) { return WIFSIGNALED(status); }
int nsi_wtermsig(int status) { return WTERMSIG(status); }

int nsi_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }

int nsi_bind_mount(const char *source, const char *target) {
    return mount(source, target, "none", MS_BIND, NULL);
}
int nsi_make_shared_rec(const char *target) { return mount("", target, "none", MS_SHARED | MS_REC, NULL); }
int nsi_bind_mount_rec(const char *source, const char *target) {
    return mount(source, target, "none", MS_BIND | MS_REC, NULL);
}
int nsi_umount_detach(const char *target) { return umount2(target, MNT_DETACH); }

int nsi_flock_exclusive(int fd) {
    int rc;
    do { rc = flock(fd, LOCK_EX); } while (rc < 0 && errno == EINTR);
    return rc;
}

int nsi_effective_caps(uint64_t *caps) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &header, data) < 0) return -1;
    *caps = ((uint64_t)data[1].effective << 32) | data[0].effective;
    return 0;
}

int nsi_raise_nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return -1;
    if (rl.rlim_cur >= rl.rlim_max) return 0;
    rl.rlim_cur = rl.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

int nsi_grow_descriptor_table(int count) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (rlim_t)count >= rl.rlim_cur)
        count = (int)rl.rlim_cur - 1;
    if (count < 3) return 0;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    /* F_DUPFD takes the lowest free descriptor >= count, so the table is grown to hold it. */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, count);
    close(fd);
    if (high < 0) return -1;
    close(high);
    return 0;
}

void nsi_unblock_stop_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* What SIGINT and SIGQUIT did before a foreground child (the default, or the stop handler), put back
 * when it ends, as system(3) does. */
static struct sigaction nsi_saved_int, nsi_saved_quit;

void nsi_ignore_interactive_signals(int ignore) {
    if (ignore) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = SIG_IGN;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, &nsi_saved_int);
        sigaction(SIGQUIT, &action, &nsi_saved_quit);
    } else {
        sigaction(SIGINT, &nsi_saved_int, NULL);
        sigaction(SIGQUIT, &nsi_saved_quit, NULL);
    }
}

static volatile sig_atomic_t nsi_stop_flag;

static void nsi_stop_handler(int sig) {
    (void)sig;
    nsi_stop_flag = 1;
}

int nsi_install_stop_handler(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = nsi_stop_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (sigaction(signals[i], &action, NULL) != 0)
            return -1;
    }
    return 0;
}

int nsi_stop_requested(void) { return nsi_stop_flag != 0; }
void nsi_request_stop(void) { nsi_stop_flag = 1; }
void nsi_clear_stop(void) { nsi_stop_flag = 0; }

int nsi_unix_connect(const char *path) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&address, sizeof address);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}
