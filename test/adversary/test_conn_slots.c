/* Issue 22, finding 4: connection slots. Twenty loopback addresses other
 * than the real client's (127.0.0.2..21) each open up to 40 connections to a
 * node and leave them idle, more than its --max-connections 300. Before the
 * fix every slot stayed taken and a real client was refused ("too many
 * connections"). Asserted: no address holds more than --max-conns-per-addr;
 * during the attack a real client from 127.0.0.1 connects (fresh clients,
 * each a new connection) and writes with p99 under 100 ms; every idle attack
 * connection is closed by the node after --idle-timeout-ms; a libddkv
 * client whose pooled connection the node closed while idle goes on without
 * an error (no failed or unknown-outcome write); a connection that stops
 * reading its replies is cut after the same timeout; every acknowledged write
 * is there after. The node's RSS stays under 256 MiB. */
#include "conn_attack.h"

static struct proc_node pn;

static void stop_all(void)
{
    pn_cleanup(&pn);
}

TestSuite(conn_slots, .fini = stop_all, .timeout = 240);

#define ADDRS 20
#define PER_ADDR 40
#define MAX_CONNS 300
#define PER_ADDR_LIMIT 25
#define IDLE_MS 3000
#define RSS_BOUND_KB (256L * 1024)

static int open_fds[ADDRS * PER_ADDR];
static int open_addr[ADDRS * PER_ADDR];
static int nopen;

/* Open the attack's connections; returns how many the node kept past a short
 * look (a refused one is answered and closed at once). */
static void attack_open(int port)
{
    for (int a = 0; a < ADDRS; a++) {
        char src[32];
        snprintf(src, sizeof src, "127.0.0.%d", 2 + a);
        for (int i = 0; i < PER_ADDR; i++) {
            int fd = conn_from(src, port, 2000);
            if (fd >= 0) {
                open_addr[nopen] = a;
                open_fds[nopen++] = fd;
            }
        }
    }
}

/* Connections the node has not closed (no EOF, no reset) yet; the most of
 * them from one address in *most. */
static int attack_alive_most(int *most)
{
    int alive = 0, per[ADDRS] = {0};
    for (int i = 0; i < nopen; i++) {
        if (open_fds[i] < 0)
            continue;
        char b[4096];
        ssize_t n;
        while ((n = recv(open_fds[i], b, sizeof b, MSG_DONTWAIT)) > 0)
            ; /* a refusal's ERROR frame */
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            close(open_fds[i]);
            open_fds[i] = -1;
        } else {
            alive++;
            per[open_addr[i]]++;
        }
    }
    if (most) {
        *most = 0;
        for (int a = 0; a < ADDRS; a++)
            *most = per[a] > *most ? per[a] : *most;
    }
    return alive;
}

static int attack_alive(void)
{
    return attack_alive_most(NULL);
}

Test(conn_slots, idle_connections_from_many_addresses)
{
    conn_small_quarantine();
    char mc[16], pa[16], idle[16];
    snprintf(mc, sizeof mc, "%d", MAX_CONNS);
    snprintf(pa, sizeof pa, "%d", PER_ADDR_LIMIT);
    snprintf(idle, sizeof idle, "%d", IDLE_MS);
    /* CONN_TEST_OLD_FLAGS=1: only flags the code before the fix knows, to
     * show that code failing the same attack. */
    const char *extra_new[] = {"--max-connections", mc, "--max-conns-per-addr", pa, "--idle-timeout-ms", idle, NULL};
    const char *extra_old[] = {"--max-connections", mc, NULL};
    const char *const *extra = getenv("CONN_TEST_OLD_FLAGS") ? extra_old : extra_new;
    cr_assert_eq(pn_start(&pn, NULL, extra), 0, "node did not start (see %s)", pn.log);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", pn.port);

    /* A pooled client, used before the attack and again after its
     * connection sat idle past the timeout. */
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = ep;
    o.timeout_ms = 5000;
    ddkv_client *pooled = NULL;
    char err[256];
    cr_assert_eq(ddkv_client_new(&o, &pooled, err, sizeof err), DDKV_OK, "%s", err);
    cr_assert_eq(kv_put(pooled, "pooled/0", 8, "a", 1), DDKV_OK, "%s", ddkv_client_errmsg(pooled));
    char *big = malloc(1u << 20);
    memset(big, 'x', 1u << 20);
    cr_assert_eq(kv_put(pooled, "big", 3, big, 1u << 20), DDKV_OK, "%s", ddkv_client_errmsg(pooled));
    free(big);
    uint64_t pooled_used = clock_mono_ms();

    static struct writer before, during;
    memset(&before, 0, sizeof before);
    snprintf(before.endpoints, sizeof before.endpoints, "%s", ep);
    snprintf(before.prefix, sizeof before.prefix, "pre/");
    pthread_create(&before.th, NULL, writer_main, &before);
    usleep(300 * 1000);
    before.stop = 1;
    pthread_join(before.th, NULL);
    cr_assert_eq(before.errors, 0, "%s", before.err);

    /* A connection that is not idle but does not read: 64 stale READs of
     * 1 MiB, none of the replies taken. */
    int stall_fd = conn_from("127.0.0.99", pn.port, 2000);
    cr_assert_geq(stall_fd, 0);
    struct buf reads = BUF_INIT;
    for (uint64_t rid = 1; rid <= 64; rid++) {
        struct msg_writer w;
        msg_begin(&w, &reads, DDKV_MSG_READ, 1, rid, 3);
        mw_bin(&w, "big", 3);
        mw_u64(&w, DDKV_CONSISTENCY_STALE);
        mw_u64(&w, 0);
        msg_end(&w);
    }
    cr_assert_eq(send(stall_fd, reads.data, reads.len, MSG_NOSIGNAL), (ssize_t)reads.len);
    buf_free(&reads);
    uint64_t t_open = clock_mono_ms();
    attack_open(pn.port);
    uint64_t open_ms = clock_mono_ms() - t_open;
    /* What the node holds once it has accepted (or refused) everything the
     * kernel queued for it: the count stops changing. */
    int most = 0, held = attack_alive_most(&most), same = 0;
    for (uint64_t settle = clock_mono_ms() + 2000; same < 3 && clock_mono_ms() < settle;) {
        usleep(100 * 1000);
        int now_held = attack_alive_most(&most);
        same = now_held == held ? same + 1 : 0;
        held = now_held;
    }

    /* The real client during the attack: a writer on one connection, and
     * fresh clients that each need a new slot. */
    memset(&during, 0, sizeof during);
    snprintf(during.endpoints, sizeof during.endpoints, "%s", ep);
    snprintf(during.prefix, sizeof during.prefix, "during/");
    during.pause_ms = 5;
    pthread_create(&during.th, NULL, writer_main, &during);
    int fresh_ok = 0;
    char fresh_err[256] = "";
    for (int i = 0; i < 10; i++) {
        ddkv_client *f = NULL;
        o.timeout_ms = 2000;
        if (ddkv_client_new(&o, &f, err, sizeof err) != DDKV_OK)
            continue;
        char key[32];
        snprintf(key, sizeof key, "fresh/%d", i);
        if (kv_put(f, key, strlen(key), "f", 1) == DDKV_OK)
            fresh_ok++;
        else
            snprintf(fresh_err, sizeof fresh_err, "%s", ddkv_client_errmsg(f));
        ddkv_client_free(f);
        usleep(50 * 1000);
    }
    long rss = pn_rss_kb(&pn);
    usleep(500 * 1000);
    during.stop = 1;
    pthread_join(during.th, NULL);
    double p99 = writer_quantile_ms(&during, 0.99);

    /* Past the idle timeout (and the once-a-second sweep), every attack
     * connection must be gone; the pooled client's connection too. */
    uint64_t idle_deadline = clock_mono_ms() + IDLE_MS + 3000;
    int alive = attack_alive();
    while (alive > 0 && clock_mono_ms() < idle_deadline) {
        usleep(200 * 1000);
        alive = attack_alive();
    }
    while (clock_mono_ms() < pooled_used + IDLE_MS + 1500) /* its connection is closed by now */
        usleep(100 * 1000);
    ddkv_err pe = kv_put(pooled, "pooled/1", 8, "b", 1);
    /* The reader that stalled was cut (its close waits behind the unsent
     * bytes on the wire, so the node's log says it). */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "grep -q 'from 127.0.0.99:.*none taken' %s", pn.log);
    bool stall_cut = system(cmd) == 0;
    close(stall_fd);
    char pooled_err[256];
    snprintf(pooled_err, sizeof pooled_err, "%s", ddkv_client_errmsg(pooled));
    fprintf(stderr,
            "conn_slots: %d attack connections opened in %llu ms from %d addresses, %d held by the node (at most %d from one address); real "
            "client: %d/10 fresh clients wrote (%s), writer %d writes p99 %.1f ms %d errors; attack connections "
            "still open %d ms after the idle timeout: %d; a reader stalled for the idle timeout %s; pooled client after idling: %s; RSS %ld MiB\n",
            nopen, (unsigned long long)open_ms, ADDRS, held, most, fresh_ok, fresh_err[0] ? fresh_err : "-", during.n, p99,
            during.errors, 3000, alive, stall_cut ? "was cut" : "was not cut", ddkv_strerror(pe), rss / 1024);
    for (int i = 0; i < nopen; i++)
        if (open_fds[i] >= 0)
            close(open_fds[i]);
    cr_assert_leq(held, MAX_CONNS, "the node holds %d attack connections", held);
    cr_assert_leq(most, PER_ADDR_LIMIT, "the node holds %d connections from one address", most);
    cr_assert_eq(fresh_ok, 10, "only %d of 10 fresh real clients could write during the attack (%s)", fresh_ok,
                 fresh_err);
    cr_assert_eq(during.errors, 0, "well-behaved writer failed: %s", during.err);
    cr_assert_lt(p99, 100.0, "well-behaved writer p99 %.1f ms during the attack", p99);
    cr_assert_eq(alive, 0, "%d idle attack connections still open after the idle timeout", alive);
    cr_assert(stall_cut, "a connection not reading its replies was not cut after the idle timeout");
    cr_assert_eq(pe, DDKV_OK, "pooled client after its idle connection was closed: %s (%s)", ddkv_strerror(pe),
                 pooled_err);
    cr_assert_lt(rss, RSS_BOUND_KB, "node RSS %ld MiB", rss / 1024);
    ddkv_client_free(pooled);
    writer_check_present(&before, ep);
    writer_check_present(&during, ep);
}
