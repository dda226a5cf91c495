/* The work pool of node_io_event (node_io.h, pool_*): threads that run work
 * off the node's thread, lane by lane, and hand it back to the loop through
 * a pipe watched by libevent. The auth module's password hashes run here:
 * its lanes are an address's standing, so a user in good standing never
 * waits behind a guess being checked (mod/auth.c says how). */
#include "node/pool.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "node/node_int.h"

struct pool_thread {
    pthread_t th;
    bool started;
    unsigned lanes; /* it takes work of lanes 0..lanes-1, the lowest first */
    int nice;
    struct node_pool *p;
};

struct node_pool {
    struct node *n;
    struct pool_thread threads[NODE_POOL_THREADS_MAX];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Work by lane, and what is done; under mu. */
    struct node_work *todo[NODE_POOL_LANES], *todo_tail[NODE_POOL_LANES], *done, *done_tail;
    bool stop; /* under mu */
    int fds[2]; /* a thread writes a byte to fds[1] per finished work */
    struct event *ev;
};

static void work_push(struct node_work **head, struct node_work **tail, struct node_work *w)
{
    w->next = NULL;
    if (*tail)
        (*tail)->next = w;
    else
        *head = w;
    *tail = w;
}

static void *pool_main(void *arg)
{
    struct pool_thread *t = arg;
    struct node_pool *p = t->p;
    if (t->nice) /* Linux: a thread's nice value is its own */
        (void)!setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), t->nice);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        unsigned k = 0;
        while (!p->stop) {
            for (k = 0; k < t->lanes && !p->todo[k]; k++)
                ;
            if (k < t->lanes)
                break;
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->stop)
            break;
        struct node_work *w = p->todo[k];
        p->todo[k] = w->next;
        if (!p->todo[k])
            p->todo_tail[k] = NULL;
        pthread_mutex_unlock(&p->mu);
        w->run(w);
        pthread_mutex_lock(&p->mu);
        work_push(&p->done, &p->done_tail, w);
        /* The pipe never fills: a byte per work, and the pool's users bound
         * what they queue (the auth module: 64). */
        (void)!write(p->fds[1], "x", 1);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_pipe_cb(evutil_socket_t fd, short what, void *arg)
{
    struct node_pool *p = arg;
    (void)what;
    char drain[128];
    while (read(fd, drain, sizeof drain) > 0)
        ;
    pthread_mutex_lock(&p->mu);
    struct node_work *w = p->done;
    p->done = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (w) {
        struct node_work *next = w->next;
        w->done(p->n, w);
        w = next;
    }
}

struct node_pool *pool_start(struct node *n, unsigned nthreads, const unsigned *lanes, const int *nice,
                             struct errbuf *eb)
{
    ASSERT(nthreads >= 1 && nthreads <= NODE_POOL_THREADS_MAX);
    struct node_pool *p = calloc(1, sizeof *p);
    if (!p) {
        errf(eb, ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->n = n;
    p->fds[0] = p->fds[1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pipe(p->fds) != 0) {
        errf(eb, ERR_IO, "pipe: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(p->fds[i], F_SETFL, fcntl(p->fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(p->fds[i], F_SETFD, FD_CLOEXEC);
    }
    p->ev = event_new(n->base, p->fds[0], EV_READ | EV_PERSIST, pool_pipe_cb, p);
    if (!p->ev || event_add(p->ev, NULL) != 0) {
        errf(eb, ERR_NOMEM, "cannot watch the work pool's pipe");
        goto fail;
    }
    for (unsigned i = 0; i < nthreads; i++) {
        struct pool_thread *t = &p->threads[i];
        t->p = p;
        t->lanes = lanes[i] < NODE_POOL_LANES ? lanes[i] : NODE_POOL_LANES;
        t->nice = nice ? nice[i] : 0;
        if (pthread_create(&t->th, NULL, pool_main, t) != 0) {
            errf(eb, ERR_IO, "cannot start a work pool thread");
            goto fail;
        }
        t->started = true;
    }
    return p;
fail:
    pool_stop(n, p, NULL);
    return NULL;
}

void pool_submit(struct node *n, struct node_pool *p, struct node_work *w)
{
    (void)n;
    unsigned lane = w->lane < NODE_POOL_LANES ? w->lane : NODE_POOL_LANES - 1;
    pthread_mutex_lock(&p->mu);
    work_push(&p->todo[lane], &p->todo_tail[lane], w);
    pthread_cond_broadcast(&p->cv); /* a thread serving fewer lanes may not take it */
    pthread_mutex_unlock(&p->mu);
}

static void work_list_drop(struct node_work *w, void (*drop)(struct node_work *))
{
    while (w) {
        struct node_work *next = w->next;
        if (drop)
            drop(w);
        w = next;
    }
}

void pool_stop(struct node *n, struct node_pool *p, void (*drop)(struct node_work *w))
{
    (void)n;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < NODE_POOL_THREADS_MAX; i++)
        if (p->threads[i].started)
            pthread_join(p->threads[i].th, NULL);
    for (int k = 0; k < NODE_POOL_LANES; k++)
        work_list_drop(p->todo[k], drop);
    work_list_drop(p->done, drop);
    if (p->ev)
        event_free(p->ev);
    for (int i = 0; i < 2; i++)
        if (p->fds[i] >= 0)
            close(p->fds[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
