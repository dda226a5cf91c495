/* A linearizability checker for histories of a key-value register: reads,
 * writes and compare-and-swaps on independent keys.
 *
 * The algorithm is Wing & Gong's search as improved by Lowe (the one Knossos
 * and Porcupine use): walk the history's call and return events in time
 * order; at a call, try to linearize that operation now (if the register's
 * state allows its result) and continue, remembering (set of linearized
 * operations, state) pairs already explored so no configuration is searched
 * twice; at a return whose operation is not yet linearized, backtrack. Keys
 * are independent registers, so the history is split by key first (that
 * partitioning is what keeps the search small).
 *
 * Outcomes of an operation:
 *   ok       it happened, with the result recorded (a read's value, a CAS's
 *            success or failure);
 *   failed   a write or CAS refused before it could take effect: dropped (a
 *            failed CAS that was *answered* "not swapped" is ok with
 *            succeeded = false, not failed);
 *   unknown  a write or CAS whose answer was lost: it may take effect at any
 *            time after its call, or never; an unknown read is dropped. */
#ifndef DDKV_TEST_LINEARIZE_H
#define DDKV_TEST_LINEARIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lin_kind { LIN_READ, LIN_WRITE, LIN_CAS };
enum lin_outcome { LIN_OK, LIN_FAILED, LIN_UNKNOWN };

/* Values are small strings; NULL is "absent". */
struct lin_op {
    int client;
    enum lin_kind kind;
    const char *key;
    const char *value;    /* read: the value returned (NULL: not found); write/cas: the new value */
    const char *expected; /* cas: the value required (NULL: must not exist) */
    bool succeeded;       /* cas answered ok: whether it swapped */
    uint64_t call, ret;   /* monotonic ns; ret ignored for unknown */
    enum lin_outcome outcome;
    size_t line;          /* where it came from (1-based), for reports */
};

struct lin_report {
    bool linearizable;
    size_t keys, ops_checked;
    /* When not linearizable: the key, and the operation whose return came
     * before any order could place it, in the deepest search. */
    char key[128];
    struct lin_op stuck;
    size_t prefix; /* operations of that key placed in the longest partial order */
    char why[256];
};

/* Check ops (not modified; strings borrowed). Returns 0 with *r filled, or -1
 * (out of memory or a search bound passed, said in r->why). */
int lin_check(const struct lin_op *ops, size_t n, struct lin_report *r);

/* Read a JSON-lines history ({"client","op","key","value","expected","call",
 * "return","ok"} per line, as the recorder writes it) and check it. -1 with
 * r->why on a bad file. */
int lin_check_file(const char *path, struct lin_report *r);

#endif
