/* Incremental UTF-8 validation (RFC 3629 section 4's byte ranges), ASCII a word at a time. */
#include "utf8.h"

#include <string.h>

void sb_utf8_reset(sb_utf8_t *v)
{
    v->need = 0;
    v->lo = 0x80;
    v->hi = 0xBF;
}

int sb_utf8_feed(sb_utf8_t *v, const uint8_t *buf, size_t len)
{
    uint8_t need = v->need, lo = v->lo, hi = v->hi;
    size_t i = 0;

    for (;;) {
        /* Fast path: plain ASCII between code points, eight bytes at a time, then one by one. */
        if (need == 0) {
            while (i + 8 <= len) {
                uint64_t w;
                memcpy(&w, buf + i, 8);
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            while (i < len && buf[i] < 0x80)
                i++;
        }
        if (i == len)
            break;
        uint8_t b = buf[i++];
        if (need > 0) {
            if (b < lo || b > hi)
                return -1;
            need--;
            lo = 0x80;
            hi = 0xBF;
            continue;
        }
        /* A lead byte: how many continuation bytes follow, and the range of the first one
         * (narrowed to exclude overlong forms, surrogates and code points past U+10FFFF). */
        lo = 0x80;
        hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
        } else if (b == 0xE0) {
            need = 2, lo = 0xA0;
        } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
            need = 2;
        } else if (b == 0xED) {
            need = 2, hi = 0x9F;
        } else if (b == 0xF0) {
            need = 3, lo = 0x90;
        } else if (b >= 0xF1 && b <= 0xF3) {
            need = 3;
        } else if (b == 0xF4) {
            need = 3, hi = 0x8F;
        } else {
            return -1; /* 0x80-0xC1 cannot start a code point; 0xF5-0xFF never appear */
        }
    }
    v->need = need;
    v->lo = lo;
    v->hi = hi;
    return 0;
}

int sb_utf8_complete(const sb_utf8_t *v) { return v->need == 0; }

int sb_utf8_valid(const uint8_t *buf, size_t len)
{
    sb_utf8_t v;
    sb_utf8_reset(&v);
    if (sb_utf8_feed(&v, buf, len) != 0 || !sb_utf8_complete(&v))
        return -1;
    return 0;
}
