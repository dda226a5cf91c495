/* Process-test harness: node processes by PID, raw frames over loopback. */
#define _GNU_SOURCE /* close_range; includes nftw (XOPEN 700) */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ddkv/wire.h"

const char *harness_bin(void)
{
    const char *b = getenv("DDKV_BIN");
    return b && *b ? b : "./ddkv";
}

int harness_tmpdir(char *out, size_t n, const char *tag)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, n, "%s/ddkv-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    return mkdtemp(out) ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void harness_rmrf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Find "client listening on 127.0.0.1:PORT" in the node's log. */
static int log_port(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return 0;
    char line[1024];
    int port = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "client listening on ");
        if (p) {
            const char *colon = strrchr(p, ':');
            if (colon)
                port = atoi(colon + 1);
        }
    }
    fclose(f);
    return port;
}

int pn_start(struct proc_node *pn, const char *dir, const char *const *extra)
{
    if (!*pn->dir) { /* first start; a restart reuses the same data dir */
        if (dir) {
            snprintf(pn->dir, sizeof pn->dir, "%s", dir);
            pn->own_dir = false;
        } else {
            if (harness_tmpdir(pn->dir, sizeof pn->dir, "node") != 0)
                return -1;
            pn->own_dir = true;
        }
    }
    snprintf(pn->log, sizeof pn->log, "%s.log", pn->dir);
    int logfd = open(pn->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0)
        return -1;
    const char *argv[64];
    int argc = 0;
    argv[argc++] = harness_bin();
    argv[argc++] = "serve";
    argv[argc++] = "--data-dir";
    argv[argc++] = pn->dir;
    bool own_client_addr = false;
    for (int i = 0; extra && extra[i]; i++)
        own_client_addr |= strcmp(extra[i], "--client-addr") == 0;
    if (!own_client_addr) {
        argv[argc++] = "--client-addr";
        argv[argc++] = "127.0.0.1:0";
    }
    for (int i = 0; extra && extra[i] && argc < 62; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        /* Die with the test, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(logfd, 2);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        /* Nothing else of the test's: an inherited socket (say, one end of
         * a proxied connection) would outlive its close in the test. */
        close_range(3, ~0u, 0);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    pn->pid = pid;
    pn->port = 0;
    for (int i = 0; i < 300; i++) { /* up to 30 s: sanitizer builds start slowly */
        int port = log_port(pn->log);
        if (port > 0) {
            pn->port = port;
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            pn->pid = 0;
            return -1;
        }
        sleep_ms(100);
    }
    pn_kill(pn, SIGKILL);
    return -1;
}

int pn_kill(struct proc_node *pn, int sig)
{
    if (pn->pid <= 0)
        return -1;
    kill(pn->pid, sig);
    int st = 0;
    if (sig == SIGSTOP || sig == SIGCONT)
        return 0;
    waitpid(pn->pid, &st, 0);
    pn->pid = 0;
    return st;
}

int pn_stop(struct proc_node *pn)
{
    if (pn->pid <= 0)
        return -1;
    kill(pn->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(pn->pid, &st, WNOHANG);
        if (r == pn->pid) {
            pn->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(10);
    }
    pn_kill(pn, SIGKILL);
    return 128 + SIGKILL;
}

bool pn_alive(struct proc_node *pn)
{
    if (pn->pid <= 0)
        return false;
    int st;
    if (waitpid(pn->pid, &st, WNOHANG) == pn->pid) {
        pn->pid = 0;
        return false;
    }
    return true;
}

void pn_cleanup(struct proc_node *pn)
{
    if (pn->pid > 0)
        pn_kill(pn, SIGKILL);
    if (pn->own_dir && *pn->dir) {
        harness_rmrf(pn->dir);
        unlink(pn->log);
    }
}

long pn_rss_kb(struct proc_node *pn)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pn->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

int tcp_connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int send_all(int fd, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int recv_exact(int fd, void *p, size_t n, int timeout_ms)
{
    uint8_t *d = p;
    while (n > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr <= 0)
            return -1;
        ssize_t r = recv(fd, d, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        d += r;
        n -= (size_t)r;
    }
    return 0;
}

int recv_frame(int fd, int timeout_ms, struct buf *out)
{
    uint8_t hdr[4];
    if (recv_exact(fd, hdr, 4, timeout_ms) != 0)
        return -1;
    uint32_t len = get_be32(hdr);
    if (len > 64u << 20)
        return -1;
    buf_reset(out);
    if (buf_reserve(out, len ? len : 1) != 0)
        return -1;
    if (recv_exact(fd, out->data, len, timeout_ms) != 0)
        return -1;
    out->len = len;
    return 0;
}

bool wait_closed(int fd, int timeout_ms)
{
    char junk[4096];
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return false;
        ssize_t r = recv(fd, junk, sizeof junk, 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
            return true;
    }
}

int rpc(int fd, const struct buf *req, struct buf *hold, struct msg *m)
{
    if (send_all(fd, req->data, req->len) != 0)
        return -1;
    if (recv_frame(fd, 10000, hold) != 0)
        return -1;
    struct errbuf eb;
    return msg_decode(m, hold->data, hold->len, &msg_limits_reply, &eb) == ERR_OK ? 0 : -1;
}

uint64_t test_rng(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

void req_ping(struct buf *b, uint64_t rid)
{
    struct msg_writer w;
    msg_begin(&w, b, DDKV_MSG_PING, 1, rid, 0);
    msg_end(&w);
}

void req_write(struct buf *b, uint64_t rid, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct msg_writer w;
    msg_begin(&w, b, DDKV_MSG_WRITE, 1, rid, 5);
    mw_bin(&w, key, klen);
    mw_bin(&w, val, vlen);
    mw_u64(&w, 0);
    mw_u64(&w, 0);
    mw_u64(&w, 0);
    msg_end(&w);
}

void req_read(struct buf *b, uint64_t rid, const void *key, size_t klen)
{
    struct msg_writer w;
    msg_begin(&w, b, DDKV_MSG_READ, 1, rid, 3);
    mw_bin(&w, key, klen);
    mw_u64(&w, DDKV_CONSISTENCY_LINEARIZABLE);
    mw_u64(&w, 0);
    msg_end(&w);
}

/* One request on a fresh connection; returns the reply type, or -1. */
static int one_rpc(int port, const struct buf *req, struct buf *hold, struct msg *m)
{
    int fd = tcp_connect_port(port);
    if (fd < 0)
        return -1;
    int rc = rpc(fd, req, hold, m);
    close(fd);
    return rc == 0 ? (int)m->type : -1;
}

int pn_ping(int port)
{
    struct buf req = BUF_INIT, hold = BUF_INIT;
    struct msg m;
    req_ping(&req, 7);
    int t = one_rpc(port, &req, &hold, &m);
    int ok = t == DDKV_MSG_PONG && m.request_id == 7;
    if (t >= 0)
        msg_free(&m);
    buf_free(&req);
    buf_free(&hold);
    return ok ? 0 : -1;
}

int pn_write(int port, const char *key, const void *val, size_t vlen)
{
    struct buf req = BUF_INIT, hold = BUF_INIT;
    struct msg m;
    req_write(&req, 9, key, strlen(key), val, vlen);
    int t = one_rpc(port, &req, &hold, &m);
    int ok = t == DDKV_MSG_WRITTEN_AT;
    if (t >= 0)
        msg_free(&m);
    buf_free(&req);
    buf_free(&hold);
    return ok ? 0 : -1;
}

int pn_read(int port, const char *key, struct buf *out)
{
    struct buf req = BUF_INIT, hold = BUF_INIT;
    struct msg m;
    req_read(&req, 11, key, strlen(key));
    int t = one_rpc(port, &req, &hold, &m);
    int rc = -1;
    if (t == DDKV_MSG_VALUE) {
        const uint8_t *p;
        size_t n;
        if (msg_bytes(&m, 1, &p, &n) == 0) {
            buf_reset(out);
            buf_append(out, p, n);
            rc = 0;
        }
    } else if (t == DDKV_MSG_ERROR) {
        uint64_t code;
        if (msg_u64(&m, 0, &code) == 0 && code == DDKV_WERR_NOT_FOUND)
            rc = 1;
    }
    if (t >= 0)
        msg_free(&m);
    buf_free(&req);
    buf_free(&hold);
    return rc;
}

/* --- clusters --- */

static int pick_ports(int *ports, int n)
{
    int fds[PC_MAX];
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &al) != 0) {
            for (int j = 0; j <= i; j++)
                if (fds[j] >= 0)
                    close(fds[j]);
            return -1;
        }
        ports[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

int pc_start_node(struct proc_cluster *pc, int i)
{
    char name[16], peer[32];
    snprintf(name, sizeof name, "n%d", i + 1);
    snprintf(peer, sizeof peer, "127.0.0.1:%d", pc->peer_port[i]);
    const char *argv[48];
    int k = 0;
    argv[k++] = "--name";
    argv[k++] = name;
    argv[k++] = "--peer-addr";
    argv[k++] = peer;
    if (pc->joiner[i]) {
        argv[k++] = "--join";
    } else {
        argv[k++] = "--cluster";
        argv[k++] = pc->spec;
    }
    for (int j = 0; pc->extra && pc->extra[j] && k < 46; j++)
        argv[k++] = pc->extra[j];
    argv[k] = NULL;
    return pn_start(&pc->nodes[i], NULL, argv);
}

int pc_start_joiner(struct proc_cluster *pc)
{
    if (pc->n >= PC_MAX)
        return -1;
    int i = pc->n;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (pick_ports(&pc->peer_port[i], 1) != 0)
            return -1;
        memset(&pc->nodes[i], 0, sizeof pc->nodes[i]);
        pc->joiner[i] = true;
        if (pc_start_node(pc, i) == 0) {
            pc->n++;
            return i;
        }
        pn_cleanup(&pc->nodes[i]);
    }
    return -1;
}

int pc_start(struct proc_cluster *pc, int n, const char *const *extra)
{
    if (n < 1 || n > PC_MAX)
        return -1;
    memset(pc, 0, sizeof *pc);
    pc->n = n;
    pc->extra = extra;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (pick_ports(pc->peer_port, n) != 0)
            return -1;
        size_t off = 0;
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(pc->spec + off, sizeof pc->spec - off, "%sn%d=127.0.0.1:%d",
                                    i ? "," : "", i + 1, pc->peer_port[i]);
        int ok = 0;
        for (int i = 0; i < n; i++)
            if (pc_start_node(pc, i) == 0)
                ok++;
        if (ok == n)
            return 0;
        /* A port was taken between picking and binding: start over. */
        for (int i = 0; i < n; i++) {
            pn_cleanup(&pc->nodes[i]);
            memset(&pc->nodes[i], 0, sizeof pc->nodes[i]);
        }
    }
    return -1;
}

int pn_pong(int port, char *leader, size_t n, uint64_t *term)
{
    int fd = tcp_connect_port(port);
    if (fd < 0)
        return -1;
    struct buf req = BUF_INIT, hold = BUF_INIT;
    struct msg m;
    req_ping(&req, 1);
    int rc = rpc(fd, &req, &hold, &m);
    close(fd);
    buf_free(&req);
    if (rc != 0) {
        buf_free(&hold);
        return -1;
    }
    const uint8_t *p;
    size_t len;
    leader[0] = 0;
    rc = -1;
    if (m.type == DDKV_MSG_PONG && msg_u64(&m, 2, term) == ERR_OK) {
        rc = 0;
        if (!msg_is_nil(&m, 1) && msg_bytes(&m, 1, &p, &len) == ERR_OK && len < n) {
            memcpy(leader, p, len);
            leader[len] = 0;
        }
    }
    msg_free(&m);
    buf_free(&hold);
    return rc;
}

int pc_leader(struct proc_cluster *pc, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        int votes[PC_MAX] = {0}, live = 0;
        for (int i = 0; i < pc->n; i++) {
            if (pc->nodes[i].pid <= 0)
                continue;
            live++;
            char leader[64];
            uint64_t term;
            if (pn_pong(pc->nodes[i].port, leader, sizeof leader, &term) != 0)
                continue;
            for (int j = 0; j < pc->n; j++) {
                char name[16];
                snprintf(name, sizeof name, "n%d", j + 1);
                if (strcmp(leader, name) == 0)
                    votes[j]++;
            }
        }
        for (int j = 0; j < pc->n; j++)
            if (pc->nodes[j].pid > 0 && votes[j] * 2 > pc->n && live > 0)
                return j;
        sleep_ms(50);
    }
    return -1;
}

void pc_endpoints(struct proc_cluster *pc, char *out, size_t n)
{
    size_t off = 0;
    out[0] = 0;
    for (int i = 0; i < pc->n && off < n; i++)
        if (pc->nodes[i].pid > 0)
            off += (size_t)snprintf(out + off, n - off, "%s127.0.0.1:%d", off ? "," : "",
                                    pc->nodes[i].port);
}

void pc_cleanup(struct proc_cluster *pc)
{
    for (int i = 0; i < pc->n; i++)
        pn_cleanup(&pc->nodes[i]);
}

int listen_loopback(int *port, int accept_wait_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    struct timeval tv = {accept_wait_ms / 1000, (accept_wait_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}
