/* Incremental UTF-8 validation (RFC 3629): bytes may arrive split anywhere, even inside a code
 * point. */
#ifndef SB_UTF8_H
#define SB_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Validator state. Zero-initialise (or sb_utf8_reset) before the first byte. */
typedef struct {
    uint8_t need; /* continuation bytes still expected for the current code point */
    uint8_t lo;   /* smallest acceptable value of the next continuation byte */
    uint8_t hi;   /* largest acceptable value of the next continuation byte */
} sb_utf8_t;

void sb_utf8_reset(sb_utf8_t *v);

/* Feeds len bytes. Returns 0 while the input so far is a valid prefix of UTF-8, -1 as soon as
 * a byte makes it invalid (overlong forms, surrogates, code points above U+10FFFF, stray or
 * missing continuation bytes). After -1 the state is undefined until reset. */
int sb_utf8_feed(sb_utf8_t *v, const uint8_t *buf, size_t len);

/* Returns 1 when the input so far ends on a code point boundary, 0 inside a code point. */
int sb_utf8_complete(const sb_utf8_t *v);

/* Validates a whole buffer: 0 when it is complete, valid UTF-8, -1 otherwise. */
int sb_utf8_valid(const uint8_t *buf, size_t len);

#endif
