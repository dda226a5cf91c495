/* Named series (issue 23 item 3): what a series is, where its points live in
 * the cluster, the text a command source prints, and the min/avg/max buckets
 * a chart is drawn from. Pure functions, no I/O: the agent (sources.c,
 * agent.c), `ddkv metric push` and the hub (hub_series.c) share them.
 *
 * Key layout (ordinary keys: PUT, TXN and leases the cluster already has, so
 * no new log entry kind and no cluster version; the 0.1.0 layout
 * metrics/<client>/<ts> is still written by the agent and read by the hub
 * exactly as before):
 *   seriesmeta/<client>/<name>          {"name","unit","interval_ms","retention_s"}
 *   series/<client>/<name>/r/<ts 13>    one raw point: the value as JSON number text
 *   series/<client>/<name>/m/<ts 13>    the minute starting at ts (a multiple of
 *                                       60,000): {"n","min","avg","max"}
 * Every key of a series is written under a lease of its retention (plus a
 * minute), so old points expire by themselves, the meta with the newest.
 * A chart of a window up to an hour is computed from raw points (at most
 * window / interval keys); longer windows from minute rollups (1,440 keys for
 * 24 hours whatever the rate) plus the raw points after the last rollup, so a
 * 24-hour chart of a 1 Hz series reads about 1,500 keys, not 86,400. */
#ifndef DDKV_AGENT_SERIES_H
#define DDKV_AGENT_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIES_NAME_MAX 64   /* bytes, without the NUL */
#define SERIES_UNIT_MAX 16
#define SERIES_MINUTE_MS 60000u
#define SERIES_LINE_MAX 256  /* a command's output line, longer: an error */

/* A series name: 1..SERIES_NAME_MAX bytes of [A-Za-z0-9_.:-] (it is a key
 * segment and a path segment, so no '/', no '%', nothing to escape). */
bool series_name_ok(const char *s, size_t n);
/* A unit: 0..SERIES_UNIT_MAX printable ASCII bytes without '"' or '\\'. */
bool series_unit_ok(const char *s, size_t n);

/* One line of a command source's output, without its newline:
 *   "21.5"               → name "" (the source's own name), value 21.5
 *   "21.5 C"             → the same with unit "C" (a number, then a non-number)
 *   "cpu_temp 48.0 C"    → name "cpu_temp", value 48, unit "C"
 * Fields are separated by spaces or tabs. The value must be a finite number
 * (strtod whole field; no nan/inf). Returns true and fills the outputs, or
 * false with why in err (a short sentence). Empty lines are false with
 * err "" (skipped, not an error). */
struct series_line {
    char name[SERIES_NAME_MAX + 1];
    char unit[SERIES_UNIT_MAX + 1];
    bool has_unit;
    double value;
};
bool series_parse_line(const char *line, size_t n, struct series_line *out, char *err, size_t errlen);

/* A bucket of points: count, min, sum, max. */
struct series_agg {
    uint64_t n;
    double min, max, sum;
};
void series_agg_add(struct series_agg *a, double v);
/* Merge a rollup of n points with that min, avg and max. */
void series_agg_merge(struct series_agg *a, uint64_t n, double min, double avg, double max);

/* A chart window: its length and the bucket width of its answer. */
struct series_window {
    const char *name;  /* "5m" */
    uint64_t span_ms;
    uint64_t bucket_ms;
    bool rollups;      /* read minute rollups (bucket_ms is a multiple of a minute) */
};
/* The windows a chart may ask for: 5m (1 s buckets), 15m (3 s), 1h (12 s),
 * 6h (1 min, rollups), 24h (5 min, rollups). NULL for anything else. */
const struct series_window *series_window_find(const char *name);
/* The text listing them, for an error message: "5m, 15m, 1h, 6h, 24h". */
const char *series_window_names(void);

/* Downsampling: buckets [t0, t0 + nb * bucket_ms) aligned to bucket_ms.
 * Points or rollups outside are ignored. Caller owns b (nb slots, zeroed by
 * series_buckets_init). */
struct series_buckets {
    uint64_t t0, bucket_ms;
    size_t nb;
    struct series_agg *b;
};
int series_buckets_init(struct series_buckets *sb, uint64_t start_ms, uint64_t end_ms, uint64_t bucket_ms);
void series_buckets_free(struct series_buckets *sb);
void series_buckets_add(struct series_buckets *sb, uint64_t t_ms, double v);
void series_buckets_merge(struct series_buckets *sb, uint64_t t_ms, uint64_t n, double min, double avg, double max);

#endif
