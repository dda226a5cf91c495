/* The hub's series API (issue 23 item 3; key layout in agent/series.h):
 *   GET  /api/clients/ID/series               [{"name","unit","interval_ms","retention_s"}]
 *   GET  /api/clients/ID/series/NAME?window=W [{"t","min","avg","max","n"}], oldest first:
 *        one per non-empty bucket of the window (series_window_find)
 *   POST /api/clients/ID/series/NAME          body {"unit","interval_ms","retention_s",
 *        "points":[{"t": ms (default now), "v": number}, ...]} → 201 {"written": N}
 *   POST /api/clients/ID/series               body {"series":[{"name", ...as above}, ...]}
 *        → 201 {"written": N, "series": S}; every series checked before any is
 *        written, an error names the series
 * A device may push with Authorization: Basic instead of a session (hub.c). 
 * Each runs on a worker thread with that thread's client; it returns the
 * HTTP status and sets *out to the JSON reply (malloc'd: the answer, or
 * {"error": "..."}; NULL only when out of memory). */
#ifndef DDKV_HUB_HUB_SERIES_H
#define DDKV_HUB_HUB_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ddkv/ddkv.h"

#define HUB_SERIES_BODY_MAX (256u << 10) /* a push's JSON body */
#define HUB_SERIES_BATCH_MAX 64u         /* series in one batched push */
#define HUB_SERIES_RAW_SCAN_MAX 100000u  /* raw points one chart query reads at most */

int hub_series_list(ddkv_client *c, const char *id, char **out);
int hub_series_query(ddkv_client *c, const char *id, const char *name, const char *window, char **out);
/* The event a watch of series/ makes of a raw point's key (after "series/")
 * and value: {"id","series","t","v"}; NULL (no event) for any other key. */
json_t *hub_series_event(const char *key, size_t klen, const uint8_t *value, size_t vlen);
int hub_series_post(ddkv_client *c, const char *id, const char *name, const uint8_t *body, size_t len, char **out);
int hub_series_post_batch(ddkv_client *c, const char *id, const uint8_t *body, size_t len, char **out);

#endif
