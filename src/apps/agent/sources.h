/* The agent's series sources (issue 23 item 3): built-in readers of a Linux
 * machine (network rx/tx, block-device read/write rates, temperatures from
 * /sys/class/hwmon and thermal zones) and command sources (a program run
 * every interval whose output lines become points).
 *
 * A command source is bounded in every way a bad program could hold the
 * agent: it runs under /bin/sh -c in a process group of its own, with stdin
 * and stderr on /dev/null; it has SOURCE_CMD_TIMEOUT(interval) to finish (the
 * whole group is SIGKILLed past it: a hanging command, or one whose children
 * keep the pipe open); at most SOURCE_CMD_OUTPUT_MAX bytes of output are read
 * (past it the group is killed and the run is an error); a line is at most
 * SERIES_LINE_MAX bytes and SOURCE_CMD_LINES_MAX lines become points; every
 * line that is not a point is counted, and the first error of a run is kept
 * as a sentence. Nothing it prints can crash the agent or stop other sources. */
#ifndef DDKV_AGENT_SOURCES_H
#define DDKV_AGENT_SOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/sample.h"
#include "agent/series.h"

#define SOURCE_CMD_OUTPUT_MAX (64u << 10)
#define SOURCE_CMD_LINES_MAX 64
#define SOURCE_CMD_TIMEOUT_MIN_MS 1000u
#define SOURCE_CMD_TIMEOUT_MAX_MS 10000u
/* A command's deadline: its interval, within [1 s, 10 s]. */
#define SOURCE_CMD_TIMEOUT(iv)                                                                          \
    ((iv) < SOURCE_CMD_TIMEOUT_MIN_MS ? SOURCE_CMD_TIMEOUT_MIN_MS                                        \
                                      : (iv) > SOURCE_CMD_TIMEOUT_MAX_MS ? SOURCE_CMD_TIMEOUT_MAX_MS : (iv))

/* Called for each point a source makes: name is the full series name. */
typedef void (*source_emit_fn)(void *arg, const char *name, const char *unit, double v);

/* --- command sources --- */

struct cmd_source {
    char name[SERIES_NAME_MAX + 1];
    const char *command; /* borrowed: points into the spec given to cmd_source_parse */
    uint32_t interval_ms;
};

/* Parse "NAME=COMMAND[@INTERVAL_MS]" (a trailing @ and digits is the
 * interval; default_ms otherwise), cutting the '@' off spec in place; out
 * borrows spec. false with why in err. */
bool cmd_source_parse(char *spec, uint32_t default_ms, struct cmd_source *out, char *err, size_t errlen);

struct cmd_run {
    size_t points;        /* emitted */
    size_t bad_lines;     /* not points (garbage, too long, too many) */
    bool timed_out;       /* killed at its deadline */
    bool too_much;        /* killed past SOURCE_CMD_OUTPUT_MAX */
    int status;           /* waitpid status, when it ended by itself */
    char err[200];        /* the run's first error as a sentence, or "" */
};

/* Run src once; each line a point: "VALUE" → series NAME, "SERIES VALUE
 * [UNIT]" → series NAME.SERIES. Returns false if the command could not be
 * started or failed (timeout, too much output, nonzero exit); r says why.
 * When *stop becomes nonzero (stop may be NULL) the run ends as a timeout
 * within 100 ms: the agent never waits out a command to exit. */
bool cmd_source_run(const struct cmd_source *src, volatile int *stop, source_emit_fn emit, void *arg,
                    struct cmd_run *r);

/* --- built-in sources --- */

#define SOURCE_DEVS_MAX 16
#define SOURCE_CORES_MAX 64 /* cpu.N series for cores 0..63 (cpu covers them all) */

struct builtin_state {
    uint64_t t_ms;  /* of the previous read; 0 before the first */
    uint64_t net_rx, net_tx;
    size_t n_devs;
    struct {
        char name[32];
        uint64_t rd_sectors, wr_sectors;
    } devs[SOURCE_DEVS_MAX];
    bool have_cpu;        /* cpu holds the previous read of /proc/stat */
    struct cpu_stat cpu;
};

/* Read ROOT/proc/stat, ROOT/proc/meminfo, ROOT/proc/loadavg,
 * ROOT/proc/net/dev, ROOT/proc/diskstats, ROOT/sys/class/hwmon and
 * ROOT/sys/class/thermal (root NULL: "/"), and emit: cpu (%, the whole
 * machine since the previous read) and cpu.N (%, core N < SOURCE_CORES_MAX,
 * when it was online in both reads), mem.used and mem.available (B, as the
 * metrics path counts them: MemTotal - MemAvailable), load.1 (the 1-minute
 * load average, no unit), net.rx, net.tx (B/s,
 * every interface but lo), disk.DEV.read, disk.DEV.write (B/s, whole block
 * devices listed in ROOT/sys/block, loop and ram left out), temp.CHIP.N
 * (hwmon tempN_input, °C) and temp.zoneN (thermal zones, °C). Rates and CPU
 * need a previous read: the first call emits only memory, load and
 * temperatures. A file that is not there or does not parse is no error: its
 * series are left out of that read (a machine without sensors has no temp
 * series). */
void builtin_sources_read(const char *root, struct builtin_state *st, uint64_t now_ms, source_emit_fn emit,
                          void *arg);

#endif
