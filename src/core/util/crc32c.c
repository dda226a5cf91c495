/* CRC-32C, table-driven, eight bytes per step (slice-by-8). */
#include "util/crc32c.h"

#include <pthread.h>

#define CRC32C_POLY 0x82F63B78u /* 0x1EDC6F41 bit-reversed */

/* tab[0][b] is the CRC of byte b; tab[k][b] the same byte followed by k zero
 * bytes, so eight table lookups advance the CRC by eight bytes. */
static uint32_t tab[8][256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_init(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int i = 0; i < 8; i++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        tab[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            tab[k][b] = (tab[k - 1][b] >> 8) ^ tab[0][tab[k - 1][b] & 0xff];
}

uint32_t crc32c_update(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&tab_once, tab_init);
    const uint8_t *s = p;
    uint32_t c = ~crc;
    while (n >= 8) {
        /* Little-endian assembly of the first four bytes, whatever the host. */
        uint32_t lo = c ^ ((uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 |
                           (uint32_t)s[3] << 24);
        c = tab[7][lo & 0xff] ^ tab[6][(lo >> 8) & 0xff] ^ tab[5][(lo >> 16) & 0xff] ^
            tab[4][lo >> 24] ^ tab[3][s[4]] ^ tab[2][s[5]] ^ tab[1][s[6]] ^ tab[0][s[7]];
        s += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = (c >> 8) ^ tab[0][(c ^ *s++) & 0xff];
    return ~c;
}
