/* Bounds check for untrusted msgpack before msgpack-c touches it.
 *
 * msgpack-c 4.0 allocates for a container's declared element count before it
 * reads the elements (5 bytes can ask for gigabytes). mpcheck walks the bytes
 * first and refuses any value whose declared counts or lengths cannot fit in the
 * bytes that remain, that nests too deep, or that declares too many objects. */
#ifndef DDKV_PROTO_MPCHECK_H
#define DDKV_PROTO_MPCHECK_H

#include <stddef.h>
#include <stdint.h>

struct mpcheck_limits {
    uint32_t max_depth;   /* containers open at once; the outermost counts as 1 */
    uint32_t max_objects; /* every value counts, containers included */
};

/* Returns ERR_OK if p[0..n) holds exactly one msgpack value within the limits,
 * ERR_BAD_INPUT otherwise (with a reason in *why if non-NULL). */
int mpcheck(const uint8_t *p, size_t n, const struct mpcheck_limits *lim, const char **why);

#endif
