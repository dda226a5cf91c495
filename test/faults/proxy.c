/* The fault-injecting peer proxy (see proxy.h). */
#include "proxy.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ddkv/wire.h"
#include "proto/msg.h"
#include "util/err.h"

#define FP_NAMES 16
#define FP_HIGH (1u << 20)  /* bytes queued towards one side before reading pauses */
#define FP_HELLO_MAX 4096   /* a hello is small; more before one is garbage */
#define FP_TICK_MS 10

struct front {
    struct fproxy *p;
    int to;           /* name index of the member behind it */
    int target_port;
    int port;         /* the front's own */
    struct evconnlistener *l;
    struct front *next;
};

/* One forwarded connection: a is the dialler's side, b the member's. */
struct pconn {
    struct fproxy *p;
    int from, to;     /* name indexes; from is -1 until the hello, -2 if there was none */
    uint64_t id;
    struct bufferevent *a, *b;
    struct pconn *next;
};

struct fproxy {
    FILE *dbg; /* $FPROXY_DEBUG: a line per connection event */
    uint64_t next_id;
    struct event_base *base;
    struct event *tick;
    pthread_t th;
    pthread_mutex_t mu; /* names, cut, fronts, stats */
    char names[FP_NAMES][64];
    int nnames;
    bool cut[FP_NAMES][FP_NAMES];
    struct front *fronts;
    struct pconn *conns; /* loop thread only */
    struct fproxy_stats st;
};

static int name_index_locked(struct fproxy *p, const char *name, size_t len)
{
    for (int i = 0; i < p->nnames; i++)
        if (strlen(p->names[i]) == len && memcmp(p->names[i], name, len) == 0)
            return i;
    if (p->nnames == FP_NAMES || len >= sizeof p->names[0])
        return -1;
    memcpy(p->names[p->nnames], name, len);
    p->names[p->nnames][len] = 0;
    return p->nnames++;
}

static bool flow_open(struct fproxy *p, int from, int to)
{
    if (from < 0 || to < 0)
        return from == -2; /* an unidentified stream is never cut; one awaiting its hello waits */
    pthread_mutex_lock(&p->mu);
    bool open = !p->cut[from][to];
    pthread_mutex_unlock(&p->mu);
    return open;
}

#define DBG(p, ...)                                                                                         \
    do {                                                                                                    \
        if ((p)->dbg) {                                                                                     \
            fprintf((p)->dbg, __VA_ARGS__);                                                                 \
            fflush((p)->dbg);                                                                               \
        }                                                                                                   \
    } while (0)

static void pconn_close(struct pconn *c)
{
    struct fproxy *p = c->p;
    DBG(p, "conn %llu %d->%d closed\n", (unsigned long long)c->id, c->from, c->to);
    for (struct pconn **pp = &p->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->a)
        bufferevent_free(c->a);
    if (c->b)
        bufferevent_free(c->b);
    free(c);
}

/* The dialler's first frame is its PEER_HELLO: [cluster_id, from_id, version, name, ...]. */
static void pconn_identify(struct pconn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->a);
    size_t have = evbuffer_get_length(in);
    if (have < 4)
        return;
    uint8_t hdr[4];
    evbuffer_copyout(in, hdr, 4);
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len > FP_HELLO_MAX) {
        c->from = -2;
        return;
    }
    if (have < 4 + (size_t)len)
        return;
    const uint8_t *body = evbuffer_pullup(in, 4 + (ssize_t)len) + 4;
    struct msg m;
    struct errbuf eb;
    c->from = -2;
    if (msg_decode(&m, body, len, &msg_limits_request, &eb) != ERR_OK)
        return;
    const uint8_t *name;
    size_t nlen;
    if (m.type == DDKV_MSG_PEER_HELLO && msg_bytes(&m, 3, &name, &nlen) == ERR_OK && nlen > 0) {
        pthread_mutex_lock(&c->p->mu);
        int i = name_index_locked(c->p, (const char *)name, nlen);
        if (i >= 0) {
            DBG(c->p, "conn %llu from %d\n", (unsigned long long)c->id, i);
            c->from = i;
            c->p->st.identified++;
        }
        pthread_mutex_unlock(&c->p->mu);
    }
    msg_free(&m);
}

static void forward(struct pconn *c, struct bufferevent *src, struct bufferevent *dst, int from, int to)
{
    if (!flow_open(c->p, from, to)) {
        bufferevent_disable(src, EV_READ); /* the tick turns it back on when healed */
        return;
    }
    struct evbuffer *in = bufferevent_get_input(src), *out = bufferevent_get_output(dst);
    size_t n = evbuffer_get_length(in);
    if (!n)
        return;
    evbuffer_add_buffer(out, in);
    pthread_mutex_lock(&c->p->mu);
    c->p->st.bytes += n;
    pthread_mutex_unlock(&c->p->mu);
    if (evbuffer_get_length(out) > FP_HIGH)
        bufferevent_disable(src, EV_READ);
}

static void a_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct pconn *c = arg;
    if (c->from == -1)
        pconn_identify(c);
    if (c->from == -1)
        return;
    forward(c, c->a, c->b, c->from, c->to);
}

static void b_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct pconn *c = arg;
    if (c->from == -1) {
        bufferevent_disable(c->b, EV_READ); /* the member speaks only after the hello */
        return;
    }
    forward(c, c->b, c->a, c->to, c->from);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct pconn *c = arg;
    DBG(c->p, "conn %llu event 0x%x on %s\n", (unsigned long long)c->id, what, bev == c->a ? "a" : "b");
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        pconn_close(c);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    struct front *f = arg;
    struct fproxy *p = f->p;
    struct pconn *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->p = p;
    c->id = ++p->next_id;
    DBG(p, "conn %llu accepted for %d\n", (unsigned long long)c->id, f->to);
    c->from = -1;
    c->to = f->to;
    c->a = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->b = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
    c->next = p->conns;
    p->conns = c;
    if (!c->a || !c->b) {
        if (!c->a)
            evutil_closesocket(fd);
        pconn_close(c);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->st.conns++;
    pthread_mutex_unlock(&p->mu);
    bufferevent_setcb(c->a, a_read_cb, NULL, event_cb, c);
    bufferevent_setcb(c->b, b_read_cb, NULL, event_cb, c);
    bufferevent_enable(c->a, EV_READ | EV_WRITE);
    bufferevent_enable(c->b, EV_READ | EV_WRITE);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->target_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bufferevent_socket_connect(c->b, (struct sockaddr *)&to, sizeof to) != 0)
        pconn_close(c);
}

/* Bring each side's reading in line with the cuts and the queues. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fproxy *p = arg;
    struct pconn *next;
    for (struct pconn *c = p->conns; c; c = next) {
        next = c->next;
        if (c->from == -1)
            continue;
        bool a_ok = flow_open(p, c->from, c->to) && evbuffer_get_length(bufferevent_get_output(c->b)) <= FP_HIGH;
        bool b_ok = flow_open(p, c->to, c->from) && evbuffer_get_length(bufferevent_get_output(c->a)) <= FP_HIGH;
        bool a_on = bufferevent_get_enabled(c->a) & EV_READ, b_on = bufferevent_get_enabled(c->b) & EV_READ;
        if (a_ok != a_on || b_ok != b_on)
            DBG(p, "conn %llu %d->%d reading a %d->%d b %d->%d\n", (unsigned long long)c->id, c->from, c->to, a_on,
                a_ok, b_on, b_ok);
        if (a_ok && !(bufferevent_get_enabled(c->a) & EV_READ)) {
            bufferevent_enable(c->a, EV_READ);
            forward(c, c->a, c->b, c->from, c->to); /* what arrived before the cut */
        } else if (!a_ok) {
            bufferevent_disable(c->a, EV_READ);
        }
        if (b_ok && !(bufferevent_get_enabled(c->b) & EV_READ)) {
            bufferevent_enable(c->b, EV_READ);
            forward(c, c->b, c->a, c->to, c->from);
        } else if (!b_ok) {
            bufferevent_disable(c->b, EV_READ);
        }
    }
}

static void *fproxy_main(void *arg)
{
    struct fproxy *p = arg;
    event_base_loop(p->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

struct fproxy *fproxy_new(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);
    struct fproxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    const char *dbg = getenv("FPROXY_DEBUG");
    if (dbg && *dbg)
        p->dbg = fopen(dbg, "a");
    p->base = event_base_new();
    if (!p->base)
        goto fail;
    p->tick = event_new(p->base, -1, EV_PERSIST, tick_cb, p);
    struct timeval tv = {0, FP_TICK_MS * 1000};
    if (!p->tick || event_add(p->tick, &tv) != 0)
        goto fail;
    if (pthread_create(&p->th, NULL, fproxy_main, p) != 0)
        goto fail;
    return p;
fail:
    if (p->tick)
        event_free(p->tick);
    if (p->base)
        event_base_free(p->base);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
}

/* Runs on the loop thread, so nothing else touches the connections. */
static void teardown_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fproxy *p = arg;
    while (p->conns)
        pconn_close(p->conns);
    for (struct front *f = p->fronts; f; f = f->next)
        if (f->l) {
            evconnlistener_free(f->l);
            f->l = NULL;
        }
    event_del(p->tick);
    event_base_loopbreak(p->base);
}

void fproxy_free(struct fproxy *p)
{
    if (!p)
        return;
    event_base_once(p->base, -1, EV_TIMEOUT, teardown_cb, p, NULL);
    pthread_join(p->th, NULL);
    while (p->fronts) {
        struct front *f = p->fronts;
        p->fronts = f->next;
        free(f);
    }
    event_free(p->tick);
    event_base_free(p->base);
    pthread_mutex_destroy(&p->mu);
    if (p->dbg)
        fclose(p->dbg);
    free(p);
}

int fproxy_front(struct fproxy *p, const char *name, int front_port, int target_port)
{
    struct front *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->p = p;
    f->target_port = target_port;
    pthread_mutex_lock(&p->mu);
    f->to = name_index_locked(p, name, strlen(name));
    pthread_mutex_unlock(&p->mu);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)front_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (f->to < 0)
        goto fail;
    f->l = evconnlistener_new_bind(p->base, accept_cb, f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                   LEV_OPT_THREADSAFE, 64, (struct sockaddr *)&a, sizeof a);
    if (!f->l)
        goto fail;
    socklen_t al = sizeof a;
    if (getsockname(evconnlistener_get_fd(f->l), (struct sockaddr *)&a, &al) != 0) {
        evconnlistener_free(f->l);
        goto fail;
    }
    f->port = ntohs(a.sin_port);
    pthread_mutex_lock(&p->mu);
    f->next = p->fronts;
    p->fronts = f;
    pthread_mutex_unlock(&p->mu);
    return ntohs(a.sin_port);
fail:
    free(f);
    return -1;
}

static struct evconnlistener *front_listen(struct front *f)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return evconnlistener_new_bind(f->p->base, accept_cb, f,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_THREADSAFE, 64,
                                   (struct sockaddr *)&a, sizeof a);
}

int fproxy_set_down(struct fproxy *p, const char *name, bool down)
{
    pthread_mutex_lock(&p->mu);
    int to = name_index_locked(p, name, strlen(name));
    struct front *f = p->fronts;
    while (f && f->to != to)
        f = f->next;
    pthread_mutex_unlock(&p->mu);
    if (!f)
        return -1;
    if (down && f->l) {
        evconnlistener_free(f->l);
        f->l = NULL;
    } else if (!down && !f->l) {
        /* The port was ours a moment ago; a TIME_WAIT leftover does not
         * stop SO_REUSEADDR. Retry briefly in case of a race. */
        for (int i = 0; i < 50 && !(f->l = front_listen(f)); i++)
            usleep(20 * 1000);
        if (!f->l)
            return -1;
    }
    DBG(p, "front %d %s\n", to, down ? "down" : "up");
    return 0;
}

void fproxy_cut(struct fproxy *p, const char *from, const char *to, bool cut)
{
    pthread_mutex_lock(&p->mu);
    int a = name_index_locked(p, from, strlen(from)), b = name_index_locked(p, to, strlen(to));
    if (a >= 0 && b >= 0)
        p->cut[a][b] = cut;
    pthread_mutex_unlock(&p->mu);
}

void fproxy_heal(struct fproxy *p)
{
    pthread_mutex_lock(&p->mu);
    memset(p->cut, 0, sizeof p->cut);
    pthread_mutex_unlock(&p->mu);
}

bool fproxy_is_cut(struct fproxy *p, const char *from, const char *to)
{
    pthread_mutex_lock(&p->mu);
    int a = name_index_locked(p, from, strlen(from)), b = name_index_locked(p, to, strlen(to));
    bool cut = a >= 0 && b >= 0 && p->cut[a][b];
    pthread_mutex_unlock(&p->mu);
    return cut;
}

void fproxy_stats(struct fproxy *p, struct fproxy_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    pthread_mutex_unlock(&p->mu);
}
