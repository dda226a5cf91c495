/* ddkv agent (see agent.h): a sampling loop, a sender draining the backlog
 * into the cluster, and a responder answering the hubs' requests. Each thread
 * has its own libddkv client (a client is not thread-safe); the ring and the
 * backlog are shared under one mutex. */
#include "agent/agent.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_series.h"
#include "agent/sample.h"
#include "ddkv/ddkv.h"
#include "jobs/worker.h"
#include "util/clock.h"
#include "util/err.h"

#define AGENT_WINDOW_MS 60000u  /* samples sharing one retention lease */
#define AGENT_RESP_TTL_MS 60000u

struct agent {
    const struct agent_config *cfg;
    char name[64];
    volatile int *stop;
    pthread_mutex_t mu; /* ring, backlog */
    struct sample_ring ring;
    struct sample_backlog backlog;
    struct host_info hi;
    uint64_t started_ms;
    const char *mounts[SAMPLE_DISKS_MAX];
    char mount_buf[SAMPLE_DISKS_MAX][SAMPLE_MOUNT_MAX];
    size_t n_mounts;
};

void agent_config_defaults(struct agent_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->root = "/";
    cfg->disks = "/";
    cfg->interval_ms = 1000;
    cfg->retention_s = 3600;
    cfg->presence_ttl_s = 10;
    cfg->backlog = 3600;
    cfg->timeout_ms = 3000;
    cfg->claim_ttl_ms = 30000;
    cfg->worker_threads = 1;
    cfg->worker_nice = 10;
    ddkv_options_init(&cfg->cluster);
}

/* Sleep up to ms, waking early when asked to stop. */
static void nap(struct agent *a, uint64_t ms)
{
    while (ms && !*a->stop) {
        uint64_t step = ms < 100 ? ms : 100;
        clock_sleep_ms(step);
        ms -= step;
    }
}

/* Client options from the agent's configuration. */
static void agent_options(const struct agent_config *cfg, struct ddkv_options *o)
{
    *o = cfg->cluster;
    o->endpoints = cfg->endpoints;
    o->timeout_ms = cfg->timeout_ms;
}

static ddkv_client *agent_client(struct agent *a)
{
    struct ddkv_options o;
    agent_options(a->cfg, &o);
    ddkv_client *c = NULL;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK) {
        fprintf(stderr, "ddkv agent: %s\n", err);
        return NULL;
    }
    return c;
}

static char *json_text(json_t *o)
{
    char *s = o ? json_dumps(o, SAMPLE_JSON_FLAGS) : NULL;
    json_decref(o);
    return s;
}

/* --- presence --- */

static ddkv_err announce(struct agent *a, ddkv_client *c, uint64_t *lease)
{
    uint64_t ttl;
    ddkv_err e = ddkv_lease_grant(c, (uint64_t)a->cfg->presence_ttl_s * 1000, lease, &ttl);
    if (e != DDKV_OK)
        return e;
    char *v = json_text(client_record_json(&a->hi, a->name, a->cfg->interval_ms, a->started_ms, a->cfg->worker));
    if (!v)
        return DDKV_ERR_NOMEM;
    char key[96];
    snprintf(key, sizeof key, "clients/%s", a->name);
    struct ddkv_write_result wr;
    e = ddkv_write(c, key, strlen(key), v, strlen(v), *lease, &wr);
    free(v);
    return e;
}

/* --- the sender --- */

static void *sender_main(void *arg)
{
    struct agent *a = arg;
    ddkv_client *c = agent_client(a);
    if (!c)
        return NULL;
    uint64_t presence = 0, next_keepalive = 0, window_lease = 0, window_end = 0, backoff = 100;
    bool down_logged = false;
    while (!*a->stop) {
        bool ok = true;
        if (!presence) {
            ok = announce(a, c, &presence) == DDKV_OK;
            if (!ok)
                presence = 0;
            next_keepalive = clock_mono_ms() + (uint64_t)a->cfg->presence_ttl_s * 1000 / 3;
        } else if (clock_mono_ms() >= next_keepalive) {
            ddkv_err e = ddkv_lease_keepalive(c, presence, NULL);
            if (e == DDKV_ERR_NOT_FOUND)
                presence = 0; /* it expired while we were cut off: announce again */
            else
                ok = e == DDKV_OK;
            next_keepalive = clock_mono_ms() + (uint64_t)a->cfg->presence_ttl_s * 1000 / (ok ? 3 : 10);
        }
        /* Drain the backlog, oldest first. */
        while (ok && !*a->stop) {
            struct sample s;
            pthread_mutex_lock(&a->mu);
            const struct sample *p = sample_backlog_peek(&a->backlog);
            if (p)
                s = *p;
            pthread_mutex_unlock(&a->mu);
            if (!p)
                break;
            uint64_t now = clock_wall_ms();
            if (s.ts_ms + (uint64_t)a->cfg->retention_s * 1000 < now) {
                pthread_mutex_lock(&a->mu);
                sample_backlog_pop(&a->backlog, NULL); /* older than anyone keeps */
                pthread_mutex_unlock(&a->mu);
                continue;
            }
            if (!window_lease || now >= window_end) {
                uint64_t ttl;
                if (ddkv_lease_grant(c, (uint64_t)a->cfg->retention_s * 1000 + AGENT_WINDOW_MS, &window_lease,
                                     &ttl) != DDKV_OK) {
                    window_lease = 0;
                    ok = false;
                    break;
                }
                window_end = now + AGENT_WINDOW_MS;
            }
            char key[128];
            snprintf(key, sizeof key, "metrics/%s/%013" PRIu64, a->name, s.ts_ms);
            char *v = json_text(sample_to_json(&s));
            if (!v) {
                ok = false;
                break;
            }
            struct ddkv_write_result wr;
            ddkv_err e = ddkv_write(c, key, strlen(key), v, strlen(v), window_lease, &wr);
            free(v);
            if (e == DDKV_ERR_BAD_REQUEST) {
                window_lease = 0; /* the lease is gone (revoked, or expired in an outage) */
                continue;
            }
            if (e != DDKV_OK) {
                ok = false;
                break;
            }
            pthread_mutex_lock(&a->mu);
            sample_backlog_pop(&a->backlog, NULL);
            pthread_mutex_unlock(&a->mu);
        }
        if (!ok) {
            if (!down_logged)
                fprintf(stderr, "ddkv agent: cluster unreachable (%s); sampling into the backlog\n",
                        ddkv_client_errmsg(c));
            down_logged = true;
            nap(a, backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
            continue;
        }
        if (down_logged) {
            size_t left;
            pthread_mutex_lock(&a->mu);
            left = sample_backlog_count(&a->backlog);
            uint64_t dropped = sample_backlog_dropped(&a->backlog);
            pthread_mutex_unlock(&a->mu);
            fprintf(stderr, "ddkv agent: cluster reachable again; backlog flushed (%zu left, %" PRIu64
                            " dropped while it was full)\n", left, dropped);
            down_logged = false;
        }
        backoff = 100;
        nap(a, 100);
    }
    if (presence)
        ddkv_lease_revoke(c, presence); /* a clean stop leaves the list at once */
    ddkv_client_free(c);
    return NULL;
}

/* --- the responder --- */

static json_t *answer(struct agent *a, struct sampler *fresh, const char *req, size_t len)
{
    json_error_t je;
    json_t *q = json_loadb(req, len, 0, &je);
    const char *kind = json_string_value(json_object_get(q, "kind"));
    json_t *out = NULL;
    if (kind && strcmp(kind, "history") == 0) {
        json_int_t minutes = json_integer_value(json_object_get(q, "minutes"));
        if (minutes < 1)
            minutes = 1;
        if (minutes > 60 * 24)
            minutes = 60 * 24;
        json_t *arr = json_array();
        pthread_mutex_lock(&a->mu);
        struct sample_iter it = sample_ring_since(&a->ring, clock_wall_ms() - (uint64_t)minutes * 60000);
        for (const struct sample *s; arr && (s = sample_iter_next(&it));)
            json_array_append_new(arr, sample_to_json(s));
        pthread_mutex_unlock(&a->mu);
        out = json_pack("{s:s, s:o}", "kind", "history", "samples", arr);
    } else {
        /* A fresh sample: CPU over the last 200 ms, everything else now. */
        struct sample s;
        struct errbuf eb;
        sampler_sample(fresh, &s, &eb);
        clock_sleep_ms(200);
        if (sampler_sample(fresh, &s, &eb) == ERR_OK)
            out = json_pack("{s:s, s:o}", "kind", "now", "sample", sample_to_json(&s));
        else
            out = json_pack("{s:s, s:s}", "kind", "now", "error", eb.msg);
    }
    json_decref(q);
    return out;
}

static void respond(struct agent *a, ddkv_client *c, struct sampler *fresh, const uint8_t *key, size_t klen,
                    const uint8_t *val, size_t vlen)
{
    size_t plen = strlen("req/") + strlen(a->name) + 1;
    if (klen <= plen || klen - plen > 64)
        return;
    char rid[72], rkey[160];
    snprintf(rid, sizeof rid, "%.*s", (int)(klen - plen), (const char *)key + plen);
    snprintf(rkey, sizeof rkey, "resp/%s/%s", a->name, rid);
    char *v = json_text(answer(a, fresh, (const char *)val, vlen));
    if (!v)
        return;
    uint64_t lease = 0, ttl;
    if (ddkv_lease_grant(c, AGENT_RESP_TTL_MS, &lease, &ttl) == DDKV_OK) {
        struct ddkv_write_result wr;
        ddkv_write(c, rkey, strlen(rkey), v, strlen(v), lease, &wr);
    }
    free(v);
    struct ddkv_write_result wr;
    ddkv_delete(c, key, klen, &wr);
}

static void *responder_main(void *arg)
{
    struct agent *a = arg;
    ddkv_client *c = agent_client(a);
    struct sampler fresh;
    struct errbuf eb;
    const char *const *mounts = a->mounts;
    if (!c || sampler_init(&fresh, a->cfg->root, mounts, a->n_mounts, &eb) != ERR_OK) {
        ddkv_client_free(c);
        return NULL;
    }
    char prefix[96];
    snprintf(prefix, sizeof prefix, "req/%s/", a->name);
    struct ddkv_options o;
    agent_options(a->cfg, &o);
    while (!*a->stop) {
        /* Requests written while we were away first, then a watch from there. */
        struct ddkv_list l;
        if (ddkv_list_all(c, prefix, strlen(prefix), 1000, &l) != DDKV_OK) {
            nap(a, 1000);
            continue;
        }
        uint64_t from = l.revision + 1;
        for (size_t i = 0; i < l.n && !*a->stop; i++)
            respond(a, c, &fresh, l.entries[i].key, l.entries[i].key_len, l.entries[i].value,
                    l.entries[i].value_len);
        ddkv_list_free(&l);
        ddkv_watch *w = NULL;
        char err[256];
        if (ddkv_watch_open(&o, prefix, strlen(prefix), from, &w, err, sizeof err) != DDKV_OK) {
            nap(a, 1000);
            continue;
        }
        while (!*a->stop) {
            struct ddkv_event ev;
            ddkv_err e = ddkv_watch_next(w, &ev, 300);
            if (e == DDKV_OK) {
                if (ev.kind == DDKV_OP_PUT)
                    respond(a, c, &fresh, ev.key, ev.key_len, ev.value, ev.value_len);
                ddkv_event_free(&ev);
            } else if (e != DDKV_ERR_TIMEOUT && e != DDKV_ERR_UNAVAILABLE && e != DDKV_ERR_PROTOCOL) {
                break; /* compacted or refused: list again */
            }
        }
        ddkv_watch_close(w);
    }
    ddkv_client_free(c);
    return NULL;
}

/* One worker thread: its own client and watch, at its own nice value (a
 * thread's nice is its own on Linux), named NAME, or NAME/i with several. */
struct worker_thread {
    struct agent *a;
    unsigned i;
    pthread_t th;
};

static void *worker_main(void *arg)
{
    struct worker_thread *wt = arg;
    struct agent *a = wt->a;
    if (a->cfg->worker_nice && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), a->cfg->worker_nice) != 0)
        fprintf(stderr, "ddkv agent: worker nice %d: %s\n", a->cfg->worker_nice, strerror(errno));
    ddkv_client *c = agent_client(a);
    struct ddkv_options wopt;
    agent_options(a->cfg, &wopt);
    struct worker_opts wo = {.visibility_ms = a->cfg->claim_ttl_ms,
                             .job_memory = (uint64_t)a->cfg->job_memory_mb << 20,
                             .watch = &wopt};
    const char *delay = getenv("DDKV_WORKER_CHUNK_DELAY_MS");
    if (delay)
        wo.chunk_delay_ms = strtoull(delay, NULL, 10);
    char name[96];
    if (a->cfg->worker_threads > 1)
        snprintf(name, sizeof name, "%.60s/%u", a->name, wt->i);
    else
        snprintf(name, sizeof name, "%.60s", a->name);
    if (c)
        worker_loop(c, name, &wo, a->stop);
    ddkv_client_free(c);
    return NULL;
}

/* --- the sampling loop --- */

int agent_run(const struct agent_config *cfg, volatile int *stop)
{
    static struct agent ag;
    struct agent *a = &ag;
    memset(a, 0, sizeof *a);
    a->cfg = cfg;
    a->stop = stop;
    a->started_ms = clock_wall_ms();
    struct errbuf eb;
    if (host_info_read(cfg->root, &a->hi, &eb) != ERR_OK) {
        fprintf(stderr, "ddkv agent: %s\n", eb.msg);
        return 2;
    }
    const char *name = cfg->name && *cfg->name ? cfg->name : a->hi.hostname;
    size_t nl = strlen(name);
    if (nl >= sizeof a->name) {
        fprintf(stderr, "ddkv agent: the name must be under %zu bytes (--name)\n", sizeof a->name);
        return 2;
    }
    memcpy(a->name, name, nl + 1);
    if (!a->name[0] || strchr(a->name, '/')) {
        fprintf(stderr, "ddkv agent: a name without '/' is needed (--name)\n");
        return 2;
    }
    char disks[SAMPLE_DISKS_MAX * SAMPLE_MOUNT_MAX];
    snprintf(disks, sizeof disks, "%s", cfg->disks ? cfg->disks : "/");
    for (char *save = NULL, *t = strtok_r(disks, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (a->n_mounts == SAMPLE_DISKS_MAX || strlen(t) >= SAMPLE_MOUNT_MAX) {
            fprintf(stderr, "ddkv agent: at most %d disks, each under %d bytes\n", SAMPLE_DISKS_MAX,
                    SAMPLE_MOUNT_MAX);
            return 2;
        }
        snprintf(a->mount_buf[a->n_mounts], SAMPLE_MOUNT_MAX, "%s", t);
        a->mounts[a->n_mounts] = a->mount_buf[a->n_mounts];
        a->n_mounts++;
    }
    struct sampler s;
    if (sampler_init(&s, cfg->root, a->mounts, a->n_mounts, &eb) != ERR_OK) {
        fprintf(stderr, "ddkv agent: %s\n", eb.msg);
        return 2;
    }
    size_t ring = cfg->interval_ms ? 3600000u / cfg->interval_ms + 1 : 3601;
    if (sample_ring_init(&a->ring, ring) != 0 || sample_backlog_init(&a->backlog, cfg->backlog ? cfg->backlog : 1) != 0) {
        fprintf(stderr, "ddkv agent: out of memory\n");
        return 1;
    }
    bool usage = false;
    struct agent_series *series = agent_series_start(cfg, a->name, stop, &usage);
    if (!series) {
        if (!usage)
            fprintf(stderr, "ddkv agent: out of memory\n");
        sample_ring_free(&a->ring);
        sample_backlog_free(&a->backlog);
        return usage ? 2 : 1;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_t sender, responder;
    pthread_create(&sender, NULL, sender_main, a);
    pthread_create(&responder, NULL, responder_main, a);
    unsigned nworkers = cfg->worker ? (cfg->worker_threads ? cfg->worker_threads : 1) : 0;
    struct worker_thread *workers = nworkers ? calloc(nworkers, sizeof *workers) : NULL;
    if (!workers)
        nworkers = 0;
    for (unsigned i = 0; i < nworkers; i++) {
        workers[i] = (struct worker_thread){.a = a, .i = i + 1};
        pthread_create(&workers[i].th, NULL, worker_main, &workers[i]);
    }
    fprintf(stderr, "ddkv agent %s: sampling every %u ms into %s\n", a->name, cfg->interval_ms, cfg->endpoints);
    uint64_t next = clock_mono_ms() + cfg->interval_ms;
    nap(a, cfg->interval_ms); /* the first sample's CPU needs an interval behind it */
    while (!*stop) {
        struct sample smp;
        if (sampler_sample(&s, &smp, &eb) == ERR_OK) {
            pthread_mutex_lock(&a->mu);
            sample_ring_push(&a->ring, &smp);
            sample_backlog_push(&a->backlog, &smp);
            pthread_mutex_unlock(&a->mu);
        }
        next += cfg->interval_ms;
        uint64_t now = clock_mono_ms();
        if (next > now)
            nap(a, next - now);
        else
            next = now; /* we fell behind (a stopped process): no burst to catch up */
    }
    pthread_join(sender, NULL);
    pthread_join(responder, NULL);
    for (unsigned i = 0; i < nworkers; i++)
        pthread_join(workers[i].th, NULL);
    free(workers);
    agent_series_stop(series);
    sample_ring_free(&a->ring);
    sample_backlog_free(&a->backlog);
    pthread_mutex_destroy(&a->mu);
    return 0;
}
