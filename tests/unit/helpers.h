/* Helpers the unit suites share: REQUIRE, a cheap assertion for loops, and show() for messages. */
#ifndef SB_TEST_HELPERS_H
#define SB_TEST_HELPERS_H

#include <check.h>
#include <stddef.h>
#include <stdio.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ck_assert_msg without Check's per-assertion bookkeeping (a write to the runner on every
 * success), for the helpers that run many thousands of times. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* Printable form of buf for failure messages (two rotating buffers, so a message may show two
 * values). */
static inline const char *show(const char *buf, size_t len)
{
    static char bufs[2][512];
    static int which;
    char *out = bufs[which ^= 1];
    size_t n = 0;

    for (size_t i = 0; i < len && n + 5 < sizeof(bufs[0]); i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 0x20 && c < 0x7F)
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, sizeof(bufs[0]) - n, "\\x%02X", c);
    }
    out[n] = '\0';
    return out;
}

#endif
