/* Byte slices: a pointer and a length into someone else's buffer. */
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

#endif
