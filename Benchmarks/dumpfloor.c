// The floor `nsinspect dump` is measured against (issue 16): one process that enters every network
// namespace named in /run/netns (and its own, through /proc/self/ns/net), opens one NETLINK_ROUTE socket
// there and sends the four dumps `dump` sends by default, with the same headers: RTM_GETLINK with
// IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS, then RTM_GETADDR, RTM_GETROUTE and RTM_GETNEIGH, each of
// AF_UNSPEC, with NETLINK_GET_STRICT_CHK on (as dump has it). It reads every answer to NLMSG_DONE and
// counts messages and bytes; it decodes and prints nothing else, so what it costs is the kernel's walk
// plus one read per datagram: what no program doing the same dumps can go below.
//
// Build: cc -O2 -o /tmp/dumpfloor Benchmarks/dumpfloor.c   Run as root: /tmp/dumpfloor
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

static char buffer[64 << 10];
static unsigned long messages, bytes;

// Sends one dump request of `type` with the family header `header` (and the link dump's ext mask) and
// reads the answer to NLMSG_DONE. Returns 0, or -1 with errno set.
static int dump(int fd, unsigned type, const void *header, size_t header_len, int ext_mask, unsigned seq) {
    struct {
        struct nlmsghdr nh;
        char body[64];
    } req;
    memset(&req, 0, sizeof req);
    req.nh.nlmsg_type = type;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nh.nlmsg_seq = seq;
    memcpy(req.body, header, header_len);
    req.nh.nlmsg_len = NLMSG_LENGTH(NLMSG_ALIGN(header_len));
    if (ext_mask) {
        struct rtattr *rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
        rta->rta_type = IFLA_EXT_MASK;
        rta->rta_len = RTA_LENGTH(sizeof(unsigned));
        unsigned mask = RTEXT_FILTER_SKIP_STATS;
        memcpy(RTA_DATA(rta), &mask, sizeof mask);
        req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
    }
    if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) return -1;
    for (;;) {
        ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        bytes += (unsigned long)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buffer; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) return 0;
            if (h->nlmsg_type == NLMSG_ERROR) {
                errno = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
                return -1;
            }
            messages++;
        }
    }
}

// Enters the namespace at `path` and dumps it; the socket is created after setns, so it belongs there.
static int dump_namespace(const char *path) {
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) {
        fprintf(stderr, "dumpfloor: %s: %s\n", path, strerror(errno));
        if (ns >= 0) close(ns);
        return -1;
    }
    close(ns);
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &on, sizeof on) < 0) {
        fprintf(stderr, "dumpfloor: socket in %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    struct ifaddrmsg ifa = {.ifa_family = AF_UNSPEC};
    struct rtmsg rtm = {.rtm_family = AF_UNSPEC};
    struct ndmsg ndm = {.ndm_family = AF_UNSPEC};
    int rc = 0;
    if (dump(fd, RTM_GETLINK, &ifi, sizeof ifi, 1, 1) < 0 || dump(fd, RTM_GETADDR, &ifa, sizeof ifa, 0, 2) < 0 ||
        dump(fd, RTM_GETROUTE, &rtm, sizeof rtm, 0, 3) < 0 || dump(fd, RTM_GETNEIGH, &ndm, sizeof ndm, 0, 4) < 0) {
        fprintf(stderr, "dumpfloor: dump in %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    close(fd);
    return rc;
}

int main(void) {
    int namespaces = 0, failed = 0;
    failed += dump_namespace("/proc/self/ns/net") < 0;
    namespaces++;
    DIR *dir = opendir("/run/netns");
    if (dir) {
        char path[300];
        for (struct dirent *e; (e = readdir(dir));) {
            if (e->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "/run/netns/%s", e->d_name);
            failed += dump_namespace(path) < 0;
            namespaces++;
        }
        closedir(dir);
    }
    printf("%d namespaces, %lu messages, %lu bytes, %d failed\n", namespaces, messages, bytes, failed);
    return failed ? 1 : 0;
}
