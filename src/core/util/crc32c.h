/* CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the
 * checksum of iSCSI, ext4 metadata and RocksDB. Software, slice-by-8 tables
 * built once on first use (thread-safe). Detects every error burst of up to
 * 32 bits, so any single damaged byte. */
#ifndef DDKV_UTIL_CRC32C_H
#define DDKV_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: crc is the value returned for the bytes before p (0 to
 * start), so crc32c_update(crc32c_update(0, a, an), b, bn) is the CRC of a
 * followed by b. crc32c_update(0, "123456789", 9) == 0xE3069283. */
uint32_t crc32c_update(uint32_t crc, const void *p, size_t n);

static inline uint32_t crc32c(const void *p, size_t n)
{
    return crc32c_update(0, p, n);
}

#endif
