/* Byte slices (a pointer and a length into someone else's buffer) and small text helpers. */
#include "str.h"

#include <string.h>

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

int sb_str_eq(const sb_str_t *s, const char *lit, int icase)
{
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

int sb_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sb_percent_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? sb_hex_digit(s[i + 1]) : -1;
            int lo = hi >= 0 ? sb_hex_digit(s[i + 2]) : -1;
            if (lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || k + 1 >= cap)
            return -1;
        out[k++] = c;
    }
    if (cap == 0)
        return -1;
    out[k] = '\0';
    return (int)k;
}
