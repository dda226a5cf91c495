/* A simulated disk behind the store interface (store_mem.c), for running
 * whole nodes in one process under a seeded scheduler (issue 17).
 *
 * store_mem.c implements every function of kv/store.h in memory; a binary
 * links it instead of store.c (the library ddkv_kv_mem). What it adds is a
 * disk's failure model, driven from outside by the simulator:
 *   - a write is in the process's memory (readable, surviving store_close
 *     and a kill of the process) but volatile until synced: a sync
 *     (store_write with sync, store_sync_wal, store_probe) makes every write
 *     before it durable;
 *   - a power cut (memdisk_crash) keeps the durable state and a prefix of
 *     the unsynced writes, whole writes only: RocksDB drops a torn last WAL
 *     record, so a torn write and a lost one look the same once reopened.
 *     It can instead damage a record in the middle with whole ones after
 *     it, which the store refuses at the next open (ERR_CORRUPT), as
 *     store.c does;
 *   - a sync can fail (ERR_IO): writes are then refused until store_reopen,
 *     and the writes that sync covered may be lost with it (the kernel
 *     dropped its pages) — store_reopen reloads what is durable;
 *   - the disk can be full: every write and sync fails with ERR_NOSPACE
 *     until space returns (memdisk_set_full false), and is not applied;
 *   - bit rot: a durable key whose bytes no longer match, found by the
 *     verification at open (ERR_CORRUPT naming it) or by a read
 *     (store_corruption latches it).
 * Nothing here draws random numbers or reads a clock: the simulator decides
 * every fault, so a seed replays exactly. Not thread-safe beyond what the
 * node does with a real store (one owner thread, plus store_sync_wal from
 * the log syncer): a mutex guards each disk. */
#ifndef DDKV_KV_MEMDISK_H
#define DDKV_KV_MEMDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/store.h"

struct memdisk;

struct memdisk *memdisk_new(void);
/* Free the disk (it must not be open). */
void memdisk_free(struct memdisk *d);
/* Make store_open(dir) open d (dir is copied). Replaces any earlier disk of
 * that dir; NULL removes it. A store_open of an unregistered dir fails. */
void memdisk_register(const char *dir, struct memdisk *d);

/* For running a suite written for real directories over simulated disks:
 * while on, a store_open of a dir no disk is registered for makes one
 * (empty, as a new directory is); those are freed at exit. */
void memdisk_autocreate(bool on);

/* Writes since the last successful sync (records a power cut may lose). */
size_t memdisk_unsynced(const struct memdisk *d);
/* Bytes of keys and values the durable state holds (all column families). */
uint64_t memdisk_durable_bytes(const struct memdisk *d);
/* Whether a store has d open now. */
bool memdisk_is_open(const struct memdisk *d);

enum memdisk_tear {
    MEMDISK_TEAR_NONE,   /* the kept writes are whole, the rest gone */
    MEMDISK_TEAR_MIDDLE, /* a kept write other than the last is damaged: the next open refuses the disk */
};
/* A power cut. The disk must be closed (the process died first: free the
 * store with store_close). Keeps the durable state plus the first `keep`
 * unsynced writes (at most all of them); the others are gone. */
void memdisk_crash(struct memdisk *d, size_t keep, enum memdisk_tear tear);

/* The next sync fails with ERR_IO. If lose, the writes it would have made
 * durable are lost from the disk at once (they stay visible to the open
 * store until store_reopen, as pages still cached would). */
void memdisk_fail_next_sync(struct memdisk *d, bool lose);
/* The disk is full (writes and syncs fail with ERR_NOSPACE) or not. */
void memdisk_set_full(struct memdisk *d, bool full);
/* Damage the durable copy of key k of cf (no effect if it has none). */
void memdisk_rot(struct memdisk *d, enum store_cf cf, const void *k, size_t kn);

#endif
