/* Growable byte buffer with doubling growth. */
#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"

int buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return ERR_OK;
    if (n > SIZE_MAX / 2 - b->len)
        return ERR_NOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return ERR_OK;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return ERR_OK;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
