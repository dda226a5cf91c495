/* The statistics engine for job files: a CSV of readings (a header row, a
 * timestamp column, numeric columns such as heart rate or blood pressure) in,
 * per-column figures out. Bytes arrive in chunks of any size (a file is stored
 * as several key-value values of at most 1 MiB) and are parsed as a stream;
 * memory is bounded by the options, whatever the input.
 *
 * Input. RFC 4180 CSV: fields separated by ',', records by LF or CRLF; a field
 * may be quoted ("a, b" and "say ""hi""" are one field each; a quoted field may
 * hold a line break). A UTF-8 byte order mark before the header is dropped;
 * blank lines (empty or only spaces/tabs) are skipped anywhere; spaces and tabs
 * around a field are trimmed. The first non-blank line is the header.
 *
 * Columns. Each header name is normalised into a key: ASCII lowercased, every
 * run of other characters (spaces, dashes, brackets, "°") becomes one '_',
 * leading and trailing '_' dropped ("Heart Rate (bpm)" -> "heart_rate_bpm").
 * The timestamp column is opts.timestamp_column, else the first column whose
 * key is one of timestamp, time, ts, datetime, date_time, date, time_stamp,
 * time_utc, timestamp_utc, recorded_at, measured_at, unix_time, epoch; a file
 * with none of them has no timestamp column. Columns named in
 * opts.skip_columns are ignored (text columns such as notes); every other
 * column is numeric.
 *
 * Rows. A data row is malformed, counted by kind and left out of every figure,
 * when it has the wrong number of fields, a numeric cell that is not a finite
 * decimal number (123, -1.5, .5, 1e3; not nan, inf, hex or "12 bpm"), a
 * timestamp that does not parse, a bad quote (unterminated, or text after the
 * closing quote), or more than opts.max_line bytes (the rest of that line is
 * skipped unread). The first CSVSTATS_SAMPLES malformed rows are kept with
 * their line number (physical, 1-based, the line the record starts on) and a
 * reason. An empty cell is missing for its column, not malformed.
 *
 * Duplicates. A row is a duplicate, dropped and counted, when its timestamp
 * and every numeric cell equal those of an earlier (non-malformed) row: cells
 * compare as parsed numbers (72 equals 72.0), missing equals missing, skipped
 * columns are not compared. A row whose timestamp equals an earlier row's but
 * whose values differ is kept and counted in conflicting_timestamps. Rows are
 * remembered by a 64-bit hash of their parsed contents (exact timestamps, a
 * hash of the values), so two different rows are taken for duplicates with
 * probability about rows^2 / 2^65 (3e-8 at a million rows). After
 * opts.max_rows remembered rows, later rows are no longer checked
 * (dedupe_limit_hit).
 *
 * Figures, per numeric column, over the rows used (not malformed, not
 * duplicates): count (non-missing cells), missing, min, max, mean, sd: the
 * SAMPLE standard deviation, sqrt(sum (x - mean)^2 / (n - 1)), undefined for
 * n < 2 (two-pass over the stored values; Welford's update if they were not
 * kept). Percentiles p5 p25 p50 p75 p95 p99 by linear interpolation between
 * closest ranks, numpy's default ("linear", R type 7): with the n values
 * sorted x[0] <= ... <= x[n-1], h = (n - 1) * p / 100 (computed exactly),
 * P = x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h]). They need
 * every value, kept as doubles: once more than opts.max_values values (all
 * columns together) would be kept, the values are freed and percentiles are not
 * reported (values_limit_hit); the other figures stay exact. Out of range:
 * values outside the column's plausible range [min, max] (inclusive) are
 * counted (below, above) but still included in every figure. Default ranges
 * by key (a unit suffix _bpm _mmhg _c _degc _celsius _pct _percent _brpm
 * _per_min is dropped before the lookup, so "temp_c" is "temp"; "temp_f" has
 * no range):
 *   heart_rate heartrate hr pulse pulse_rate bpm                          20-250
 *   systolic sys sbp systolic_bp bp_systolic systolic_pressure            50-260
 *   diastolic dia dbp diastolic_bp bp_diastolic diastolic_pressure        20-160
 *   breath_rate breathing_rate breaths_per_min resp_rate resp respiration_rate
 *   respiratory_rate                                                      4-60
 *   spo2 sp_o2 sao2 o2_sat o2_saturation oxygen_saturation                50-100
 *   temperature temp body_temp body_temperature                           30-45 (Celsius)
 * ("rr" is not mapped: it is respiratory rate in some files, R-R interval in
 * ms in others.) opts.ranges add to or override them; other columns have none.
 *
 * Timestamps. ISO-8601 / RFC 3339: YYYY-MM-DD, then optionally 'T' (or 't' or
 * a space) HH:MM[:SS[.fraction]], then optionally Z or an offset +HH:MM, +HHMM
 * or +HH (none means UTC); or Unix time as a non-negative decimal number,
 * taken as milliseconds when it is 1e11 or more and as seconds below (1e11 s
 * is the year 5138, 1e11 ms is 1973). Kept to the microsecond; years 0000 to
 * 9999. first/last are the earliest and latest timestamps of the rows used,
 * span = last - first; out_of_order counts used rows earlier than the used row
 * before them; an empty timestamp cell is missing (the row is used).
 *
 * Errors. Bad rows are counted, never fatal. Fatal (the return code of
 * feed/finish, sticky, with a message in csvstats_result()->error): a header
 * longer than max_line or with more than max_columns columns (ERR_TOO_LARGE),
 * a bad quote in the header, a first line of only numbers (a file without a
 * header), a timestamp_column not in the header (ERR_BAD_INPUT), no header at
 * all (ERR_BAD_INPUT, from finish), out of memory (ERR_NOMEM).
 *
 * Memory: the line buffer (max_line), the header, the values (8 bytes each,
 * up to twice that in growth slack, so at most 16 * max_values bytes) and the
 * duplicate table (about 43 bytes per remembered row, 64 while it grows);
 * nothing else grows with the input. A 20 MB file of 460,000 rows and five
 * numeric columns peaks at 44 MiB. finish frees the values and the table. */
#ifndef DDKV_JOBS_CSVSTATS_H
#define DDKV_JOBS_CSVSTATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CSVSTATS_DEFAULT_MAX_VALUES ((size_t)8 * 1024 * 1024) /* 64 MiB of doubles */
#define CSVSTATS_DEFAULT_MAX_ROWS ((size_t)2 * 1024 * 1024)
#define CSVSTATS_DEFAULT_MAX_LINE ((size_t)64 * 1024)
#define CSVSTATS_DEFAULT_MAX_COLUMNS ((size_t)1024)
#define CSVSTATS_SAMPLES 10 /* malformed rows kept with line number and reason */
#define CSVSTATS_NPCT 6

/* The percentiles reported, in order: 5, 25, 50, 75, 95, 99. */
extern const unsigned csvstats_pcts[CSVSTATS_NPCT];

struct csvstats_range {
    const char *column; /* matched by normalised key */
    double min, max;    /* inclusive; -INFINITY/INFINITY for one-sided */
};

struct csvstats_opts {
    size_t max_values;  /* values kept for percentiles, all columns; 0: default */
    size_t max_rows;    /* rows remembered for duplicate detection; 0: default */
    size_t max_line;    /* longest record in bytes, without its line end; 0: default */
    size_t max_columns; /* 0: default */
    const char *timestamp_column; /* NULL: found by name (see above) */
    const char *const *skip_columns;
    size_t nskip_columns;
    const struct csvstats_range *ranges;
    size_t nranges;
    bool no_default_ranges;
    /* Called for each row used (not malformed, not a duplicate), after the
     * column figures took it: its timestamp (has_ts), and per numeric column
     * (csvstats_result()->columns order) its value unless missing[k]. */
    void (*on_row)(void *ctx, bool has_ts, int64_t ts_us, const double *v, const uint8_t *missing, size_t ncols);
    void *row_ctx;
};

enum csvstats_bad {
    CSVSTATS_BAD_FIELD_COUNT,
    CSVSTATS_BAD_NUMBER,
    CSVSTATS_BAD_TIMESTAMP,
    CSVSTATS_BAD_QUOTES,
    CSVSTATS_BAD_TOO_LONG,
    CSVSTATS_BAD__COUNT
};

struct csvstats_sample {
    uint64_t line;
    enum csvstats_bad kind;
    char reason[128]; /* printable ASCII */
};

struct csvstats_column {
    const char *name; /* as in the header, trimmed (non-UTF-8 bytes shown as '?') */
    const char *key;  /* normalised */
    uint64_t count;   /* non-missing values in rows used */
    uint64_t missing;
    double min, max, mean; /* meaningful when count > 0 */
    double sd;             /* sample (n - 1); meaningful when count > 1 */
    bool have_percentiles; /* count > 0 and the values were kept */
    double pct[CSVSTATS_NPCT];
    bool has_range;
    double range_min, range_max;
    uint64_t below, above; /* out of range, when has_range */
};

struct csvstats_result {
    size_t ncolumns; /* numeric columns, in header order */
    const struct csvstats_column *columns;
    const char *timestamp_column; /* its header name, NULL if none */
    uint64_t lines;               /* physical lines seen, header and blank ones included */
    uint64_t blank_lines;
    uint64_t rows_total;          /* data records: used + duplicates + malformed */
    uint64_t rows_used;
    uint64_t duplicates;
    uint64_t conflicting_timestamps; /* used rows sharing an earlier row's timestamp */
    uint64_t malformed;
    uint64_t malformed_by_kind[CSVSTATS_BAD__COUNT];
    size_t nsamples;
    struct csvstats_sample samples[CSVSTATS_SAMPLES];
    bool have_timestamps; /* some used row had one */
    int64_t ts_first_us, ts_last_us; /* Unix microseconds, UTC */
    uint64_t ts_missing, ts_out_of_order;
    bool values_limit_hit, dedupe_limit_hit;
    int error;            /* 0 or the sticky fatal err code */
    const char *error_msg; /* "" when error is 0 */
};

struct csvstats;

/* o may be NULL (defaults). NULL on out of memory or bad options (a range with
 * min > max or NaN). */
struct csvstats *csvstats_new(const struct csvstats_opts *o);
void csvstats_free(struct csvstats *s);
/* Feed the next n bytes of the file. Returns 0 or a fatal err code (sticky). */
int csvstats_feed(struct csvstats *s, const void *p, size_t n);
/* End of input: parses a last line without a line end, computes the figures.
 * Returns 0 or the fatal err code. Feeding after finish is a bug (asserts). */
int csvstats_finish(struct csvstats *s);
/* The figures; complete after csvstats_finish. Valid until csvstats_free. */
const struct csvstats_result *csvstats_result(const struct csvstats *s);
/* Bytes currently allocated by s, and the most ever (for bounds checks). */
size_t csvstats_memory(const struct csvstats *s);
size_t csvstats_memory_peak(const struct csvstats *s);

/* The result as JSON, after finish (see docs in csvstats.c for the shape).
 * Returns 0 or ERR_NOMEM; *out is a new reference. Figures are full-precision
 * doubles: dump with JSON_REAL_PRECISION(15) to print 72.3 rather than
 * jansson's default 17 digits (72.299999999999997). */
int csvstats_to_json(const struct csvstats *s, json_t **out);
/* "2026-11-24T10:00:00Z", with .mmm or .uuuuuu when not whole seconds. */
void csvstats_format_ts(int64_t us, char out[32]);
/* The parser for one timestamp cell (exposed for tests): 0 and *us, or -1. */
int csvstats_parse_ts(const char *p, size_t n, int64_t *us);

#endif
