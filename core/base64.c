/*
 * base64.c — RFC 4648 base64 (standard alphabet, '=' padding): what
 * `mtc report` inlines PNGs with (data: URIs). Encoding only.
 */
#include "mtc.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t mtc_base64_len(size_t n) { return (n + 2) / 3 * 4; }

/* Each 3 bytes -> 4 characters of 6 bits; a last group of 1 or 2 bytes is
 * zero-padded and ends in "==" or "=". */
size_t mtc_base64_encode(const void *src, size_t n, char *dst)
{
    const unsigned char *s = src;
    char *d = dst;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *d++ = alphabet[v >> 18 & 63];
        *d++ = alphabet[v >> 12 & 63];
        *d++ = alphabet[v >> 6 & 63];
        *d++ = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *d++ = alphabet[v >> 18 & 63];
        *d++ = alphabet[v >> 12 & 63];
        *d++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        *d++ = '=';
    }
    *d = 0;
    return (size_t)(d - dst);
}
