/* Text helpers for output: UTF-8 validation and base64. */
#ifndef DDKV_UTIL_TEXT_H
#define DDKV_UTIL_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* True if p[0..n) is well-formed UTF-8 (no overlongs, no surrogates, no NUL). */
bool utf8_valid(const void *p, size_t n);
/* Base64 (RFC 4648, padded). Returns a malloc'd NUL-terminated string; caller frees. */
char *base64_encode(const void *p, size_t n);
/* Decodes padded base64 into a malloc'd buffer; returns NULL on bad input. Caller frees. */
void *base64_decode(const char *s, size_t *out_len);

#endif
