/* Per client IP address state: how many connections it holds (the
 * per-address limit) and its failed logins across all of them (auth.c's
 * throttle). A hash table with chaining; an entry lives while a connection or
 * an AUTH refers to it, or while its failure score has not decayed away. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"
#include "node/conn_int.h"
#include "util/clock.h"
#include "util/log.h"

/* A failed AUTH adds 1 to its address's score, which halves every minute: a
 * user's typo is forgotten soon, a guesser's run of failures is not. */
#define AUTH_SCORE_HALF_LIFE_MS 60000.0
/* Addresses tracked at most: beyond it new addresses are refused until old
 * ones age out (each needs a connection to appear, so this takes many). */
#define ADDR_TABLE_MAX (1u << 18)

static uint64_t addr_hash(const char *ip)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)ip; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static int addr_grow(struct addr_table *t)
{
    size_t nb = t->nb ? t->nb * 2 : 1024;
    struct addr_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < t->nb; i++) {
        struct addr_entry *e = t->b[i];
        while (e) {
            struct addr_entry *next = e->next;
            size_t k = addr_hash(e->ip) & (nb - 1);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

struct addr_entry *addr_get(struct node *n, const char *ip)
{
    struct addr_table *t = &n->srv->addrs;
    if (t->nb) {
        for (struct addr_entry *e = t->b[addr_hash(ip) & (t->nb - 1)]; e; e = e->next)
            if (strcmp(e->ip, ip) == 0)
                return e;
    }
    if (t->n >= ADDR_TABLE_MAX)
        return NULL;
    if (t->n >= t->nb && addr_grow(t) != 0)
        return NULL;
    struct addr_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->ip, sizeof e->ip, "%s", ip);
    size_t k = addr_hash(ip) & (t->nb - 1);
    e->next = t->b[k];
    t->b[k] = e;
    t->n++;
    return e;
}

double addr_auth_score(struct addr_entry *e, uint64_t now_ms)
{
    if (e->auth_score > 0 && now_ms > e->auth_score_ms)
        e->auth_score *= exp2(-(double)(now_ms - e->auth_score_ms) / AUTH_SCORE_HALF_LIFE_MS);
    e->auth_score_ms = now_ms;
    if (e->auth_score < 0.01)
        e->auth_score = 0;
    return e->auth_score;
}

void addr_sweep(struct node *n)
{
    struct addr_table *t = &n->srv->addrs;
    uint64_t now = clock_mono_ms();
    for (size_t i = 0; i < t->nb; i++) {
        struct addr_entry **pp = &t->b[i];
        while (*pp) {
            struct addr_entry *e = *pp;
            if (e->nconns == 0 && e->auth_jobs == 0 && now >= e->auth_retry_ms && addr_auth_score(e, now) == 0 &&
                (!e->auth_good_ms || now - e->auth_good_ms >= AUTH_GOOD_MS)) {
                *pp = e->next;
                free(e);
                t->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

void addr_free_all(struct node *n)
{
    struct addr_table *t = &n->srv->addrs;
    for (size_t i = 0; i < t->nb; i++) {
        while (t->b[i]) {
            struct addr_entry *e = t->b[i];
            t->b[i] = e->next;
            free(e);
        }
    }
    free(t->b);
    memset(t, 0, sizeof *t);
}
