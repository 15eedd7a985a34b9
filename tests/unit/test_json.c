/* Unit tests for proto/json: the strict RFC 8259 scanner, the string decoder and the escaper. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "json.h"

/* A byte string that may hold NULs: S("...") keeps its length. */
typedef struct {
    const char *s;
    size_t len;
} bytes_t;
#define S(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

/* Copies buf into a heap block of exactly len bytes, so ASan catches a read past the end. */
static char *exact_copy(const char *buf, size_t len)
{
    char *p = malloc(len ? len : 1);

    REQUIRE(p != NULL, "out of memory");
    if (len > 0)
        memcpy(p, buf, len);
    return p;
}

/* sb_json_skip_value over an exact-size copy of buf, from start. */
static int skip(const char *buf, size_t len, size_t start, size_t *pos)
{
    char *p = exact_copy(buf, len);
    int rc;

    *pos = start;
    rc = sb_json_skip_value(p, len, pos);
    REQUIRE(rc == 0 || rc == -1, "skip(%s) returned %d", show(buf, len), rc);
    REQUIRE(*pos <= len, "skip(%s) left pos %zu past len %zu", show(buf, len), *pos, len);
    free(p);
    return rc;
}

/* 1 when buf is exactly one JSON value with optional white space around it. */
static int whole(const char *buf, size_t len)
{
    char *p = exact_copy(buf, len);
    size_t pos = 0;
    int ok = sb_json_skip_value(p, len, &pos) == 0;

    if (ok) {
        sb_json_skip_ws(p, len, &pos);
        ok = pos == len;
    }
    free(p);
    return ok;
}

static void assert_whole(const char *buf, size_t len)
{
    REQUIRE(whole(buf, len), "rejected valid JSON: %s", show(buf, len));
}

static void assert_not_whole(const char *buf, size_t len)
{
    REQUIRE(!whole(buf, len), "accepted invalid JSON: %s", show(buf, len));
}

/* Asserts skip fails on buf with *pos at the offending byte. */
static void assert_fails_at(const char *buf, size_t len, size_t at)
{
    size_t pos;

    REQUIRE(skip(buf, len, 0, &pos) == -1, "accepted %s", show(buf, len));
    REQUIRE(pos == at, "%s: failure at byte %zu, want %zu", show(buf, len), pos, at);
}

/* xorshift32, so failures reproduce. */
static uint32_t rng_state = 0x9E3779B9u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Encodes a scalar value as UTF-8; returns the length. */
static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A random scalar value (no surrogates), spread over the four UTF-8 lengths; never NUL. */
static uint32_t random_scalar(void)
{
    uint32_t cp;

    switch (rng() % 4) {
    case 0:
        return 1 + rng() % 0x7F;
    case 1:
        return 0x80 + rng() % (0x800 - 0x80);
    case 2:
        do
            cp = 0x800 + rng() % (0x10000 - 0x800);
        while (cp >= 0xD800 && cp <= 0xDFFF);
        return cp;
    default:
        return 0x10000 + rng() % (0x110000 - 0x10000);
    }
}

/* "[" x n "]" x n, or {"a": x n 0 } x n; caller frees. */
static char *nest(size_t n, int object, size_t *len)
{
    const char *open = object ? "{\"a\":" : "[";
    size_t olen = strlen(open), k = 0;
    char *p = malloc(n * (olen + 1) + 2);

    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++, k += olen)
        memcpy(p + k, open, olen);
    if (object)
        p[k++] = '0';
    for (size_t i = 0; i < n; i++)
        p[k++] = object ? '}' : ']';
    p[k] = '\0';
    *len = k;
    return p;
}

/* ---- sb_json_skip_value: valid values, and where it stops ----------------------------------- */

static const char *const valid_values[] = {
    /* literals */
    "true", "false", "null",
    /* numbers */
    "0", "-0", "1.5e-3", "1E+2", "1e2", "1E-2", "123", "-123", "0.0", "-0.5", "10.25E10", "2E-0",
    "9007199254740993", "1e999", "-1.7976931348623157e308",
    /* strings: plain, every escape, \u forms, raw UTF-8 */
    "\"\"", "\"abc\"", "\"\\\"\"", "\"\\\\\"", "\"\\/\"", "\"\\b\"", "\"\\f\"", "\"\\n\"",
    "\"\\r\"", "\"\\t\"", "\"\\u0000\"", "\"\\u00e9\"", "\"\\u00E9\"", "\"\\uFFFF\"",
    "\"\\uD83D\\uDE00\"", "\"\\ud83d\\ude00\"", "\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"",
    "\"\xC3\xA9\"", "\"\xE4\xB8\xAD\"", "\"\xF0\x9F\x98\x80\"", "\"\xF4\x8F\xBF\xBF\"", "\"\x7F\"",
    "\"'single'\"", "\"[{,:}]\"",
    /* lone surrogate escapes match RFC 8259's grammar (section 8.2 only says they are unwise) */
    "\"\\uD800\"", "\"\\uDC00\"",
    /* containers */
    "{}", "[]", "[1]", "[1,2,3]", "[[],{}]", "{\"a\":1}", "{\"a\":1,\"b\":[true,false,null]}",
    "{\"\":\"\"}", "{\"a\":1,\"a\":2}", "[\"]\",\"}\"]", "{\"\\u0041\":{\"b\":{\"c\":[0]}}}",
    "{ \"a\" : [ 1 , 2 ] , \"b\" : { } }", "[\n\t1\r\n,\t\"x\" ]", "{\r\n}", "[ ]"};

static const char *const suffixes[] = {"", " ", "\n,", "]", "}", ":", "x", "\"", "{}", " 1"};

/* Each value is skipped exactly, after any leading white space, whatever follows it. */
static void check_pos_exact(const char *v)
{
    static const char *const leads[] = {"", " ", "\t\n\r "};
    size_t vlen = strlen(v);

    assert_whole(v, vlen);
    for (size_t l = 0; l < N_ELEMS(leads); l++) {
        for (size_t s = 0; s < N_ELEMS(suffixes); s++) {
            char buf[256];
            size_t pos, want = strlen(leads[l]) + vlen;
            int n = snprintf(buf, sizeof(buf), "%s%s%s", leads[l], v, suffixes[s]);
            REQUIRE(n < (int)sizeof(buf), "test value too long");
            REQUIRE(skip(buf, (size_t)n, 0, &pos) == 0, "rejected %s", show(buf, (size_t)n));
            REQUIRE(pos == want, "%s: pos %zu, want %zu", show(buf, (size_t)n), pos, want);
        }
    }
}

/* Values also scan from the middle of a buffer, and inside containers. */
static void check_embedded(const char *v)
{
    char buf[512];
    size_t pos;
    int n;

    n = snprintf(buf, sizeof(buf), "xyz %s,", v);
    REQUIRE(skip(buf, (size_t)n, 3, &pos) == 0 && pos == 4 + strlen(v), "%s from byte 3",
            show(buf, (size_t)n));
    n = snprintf(buf, sizeof(buf), "[%s, %s]", v, v);
    assert_whole(buf, (size_t)n);
    n = snprintf(buf, sizeof(buf), "{\"k\":%s,\"l\" : %s }", v, v);
    assert_whole(buf, (size_t)n);
}

START_TEST(test_valid_values)
{
    for (size_t i = 0; i < N_ELEMS(valid_values); i++) {
        check_pos_exact(valid_values[i]);
        check_embedded(valid_values[i]);
    }
}
END_TEST

START_TEST(test_white_space)
{
    static const char ws[] = " \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\nnull "
                             "\t\r\n} \t\r\n] \t\r\n";

    assert_whole(ws, sizeof(ws) - 1);
    /* only the four RFC 8259 white space bytes count */
    assert_not_whole("\f1", 2);
    assert_not_whole("\v1", 2);
    assert_not_whole("[1\f]", 4);
    assert_not_whole("\xC2\xA0"
                     "1",
                     3);
    assert_not_whole("", 0);
    assert_not_whole(" \n\t\r", 4);

    size_t pos = 99;
    sb_json_skip_ws(" \t\r\nx ", 6, &pos);
    ck_assert_uint_eq(pos, 99);
    pos = 0;
    sb_json_skip_ws(" \t\r\nx ", 6, &pos);
    ck_assert_uint_eq(pos, 4);
    pos = 1;
    sb_json_skip_ws("x   ", 4, &pos);
    ck_assert_uint_eq(pos, 4);
}
END_TEST

/* A string or container cut short anywhere is refused, and the scanner stays inside the cut. */
START_TEST(test_prefixes_refused)
{
    static const char *const texts[] = {
        "\"abc\\u00e9\\n\xC3\xA9\"",
        "{\"a\":[1,2.5e3,{\"b\":\"c\"}],\"d\":null,\"e\":true,\"f\":false}",
        "[[[\"\\uD83D\\uDE00\"]]]", "{ \"a\" : { } }"};
    for (size_t t = 0; t < N_ELEMS(texts); t++) {
        size_t len = strlen(texts[t]), pos;
        assert_whole(texts[t], len);
        for (size_t cut = 0; cut < len; cut++) {
            REQUIRE(skip(texts[t], cut, 0, &pos) == -1, "accepted prefix %s", show(texts[t], cut));
            ck_assert_uint_le(pos, cut);
        }
    }
}
END_TEST

/* ---- sb_json_skip_value: invalid input ------------------------------------------------------ */

static const bytes_t invalid_values[] = {
    /* numbers */
    S("+1"), S(".5"), S("1."), S("1e"), S("1E"), S("1e+"), S("1e-"), S("-"), S("-a"), S("--1"),
    S("1.e5"), S("-.5"), S("0x10"), S("NaN"), S("nan"), S("Infinity"), S("-Infinity"), S("01"),
    S("-01"), S("00"), S("1 2"), S("1.5.2"), S("1e5e5"),
    /* literals */
    S("tru"), S("nul"), S("fals"), S("True"), S("NULL"), S("nulx"), S("t"),
    /* strings */
    S("\""), S("\"abc"), S("\"abc\\\""), S("\"\\"), S("'abc'"), S("\"a\x01\""), S("\"\x00\""),
    S("\"a\nb\""), S("\"\t\""), S("\"\x1F\""), S("\"\\x\""), S("\"\\a\""), S("\"\\'\""),
    S("\"\\0\""), S("\"\\U0041\""), S("\"\\u12G4\""), S("\"\\uG234\""), S("\"\\u123G\""),
    S("\"\\u123\""), S("\"\\u\""), S("\"\\u12"), S("\"\\u123"), S("\"\\u1234"), S("\"\\"),
    S("\"\\ "),
    /* invalid UTF-8 inside strings */
    S("\"\xFF\""), S("\"\xC0\x80\""), S("\"\xC3\""), S("\"\xC3x\""), S("\"\x80\""),
    S("\"\xED\xA0\x80\""), S("\"\xF4\x90\x80\x80\""), S("\"\xE2\x82\""),
    S("\"\xF8\x88\x80\x80\x80\""), S("{\"\xFF\":1}"), S("[\"ok\",\"\xFE\"]"),
    /* arrays */
    S("["), S("[1"), S("[1,"), S("[1,]"), S("[,1]"), S("[,]"), S("[1 2]"), S("[1,,2]"), S("[1}"),
    S("]"), S("['a']"), S("[1]]"),
    /* objects */
    S("{"), S("{\"a\""), S("{\"a\":"), S("{\"a\":1"), S("{\"a\":1,"), S("{\"a\":1,}"), S("{,}"),
    S("{,\"a\":1}"), S("{\"a\" 1}"), S("{\"a\":}"), S("{a:1}"), S("{'a':1}"), S("{\"a\":'b'}"),
    S("{\"a\":1 \"b\":2}"), S("{\"a\":1]"), S("{1:2}"), S("{\"a\"=1}"), S("{\"a\"::1}"),
    S("{null:1}"), S("}"), S("{\"a\":1}}"),
    /* nothing or other bytes */
    S("x"), S("\x00"), S("/* */1")};

START_TEST(test_invalid_values)
{
    for (size_t i = 0; i < N_ELEMS(invalid_values); i++) {
        const bytes_t *b = &invalid_values[i];
        char buf[128];

        assert_not_whole(b->s, b->len);
        /* inside a container it must not pass either */
        REQUIRE(b->len + 8 < sizeof(buf), "test value too long");
        buf[0] = '[';
        memcpy(buf + 1, b->s, b->len);
        buf[b->len + 1] = ']';
        assert_not_whole(buf, b->len + 2);
        memcpy(buf, "{\"k\":", 5);
        memcpy(buf + 5, b->s, b->len);
        buf[b->len + 5] = '}';
        assert_not_whole(buf, b->len + 6);
    }
}
END_TEST

/* "01" is the value 0 followed by something else: skip stops after the 0, no further. */
START_TEST(test_leading_zero_stops)
{
    size_t pos;

    ck_assert_int_eq(skip("01", 2, 0, &pos), 0);
    ck_assert_uint_eq(pos, 1);
    ck_assert_int_eq(skip("-012", 4, 0, &pos), 0);
    ck_assert_uint_eq(pos, 2);
    ck_assert_int_eq(skip("0.1e1", 5, 0, &pos), 0);
    ck_assert_uint_eq(pos, 5);
}
END_TEST

/* Every raw byte below 0x20 is refused inside a string; 0x7F and up (as UTF-8) are not. */
START_TEST(test_raw_control_chars)
{
    for (int c = 0; c < 0x20; c++) {
        char buf[] = {'"', 'a', (char)c, 'b', '"'};
        assert_fails_at(buf, sizeof(buf), 2);
    }
    assert_whole("\"a\x7F"
                 "b\"",
                 5);
}
END_TEST

/* After a backslash exactly " \ / b f n r t u are known. */
START_TEST(test_every_escape_byte)
{
    for (int c = 0; c < 256; c++) {
        char buf[] = {'"', '\\', (char)c, '"'};
        int known = c != 0 && strchr("\"\\/bfnrt", c) != NULL;
        if (c == 'u')
            continue;
        REQUIRE(whole(buf, sizeof(buf)) == known, "escape \\x%02X: want %s", c,
                known ? "accepted" : "refused");
    }
    /* each of the four \u digits must be hex, in either case */
    for (int k = 0; k < 4; k++) {
        for (int c = 0; c < 256; c++) {
            char buf[] = {'"', '\\', 'u', 'a', 'B', 'c', 'D', '"'};
            int is_hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            buf[3 + k] = (char)c;
            REQUIRE(whole(buf, sizeof(buf)) == is_hex, "\\u digit %d = \\x%02X", k, c);
        }
    }
}
END_TEST

/* ---- nesting depth -------------------------------------------------------------------------- */

/* The boundary: SB_JSON_MAX_DEPTH (64) levels of containers are accepted, 65 refused. */
START_TEST(test_depth_boundary)
{
    for (int object = 0; object <= 1; object++) {
        for (size_t n = 1; n <= SB_JSON_MAX_DEPTH + 2; n++) {
            size_t len, pos;
            char *p = nest(n, object, &len);
            int rc = skip(p, len, 0, &pos);
            if (n <= SB_JSON_MAX_DEPTH) {
                REQUIRE(rc == 0 && pos == len, "%s depth %zu refused", object ? "{" : "[", n);
            } else {
                REQUIRE(rc == -1, "%s depth %zu accepted", object ? "{" : "[", n);
                /* refused at the container that goes one level too deep */
                size_t olen = object ? 5 : 1;
                ck_assert_uint_eq(pos, SB_JSON_MAX_DEPTH * olen);
            }
            free(p);
        }
    }
    ck_assert_int_eq(SB_JSON_MAX_DEPTH, 64);
}
END_TEST

/* Depth is the nesting of one path, not the number of containers. */
START_TEST(test_depth_siblings)
{
    size_t len, pos;
    char *inner = nest(SB_JSON_MAX_DEPTH - 1, 0, &len);
    char *buf = malloc(2 * len + 64);

    ck_assert_ptr_nonnull(buf);
    /* [ <63 levels>, <63 levels>, {"k":[]} ]: 64 levels deep, many containers */
    int n = sprintf(buf, "[%s,%s,{\"k\":[]}]", inner, inner);
    ck_assert_int_eq(skip(buf, (size_t)n, 0, &pos), 0);
    ck_assert_uint_eq(pos, (size_t)n);
    /* one more level on the second path breaks it */
    n = sprintf(buf, "[%s,[%s]]", inner, inner);
    ck_assert_int_eq(skip(buf, (size_t)n, 0, &pos), -1);
    free(buf);
    free(inner);

    /* a wide array of 10000 empty containers */
    buf = malloc(2 + 3 * 10000);
    ck_assert_ptr_nonnull(buf);
    n = 0;
    buf[n++] = '[';
    for (int i = 0; i < 10000; i++) {
        memcpy(buf + n, i % 2 ? "{}," : "[],", 3);
        n += 3;
    }
    buf[n - 1] = ']';
    ck_assert_int_eq(skip(buf, (size_t)n, 0, &pos), 0);
    ck_assert_uint_eq(pos, (size_t)n);
    free(buf);
}
END_TEST

/* A hostile depth fails fast instead of exhausting the stack. */
START_TEST(test_depth_hostile)
{
    size_t n = 1000000, pos;
    char *p = malloc(n);

    ck_assert_ptr_nonnull(p);
    memset(p, '[', n);
    ck_assert_int_eq(skip(p, n, 0, &pos), -1);
    ck_assert_uint_eq(pos, SB_JSON_MAX_DEPTH);
    for (size_t i = 0; i < n; i++)
        p[i] = i % 2 ? '[' : '{';
    ck_assert_int_eq(skip(p, n, 0, &pos), -1);
    free(p);
}
END_TEST

/* ---- where a failure is reported ------------------------------------------------------------
 * json.h: "Returns ... -1 when the bytes are not a valid value (*pos then marks the offending
 * byte)". sb_msg_parse prints this byte number in its bad-request message. */

START_TEST(test_error_pos_structure)
{
    assert_fails_at("[1,]", 4, 3);
    assert_fails_at("[1 2]", 5, 3);
    assert_fails_at("{\"a\" 1}", 7, 5);
    assert_fails_at("{\"a\":1,}", 8, 7);
    assert_fails_at("{'a':1}", 7, 1);
    assert_fails_at("[1}", 3, 2);
    assert_fails_at("[1", 2, 2);
    assert_fails_at("\"abc", 4, 4);
    assert_fails_at("", 0, 0);
    assert_fails_at("  ", 2, 2);
}
END_TEST

START_TEST(test_error_pos_numbers)
{
    assert_fails_at("+1", 2, 0);
    assert_fails_at(".5", 2, 0);
    assert_fails_at("1.", 2, 2);
    assert_fails_at("1.x", 3, 2);
    assert_fails_at("-x", 2, 1);
    assert_fails_at("1e+x", 4, 3);
    assert_fails_at("[-]", 3, 2);
}
END_TEST

START_TEST(test_error_pos_escapes)
{
    size_t pos;

    /* the backslash or the byte after it */
    ck_assert_int_eq(skip("\"ab\\x\"", 6, 0, &pos), -1);
    REQUIRE(pos == 3 || pos == 4, "bad escape: pos %zu", pos);
    ck_assert_int_eq(skip("\"\\u12G4\"", 8, 0, &pos), -1);
    REQUIRE(pos >= 1 && pos <= 5, "bad \\u: pos %zu", pos);
}
END_TEST

/* The offending byte of an invalid UTF-8 sequence is the first byte that cannot continue it. */
START_TEST(test_error_pos_invalid_utf8)
{
    assert_fails_at("\"a\xFF"
                    "bc\"",
                    6, 2);
    assert_fails_at("\"ab\xC3x\"", 6, 4);
    assert_fails_at("[\"\x80\"]", 5, 2);
}
END_TEST

/* A literal fails at the first byte that departs from it. */
START_TEST(test_error_pos_literals)
{
    assert_fails_at("nulx", 4, 3);
    assert_fails_at("[tru]", 5, 4);
    assert_fails_at("fals", 4, 4);
}
END_TEST

/* ---- sb_json_decode_string ------------------------------------------------------------------ */

/* Decodes lit into a buffer of cap bytes followed by a guard; checks nothing past cap is written.
 * Returns the result and copies what was decoded to out (at least cap bytes). */
static int decode(const char *lit, size_t len, char *out, size_t cap)
{
    char *p = exact_copy(lit, len);
    char *buf = malloc(cap + 16);
    sb_str_t s = {p, len};
    int rc;

    REQUIRE(buf != NULL, "out of memory");
    memset(buf, 0xAA, cap + 16);
    rc = sb_json_decode_string(&s, buf, cap);
    for (size_t i = cap; i < cap + 16; i++)
        REQUIRE((unsigned char)buf[i] == 0xAA, "decode(%s, cap %zu) wrote byte %zu", show(lit, len),
                cap, i);
    if (rc >= 0) {
        REQUIRE((size_t)rc < cap, "decode returned %d with cap %zu", rc, cap);
        REQUIRE(buf[rc] == '\0', "decode(%s) not NUL-terminated", show(lit, len));
    }
    if (out != NULL && cap > 0)
        memcpy(out, buf, cap);
    free(buf);
    free(p);
    return rc;
}

/* Asserts lit decodes to want (wlen bytes), and needs exactly wlen + 1 bytes of room. */
static void assert_decodes(const char *lit, const char *want, size_t wlen)
{
    size_t len = strlen(lit);
    char out[512];

    ck_assert_uint_lt(wlen + 1, sizeof(out));
    int rc = decode(lit, len, out, wlen + 1);
    REQUIRE(rc >= 0 && (size_t)rc == wlen, "decode(%s) = %d, want %zu", lit, rc, wlen);
    REQUIRE(memcmp(out, want, wlen) == 0, "decode(%s) = %s", lit, show(out, wlen));
    REQUIRE(decode(lit, len, NULL, wlen) == -1, "decode(%s) fit in %zu bytes", lit, wlen);
    rc = decode(lit, len, out, sizeof(out));
    REQUIRE(rc >= 0 && (size_t)rc == wlen, "decode(%s) with room = %d", lit, rc);
}

START_TEST(test_decode_escapes)
{
    assert_decodes("\"\"", "", 0);
    assert_decodes("\"abc\"", "abc", 3);
    assert_decodes("\"\\\"\"", "\"", 1);
    assert_decodes("\"\\\\\"", "\\", 1);
    assert_decodes("\"\\/\"", "/", 1);
    assert_decodes("\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5);
    assert_decodes("\"a\\\"b\\\\c\\/d\"", "a\"b\\c/d", 7);
    assert_decodes("\"\\u0041\\u0061\"", "Aa", 2);
    assert_decodes("\"\\u0000\"", "\0", 1);
    assert_decodes("\"a\\u0000b\"", "a\0b", 3);
    assert_decodes("\"\\u001f\\u007F\"", "\x1F\x7F", 2);
    assert_decodes("\"\\u0080\"", "\xC2\x80", 2);
    assert_decodes("\"\\u00e9\\u00E9\"", "\xC3\xA9\xC3\xA9", 4);
    assert_decodes("\"\\u07FF\"", "\xDF\xBF", 2);
    assert_decodes("\"\\u0800\"", "\xE0\xA0\x80", 3);
    assert_decodes("\"\\u4e2d\"", "\xE4\xB8\xAD", 3);
    assert_decodes("\"\\uD7FF\"", "\xED\x9F\xBF", 3);
    assert_decodes("\"\\uE000\"", "\xEE\x80\x80", 3);
    assert_decodes("\"\\uFFFF\"", "\xEF\xBF\xBF", 3);
    assert_decodes("\"\xC3\xA9\xF0\x9F\x98\x80\"", "\xC3\xA9\xF0\x9F\x98\x80", 6);
}
END_TEST

START_TEST(test_decode_surrogate_pairs)
{
    assert_decodes("\"\\uD800\\uDC00\"", "\xF0\x90\x80\x80", 4);
    assert_decodes("\"\\uD83D\\uDE00\"", "\xF0\x9F\x98\x80", 4);
    assert_decodes("\"\\ud83d\\ude00\"", "\xF0\x9F\x98\x80", 4);
    assert_decodes("\"\\uDBFF\\uDFFF\"", "\xF4\x8F\xBF\xBF", 4);
    assert_decodes("\"x\\uD834\\uDD1Ey\"", "x\xF0\x9D\x84\x9Ey", 6);
    /* every supplementary plane's first and last code point */
    for (uint32_t cp = 0x10000; cp <= 0x10FFFF; cp += 0x10000) {
        for (uint32_t c = cp; c <= cp + 0xFFFF; c += 0xFFFF) {
            char lit[32], want[4];
            uint32_t v = c - 0x10000;
            snprintf(lit, sizeof(lit), "\"\\u%04X\\u%04x\"", 0xD800 + (v >> 10),
                     0xDC00 + (v & 0x3FF));
            size_t n = utf8_encode(c, want);
            assert_decodes(lit, want, n);
        }
    }
}
END_TEST

/* Every BMP code point written as \uXXXX decodes to its UTF-8 form. */
START_TEST(test_decode_every_bmp_escape)
{
    for (uint32_t cp = 1; cp < 0x10000; cp++) {
        char lit[16], want[4], out[8];
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        snprintf(lit, sizeof(lit), cp & 1 ? "\"\\u%04x\"" : "\"\\u%04X\"", cp);
        size_t n = utf8_encode(cp, want);
        sb_str_t s = {lit, 8};
        int rc = sb_json_decode_string(&s, out, sizeof(out));
        REQUIRE(rc == (int)n && memcmp(out, want, n) == 0 && out[n] == '\0',
                "U+%04X decoded to %d bytes", cp, rc);
    }
}
END_TEST

START_TEST(test_decode_lone_surrogates)
{
    static const char *const lits[] = {"\"\\uD800\"",
                                       "\"\\uDBFF\"",
                                       "\"\\uDC00\"",
                                       "\"\\uDFFF\"",
                                       "\"\\uD800x\"",
                                       "\"\\uD800\\u0041\"",
                                       "\"\\uD800\\uD800\"",
                                       "\"\\uDC00\\uD800\"",
                                       "\"a\\uDE00b\"",
                                       "\"\\uD83D\\n\"",
                                       "\"\\uD83D\\\\uDE00\"",
                                       "\"\\uD83D \\uDE00\"",
                                       "\"\\uD83D\\uDE00\\uDE00\"",
                                       "\"\\uD800\\uE000\"",
                                       "\"\\uDBFF\\uFFFF\"",
                                       "\"\\uD800\\uDBFF\""};
    char out[64];

    for (size_t i = 0; i < N_ELEMS(lits); i++)
        REQUIRE(decode(lits[i], strlen(lits[i]), out, sizeof(out)) == -1,
                "lone surrogate decoded: %s", lits[i]);
}
END_TEST

START_TEST(test_decode_cap)
{
    char out[16];

    ck_assert_int_eq(decode("\"abc\"", 5, out, 0), -1);
    ck_assert_int_eq(decode("\"\"", 2, out, 0), -1);
    ck_assert_int_eq(decode("\"\"", 2, out, 1), 0);
    ck_assert_int_eq(decode("\"abc\"", 5, out, 3), -1);
    ck_assert_int_eq(decode("\"abc\"", 5, out, 4), 3);
    ck_assert_str_eq(out, "abc");
    /* a multi-byte character that only partly fits is not cut */
    ck_assert_int_eq(decode("\"a\\u4e2d\"", 9, out, 4), -1);
    ck_assert_int_eq(decode("\"a\\u4e2d\"", 9, out, 5), 4);
    ck_assert_int_eq(decode("\"\\uD83D\\uDE00\"", 14, out, 4), -1);
    ck_assert_int_eq(decode("\"\\uD83D\\uDE00\"", 14, out, 5), 4);
    ck_assert_int_eq(decode("\"\xF0\x9F\x98\x80\"", 6, out, 4), -1);
    ck_assert_int_eq(decode("\"\xF0\x9F\x98\x80\"", 6, out, 5), 4);
}
END_TEST

/* Only a whole, valid string literal decodes. */
START_TEST(test_decode_invalid_literals)
{
    static const bytes_t lits[] = {
        S(""),          S("\""),       S("abc"),         S("\"abc"),      S("abc\""),
        S("\"a\"b"),    S("\"a\" "),   S(" \"a\""),      S("\"a\"\"b\""), S("\"\\x\""),
        S("\"a\x01\""), S("\"\xFF\""), S("\"\\u12G4\""), S("\"\\u12\""),  S("\"\\\""),
        S("1"),         S("null"),     S("'a'"),         S("\"a\nb\""),   S("\"\x00\"")};
    char out[64];

    for (size_t i = 0; i < N_ELEMS(lits); i++)
        REQUIRE(decode(lits[i].s, lits[i].len, out, sizeof(out)) == -1, "decoded %s",
                show(lits[i].s, lits[i].len));
}
END_TEST

/* ---- sb_json_escape ------------------------------------------------------------------------- */

/* Escapes s into a buffer of cap bytes followed by a guard; checks nothing past cap is written. */
static int escape(const char *s, char *out, size_t cap)
{
    char *buf = malloc(cap + 16);
    int rc;

    REQUIRE(buf != NULL, "out of memory");
    memset(buf, 0xAA, cap + 16);
    rc = sb_json_escape(s, buf, cap);
    for (size_t i = cap; i < cap + 16; i++)
        REQUIRE((unsigned char)buf[i] == 0xAA, "escape(%s, cap %zu) wrote byte %zu",
                show(s, strlen(s)), cap, i);
    if (rc >= 0) {
        REQUIRE((size_t)rc < cap, "escape returned %d with cap %zu", rc, cap);
        REQUIRE(buf[rc] == '\0' && strlen(buf) == (size_t)rc, "escape(%s) not NUL-terminated",
                show(s, strlen(s)));
    }
    if (out != NULL && cap > 0)
        memcpy(out, buf, cap);
    free(buf);
    return rc;
}

/* Asserts s escapes to exactly want, which needs strlen(want) + 1 bytes. */
static void assert_escapes(const char *s, const char *want)
{
    size_t wlen = strlen(want);
    char out[256];

    ck_assert_uint_lt(wlen + 1, sizeof(out));
    ck_assert_int_eq(escape(s, out, wlen + 1), (int)wlen);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(escape(s, NULL, wlen), -1);
}

START_TEST(test_escape_exact)
{
    assert_escapes("", "\"\"");
    assert_escapes("abc", "\"abc\"");
    assert_escapes("say \"hi\"", "\"say \\\"hi\\\"\"");
    assert_escapes("a\\b", "\"a\\\\b\"");
    assert_escapes("\\\"", "\"\\\\\\\"\"");
    /* UTF-8, DEL and characters RFC 8259 does not require escaping pass through */
    assert_escapes("\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80",
                   "\"\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80\"");
    assert_escapes("\x7F", "\"\x7F\"");
    assert_escapes("a'b{}[]:,", "\"a'b{}[]:,\"");
}
END_TEST

/* Each control character comes out as \u00XX (hex in either case). */
START_TEST(test_escape_control_chars)
{
    for (int c = 1; c < 0x20; c++) {
        char s[] = {'a', (char)c, 'b', '\0'}, out[32];
        ck_assert_int_eq(escape(s, out, sizeof(out)), 10);
        REQUIRE(memcmp(out, "\"a\\u00", 6) == 0 && memcmp(out + 8, "b\"", 2) == 0,
                "0x%02X escaped as %s", c, out);
        char digits[3] = {out[6], out[7], '\0'}, *end;
        ck_assert_int_eq(strtol(digits, &end, 16), c);
        ck_assert_ptr_eq(end, digits + 2);
    }
}
END_TEST

START_TEST(test_escape_cap)
{
    char out[16];

    ck_assert_int_eq(escape("", out, 0), -1);
    ck_assert_int_eq(escape("", out, 1), -1);
    ck_assert_int_eq(escape("", out, 2), -1);
    ck_assert_int_eq(escape("", out, 3), 2);
    ck_assert_int_eq(escape("x", out, 3), -1);
    ck_assert_int_eq(escape("x", out, 4), 3);
    /* an escape sequence is never cut */
    ck_assert_int_eq(escape("\"", out, 4), -1);
    ck_assert_int_eq(escape("\"", out, 5), 4);
    ck_assert_int_eq(escape("\x01", out, 8), -1);
    ck_assert_int_eq(escape("\x01", out, 9), 8);
    ck_assert_str_eq(out, "\"\\u0001\"");
}
END_TEST

/* Escaping then decoding gives the string back, the escaped form is one valid JSON value, and
 * both need exactly the room they report. */
static void assert_round_trip(const char *s)
{
    size_t slen = strlen(s);
    size_t cap = slen * 6 + 3;
    char *lit = malloc(cap), *back = malloc(slen + 1);
    int n;

    REQUIRE(lit != NULL && back != NULL, "out of memory");
    n = escape(s, lit, cap);
    REQUIRE(n >= 2, "escape(%s) failed", show(s, slen));
    REQUIRE(escape(s, NULL, (size_t)n) == -1, "escape(%s) fit in %d bytes", show(s, slen), n);
    for (int i = 0; i < n; i++)
        REQUIRE((unsigned char)lit[i] >= 0x20, "raw control byte in %s", show(lit, (size_t)n));
    assert_whole(lit, (size_t)n);
    REQUIRE(decode(lit, (size_t)n, back, slen + 1) == (int)slen, "decode(%s) failed",
            show(lit, (size_t)n));
    REQUIRE(memcmp(back, s, slen) == 0, "round trip of %s gave %s", show(s, slen),
            show(back, slen));
    REQUIRE(decode(lit, (size_t)n, NULL, slen) == -1, "decode(%s) fit in %zu bytes",
            show(lit, (size_t)n), slen);
    free(back);
    free(lit);
}

START_TEST(test_round_trip_bytes)
{
    char s[2] = {0, 0};

    for (int c = 1; c < 0x80; c++) {
        s[0] = (char)c;
        assert_round_trip(s);
    }
    assert_round_trip("");
    assert_round_trip("\"\\/\b\f\n\r\t\x01\x1F\x7F");
    assert_round_trip("\\u0041 is not an escape once escaped");
}
END_TEST

START_TEST(test_round_trip_random)
{
    char s[4 * 64 + 1];

    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0, count = rng() % 64;
        for (size_t k = 0; k < count; k++) {
            /* weight towards the characters that need escaping */
            uint32_t cp =
                rng() % 4 == 0 ? (uint32_t) "\"\\\n\x01\x1F/\t"[rng() % 7] : random_scalar();
            n += utf8_encode(cp, s + n);
        }
        s[n] = '\0';
        assert_round_trip(s);
    }
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc;

    tc = tcase_create("skip valid");
    tcase_add_test(tc, test_valid_values);
    tcase_add_test(tc, test_white_space);
    tcase_add_test(tc, test_prefixes_refused);
    tcase_add_test(tc, test_leading_zero_stops);
    suite_add_tcase(s, tc);

    tc = tcase_create("skip invalid");
    tcase_add_test(tc, test_invalid_values);
    tcase_add_test(tc, test_raw_control_chars);
    tcase_add_test(tc, test_every_escape_byte);
    suite_add_tcase(s, tc);

    tc = tcase_create("depth");
    tcase_add_test(tc, test_depth_boundary);
    tcase_add_test(tc, test_depth_siblings);
    tcase_add_test(tc, test_depth_hostile);
    suite_add_tcase(s, tc);

    tc = tcase_create("error position");
    tcase_add_test(tc, test_error_pos_structure);
    tcase_add_test(tc, test_error_pos_numbers);
    tcase_add_test(tc, test_error_pos_escapes);
    tcase_add_test(tc, test_error_pos_invalid_utf8);
    tcase_add_test(tc, test_error_pos_literals);
    suite_add_tcase(s, tc);

    tc = tcase_create("decode");
    tcase_add_test(tc, test_decode_escapes);
    tcase_add_test(tc, test_decode_surrogate_pairs);
    tcase_add_test(tc, test_decode_every_bmp_escape);
    tcase_add_test(tc, test_decode_lone_surrogates);
    tcase_add_test(tc, test_decode_cap);
    tcase_add_test(tc, test_decode_invalid_literals);
    suite_add_tcase(s, tc);

    tc = tcase_create("escape");
    tcase_add_test(tc, test_escape_exact);
    tcase_add_test(tc, test_escape_control_chars);
    tcase_add_test(tc, test_escape_cap);
    tcase_add_test(tc, test_round_trip_bytes);
    tcase_add_test(tc, test_round_trip_random);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(json_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
