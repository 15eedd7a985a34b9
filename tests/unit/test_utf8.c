/* Unit tests for proto/utf8: incremental UTF-8 validation (RFC 3629), fed whole and split anywhere.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* ---- an independent reference ---------------------------------------------------------------
 * The validator under test works from byte tables (need/lo/hi). The reference below works from
 * code point ranges instead: after k bytes of an n-byte sequence the bits seen so far bound the
 * code point to an interval, and the prefix is still valid exactly when that interval meets the
 * code points an n-byte form may encode (minus the surrogates). */

static int ref_feasible(int n, int k, uint32_t bits)
{
    static const uint32_t lo[5] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t hi[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    unsigned rest = 6u * (unsigned)(n - k);
    uint32_t a = bits << rest;
    uint32_t b = a | ((1u << rest) - 1);

    if (a < lo[n])
        a = lo[n];
    if (b > hi[n])
        b = hi[n];
    if (a > b)
        return 0;
    return !(a >= 0xD800 && b <= 0xDFFF);
}

/* Returns the index of the first byte that makes buf invalid UTF-8, or len when all of buf is a
 * valid prefix; *complete then says whether it ends on a code point boundary. */
static size_t ref_first_bad(const uint8_t *buf, size_t len, int *complete)
{
    size_t i = 0;

    *complete = 1;
    while (i < len) {
        uint8_t b = buf[i];
        int n;
        uint32_t bits;

        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            n = 2;
            bits = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            n = 3;
            bits = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            n = 4;
            bits = b & 0x07;
        } else {
            return i; /* a stray continuation byte or F8..FF */
        }
        if (!ref_feasible(n, 1, bits))
            return i;
        for (int k = 2; k <= n; k++) {
            size_t at = i + (size_t)k - 1;
            if (at >= len) {
                *complete = 0;
                return len;
            }
            if ((buf[at] & 0xC0) != 0x80)
                return at;
            bits = (bits << 6) | (buf[at] & 0x3F);
            if (!ref_feasible(n, k, bits))
                return at;
        }
        i += (size_t)n;
    }
    return len;
}

/* Encodes a scalar value the textbook way; returns the length. */
static size_t encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* A deterministic xorshift generator, so that failures reproduce. */
static uint32_t rng_state = 0x2545F491u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void hex(const uint8_t *buf, size_t len, char *out, size_t out_size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < len && used + 4 < out_size; i++)
        used += (size_t)snprintf(out + used, out_size - used, "%s%02X", i ? " " : "", buf[i]);
}

/* Feeds buf one byte at a time into a fresh validator. Returns the index of the first feed that
 * returned -1, or len; *complete is sb_utf8_complete at the end when nothing failed. */
static size_t first_rejected_byte(const uint8_t *buf, size_t len, int *complete)
{
    sb_utf8_t v;

    sb_utf8_reset(&v);
    for (size_t i = 0; i < len; i++) {
        int rc = sb_utf8_feed(&v, buf + i, 1);
        if (rc == -1)
            return i;
        if (rc != 0) {
            *complete = -100 - rc; /* neither 0 nor -1: caught by the caller's comparison */
            return len;
        }
    }
    *complete = sb_utf8_complete(&v);
    return len;
}

/* Copies buf into a heap block of exactly len bytes, so ASan catches a read past the end. */
static uint8_t *exact_copy(const uint8_t *buf, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);

    ck_assert_ptr_nonnull(p);
    memcpy(p, buf, len);
    return p;
}

/* Asserts that buf is complete, valid UTF-8: fed whole, byte by byte, split in two anywhere, and
 * through sb_utf8_valid. */
static void assert_valid(const uint8_t *buf, size_t len)
{
    char h[128];
    uint8_t *p = exact_copy(buf, len);
    sb_utf8_t v;
    int complete = -1;

    hex(buf, len, h, sizeof h);
    ck_assert_msg(sb_utf8_valid(p, len) == 0, "sb_utf8_valid(%s) != 0", h);

    sb_utf8_reset(&v);
    ck_assert_msg(sb_utf8_feed(&v, p, len) == 0, "feed(%s) != 0", h);
    ck_assert_msg(sb_utf8_complete(&v) == 1, "complete after %s != 1", h);

    ck_assert_msg(first_rejected_byte(p, len, &complete) == len, "%s rejected byte by byte", h);
    ck_assert_msg(complete == 1, "%s byte by byte: complete = %d", h, complete);

    for (size_t cut = 0; cut <= len; cut++) {
        sb_utf8_reset(&v);
        ck_assert_msg(sb_utf8_feed(&v, p, cut) == 0, "%s: first %zu bytes rejected", h, cut);
        ck_assert_msg(sb_utf8_feed(&v, p + cut, len - cut) == 0, "%s split at %zu rejected", h,
                      cut);
        ck_assert_msg(sb_utf8_complete(&v) == 1, "%s split at %zu: not complete", h, cut);
    }
    free(p);
}

/* Asserts that buf becomes invalid exactly at byte bad: every shorter prefix is accepted and the
 * byte at index bad is rejected the moment it is fed. */
static void assert_bad_at(const uint8_t *buf, size_t len, size_t bad)
{
    char h[128];
    uint8_t *p = exact_copy(buf, len);
    sb_utf8_t v;
    int complete = -1;

    hex(buf, len, h, sizeof h);
    ck_assert_msg(sb_utf8_valid(p, len) == -1, "sb_utf8_valid(%s) != -1", h);

    sb_utf8_reset(&v);
    ck_assert_msg(sb_utf8_feed(&v, p, len) == -1, "feed(%s) != -1", h);

    ck_assert_msg(first_rejected_byte(p, len, &complete) == bad,
                  "%s byte by byte: rejected at %zu, expected at %zu", h,
                  first_rejected_byte(p, len, &complete), bad);

    /* the prefix in one feed, then the offending byte (and what follows) in another */
    sb_utf8_reset(&v);
    ck_assert_msg(sb_utf8_feed(&v, p, bad) == 0, "%s: valid prefix of %zu bytes rejected", h, bad);
    ck_assert_msg(sb_utf8_feed(&v, p + bad, len - bad) == -1, "%s: bad byte %zu accepted", h, bad);
    free(p);
}

/* Asserts that buf is a valid prefix that stops inside a code point. */
static void assert_truncated(const uint8_t *buf, size_t len)
{
    char h[128];
    uint8_t *p = exact_copy(buf, len);
    sb_utf8_t v;
    int complete = -1;

    hex(buf, len, h, sizeof h);
    sb_utf8_reset(&v);
    ck_assert_msg(sb_utf8_feed(&v, p, len) == 0, "feed(%s) != 0", h);
    ck_assert_msg(sb_utf8_complete(&v) == 0, "complete after %s != 0", h);
    ck_assert_msg(first_rejected_byte(p, len, &complete) == len, "%s rejected byte by byte", h);
    ck_assert_msg(complete == 0, "%s byte by byte: complete = %d", h, complete);
    ck_assert_msg(sb_utf8_valid(p, len) == -1, "sb_utf8_valid(%s) != -1", h);
    free(p);
}

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* ---- valid input ----------------------------------------------------------------------------- */

START_TEST(test_ascii)
{
    const char *s = "Hello, world! {\"type\":\"offer\"}";
    uint8_t all[128];

    assert_valid((const uint8_t *)s, strlen(s));
    for (int i = 0; i < 128; i++)
        all[i] = (uint8_t)i; /* NUL and the other C0 controls are valid UTF-8 */
    assert_valid(all, sizeof all);
}
END_TEST

START_TEST(test_two_byte)
{
    assert_valid(BYTES(0xC2, 0x80)); /* U+0080, the smallest */
    assert_valid(BYTES(0xC3, 0xA9)); /* U+00E9 e acute */
    assert_valid(BYTES(0xDF, 0xBF)); /* U+07FF, the largest */
    assert_valid(BYTES('c', 'a', 'f', 0xC3, 0xA9, '!'));
}
END_TEST

START_TEST(test_three_byte)
{
    assert_valid(BYTES(0xE0, 0xA0, 0x80)); /* U+0800, the smallest */
    assert_valid(BYTES(0xE2, 0x82, 0xAC)); /* U+20AC euro sign */
    assert_valid(BYTES(0xED, 0x9F, 0xBF)); /* U+D7FF, just below the surrogates */
    assert_valid(BYTES(0xEE, 0x80, 0x80)); /* U+E000, just above them */
    assert_valid(BYTES(0xEF, 0xBB, 0xBF)); /* U+FEFF byte order mark */
    assert_valid(BYTES(0xEF, 0xBF, 0xBF)); /* U+FFFF, the largest */
}
END_TEST

START_TEST(test_four_byte)
{
    assert_valid(BYTES(0xF0, 0x90, 0x80, 0x80)); /* U+10000, the smallest */
    assert_valid(BYTES(0xF0, 0x9F, 0x98, 0x80)); /* U+1F600 */
    assert_valid(BYTES(0xF3, 0xBF, 0xBF, 0xBF)); /* U+FFFFF */
    assert_valid(BYTES(0xF4, 0x8F, 0xBF, 0xBF)); /* U+10FFFF, the largest */
}
END_TEST

START_TEST(test_mixed_text)
{
    const char *s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z \xE4\xB8\xAD\xE6\x96\x87";

    assert_valid((const uint8_t *)s, strlen(s));
}
END_TEST

START_TEST(test_empty)
{
    static const uint8_t none[1] = {0};
    sb_utf8_t v;

    ck_assert_int_eq(sb_utf8_valid(none, 0), 0);
    sb_utf8_reset(&v);
    ck_assert_int_eq(sb_utf8_complete(&v), 1);
    ck_assert_int_eq(sb_utf8_feed(&v, none, 0), 0);
    ck_assert_int_eq(sb_utf8_complete(&v), 1);

    /* an empty feed inside a code point changes nothing */
    ck_assert_int_eq(sb_utf8_feed(&v, BYTES(0xE2)), 0);
    ck_assert_int_eq(sb_utf8_feed(&v, none, 0), 0);
    ck_assert_int_eq(sb_utf8_complete(&v), 0);
    ck_assert_int_eq(sb_utf8_feed(&v, BYTES(0x82, 0xAC)), 0);
    ck_assert_int_eq(sb_utf8_complete(&v), 1);
}
END_TEST

/* Every scalar value, encoded, is accepted whole and split at every position across two feeds. */
START_TEST(test_every_code_point)
{
    uint32_t failures = 0, first = 0;

    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t e[4];
        size_t n;
        int ok = 1;
        sb_utf8_t v;

        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        n = encode(cp, e);
        ok &= sb_utf8_valid(e, n) == 0;
        for (size_t cut = 0; cut <= n; cut++) {
            sb_utf8_reset(&v);
            ok &= sb_utf8_feed(&v, e, cut) == 0;
            ok &= sb_utf8_complete(&v) == (cut == 0 || cut == n);
            ok &= sb_utf8_feed(&v, e + cut, n - cut) == 0;
            ok &= sb_utf8_complete(&v) == 1;
        }
        if (!ok && failures++ == 0)
            first = cp;
    }
    ck_assert_msg(failures == 0, "%u code points mishandled, the first U+%04X", failures, first);
}
END_TEST

/* ---- invalid input --------------------------------------------------------------------------- */

START_TEST(test_above_max)
{
    assert_bad_at(BYTES(0xF4, 0x90, 0x80, 0x80), 1); /* U+110000 */
    assert_bad_at(BYTES(0xF4, 0xBF, 0xBF, 0xBF), 1);
    assert_bad_at(BYTES('a', 0xF4, 0x90, 0x80, 0x80), 2);
}
END_TEST

START_TEST(test_overlong)
{
    assert_bad_at(BYTES(0xC0, 0x80), 0);             /* NUL in two bytes */
    assert_bad_at(BYTES(0xC1, 0xBF), 0);             /* U+007F in two bytes */
    assert_bad_at(BYTES(0xE0, 0x80, 0x80), 1);       /* NUL in three bytes */
    assert_bad_at(BYTES(0xE0, 0x9F, 0xBF), 1);       /* U+07FF in three bytes */
    assert_bad_at(BYTES(0xF0, 0x80, 0x80, 0x80), 1); /* NUL in four bytes */
    assert_bad_at(BYTES(0xF0, 0x8F, 0xBF, 0xBF), 1); /* U+FFFF in four bytes */
    assert_bad_at(BYTES(0xC0, 0xAF), 0);             /* the classic overlong '/' */
    assert_bad_at(BYTES(0xE0, 0x80, 0xAF), 1);
}
END_TEST

START_TEST(test_surrogates)
{
    assert_bad_at(BYTES(0xED, 0xA0, 0x80), 1); /* U+D800 */
    assert_bad_at(BYTES(0xED, 0xAD, 0xBF), 1); /* U+DB7F */
    assert_bad_at(BYTES(0xED, 0xB0, 0x80), 1); /* U+DC00 */
    assert_bad_at(BYTES(0xED, 0xBF, 0xBF), 1); /* U+DFFF */
    /* a CESU-8 surrogate pair for U+1F600 */
    assert_bad_at(BYTES(0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80), 1);

    for (int b1 = 0xA0; b1 <= 0xBF; b1++)
        for (int b2 = 0x80; b2 <= 0xBF; b2++)
            assert_bad_at(BYTES(0xED, (uint8_t)b1, (uint8_t)b2), 1);
}
END_TEST

/* F5..FF can never start a sequence, so each is rejected the moment it arrives. */
START_TEST(test_invalid_lead)
{
    for (int b = 0xF5; b <= 0xFF; b++) {
        assert_bad_at(BYTES((uint8_t)b), 0);
        assert_bad_at(BYTES((uint8_t)b, 0x80, 0x80, 0x80), 0);
        assert_bad_at(BYTES('o', 'k', (uint8_t)b), 2);
    }
}
END_TEST

START_TEST(test_stray_continuation)
{
    for (int b = 0x80; b <= 0xBF; b++) {
        assert_bad_at(BYTES((uint8_t)b), 0);
        assert_bad_at(BYTES('a', (uint8_t)b), 1);
    }
    assert_bad_at(BYTES(0xC3, 0xA9, 0xA9), 2); /* one continuation too many */
    assert_bad_at(BYTES(0xE2, 0x82, 0xAC, 0x80), 3);
    assert_bad_at(BYTES(0xF0, 0x9F, 0x98, 0x80, 0xBF), 4);
}
END_TEST

START_TEST(test_missing_continuation)
{
    assert_bad_at(BYTES(0xC3, 'a'), 1);
    assert_bad_at(BYTES(0xE2, 0x82, 'a'), 2);
    assert_bad_at(BYTES(0xF0, 0x9F, 0x98, 'a'), 3);
    assert_bad_at(BYTES(0xE2, 0xE2, 0x82, 0xAC), 1); /* a new lead byte inside a code point */
    assert_bad_at(BYTES(0xC3, 0xC3, 0xA9), 1);
    assert_bad_at(BYTES(0xF0, 0x9F, 0xF0), 2);
}
END_TEST

START_TEST(test_truncated)
{
    assert_truncated(BYTES(0xC3));
    assert_truncated(BYTES(0xE2));
    assert_truncated(BYTES(0xE2, 0x82));
    assert_truncated(BYTES(0xF0));
    assert_truncated(BYTES(0xF0, 0x9F));
    assert_truncated(BYTES(0xF0, 0x9F, 0x98));
    assert_truncated(BYTES(0xF4, 0x8F, 0xBF));
    assert_truncated(BYTES('a', 'b', 'c', 0xE2, 0x82));
    assert_truncated(BYTES(0xC3, 0xA9, 0xF0, 0x9F, 0x98));
}
END_TEST

/* ---- state handling -------------------------------------------------------------------------- */

START_TEST(test_complete_tracks_boundaries)
{
    static const uint8_t s[] = {'a', 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80};
    static const int expect[] = {1, 0, 1, 0, 0, 1, 0, 0, 0, 1};
    sb_utf8_t v = {0}; /* zero-initialised works as well as sb_utf8_reset */

    ck_assert_int_eq(sb_utf8_complete(&v), 1);
    for (size_t i = 0; i < sizeof s; i++) {
        ck_assert_int_eq(sb_utf8_feed(&v, s + i, 1), 0);
        ck_assert_msg(sb_utf8_complete(&v) == expect[i], "after byte %zu: complete = %d", i,
                      sb_utf8_complete(&v));
    }
}
END_TEST

START_TEST(test_reset)
{
    sb_utf8_t v;

    /* reset after an error */
    sb_utf8_reset(&v);
    ck_assert_int_eq(sb_utf8_feed(&v, BYTES(0xFF)), -1);
    sb_utf8_reset(&v);
    ck_assert_int_eq(sb_utf8_complete(&v), 1);
    ck_assert_int_eq(sb_utf8_feed(&v, BYTES('o', 'k')), 0);
    ck_assert_int_eq(sb_utf8_complete(&v), 1);

    /* reset inside a code point forgets it: a continuation byte is then stray */
    ck_assert_int_eq(sb_utf8_feed(&v, BYTES(0xE2, 0x82)), 0);
    sb_utf8_reset(&v);
    ck_assert_int_eq(sb_utf8_complete(&v), 1);
    ck_assert_int_eq(sb_utf8_feed(&v, BYTES(0xAC)), -1);

    sb_utf8_reset(&v);
    ck_assert_int_eq(sb_utf8_feed(&v, BYTES(0xF0, 0x9F)), 0);
    sb_utf8_reset(&v);
    ck_assert_int_eq(sb_utf8_feed(&v, BYTES('x')), 0);
    ck_assert_int_eq(sb_utf8_complete(&v), 1);
}
END_TEST

/* The module's examples, fed one byte at a time: every valid prefix is accepted and an invalid
 * byte is rejected exactly when it arrives. */
START_TEST(test_examples_byte_by_byte)
{
    static const struct {
        const char *s;
        long bad;     /* index of the first bad byte, or -1 */
        int complete; /* when bad is -1 */
    } ex[] = {
        {"Hello, world!", -1, 1},
        {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", -1, 1},
        {"\xF4\x8F\xBF\xBF", -1, 1},
        {"abc\xF0\x9F\x98", -1, 0},
        {"ab\xF4\x90\x80\x80", 3, 0},
        {"\xC0\x80", 0, 0},
        {"x\xE0\x9F\xBF", 2, 0},
        {"\xED\xA0\x80", 1, 0},
        {"ok\xF5", 2, 0},
        {"\xC3\xA9\xA9", 2, 0},
        {"\xE2\x82z", 2, 0},
    };

    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        const uint8_t *s = (const uint8_t *)ex[i].s;
        size_t len = strlen(ex[i].s);
        int complete = -1;
        size_t at = first_rejected_byte(s, len, &complete);

        if (ex[i].bad < 0) {
            ck_assert_msg(at == len, "example %zu rejected at byte %zu", i, at);
            ck_assert_msg(complete == ex[i].complete, "example %zu: complete = %d", i, complete);
        } else {
            ck_assert_msg(at == (size_t)ex[i].bad, "example %zu rejected at byte %zu, not %ld", i,
                          at, ex[i].bad);
        }
    }
}
END_TEST

/* ---- brute force against the reference ------------------------------------------------------- */

typedef struct {
    unsigned long failures;
    uint8_t first[8];
    size_t first_len;
    char what[96];
} tally_t;

static void tally_fail(tally_t *t, const uint8_t *buf, size_t len, const char *what, long got,
                       long want)
{
    if (t->failures++ == 0) {
        if (len > sizeof t->first)
            len = sizeof t->first;
        memcpy(t->first, buf, len);
        t->first_len = len;
        snprintf(t->what, sizeof t->what, "%s: got %ld, expected %ld", what, got, want);
    }
}

static void tally_assert(const tally_t *t)
{
    char h[64];

    hex(t->first, t->first_len, h, sizeof h);
    ck_assert_msg(t->failures == 0, "%lu mismatches with the reference; the first on %s (%s)",
                  t->failures, h, t->what);
}

/* Compares one sequence against the reference: as one feed, through sb_utf8_valid, and (state
 * by state) byte by byte. */
static void cross_check(tally_t *t, const uint8_t *buf, size_t len)
{
    int complete;
    size_t bad = ref_first_bad(buf, len, &complete);
    int want_valid = (bad == len && complete) ? 0 : -1;
    int got;
    sb_utf8_t v;
    size_t i;

    got = sb_utf8_valid(buf, len);
    if (got != want_valid)
        tally_fail(t, buf, len, "sb_utf8_valid", got, want_valid);

    sb_utf8_reset(&v);
    got = sb_utf8_feed(&v, buf, len);
    if (got != (bad == len ? 0 : -1))
        tally_fail(t, buf, len, "one feed", got, bad == len ? 0 : -1);
    else if (got == 0 && sb_utf8_complete(&v) != complete)
        tally_fail(t, buf, len, "sb_utf8_complete", sb_utf8_complete(&v), complete);

    sb_utf8_reset(&v);
    for (i = 0; i < len; i++) {
        got = sb_utf8_feed(&v, buf + i, 1);
        if (got != (i < bad ? 0 : -1)) {
            tally_fail(t, buf, len, "byte-by-byte feed at the index in 'got'", (long)i, (long)bad);
            return;
        }
        if (got < 0)
            break;
    }
    if (bad == len && sb_utf8_complete(&v) != complete)
        tally_fail(t, buf, len, "byte-by-byte sb_utf8_complete", sb_utf8_complete(&v), complete);
}

START_TEST(test_brute_one_and_two_bytes)
{
    tally_t t = {0};
    uint8_t b[2];

    for (int b0 = 0; b0 < 256; b0++) {
        b[0] = (uint8_t)b0;
        cross_check(&t, b, 1);
        for (int b1 = 0; b1 < 256; b1++) {
            b[1] = (uint8_t)b1;
            cross_check(&t, b, 2);
        }
    }
    tally_assert(&t);
}
END_TEST

/* All 2^24 three-byte sequences. The byte-by-byte check walks a tree of validator states (the
 * state is a plain struct, copied after each accepted byte) to keep this fast. */
START_TEST(test_brute_three_bytes)
{
    tally_t t = {0};
    uint8_t b[3];

    for (int b0 = 0; b0 < 256; b0++) {
        sb_utf8_t s0;
        int r0;

        b[0] = (uint8_t)b0;
        sb_utf8_reset(&s0);
        r0 = sb_utf8_feed(&s0, b, 1);
        for (int b1 = 0; b1 < 256; b1++) {
            sb_utf8_t s1 = s0;
            int r1 = -1;

            b[1] = (uint8_t)b1;
            if (r0 == 0)
                r1 = sb_utf8_feed(&s1, b + 1, 1);
            for (int b2 = 0; b2 < 256; b2++) {
                sb_utf8_t s2 = s1;
                int complete, got_valid, want_valid;
                size_t bad, got_bad;

                b[2] = (uint8_t)b2;
                bad = ref_first_bad(b, 3, &complete);
                want_valid = (bad == 3 && complete) ? 0 : -1;

                got_bad = r0 ? 0 : r1 ? 1 : sb_utf8_feed(&s2, b + 2, 1) ? 2 : 3;
                if (got_bad != bad)
                    tally_fail(&t, b, 3, "byte-by-byte first rejected byte", (long)got_bad,
                               (long)bad);
                else if (bad == 3 && sb_utf8_complete(&s2) != complete)
                    tally_fail(&t, b, 3, "sb_utf8_complete", sb_utf8_complete(&s2), complete);

                got_valid = sb_utf8_valid(b, 3);
                if (got_valid != want_valid)
                    tally_fail(&t, b, 3, "sb_utf8_valid", got_valid, want_valid);
            }
        }
    }
    tally_assert(&t);
}
END_TEST

/* Four-byte sequences: every second byte under a set of interesting leads with sampled third
 * and fourth bytes, then random ones biased towards almost-valid input. */
START_TEST(test_sampled_four_bytes)
{
    static const uint8_t leads[] = {0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC2, 0xDF, 0xE0, 0xED,
                                    0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF};
    static const uint8_t tails[] = {0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x9F,
                                    0xA0, 0xAF, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF};
    tally_t t = {0};
    uint8_t b[4];

    for (size_t i = 0; i < sizeof leads; i++)
        for (int b1 = 0; b1 < 256; b1++)
            for (size_t j = 0; j < sizeof tails; j++)
                for (size_t k = 0; k < sizeof tails; k++) {
                    b[0] = leads[i];
                    b[1] = (uint8_t)b1;
                    b[2] = tails[j];
                    b[3] = tails[k];
                    cross_check(&t, b, 4);
                }

    for (int n = 0; n < 1000000; n++) {
        uint32_t r = rng();

        b[0] = (r & 1) ? (uint8_t)(0xF0 + ((r >> 1) & 7)) : (uint8_t)(r >> 1);
        for (int k = 1; k < 4; k++) {
            uint32_t x = rng();
            b[k] = (x & 7) ? (uint8_t)(0x80 | ((x >> 3) & 0x3F)) : (uint8_t)(x >> 3);
        }
        cross_check(&t, b, 4);
    }
    tally_assert(&t);
}
END_TEST

/* Random strings of valid code points with occasional junk, checked whole, byte by byte and split
 * in two everywhere. */
START_TEST(test_random_strings)
{
    tally_t t = {0};

    for (int n = 0; n < 20000; n++) {
        uint8_t buf[200];
        size_t len = 0;
        int pieces = 1 + (int)(rng() % 30);

        for (int p = 0; p < pieces; p++) {
            uint32_t r = rng();

            if (r % 40 == 0) {
                buf[len++] = (uint8_t)(r >> 8);
            } else {
                uint32_t cp;
                switch (r % 4) {
                case 0:
                    cp = (r >> 8) % 0x80;
                    break;
                case 1:
                    cp = (r >> 8) % 0x800;
                    break;
                case 2:
                    cp = (r >> 8) % 0x10000;
                    break;
                default:
                    cp = (r >> 8) % 0x110000;
                    break;
                }
                if (cp >= 0xD800 && cp <= 0xDFFF)
                    cp = 0xFFFD;
                len += encode(cp, buf + len);
            }
        }
        if (rng() % 8 == 0 && len > 0)
            len--; /* sometimes cut the last code point short */

        cross_check(&t, buf, len);
        {
            int complete;
            size_t bad = ref_first_bad(buf, len, &complete);
            for (size_t cut = 0; cut <= len; cut++) {
                sb_utf8_t v;
                int r1, r2;

                sb_utf8_reset(&v);
                r1 = sb_utf8_feed(&v, buf, cut);
                r2 = r1 == 0 ? sb_utf8_feed(&v, buf + cut, len - cut) : -1;
                if (r1 != (bad < cut ? -1 : 0) || r2 != (bad < len ? -1 : 0) ||
                    (r2 == 0 && sb_utf8_complete(&v) != complete)) {
                    tally_fail(&t, buf, len, "split at the index in 'got'", (long)cut, (long)bad);
                    break;
                }
            }
        }
    }
    tally_assert(&t);
}
END_TEST

/* The reference itself must agree with the textbook definition, or the brute force proves
 * nothing. */
START_TEST(test_reference_sanity)
{
    int complete;
    uint8_t e[4];

    for (uint32_t cp = 0; cp <= 0x10FFFF; cp += 1 + (cp % 7)) {
        size_t n = encode(cp, e);
        size_t bad = ref_first_bad(e, n, &complete);
        if (cp >= 0xD800 && cp <= 0xDFFF)
            ck_assert_msg(bad == 1, "reference accepts surrogate U+%04X", cp);
        else
            ck_assert_msg(bad == n && complete, "reference rejects U+%04X", cp);
    }
    ck_assert_uint_eq(ref_first_bad(BYTES(0xC0, 0x80), &complete), 0);
    ck_assert_uint_eq(ref_first_bad(BYTES(0xE0, 0x9F, 0xBF), &complete), 1);
    ck_assert_uint_eq(ref_first_bad(BYTES(0xF4, 0x90, 0x80, 0x80), &complete), 1);
    ck_assert_uint_eq(ref_first_bad(BYTES(0xF0, 0x9F), &complete), 2);
    ck_assert_int_eq(complete, 0);
}
END_TEST

static Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc;

    tc = tcase_create("valid");
    tcase_add_test(tc, test_ascii);
    tcase_add_test(tc, test_two_byte);
    tcase_add_test(tc, test_three_byte);
    tcase_add_test(tc, test_four_byte);
    tcase_add_test(tc, test_mixed_text);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_every_code_point);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("invalid");
    tcase_add_test(tc, test_above_max);
    tcase_add_test(tc, test_overlong);
    tcase_add_test(tc, test_surrogates);
    tcase_add_test(tc, test_invalid_lead);
    tcase_add_test(tc, test_stray_continuation);
    tcase_add_test(tc, test_missing_continuation);
    tcase_add_test(tc, test_truncated);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("state");
    tcase_add_test(tc, test_complete_tracks_boundaries);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_examples_byte_by_byte);
    suite_add_tcase(s, tc);

    tc = tcase_create("brute force");
    tcase_add_test(tc, test_reference_sanity);
    tcase_add_test(tc, test_brute_one_and_two_bytes);
    tcase_add_test(tc, test_brute_three_bytes);
    tcase_add_test(tc, test_sampled_four_bytes);
    tcase_add_test(tc, test_random_strings);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
