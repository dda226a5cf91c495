/* Linked into the kv suites built over the simulated disk (kvmem.*): every
 * directory a test opens gets a fresh simulated disk. */
#include "kv/memdisk.h"

__attribute__((constructor)) static void memdisk_auto_on(void)
{
    memdisk_autocreate(true);
}
