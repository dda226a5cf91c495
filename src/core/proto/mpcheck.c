/* Iterative msgpack structure walk with explicit bounds; no allocation. */
#include "proto/mpcheck.h"

#include "util/buf.h"
#include "util/err.h"

#define MPCHECK_DEPTH_HARD 64

static uint64_t be_n(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

int mpcheck(const uint8_t *p, size_t n, const struct mpcheck_limits *lim, const char **why)
{
    /* stack[d] = values still to read in the container open at depth d */
    uint64_t stack[MPCHECK_DEPTH_HARD + 1];
    uint32_t max_depth = lim->max_depth < MPCHECK_DEPTH_HARD ? lim->max_depth : MPCHECK_DEPTH_HARD;
    unsigned depth = 0;
    uint64_t objects = 0;
    size_t i = 0;
    const char *reason = NULL;
    stack[0] = 1; /* exactly one top-level value */

    while (depth > 0 || stack[0] > 0) {
        if (stack[depth] == 0) {
            depth--;
            continue;
        }
        stack[depth]--;
        if (++objects > lim->max_objects) {
            reason = "too many objects";
            goto bad;
        }
        if (i >= n) {
            reason = "truncated";
            goto bad;
        }
        uint8_t b = p[i++];
        size_t rem = n - i;
        uint64_t skip = 0;      /* payload bytes after the header */
        uint64_t children = 0;  /* values inside, for containers */
        unsigned lenbytes = 0;  /* size of a length field that follows */
        int kind = 0;           /* 0 scalar/bytes, 1 array, 2 map, 3 ext (1 type byte + data) */

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b >= 0x80 && b <= 0x8f) {
            kind = 2;
            children = (uint64_t)(b & 0x0f) * 2;
        } else if (b >= 0x90 && b <= 0x9f) {
            kind = 1;
            children = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break; /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;
            case 0xc6: case 0xdb: lenbytes = 4; break;
            case 0xc7: lenbytes = 1; kind = 3; break; /* ext8/16/32 */
            case 0xc8: lenbytes = 2; kind = 3; break;
            case 0xc9: lenbytes = 4; kind = 3; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break; /* fixext: type byte + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: lenbytes = 2; kind = 1; break;
            case 0xdd: lenbytes = 4; kind = 1; break;
            case 0xde: lenbytes = 2; kind = 2; break;
            case 0xdf: lenbytes = 4; kind = 2; break;
            default: reason = "reserved type byte"; goto bad; /* 0xc1 */
            }
        }
        if (lenbytes) {
            if (rem < lenbytes) {
                reason = "truncated length";
                goto bad;
            }
            uint64_t len = be_n(p + i, lenbytes);
            i += lenbytes;
            rem -= lenbytes;
            if (kind == 1)
                children = len;
            else if (kind == 2)
                children = len * 2;
            else if (kind == 3)
                skip = len + 1;
            else
                skip = len;
        }
        if (skip > rem) {
            reason = "length past end of input";
            goto bad;
        }
        i += skip;
        if (children) {
            /* Every value takes at least one byte: a count that cannot fit in what
             * remains is a lie, refused before msgpack-c would allocate for it. */
            if (children > n - i) {
                reason = "container count past end of input";
                goto bad;
            }
            if (depth + 1 > max_depth) {
                reason = "nested too deep";
                goto bad;
            }
            stack[++depth] = children;
        }
    }
    if (i != n) {
        reason = "trailing bytes";
        goto bad;
    }
    return ERR_OK;
bad:
    if (why)
        *why = reason;
    return ERR_BAD_INPUT;
}
