/* Password hashes: PBKDF2-HMAC-SHA256 with a per-user random salt.
 *
 * A hash record carries everything needed to verify a password against it,
 * so the iteration count can be raised later without touching old records:
 *   0   u8   algorithm (1: PBKDF2-HMAC-SHA256)
 *   1   u32  iterations (big-endian)
 *   5   16   salt (random, from the OpenSSL CSPRNG)
 *   21  32   derived key
 * (53 bytes). Hashing takes tens of milliseconds on purpose: callers on an
 * event loop run it on a worker thread (src/core/node/mod/auth.c). */
#ifndef DDKV_KV_PASSWD_H
#define DDKV_KV_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define PASSWD_ALG_PBKDF2_SHA256 1
#define PASSWD_SALT_BYTES 16
#define PASSWD_KEY_BYTES 32
#define PASSWD_RECORD_BYTES (1 + 4 + PASSWD_SALT_BYTES + PASSWD_KEY_BYTES)
/* 100,000 iterations: about 40-80 ms on this project's 2-core test machine
 * (measured with OpenSSL 3.0); see README "Authentication". */
#define PASSWD_ITERATIONS 100000u
/* A record with fewer iterations than this, or more than the max, is refused
 * as malformed (a verify must neither be trivial nor take minutes). */
#define PASSWD_ITERATIONS_MIN 1000u
#define PASSWD_ITERATIONS_MAX 10000000u

/* Hash pw[0..n) with a fresh salt into rec. ERR_OK, or ERR_IO if the
 * CSPRNG or the KDF failed. */
int passwd_hash(const void *pw, size_t n, uint32_t iterations, uint8_t rec[PASSWD_RECORD_BYTES]);
/* Whether pw matches the record (constant time in the key comparison). A
 * malformed record matches nothing. */
bool passwd_verify(const void *pw, size_t n, const uint8_t *rec, size_t rec_len);
/* Whether rec is a record passwd_verify can use (inline: the simulator's
 * stand-in for passwd.c, test/nodesim/passwd_sim.c, shares it). */
static inline bool passwd_record_ok(const uint8_t *rec, size_t rec_len)
{
    if (rec_len != PASSWD_RECORD_BYTES || rec[0] != PASSWD_ALG_PBKDF2_SHA256)
        return false;
    uint32_t it = get_be32(rec + 1);
    return it >= PASSWD_ITERATIONS_MIN && it <= PASSWD_ITERATIONS_MAX;
}

#endif
