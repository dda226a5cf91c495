/* kv/passwd.h for the whole-node simulator: the same records and answers as
 * kv/passwd.c, with one SHA-256 of salt and password in place of PBKDF2's
 * thousands, and salts from a counter instead of the CSPRNG. A stand-in, as
 * the simulated disk is for RocksDB: hashing is member-local CPU work (the
 * auth module runs it on node_io's work pool), and what the simulator checks
 * is what the cluster does with its results. Never linked into ddkv. */
#include "kv/passwd.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"

static uint64_t salt_counter;

static void derive(const void *pw, size_t n, const uint8_t *salt, uint8_t key[PASSWD_KEY_BYTES])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    ASSERT(ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(ctx, salt, PASSWD_SALT_BYTES) == 1 && EVP_DigestUpdate(ctx, n ? pw : "", n) == 1 &&
           EVP_DigestFinal_ex(ctx, key, &len) == 1 && len == PASSWD_KEY_BYTES);
    EVP_MD_CTX_free(ctx);
}

int passwd_hash(const void *pw, size_t n, uint32_t iterations, uint8_t rec[PASSWD_RECORD_BYTES])
{
    (void)iterations;
    rec[0] = PASSWD_ALG_PBKDF2_SHA256;
    put_be32(rec + 1, PASSWD_ITERATIONS_MIN);
    memset(rec + 5, 0, PASSWD_SALT_BYTES);
    put_be64(rec + 5, ++salt_counter);
    derive(pw, n, rec + 5, rec + 21);
    return 0;
}

bool passwd_verify(const void *pw, size_t n, const uint8_t *rec, size_t rec_len)
{
    if (!passwd_record_ok(rec, rec_len))
        return false;
    uint8_t key[PASSWD_KEY_BYTES];
    derive(pw, n, rec + 5, key);
    return CRYPTO_memcmp(key, rec + 21, PASSWD_KEY_BYTES) == 0;
}
