/* Password hashing and verification (PBKDF2-HMAC-SHA256, OpenSSL libcrypto). */
#include "kv/passwd.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"

static bool passwd_derive(const void *pw, size_t n, const uint8_t *salt, uint32_t iterations,
                          uint8_t key[PASSWD_KEY_BYTES])
{
    /* OpenSSL takes the password length as an int; passwords are bounded far
     * below that by the protocol (DDKV_AUTH_PASSWORD_MAX). */
    if (n > 1u << 20)
        return false;
    return PKCS5_PBKDF2_HMAC(n ? pw : "", (int)n, salt, PASSWD_SALT_BYTES, (int)iterations, EVP_sha256(),
                             PASSWD_KEY_BYTES, key) == 1;
}

int passwd_hash(const void *pw, size_t n, uint32_t iterations, uint8_t rec[PASSWD_RECORD_BYTES])
{
    ASSERT(iterations >= PASSWD_ITERATIONS_MIN && iterations <= PASSWD_ITERATIONS_MAX);
    rec[0] = PASSWD_ALG_PBKDF2_SHA256;
    put_be32(rec + 1, iterations);
    if (RAND_bytes(rec + 5, PASSWD_SALT_BYTES) != 1 || !passwd_derive(pw, n, rec + 5, iterations, rec + 21)) {
        memset(rec, 0, PASSWD_RECORD_BYTES);
        return ERR_IO; /* the CSPRNG or the KDF failed */
    }
    return ERR_OK;
}

bool passwd_verify(const void *pw, size_t n, const uint8_t *rec, size_t rec_len)
{
    if (!passwd_record_ok(rec, rec_len))
        return false;
    uint8_t key[PASSWD_KEY_BYTES];
    if (!passwd_derive(pw, n, rec + 5, get_be32(rec + 1), key))
        return false;
    bool ok = CRYPTO_memcmp(key, rec + 21, PASSWD_KEY_BYTES) == 0;
    OPENSSL_cleanse(key, sizeof key);
    return ok;
}
