/* Coordination primitives on a real 3-node cluster: compare-and-swap under
 * contention, leases (expiry through the log, keepalive, failover), watch
 * across a leader kill, and a watcher that stops reading. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ddkv/ddkv.h"
#include "cluster_client.h"
#include "harness.h"
#include "util/clock.h"

TestSuite(coord, .fini = stop_all, .timeout = 600);

static void start_cluster(const char *const *extra)
{
    static const char *const dflt[] = {"--election-timeout-ms", "1000", "--heartbeat-ms", "100", NULL};
    cr_assert_eq(pc_start(&pc, 3, extra ? extra : dflt), 0, "cluster did not start (see %s)", pc.nodes[0].log);
    cr_assert_geq(pc_leader(&pc, 15000), 0, "no leader elected");
}

/* --- compare-and-swap --- */

#define CAS_CLIENTS 20
#define CAS_EACH 200
static unsigned char cas_seen[CAS_CLIENTS * CAS_EACH + 1];
static pthread_mutex_t cas_lock = PTHREAD_MUTEX_INITIALIZER;

struct casser {
    pthread_t th;
    char endpoints[512];
    int done, attempts;
    char err[256];
};

static void *cas_main(void *arg)
{
    struct casser *k = arg;
    ddkv_client *c = client_for(k->endpoints, 15000);
    while (k->done < CAS_EACH) {
        struct ddkv_value v;
        ddkv_err e = ddkv_read(c, "counter", 7, DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
        if (e != DDKV_OK) {
            snprintf(k->err, sizeof k->err, "read: %s (%s)", ddkv_strerror(e), ddkv_client_errmsg(c));
            break;
        }
        long old = strtol(v.value, NULL, 10);
        char next[32];
        int nl = snprintf(next, sizeof next, "%ld", old + 1);
        struct ddkv_txn_result r;
        k->attempts++;
        e = ddkv_cas(c, "counter", 7, v.value, v.len, false, next, (size_t)nl, 0, &r);
        ddkv_free(v.value);
        if (e != DDKV_OK) {
            snprintf(k->err, sizeof k->err, "cas: %s (%s)", ddkv_strerror(e), ddkv_client_errmsg(c));
            break;
        }
        if (r.succeeded) {
            /* This CAS replaced exactly `old`: no other may have produced old + 1. */
            pthread_mutex_lock(&cas_lock);
            if (old + 1 <= CAS_CLIENTS * CAS_EACH)
                cas_seen[old + 1]++;
            pthread_mutex_unlock(&cas_lock);
            k->done++;
        }
    }
    ddkv_client_free(c);
    return NULL;
}

Test(coord, twenty_clients_cas_increment_one_counter_to_exactly_4000)
{
    start_cluster(NULL);
    ddkv_client *c = client_node(0, 5000);
    struct ddkv_txn_result r;
    cr_assert_eq(ddkv_cas(c, "counter", 7, NULL, 0, true, "0", 1, 0, &r), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert(r.succeeded, "the counter did not exist, so 'must not exist' holds");
    cr_assert_eq(ddkv_cas(c, "counter", 7, NULL, 0, true, "0", 1, 0, &r), DDKV_OK);
    cr_assert(!r.succeeded, "now it exists");
    ddkv_client_free(c);
    static struct casser ks[CAS_CLIENTS];
    for (int i = 0; i < CAS_CLIENTS; i++) {
        memset(&ks[i], 0, sizeof ks[i]);
        /* Each client starts at another member: writes are redirected, reads
         * are served where they land. */
        int first = i % 3;
        snprintf(ks[i].endpoints, sizeof ks[i].endpoints, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
                 pc.nodes[first].port, pc.nodes[(first + 1) % 3].port, pc.nodes[(first + 2) % 3].port);
        cr_assert_eq(pthread_create(&ks[i].th, NULL, cas_main, &ks[i]), 0);
    }
    int attempts = 0;
    for (int i = 0; i < CAS_CLIENTS; i++) {
        pthread_join(ks[i].th, NULL);
        cr_assert_eq(ks[i].done, CAS_EACH, "client %d: %d successes (%s)", i, ks[i].done, ks[i].err);
        attempts += ks[i].attempts;
    }
    for (int v = 1; v <= CAS_CLIENTS * CAS_EACH; v++)
        cr_assert_eq(cas_seen[v], 1, "value %d was produced by %d successful CAS", v, cas_seen[v]);
    c = client_node(1, 5000);
    struct ddkv_value v;
    cr_assert_eq(ddkv_read(c, "counter", 7, DDKV_CONSISTENCY_LINEARIZABLE, 0, &v), DDKV_OK);
    cr_assert_str_eq((const char *)v.value, "4000");
    cr_assert_eq(v.version, CAS_CLIENTS * CAS_EACH + 1);
    ddkv_free(v.value);
    ddkv_client_free(c);
    cr_log_info("4000 increments from 20 clients: %d CAS attempts", attempts);
}

/* --- leases --- */

/* 1 if key is on member i (stale read: what that member has applied). */
static int on_member(int i, const char *key)
{
    ddkv_client *c = client_node(i, 3000);
    struct ddkv_value v;
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_STALE, 0, &v);
    ddkv_client_free(c);
    if (e == DDKV_OK) {
        ddkv_free(v.value);
        return 1;
    }
    cr_assert_eq(e, DDKV_ERR_NOT_FOUND, "read %s on n%d: %s", key, i + 1, ddkv_strerror(e));
    return 0;
}

static int on_members(const char *key)
{
    int n = 0;
    for (int i = 0; i < pc.n; i++)
        if (pc.nodes[i].pid > 0)
            n += on_member(i, key);
    return n;
}

static uint64_t put_with_lease(ddkv_client *c, const char *key, uint64_t ttl_ms)
{
    uint64_t id, ttl;
    cr_assert_eq(ddkv_lease_grant(c, ttl_ms, &id, &ttl), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(ttl, ttl_ms);
    struct ddkv_write_result wr;
    cr_assert_eq(ddkv_write(c, key, strlen(key), "here", 4, id, &wr), DDKV_OK, "%s", ddkv_client_errmsg(c));
    return id;
}

Test(coord, a_leased_key_is_gone_from_every_member_two_to_four_seconds_later)
{
    start_cluster(NULL);
    char eps[512];
    pc_endpoints(&pc, eps, sizeof eps);
    ddkv_client *c = client_for(eps, 10000);
    /* A write under an unknown lease is refused and changes nothing. */
    struct ddkv_write_result wr;
    cr_assert_neq(ddkv_write(c, "nolease", 7, "x", 1, 999999, &wr), DDKV_OK);
    cr_assert_eq(on_members("nolease"), 0);
    uint64_t t0 = clock_mono_ms();
    put_with_lease(c, "ttl/short", 2000);
    /* A member may not have the key yet (replication lags on a loaded
     * machine); once one has it, it must keep it until the ttl has passed. */
    int gone_at = -1;
    bool seen[PC_MAX] = {false};
    while (gone_at < 0 && clock_mono_ms() - t0 < 8000) {
        int n = 0;
        uint64_t el = clock_mono_ms() - t0;
        for (int i = 0; i < pc.n; i++) {
            int has = on_member(i, "ttl/short");
            if (el < 1900)
                cr_assert(has || !seen[i], "gone from n%d after only %llu ms", i + 1, (unsigned long long)el);
            seen[i] |= has;
            n += has;
        }
        if (n == 0 && seen[0] && seen[1] && seen[2])
            gone_at = (int)el;
        usleep(100 * 1000);
    }
    cr_assert_geq(gone_at, 2000, "expired after %d ms", gone_at);
    cr_assert_leq(gone_at, 4000, "expired only after %d ms", gone_at);
    ddkv_client_free(c);
    cr_log_info("a 2 s lease's key was gone from every member %d ms after the grant", gone_at);
}

Test(coord, keepalive_holds_a_lease_and_a_leader_kill_never_expires_one_early)
{
    start_cluster(NULL);
    char eps[512];
    pc_endpoints(&pc, eps, sizeof eps);
    ddkv_client *c = client_for(eps, 10000);
    uint64_t t0 = clock_mono_ms();
    uint64_t kept = put_with_lease(c, "ttl/kept", 2000);
    uint64_t through = put_with_lease(c, "ttl/failover", 3000);
    /* The checks below read each member's own copy: wait until every member
     * has applied both writes (followers learn the commit after the leader
     * answered, later still on a loaded machine). */
    while ((on_members("ttl/kept") < 3 || on_members("ttl/failover") < 3) &&
           clock_mono_ms() - t0 < 900)
        usleep(5 * 1000);
    /* Keep one alive every second for 10 s; kill the leader at 1 s. */
    bool killed = false;
    int failover_gone = -1;
    while (clock_mono_ms() - t0 < 10000) {
        uint64_t ttl;
        ddkv_err e = ddkv_lease_keepalive(c, kept, &ttl);
        cr_assert_eq(e, DDKV_OK, "keepalive at %llu ms: %s (%s)", (unsigned long long)(clock_mono_ms() - t0),
                     ddkv_strerror(e), ddkv_client_errmsg(c));
        if (!killed && clock_mono_ms() - t0 >= 1000) {
            pn_kill(&pc.nodes[pc_leader(&pc, 5000)], SIGKILL);
            killed = true;
        }
        uint64_t el = clock_mono_ms() - t0;
        int live = killed ? 2 : 3;
        cr_assert_eq(on_members("ttl/kept"), live, "the kept-alive key is gone at %llu ms", (unsigned long long)el);
        int f = on_members("ttl/failover");
        if (el < 2900)
            cr_assert_eq(f, live, "the failover shortened a 3 s lease (gone at %llu ms)", (unsigned long long)el);
        if (f == 0 && failover_gone < 0)
            failover_gone = (int)el;
        usleep(500 * 1000);
    }
    cr_assert_geq(failover_gone, 2900, "the 3 s lease expired in the end (at %d ms)", failover_gone);
    /* Revoke: the key goes at once; a second revoke finds nothing. */
    cr_assert_eq(ddkv_lease_revoke(c, kept), DDKV_OK);
    cr_assert_eq(ddkv_lease_revoke(c, kept), DDKV_ERR_NOT_FOUND);
    uint64_t ttl;
    cr_assert_eq(ddkv_lease_keepalive(c, through, &ttl), DDKV_ERR_NOT_FOUND);
    usleep(300 * 1000);
    cr_assert_eq(on_members("ttl/kept"), 0);
    ddkv_client_free(c);
    cr_log_info("a 3 s lease across a leader kill expired %d ms after its grant", failover_gone);
}

/* --- watch --- */

struct loader {
    pthread_t th;
    char endpoints[512];
    int id, from, count, acked;
};

static void *loader_main(void *arg)
{
    struct loader *l = arg;
    ddkv_client *c = client_for(l->endpoints, 20000);
    for (int k = l->from; k < l->from + l->count; k++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "w/%05d", k);
        snprintf(val, sizeof val, "v%d", k);
        struct ddkv_write_result wr;
        if (ddkv_write(c, key, strlen(key), val, strlen(val), 0, &wr) == DDKV_OK)
            l->acked++;
    }
    ddkv_client_free(c);
    return NULL;
}

Test(coord, a_watch_across_a_leader_kill_gets_every_change_once_in_order)
{
    start_cluster(NULL);
    int leader = pc_leader(&pc, 5000);
    ddkv_client *c = client_node(leader, 5000);
    struct ddkv_status s = {0};
    cr_assert_eq(ddkv_status(c, &s), DDKV_OK);
    uint64_t from = s.revision + 1;
    ddkv_status_free(&s);
    ddkv_client_free(c);
    /* The watcher's first endpoint is the leader, the one that will die. */
    char eps[512];
    snprintf(eps, sizeof eps, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", pc.nodes[leader].port,
             pc.nodes[(leader + 1) % 3].port, pc.nodes[(leader + 2) % 3].port);
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = eps;
    o.timeout_ms = 20000;
    ddkv_watch *w = NULL;
    char err[256];
    cr_assert_eq(ddkv_watch_open(&o, "w/", 2, from, &w, err, sizeof err), DDKV_OK, "%s", err);
    enum { TOTAL = 5000, NL = 4 };
    static unsigned char seen[TOTAL];
    memset(seen, 0, sizeof seen);
    struct loader ls[NL];
    for (int i = 0; i < NL; i++) {
        memset(&ls[i], 0, sizeof ls[i]);
        pc_endpoints(&pc, ls[i].endpoints, sizeof ls[i].endpoints);
        ls[i].from = i * (TOTAL / NL);
        ls[i].count = TOTAL / NL;
        cr_assert_eq(pthread_create(&ls[i].th, NULL, loader_main, &ls[i]), 0);
    }
    int got = 0;
    uint64_t last_rev = 0;
    bool killed = false;
    uint64_t deadline = clock_mono_ms() + 120000;
    while (got < TOTAL && clock_mono_ms() < deadline) {
        struct ddkv_event ev;
        ddkv_err e = ddkv_watch_next(w, &ev, 1000);
        if (e == DDKV_ERR_TIMEOUT)
            continue;
        cr_assert_eq(e, DDKV_OK, "watch: %s (%s)", ddkv_strerror(e), ddkv_watch_errmsg(w));
        cr_assert_eq(ev.kind, DDKV_OP_PUT);
        cr_assert_geq(ev.mod_rev, from);
        cr_assert_gt(ev.mod_rev, last_rev, "revision %llu after %llu: out of order or repeated",
                     (unsigned long long)ev.mod_rev, (unsigned long long)last_rev);
        last_rev = ev.mod_rev;
        int k = atoi((const char *)ev.key + 2);
        cr_assert(k >= 0 && k < TOTAL);
        cr_assert_eq(seen[k], 0, "w/%05d delivered twice", k);
        seen[k] = 1;
        got++;
        ddkv_event_free(&ev);
        if (!killed && got == TOTAL / 2) {
            pn_kill(&pc.nodes[leader], SIGKILL);
            killed = true;
        }
    }
    int acked = 0;
    for (int i = 0; i < NL; i++) {
        pthread_join(ls[i].th, NULL);
        acked += ls[i].acked;
    }
    cr_assert_eq(acked, TOTAL, "%d of %d writes acknowledged", acked, TOTAL);
    cr_assert_eq(got, TOTAL, "the watcher received %d of %d changes", got, TOTAL);
    /* Nothing more arrives: no duplicate after the last one. */
    struct ddkv_event ev;
    cr_assert_eq(ddkv_watch_next(w, &ev, 500), DDKV_ERR_TIMEOUT);
    ddkv_watch_close(w);
}

Test(coord, a_watcher_from_before_the_history_is_told_compacted)
{
    start_cluster(NULL);
    char eps[512];
    pc_endpoints(&pc, eps, sizeof eps);
    /* A member restarted knows no history before its restart. */
    ddkv_client *c = client_for(eps, 10000);
    struct ddkv_write_result wr;
    cr_assert_eq(ddkv_write(c, "h/1", 3, "a", 1, 0, &wr), DDKV_OK);
    ddkv_client_free(c);
    pn_stop(&pc.nodes[2]);
    cr_assert_eq(pc_start_node(&pc, 2), 0);
    struct ddkv_options o;
    ddkv_options_init(&o);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", pc.nodes[2].port);
    o.endpoints = ep;
    o.timeout_ms = 5000;
    ddkv_watch *w = NULL;
    char err[256];
    ddkv_err e = ddkv_watch_open(&o, "h/", 2, 1, &w, err, sizeof err);
    if (e == DDKV_OK) {
        struct ddkv_event ev;
        e = ddkv_watch_next(w, &ev, 3000);
        cr_assert_eq(e, DDKV_ERR_COMPACTED, "watch from revision 1 on a restarted member: %s", ddkv_strerror(e));
        cr_assert_gt(ddkv_watch_compacted_rev(w), 1);
        ddkv_watch_close(w);
    } else {
        cr_assert_eq(e, DDKV_ERR_COMPACTED, "%s", err);
    }
}

Test(coord, a_watcher_that_stops_reading_is_cut_off_and_memory_stays_bounded)
{
    /* A small history so the test is quick, and frequent snapshots so the
     * in-memory Raft log (entries since the last snapshot) stays small;
     * RSS is measured on the leader. */
    static const char *const extra[] = {"--election-timeout-ms", "1000", "--watch-history-bytes", "1048576",
                                        "--snapshot-entries", "500", NULL};
    setenv("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1:quarantine_size_mb=4", 1);
    start_cluster(extra);
    int leader = pc_leader(&pc, 5000);
    int fd = tcp_connect_port(pc.nodes[leader].port);
    cr_assert_geq(fd, 0);
    /* A fixed, modest receive buffer (no autotuning to megabytes), so the
     * node's output backs up after a few frames. */
    int small = 65536;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct buf req = BUF_INIT;
    struct msg_writer mw;
    msg_begin(&mw, &req, DDKV_MSG_WATCH, 1, 77, 2);
    mw_bin(&mw, "big/", 4);
    mw_u64(&mw, 0);
    msg_end(&mw);
    cr_assert_eq(send_all(fd, req.data, req.len), 0);
    buf_free(&req);
    /* 12 MiB of changes under the watched prefix (12 times the history),
     * after the same load without a watcher reading, so RocksDB's own
     * memory (memtables, caches) has grown to its working size first. */
    static char val[8192];
    memset(val, 'x', sizeof val);
    ddkv_client *c = client_node(leader, 10000);
    long rss[3];
    for (int phase = 0; phase < 2; phase++) {
        rss[phase] = pn_rss_kb(&pc.nodes[leader]);
        for (int k = 0; k < 1536; k++) {
            char key[32];
            snprintf(key, sizeof key, "%s/%d", phase ? "big" : "warm", k % 64);
            struct ddkv_write_result wr;
            cr_assert_eq(ddkv_write(c, key, strlen(key), val, sizeof val, 0, &wr), DDKV_OK);
        }
    }
    rss[2] = pn_rss_kb(&pc.nodes[leader]);
    ddkv_client_free(c);
    cr_log_info("leader RSS: %ld KiB at start, %ld KiB after 12 MiB unwatched, %ld KiB after 12 MiB more "
                "to a stalled watcher", rss[0], rss[1], rss[2]);
    cr_assert_lt(rss[2] - rss[1], 16 * 1024, "the stalled watcher made RSS grow by %ld KiB", rss[2] - rss[1]);
    /* Reading now: some events, then ERROR COMPACTED, then the stream is over. */
    struct buf hold = BUF_INIT;
    bool compacted = false;
    int events = 0;
    while (!compacted && recv_frame(fd, 15000, &hold) == 0) {
        struct msg m;
        struct errbuf eb;
        cr_assert_eq(msg_decode(&m, hold.data, hold.len, &msg_limits_reply, &eb), ERR_OK);
        if (m.type == DDKV_MSG_EVENT) {
            events++;
        } else {
            uint64_t code = 0;
            cr_assert_eq(m.type, DDKV_MSG_ERROR);
            msg_u64(&m, 0, &code);
            compacted = code == DDKV_WERR_COMPACTED;
        }
        msg_free(&m);
    }
    buf_free(&hold);
    close(fd);
    cr_assert(compacted, "the stalled watcher was not cut off (%d events read)", events);
    cr_assert_lt(events, 1536, "it could not have kept up");
}

/* Paging by key (start_after) stays correct while keys change between pages:
 * every key present throughout is listed exactly once, in order. */
Test(coord, list_pages_stay_correct_while_keys_change_between_pages)
{
    start_cluster(NULL);
    char eps[512];
    pc_endpoints(&pc, eps, sizeof eps);
    ddkv_client *c = client_for(eps, 10000);
    struct ddkv_write_result wr;
    for (int k = 0; k < 200; k += 2) { /* even keys stay; odd keys come and go */
        char key[32];
        snprintf(key, sizeof key, "p/%04d", k);
        cr_assert_eq(ddkv_write(c, key, strlen(key), "s", 1, 0, &wr), DDKV_OK);
    }
    /* Read pages from a follower after each change is applied there. */
    int leader = pc_leader(&pc, 5000);
    ddkv_client *r = client_node((leader + 1) % 3, 10000);
    static unsigned char seen[200];
    memset(seen, 0, sizeof seen);
    char after[32] = "";
    int pages = 0, last = -1;
    for (;;) {
        struct ddkv_list l = {0};
        cr_assert_eq(ddkv_list(r, "p/", 2, after, strlen(after), 7, &l), DDKV_OK, "%s", ddkv_client_errmsg(r));
        for (size_t i = 0; i < l.n; i++) {
            int k = atoi((const char *)l.entries[i].key + 2);
            cr_assert_gt(k, last, "p/%04d listed after p/%04d", k, last);
            last = k;
            seen[k]++;
        }
        bool more = l.more;
        if (l.n)
            snprintf(after, sizeof after, "%.*s", (int)l.entries[l.n - 1].key_len, (const char *)l.entries[l.n - 1].key);
        ddkv_list_free(&l);
        pages++;
        if (!more)
            break;
        /* Between pages: insert odd keys behind and ahead of the cursor,
         * delete some of the odd keys written earlier. */
        for (int j = 0; j < 3; j++) {
            char key[32];
            int k = (pages * 37 + j * 61) % 200 | 1;
            snprintf(key, sizeof key, "p/%04d", k);
            if (j == 2)
                ddkv_delete(c, key, strlen(key), &wr);
            else
                cr_assert_eq(ddkv_write(c, key, strlen(key), "o", 1, 0, &wr), DDKV_OK);
        }
    }
    for (int k = 0; k < 200; k += 2)
        cr_assert_eq(seen[k], 1, "p/%04d listed %d times", k, seen[k]);
    for (int k = 1; k < 200; k += 2)
        cr_assert_leq(seen[k], 1, "p/%04d listed %d times", k, seen[k]);
    cr_assert_gt(pages, 14);
    ddkv_client_free(r);
    ddkv_client_free(c);
}
