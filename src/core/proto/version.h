/* Versions that decide what a member may send and write (docs/wire-format.md,
 * Versions; README, Upgrading).
 *
 * Three numbers, each DDKV_VERSION_PACK'd (include/ddkv/wire.h):
 *   the release version   this build's (CMake's project version); sent in the
 *                         peer hello and the client HELLO. None sent: 0.1.0.
 *   the cluster version   major.minor (patch 0), agreed through the log (an
 *                         SM_OP_CLUSTER_VERSION entry) once every member runs
 *                         a release at least that new; it never goes down.
 *   the data-dir format   kv/sm.h's; format 4 is stamped when the cluster
 *                         version reaches 0.2, so a 0.1.0 build refuses the
 *                         data dir instead of misreading its log.
 * Anything new on the wire or in the log (an entry type, a message a member
 * must understand) is used only once the cluster version allows it. */
#ifndef DDKV_PROTO_VERSION_H
#define DDKV_PROTO_VERSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ddkv/wire.h"

#ifndef DDKV_VERSION_MAJOR
#define DDKV_VERSION_MAJOR 0
#define DDKV_VERSION_MINOR 2
#define DDKV_VERSION_PATCH 0
#endif

/* This build's release version. */
#define DDKV_RELEASE_VERSION DDKV_VERSION_PACK(DDKV_VERSION_MAJOR, DDKV_VERSION_MINOR, DDKV_VERSION_PATCH)

/* What a cluster version a release can take part in: its major.minor. */
static inline uint64_t version_series(uint64_t v)
{
    return v & ~(uint64_t)0xffff;
}

/* Features that need a cluster version, and the version that brings each. */
#define VERSION_DELETE_PREFIX DDKV_VERSION_0_2_0 /* SM_OP_DELETE_PREFIX, DDKV_MSG_DELETE_PREFIX */
#define VERSION_AUTH_REV DDKV_VERSION_0_2_0      /* a client's write carries the auth rev it was admitted under */
#define VERSION_FORMAT_4 DDKV_VERSION_0_2_0      /* data-dir format 4 (kv/sm.h) */
#define VERSION_JOB_PRIORITY DDKV_VERSION_0_2_0  /* mod/jobs.c: per-priority queue keys jobq/<P>... */

/* "X.Y.Z" into buf (at least 32 bytes). */
static inline const char *version_text(uint64_t v, char *buf, size_t n)
{
    snprintf(buf, n, "%u.%u.%u", (unsigned)(v >> 32), (unsigned)((v >> 16) & 0xffff), (unsigned)(v & 0xffff));
    return buf;
}

/* A version a peer or client sent: nonzero, and its fields in range. */
static inline bool version_valid(uint64_t v)
{
    return v >= DDKV_VERSION_0_1_0 && (v >> 32) < 0x10000;
}

#endif
