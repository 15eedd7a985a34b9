/* Byte slices (a pointer and a length into someone else's buffer) and small text helpers.
 *
 * Errors, everywhere in proto/: a function returns 0 (or a length or count >= 0) on success and a
 * negative code on failure, and a `const char **err` out-parameter (NULL allowed) receives a
 * static reason for people. */
#ifndef SB_STR_H
#define SB_STR_H

#include <stddef.h>

/* A slice of the caller's buffer: never NUL-terminated, valid while that buffer is. */
typedef struct {
    const char *p;
    size_t len;
} sb_str_t;

/* Returns 1 when s equals the NUL-terminated string lit, case-insensitively (icase) or not. */
int sb_str_eq(const sb_str_t *s, const char *lit, int icase);

/* Returns the value of the hexadecimal digit c, or -1. */
int sb_hex_digit(char c);

/* Decodes %XX escapes of [s, s+n) into out (cap bytes, NUL-terminated). Returns the decoded
 * length, or -1 for a malformed escape, a decoded NUL, or output that does not fit. */
int sb_percent_decode(const char *s, size_t n, char *out, size_t cap);

#endif
