/* The log syncer thread (see logsync.h). */
#include "node/logsync.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kv/store.h"
#include "util/clock.h"

struct logsync {
    struct store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int efd;              /* written by the thread when a sync finishes */
    struct event *wake;   /* on the loop: drains efd (the loop turn ends, the driver polls) */
    /* Under mu. */
    bool requested;       /* a sync waits for the thread */
    bool in_flight;       /* submitted and not yet consumed by poll/wait */
    bool finished;        /* the thread is done with it */
    bool quit;
    int rc;
    uint64_t ns;
    struct errbuf eb;
};

static void *logsync_main(void *arg)
{
    struct logsync *ls = arg;
    pthread_mutex_lock(&ls->mu);
    for (;;) {
        while (!ls->requested && !ls->quit)
            pthread_cond_wait(&ls->cv, &ls->mu);
        if (!ls->requested)
            break; /* quit with nothing to do */
        ls->requested = false;
        pthread_mutex_unlock(&ls->mu);
        struct errbuf eb = {0};
        uint64_t t0 = clock_mono_ns();
        int rc = store_sync_wal(ls->st, &eb);
        uint64_t ns = clock_mono_ns() - t0;
        pthread_mutex_lock(&ls->mu);
        ls->rc = rc;
        ls->eb = eb;
        ls->ns = ns;
        ls->finished = true;
        pthread_cond_broadcast(&ls->cv);
        uint64_t one = 1;
        ssize_t w = write(ls->efd, &one, sizeof one); /* only fails if the counter is full */
        (void)w;
    }
    pthread_mutex_unlock(&ls->mu);
    return NULL;
}

static void logsync_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v); /* the driver runs after this loop turn */
    (void)r;
}

int logsync_start(struct event_base *base, struct store *s, struct logsync **out, struct errbuf *eb)
{
    struct logsync *ls = calloc(1, sizeof *ls);
    if (!ls)
        return errf(eb, ERR_NOMEM, "out of memory");
    ls->st = s;
    ls->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ls->efd < 0) {
        int e = errno;
        free(ls);
        return errf(eb, ERR_IO, "eventfd: %s", strerror(e));
    }
    ls->wake = event_new(base, ls->efd, EV_READ | EV_PERSIST, logsync_wake_cb, ls);
    if (!ls->wake || event_add(ls->wake, NULL) != 0) {
        if (ls->wake)
            event_free(ls->wake);
        close(ls->efd);
        free(ls);
        return errf(eb, ERR_NOMEM, "cannot add the log syncer's event");
    }
    pthread_mutex_init(&ls->mu, NULL);
    pthread_cond_init(&ls->cv, NULL);
    int e = pthread_create(&ls->thread, NULL, logsync_main, ls);
    if (e) {
        event_free(ls->wake);
        close(ls->efd);
        pthread_mutex_destroy(&ls->mu);
        pthread_cond_destroy(&ls->cv);
        free(ls);
        return errf(eb, ERR_IO, "cannot start the log syncer thread: %s", strerror(e));
    }
    *out = ls;
    return ERR_OK;
}

void logsync_stop(struct logsync *ls)
{
    if (!ls)
        return;
    pthread_mutex_lock(&ls->mu);
    ls->quit = true; /* a requested sync still runs first */
    pthread_cond_broadcast(&ls->cv);
    pthread_mutex_unlock(&ls->mu);
    pthread_join(ls->thread, NULL);
    event_free(ls->wake);
    close(ls->efd);
    pthread_mutex_destroy(&ls->mu);
    pthread_cond_destroy(&ls->cv);
    free(ls);
}

void logsync_submit(struct logsync *ls)
{
    pthread_mutex_lock(&ls->mu);
    ASSERT(!ls->in_flight);
    ls->in_flight = true;
    ls->finished = false;
    ls->requested = true;
    pthread_cond_signal(&ls->cv);
    pthread_mutex_unlock(&ls->mu);
}

/* Under mu, with the sync finished: hand its outcome over. */
static void logsync_take(struct logsync *ls, int *rc, uint64_t *ns, struct errbuf *eb)
{
    *rc = ls->rc;
    *ns = ls->ns;
    if (eb)
        *eb = ls->eb;
    ls->in_flight = false;
    ls->finished = false;
}

bool logsync_poll(struct logsync *ls, int *rc, uint64_t *ns, struct errbuf *eb)
{
    pthread_mutex_lock(&ls->mu);
    bool done = !ls->in_flight || ls->finished;
    if (ls->in_flight && ls->finished)
        logsync_take(ls, rc, ns, eb);
    else if (!ls->in_flight)
        *rc = ERR_OK, *ns = 0;
    pthread_mutex_unlock(&ls->mu);
    return done;
}

void logsync_wait(struct logsync *ls, int *rc, uint64_t *ns, struct errbuf *eb)
{
    pthread_mutex_lock(&ls->mu);
    while (ls->in_flight && !ls->finished)
        pthread_cond_wait(&ls->cv, &ls->mu);
    if (ls->in_flight)
        logsync_take(ls, rc, ns, eb);
    else
        *rc = ERR_OK, *ns = 0;
    pthread_mutex_unlock(&ls->mu);
}
