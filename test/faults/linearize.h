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
 *            time after its call, or never; an unknown read is dropped.
 *
 * A LIST page (LIN_LIST) is a read of every key in the range it covers, all at
 * one instant inside its interval: the keys with its prefix strictly after
 * `after`, up to its last entry when `more` is set (the rest were not looked
 * at), to the end of the prefix when not. lin_check turns an answered page
 * into one read per key of the history in that range: the returned value, or
 * absent for a key not returned. Keys are registers checked one at a time, so
 * each such read is checked on its own key (what a page promises beyond that,
 * one instant for all its keys, is not checked). A page that failed or timed
 * out says nothing and is dropped; a page whose entries are not sorted, or lie
 * outside its range, is a violation by itself. */
#ifndef DDKV_TEST_LINEARIZE_H
#define DDKV_TEST_LINEARIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lin_kind { LIN_READ, LIN_WRITE, LIN_CAS, LIN_LIST };
enum lin_outcome { LIN_OK, LIN_FAILED, LIN_UNKNOWN };

/* One key-value pair a LIST page returned. */
struct lin_entry {
    const char *key, *value;
};

/* Values are small strings; NULL is "absent". */
struct lin_op {
    int client;
    enum lin_kind kind;
    const char *key;      /* list: the prefix */
    const char *value;    /* read: the value returned (NULL: not found); write/cas: the new value */
    const char *expected; /* cas: the value required (NULL: must not exist) */
    bool succeeded;       /* cas answered ok: whether it swapped */
    uint64_t call, ret;   /* monotonic ns; ret ignored for unknown */
    enum lin_outcome outcome;
    size_t line;          /* where it came from (1-based), for reports */
    /* list: the page asked for keys after `after` (NULL or "": from the
     * first) and got entries[0..nentries) in key order, and `more`. */
    const char *after;
    const struct lin_entry *entries;
    size_t nentries;
    bool more;
    /* Set by lin_check on the reads it derives from a page (kind LIN_READ,
     * line the page's). */
    bool from_list;
};

struct lin_report {
    bool linearizable;
    size_t keys, ops_checked; /* ops_checked counts each read derived from a page */
    size_t pages;             /* answered LIST pages */
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

/* Read a JSON-lines history, as the recorder writes it, and check it. One
 * operation per line:
 *   {"client","op":"read"|"write"|"cas","key","value","expected","call","return","ok"}
 *   {"client","op":"list","prefix","after","entries":[[key,value],...],"more","call","return","ok"}
 * value/expected/after are strings or null; call/return monotonic ns; ok is
 * true, false or "unknown" (a list page: true if answered; anything else is
 * dropped). Histories without list lines (older ones) read as before. -1 with
 * r->why on a bad file. */
int lin_check_file(const char *path, struct lin_report *r);

#endif
