/* Named series in the cluster (the key layout is in series.h): writing a
 * batch of pushed points, and the key names. Used by `ddkv metric push`, the
 * hub's POST /api/clients/{id}/series/{name} and the agent. */
#ifndef DDKV_AGENT_SERIES_STORE_H
#define DDKV_AGENT_SERIES_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "agent/series.h"
#include "ddkv/ddkv.h"

#define SERIES_CLIENT_MAX 127     /* a client id: the hub's path-id bound */
#define SERIES_PUSH_MAX 1000      /* points in one push */
#define SERIES_PUSH_MINUTES_MAX 120 /* distinct minutes one push touches (a rollup each) */
#define SERIES_MINUTE_SCAN_MAX 6000 /* raw points read to recompute one minute's rollup */
#define SERIES_RETENTION_MAX_S (86400u * 30)

struct series_meta {
    char name[SERIES_NAME_MAX + 1];
    char unit[SERIES_UNIT_MAX + 1];
    uint32_t interval_ms;  /* how often points come (0: irregular, pushed) */
    uint32_t retention_s;  /* how long its points live */
};

struct series_point {
    uint64_t t_ms;
    double v;
};

/* Key text into buf (which has room for 256 bytes); the length. */
int series_key_meta(char *buf, const char *client, const char *name);
int series_key_raw(char *buf, const char *client, const char *name, uint64_t t_ms);
int series_key_minute(char *buf, const char *client, const char *name, uint64_t minute_ms);
/* The meta's JSON text (malloc'd; NULL out of memory). */
char *series_meta_text(const struct series_meta *m);
/* A number as the text of a raw point ("21.5"). */
int series_value_text(char *buf, size_t cap, double v);

/* Push n points of one series of client (a client id without '/', a valid
 * series name and unit: DDKV_ERR_USAGE with why in err otherwise; times
 * within [now - retention, now + 1 minute], values finite, at most
 * SERIES_PUSH_MINUTES_MAX distinct minutes). One lease of
 * retention + a minute; the raw points in transactions of up to
 * DDKV_TXN_MAX keys; then every minute the batch touched gets its rollup
 * recomputed from its raw points (so pushes racing from several hubs end
 * with a rollup that counts every point written before the last of them),
 * and the meta. */
ddkv_err series_push(ddkv_client *c, const char *client, const struct series_meta *m, const struct series_point *pts,
                     size_t n, char *err, size_t errlen);
/* series_push's checks alone, without writing (DDKV_OK or DDKV_ERR_USAGE and why). */
ddkv_err series_push_check(const char *client, const struct series_meta *m, const struct series_point *pts, size_t n,
                           char *err, size_t errlen);

#endif
