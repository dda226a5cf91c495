/* The hub's own parts, shared by its HTTP server on the event loop (hub.c)
 * and the API's handlers on the worker threads (hub_api.c): the request a
 * worker runs (struct task), the lanes that carry it, the hub. */
#ifndef DDKV_HUB_HUB_INT_H
#define DDKV_HUB_HUB_INT_H

#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddkv/ddkv.h"
#include "hub/hub.h"

#define HUB_PROXY_WAIT_MS 5000

enum route {
    R_CLIENTS, R_METRICS, R_PROXY, R_CLUSTER, R_JOBS, R_JOB, R_JOB_POST, R_HEALTH,
    /* sign-in (hub_session.c) and user management (hub_users.c) */
    R_LOGIN, R_LOGOUT, R_SESSION, R_EVENTS, R_USERS, R_USER_ADD, R_USER_REMOVE, R_USER_GRANT, R_USER_REVOKE,
    R_JOB_CANCEL, R_JOB_DELETE, R_JOB_DELETE_RESULT, R_JOB_CSV, R_JOB_JSON, R_ALGORITHMS, /* hub_jobs.c */
    R_SERIES_LIST, R_SERIES, R_SERIES_POST, R_SERIES_BATCH,                  /* hub_series.c */
};

struct hub;
struct conn;

struct task {
    struct hub *h;
    struct conn *conn;     /* NULL once the browser went away (loop thread only) */
    enum route route;
    char arg[128];         /* the id in the path */
    char arg2[72];         /* a series name in the path */
    struct evkeyvalq query;
    uint8_t *body;         /* POST: the file, body_len of body_cap bytes received */
    size_t body_len, body_cap, body_read;
    bool upload;           /* holds one of cfg->uploads slots until freed */
    bool series_post;      /* holds one of HUB_SERIES_POSTS until freed */
    bool queued;           /* handed to a lane: freed by reply_cb */
    int status;
    char *out;             /* the JSON reply (malloc) */
    const char *ctype;     /* its type, when not JSON */
    char *cookie;          /* the request's Cookie header (malloc), for its session */
    char csrf[80];         /* its X-CSRF-Token header */
    char *basic;           /* a push's Authorization: Basic credentials (malloc, wiped when freed) */
    bool mutating;         /* a method that changes state: the CSRF token is required */
    char *set_cookie;      /* a Set-Cookie (or WWW-Authenticate) header line for the reply (malloc) */
    unsigned sse_mask;     /* R_EVENTS: the event kinds the person may read */
    uint8_t addr[16];      /* the client's address (failed logins count against it) */
    struct evbuffer *outbuf; /* or the reply in a buffer (a big one, not copied) */
    struct task *next;     /* the lane's queue */
};

/* A lane: worker threads with a bounded queue. */
struct lane {
    struct hub *h;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct task *qh, *qt;
    uint32_t queued, cap;  /* cap 0: unbounded (admission is bounded elsewhere) */
    pthread_t *threads;
    uint32_t n;
};

struct hub {
    const struct hub_config *cfg;
    struct event_base *base;
    struct evconnlistener *listener;
    volatile int stopping;
    struct lane light_lane, main_lane, proxy_lane, upload_lane;
    struct conn *conns;
    uint32_t nconns, max_conns, uploads_active, series_posts;
    uint64_t refused_conns;
    pthread_mutex_t fmu;
    struct evbuffer *sfeed; /* series events: records [u8 id length][id][u32 length][event text] */
    uint32_t series_streams; /* open /api/events?series= streams (atomic): none, no series event is made */
    struct evbuffer *feed[4]; /* by event kind: client, metric, job, cluster */
    struct hubsess *sess;
    SSL_CTX *tls;             /* HTTPS (--https-cert/--https-key), or NULL */
    int auth_on;              /* the cluster's auth, as the poller last saw it (atomic: auth_on_get) */
    bool loopback;            /* listening on a loopback address only */
    struct event *feed_ev, *ping_ev, *sig_int, *sig_term;
    pthread_t watchers[4], poller;
};

/* Written by the poller, read by the loop and the workers. */
static inline bool auth_on_get(const struct hub *h)
{
    return __atomic_load_n(&h->auth_on, __ATOMIC_RELAXED) != 0;
}

/* hub_api.c */
/* Client options for endpoints: the hub's timeout, TLS and credentials. */
void hub_options(const struct hub_config *cfg, const char *endpoints, uint32_t timeout_ms, struct ddkv_options *o);
/* A client of the hub's own (NULL: out of memory or bad options). */
ddkv_client *hub_client(const struct hub_config *cfg, const char *endpoints, uint32_t timeout_ms);
/* o compact (it is released); NULL when o is. */
char *hub_dump(json_t *o);
/* t answers status with {"error": the message}. */
void hub_task_error(struct task *t, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A stored value as JSON, or as a string if it is not JSON. */
json_t *hub_value_json(const void *p, size_t n);
/* Each endpoint's own status, as /api/cluster and the poller's events show it. */
json_t *hub_cluster_json(const struct hub_config *cfg, const char *endpoints, uint32_t timeout_ms);
/* Runs t's route on a worker thread, with hubc, that thread's client. */
void hub_task_run(struct task *t, ddkv_client *hubc);

/* hub.c */
/* An id from a path: one segment of printable bytes. */
bool hub_id_ok(const char *s);

#endif
