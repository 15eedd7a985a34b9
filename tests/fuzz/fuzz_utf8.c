/* libFuzzer target for proto/utf8: sb_utf8_valid and sb_utf8_feed against a reference decoder. */
#include "check.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* The reference works on code point values rather than byte ranges, so it shares no table with
 * proto/utf8.c. A prefix is valid while some continuation could still make it well-formed: the
 * bits seen so far, padded with all zeros and with all ones, give the range of code points the
 * sequence can still encode, and that range must meet the values its length may encode. */
typedef struct {
    size_t bad;   /* index of the first byte after which no continuation is valid, or len */
    int boundary; /* 1 when the buffer ends between code points */
} ref_t;

static int seq_length(uint8_t b)
{
    if (b < 0x80)
        return 1;
    if ((b & 0xE0) == 0xC0)
        return 2;
    if ((b & 0xF0) == 0xE0)
        return 3;
    if ((b & 0xF8) == 0xF0)
        return 4;
    return 0; /* a continuation byte, or 0xF8-0xFF */
}

/* Could a sequence of n bytes still encode a code point within [lo, hi]? */
static int range_possible(int n, uint32_t lo, uint32_t hi)
{
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t max_for_len[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    if (hi < min_for_len[n] || lo > max_for_len[n])
        return 0;
    if (lo < min_for_len[n])
        lo = min_for_len[n];
    if (hi > max_for_len[n])
        hi = max_for_len[n];
    /* surrogates U+D800-U+DFFF are not characters */
    if (lo >= 0xD800 && hi <= 0xDFFF)
        return 0;
    return 1;
}

/* Decodes buf. When marks is not NULL (len + 1 bytes, zeroed), sets marks[p] for every p up to
 * the first bad byte where a prefix of p bytes ends between code points. */
static ref_t reference(const uint8_t *buf, size_t len, uint8_t *marks)
{
    ref_t r = {len, 1};
    size_t i = 0;
    while (i < len) {
        if (marks)
            marks[i] = 1;
        int n = seq_length(buf[i]);
        if (n == 0) {
            r.bad = i;
            return r;
        }
        uint32_t cp = buf[i] & (n == 1 ? 0x7F : 0xFF >> (n + 1));
        i++;
        for (int k = 1;; k++) {
            int bits_left = 6 * (n - k);
            uint32_t lo = cp << bits_left, hi = lo | ((1u << bits_left) - 1);
            if (!range_possible(n, lo, hi)) {
                r.bad = i - 1;
                return r;
            }
            if (k == n)
                break;
            if (i == len) {
                r.boundary = 0;
                return r;
            }
            if ((buf[i] & 0xC0) != 0x80) {
                r.bad = i;
                return r;
            }
            cp = cp << 6 | (buf[i] & 0x3F);
            i++;
        }
    }
    if (marks)
        marks[len] = 1;
    return r;
}

/* xorshift64*: split points drawn from the input, so every run is reproducible. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Feeds buf in pieces whose lengths come from rng (bound 0: one byte at a time), starting from a
 * zeroed or a reset state. Checks that -1 comes with the piece holding the first bad byte and
 * never earlier, and that sb_utf8_complete matches the reference after every accepted piece.
 * Returns the verdict sb_utf8_valid should give. */
static int feed_split(const uint8_t *buf, size_t len, const ref_t *ref, const uint8_t *marks,
                      uint64_t *rng, size_t bound, int zero_init)
{
    sb_utf8_t v;
    if (zero_init)
        memset(&v, 0, sizeof(v));
    else
        sb_utf8_reset(&v);
    CHECK(sb_utf8_complete(&v) == 1);
    size_t pos = 0;
    while (pos < len) {
        size_t n = bound == 0 ? 1 : (size_t)(next_rand(rng) % (bound + 1));
        if (n > len - pos)
            n = len - pos;
        /* an exact-size copy, so ASan sees a read past the piece */
        uint8_t *piece = malloc(n ? n : 1);
        CHECK(piece != NULL);
        if (n > 0)
            memcpy(piece, buf + pos, n);
        int rc = sb_utf8_feed(&v, piece, n);
        CHECK(n == 0 || memcmp(piece, buf + pos, n) == 0);
        free(piece);
        CHECK(rc == 0 || rc == -1);
        if (rc == -1) {
            CHECK(ref->bad >= pos && ref->bad < pos + n);
            return -1;
        }
        CHECK(ref->bad >= pos + n);
        pos += n;
        CHECK(sb_utf8_complete(&v) == marks[pos]);
    }
    CHECK(ref->bad == len);
    return sb_utf8_complete(&v) ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *marks = calloc(size + 1, 1);
    CHECK(marks != NULL);
    ref_t ref = reference(data, size, marks);
    int want = ref.bad == size && ref.boundary ? 0 : -1;
    CHECK(marks[size] == (ref.bad == size && ref.boundary));

    CHECK(sb_utf8_valid(data, size) == want);

    /* The first bytes also choose the splits; the whole input is still the text. */
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ size;
    for (size_t i = 0; i < size && i < 8; i++)
        rng = (rng << 8 | rng >> 56) ^ data[i];
    if (rng == 0)
        rng = 1;
    size_t bound = size > 0 ? (size_t)(data[0] & 0x1F) : 0;

    CHECK(feed_split(data, size, &ref, marks, &rng, 0, 0) == want);
    CHECK(feed_split(data, size, &ref, marks, &rng, bound, 0) == want);
    CHECK(feed_split(data, size, &ref, marks, &rng, 4, 1) == want);

    /* A prefix is valid exactly when the reference got past it and it ends between code points. */
    if (size > 0) {
        size_t cut = (size_t)(next_rand(&rng) % size);
        int ok = ref.bad >= cut && marks[cut];
        CHECK(sb_utf8_valid(data, cut) == (ok ? 0 : -1));
    }
    free(marks);
    return 0;
}
