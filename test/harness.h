/* Process-test harness: start real `ddkv serve` processes on 127.0.0.1 with a
 * port the kernel picks, talk raw frames to them, and stop them by PID.
 *
 * Every node started here dies with the test process (PR_SET_PDEATHSIG), so a
 * crashed or failed test leaves nothing running; pn_cleanup also kills by PID. */
#ifndef DDKV_TEST_HARNESS_H
#define DDKV_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/msg.h"
#include "util/buf.h"

struct proc_node {
    pid_t pid;
    int port;
    char dir[256];  /* data dir */
    char log[300];  /* the node's stderr */
    bool own_dir;   /* made by the harness: removed by pn_cleanup */
};

/* Path of the ddkv binary (env DDKV_BIN, set by ctest). */
const char *harness_bin(void);
/* A fresh directory under $TMPDIR (or /tmp); returns 0 or -1. */
int harness_tmpdir(char *out, size_t n, const char *tag);
void harness_rmrf(const char *path);

/* Start a node. dir NULL: a fresh temp data dir. extra: NULL-terminated extra
 * flags. Returns 0 once the node logged its listening port, -1 on failure. */
int pn_start(struct proc_node *pn, const char *dir, const char *const *extra);
/* Send sig and reap; returns the wait status. */
int pn_kill(struct proc_node *pn, int sig);
/* SIGTERM and wait (SIGKILL after 10 s); returns the exit code or 128+signal. */
int pn_stop(struct proc_node *pn);
bool pn_alive(struct proc_node *pn);
/* Kill if still running, remove its own data dir. */
void pn_cleanup(struct proc_node *pn);
/* Resident set size of the node in KiB (from /proc), or -1. */
long pn_rss_kb(struct proc_node *pn);

/* A cluster of real nodes on 127.0.0.1: names n1..nN, peer ports picked
 * free up front (the members must know each other's addresses before they
 * start), client ports picked by each node. */
#define PC_MAX 7
struct proc_cluster {
    int n;
    struct proc_node nodes[PC_MAX];
    int peer_port[PC_MAX];
    char spec[512];             /* the --cluster value */
    bool joiner[PC_MAX];        /* started with --join instead of --cluster */
    const char *const *extra;   /* extra serve flags for every node (borrowed) */
};
/* Start n nodes (3 or 5 usually) with election timeout 1000 ms unless extra
 * says otherwise. Returns 0 once all logged their client port. */
int pc_start(struct proc_cluster *pc, int n, const char *const *extra);
/* (Re)start member i with its data dir. */
int pc_start_node(struct proc_cluster *pc, int i);
/* Start one more node, n<pc->n+1>, with --join (it waits to be added with
 * ddkv members add). Returns its index, or -1. */
int pc_start_joiner(struct proc_cluster *pc);
/* Index of the member the live members agree is leader (each live member is
 * asked; a majority naming the same leader, which must itself be live), or -1
 * after timeout_ms. */
int pc_leader(struct proc_cluster *pc, int timeout_ms);
/* "127.0.0.1:p1,127.0.0.1:p2,..." of the live members' client ports. */
void pc_endpoints(struct proc_cluster *pc, char *out, size_t n);
void pc_cleanup(struct proc_cluster *pc);
/* Ask member i's PING: leader name (or "" if none) and term. 0 or -1. */
int pn_pong(int port, char *leader, size_t n, uint64_t *term);

/* A listening socket on 127.0.0.1 with a kernel-picked port (written to
 * *port) whose accept() returns after at most accept_wait_ms with nothing, so
 * a fake member's thread can look at its stop flag. -1 on failure. */
int listen_loopback(int *port, int accept_wait_ms);

/* Raw client side. */
int tcp_connect_port(int port);          /* blocking socket, -1 on failure */
int send_all(int fd, const void *p, size_t n);
/* Receive one frame body into out; -1 on EOF/error/timeout. */
int recv_frame(int fd, int timeout_ms, struct buf *out);
/* True if the peer closed the connection within timeout_ms (reading and
 * discarding whatever comes first). */
bool wait_closed(int fd, int timeout_ms);

/* One request/response on fd: sends the frame in req, decodes the reply into
 * m (caller msg_free's it; the body lives in *hold). Returns 0 or -1. */
int rpc(int fd, const struct buf *req, struct buf *hold, struct msg *m);

/* Conveniences on a fresh connection each: 0 on success. */
int pn_ping(int port);
int pn_write(int port, const char *key, const void *val, size_t vlen);
/* 0 and the value in out; 1 if not found; -1 on failure. */
int pn_read(int port, const char *key, struct buf *out);

/* xorshift64*: a deterministic generator for tests, so a failure replays
 * from its seed. */
uint64_t test_rng(uint64_t *state);

/* Build request frames. */
void req_ping(struct buf *b, uint64_t rid);
void req_write(struct buf *b, uint64_t rid, const void *key, size_t klen, const void *val, size_t vlen);
void req_read(struct buf *b, uint64_t rid, const void *key, size_t klen);

#endif
