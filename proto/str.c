/* Byte slices: a pointer and a length into someone else's buffer. */
#include "str.h"

#include <string.h>

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

int sb_str_eq(const sb_str_t *s, const char *lit, int icase) {
    size_t n = strlen(lit);
    if (s->len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int a = (unsigned char)s->p[i], b = (unsigned char)lit[i];
        if (icase ? lower(a) != lower(b) : a != b)
            return 0;
    }
    return 1;
}
