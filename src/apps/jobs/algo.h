/* The workers' algorithm registry (issue 23): what a job's file goes
 * through, chosen per job at submit (jobdata/<x>/meta "algorithm").
 *
 *   stats   the per-column statistics of src/apps/jobs/csvstats.h
 *   vitals  the same, plus a vital-sign analysis: heart rate and breath
 *           rate per time window (count, min, mean, max, and the trend: the
 *           least-squares slope within the window, per minute), and the
 *           threshold crossings of each (the moments it left or came back
 *           into its normal band).
 *
 * Every algorithm's result also carries "chart": the readings over time,
 * downsampled (min/avg/max per bucket, at most ALGO_BUCKETS buckets, up to
 * ALGO_CHART_COLUMNS columns), with each column's plausible range so a page
 * can mark what lies outside. Buckets start ALGO_BUCKET_S (chart) or
 * ALGO_WINDOW_S (vitals windows) wide and double, merging pairs, whenever
 * the file spans more than fits: memory stays fixed whatever the length
 * (a file without timestamps is bucketed by row number). */
#ifndef DDKV_JOBS_ALGO_H
#define DDKV_JOBS_ALGO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALGO_BUCKETS 400
#define ALGO_CHART_COLUMNS 8
#define ALGO_BUCKET_S 1
#define ALGO_WINDOW_S 60
#define ALGO_EVENTS_KEPT 200

/* Vital-sign bands (inclusive): outside them is a threshold crossing. */
#define VITALS_HR_LOW 50.0
#define VITALS_HR_HIGH 120.0
#define VITALS_BR_LOW 8.0
#define VITALS_BR_HIGH 25.0

struct algo_info {
    const char *name, *title, *description;
};
extern const struct algo_info algo_registry[];
extern const size_t algo_count;

struct algo;
/* NULL if name is not in the registry (or out of memory: *unknown false).
 * mem_bytes (0: csvstats' defaults) bounds what the parser keeps: past it
 * percentiles and duplicate checks stop (reported in the result's limits). */
struct algo *algo_new(const char *name, size_t mem_bytes, bool *unknown);
void algo_free(struct algo *a);
/* As csvstats_feed / csvstats_finish (0 or an err code; the message in
 * algo_error). */
int algo_feed(struct algo *a, const void *p, size_t n);
int algo_finish(struct algo *a);
const char *algo_error(const struct algo *a);
uint64_t algo_rows(const struct algo *a); /* rows seen so far */
size_t algo_memory(const struct algo *a); /* bytes held by the parser */
/* The result (after finish): csvstats' JSON plus "algorithm", "chart" and,
 * for vitals, "vitals". 0 or ERR_NOMEM. */
int algo_to_json(const struct algo *a, json_t **out);

#endif
