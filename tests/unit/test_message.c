/* Unit tests for proto/message: parsing client messages, name rules, server message builders. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "json.h"
#include "message.h"

/* ---- parsing helpers ------------------------------------------------------------------------ */

/* One parse: the input lives in an exact-size heap copy (ASan sees reads past it) for as long
 * as the slices in m point into it. */
typedef struct {
    char *buf;
    size_t len;
    sb_msg_t m;
    const char *err; /* the reason, when rc < 0 */
    char text[160];  /* what a client is told, built as node/app/relay.c builds it */
    int rc;
} parsed_t;

/* The bad-request message a client receives for a refused message, built as node/app/relay.c's
 * on_text builds it. */
static void text_for_people(int rc, const char *err, const sb_msg_t *m, char *out, size_t cap)
{
    if (rc == SB_MSG_EJSON)
        snprintf(out, cap, "%s at byte %zu", err, m->error_at);
    else if (rc == SB_MSG_ETRAILING)
        snprintf(out, cap, "invalid JSON at byte %zu: %s", m->error_at, err);
    else
        snprintf(out, cap, "%s", err);
}

static void parse_n(parsed_t *p, const char *json, size_t len)
{
    p->buf = malloc(len ? len : 1);
    REQUIRE(p->buf != NULL, "out of memory");
    if (len > 0)
        memcpy(p->buf, json, len);
    p->len = len;
    /* garbage in, so that "len 0 when absent" and the reset of m mean something */
    memset(&p->m, 0x5A, sizeof(p->m));
    p->err = NULL;
    p->text[0] = '\0';
    p->rc = sb_msg_parse(p->buf, len, &p->m, &p->err);
    REQUIRE(p->rc <= 0 && p->rc >= SB_MSG_EUNKNOWN_TYPE, "sb_msg_parse(%s) returned %d",
            show(json, len), p->rc);
    if (p->rc == 0) {
        REQUIRE(p->err == NULL, "%s: accepted, with a reason", show(json, len));
        REQUIRE(p->m.error_at == 0, "%s: accepted, with error_at set", show(json, len));
        return;
    }
    REQUIRE(p->err != NULL && p->err[0] != '\0', "%s: refused without a reason", show(json, len));
    if (p->rc == SB_MSG_EJSON)
        REQUIRE(p->m.error_at <= len, "%s: error_at %zu", show(json, len), p->m.error_at);
    else if (p->rc == SB_MSG_ETRAILING)
        REQUIRE(p->m.error_at < len, "%s: error_at %zu", show(json, len), p->m.error_at);
    else
        REQUIRE(p->m.error_at == 0, "%s: error_at %zu set for %d", show(json, len), p->m.error_at,
                p->rc);
    text_for_people(p->rc, p->err, &p->m, p->text, sizeof(p->text));

    /* err may be NULL: the same answer */
    sb_msg_t again;
    REQUIRE(sb_msg_parse(p->buf, len, &again, NULL) == p->rc, "%s: another code with err NULL",
            show(json, len));
    REQUIRE(again.error_at == p->m.error_at && again.mid.p == p->m.mid.p &&
                again.mid.len == p->m.mid.len,
            "%s: another error_at or mid with err NULL", show(json, len));
}

static void parsed_free(parsed_t *p)
{
    free(p->buf);
    p->buf = NULL;
}

/* 1 when slice s is exactly the text want. */
static int slice_is(sb_str_t s, const char *want)
{
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.p, want, s.len) == 0);
}

/* Asserts slice s is exactly the text want and lies inside p's buffer. */
static void assert_slice_at(const parsed_t *p, sb_str_t s, const char *want, const char *what)
{
    size_t wlen = strlen(want);

    REQUIRE(slice_is(s, want), "%s of %s: got %s, want %s", what, show(p->buf, p->len),
            s.p ? show(s.p, s.len) : "(null)", want);
    REQUIRE(s.p >= p->buf && s.p + s.len <= p->buf + p->len, "%s slice outside the input", what);
    REQUIRE(memcmp(s.p, want, wlen) == 0, "%s slice bytes differ", what);
}

static void expect_ok(parsed_t *p, const char *json)
{
    parse_n(p, json, strlen(json));
    REQUIRE(p->rc == 0, "refused %s: %s", show(json, strlen(json)), p->text);
}

/* A want_mid that checks nothing: which of two mids an error carries is not specified. */
static const char ANY_MID[] = "any";

/* Refused with code and exactly the reason why. want_mid: NULL when the error cannot carry a
 * mid, else the mid's exact text. */
static void expect_fail_n(const char *json, size_t len, int code, const char *why,
                          const char *want_mid)
{
    parsed_t p;

    parse_n(&p, json, len);
    REQUIRE(p.rc == code && strcmp(p.err, why) == 0, "%s: %d (%s), want %d (%s)", show(json, len),
            p.rc, p.err ? p.err : "accepted", code, why);
    if (want_mid == ANY_MID)
        ;
    else if (want_mid == NULL)
        REQUIRE(p.m.mid.len == 0, "%s: mid set to %s", show(json, len),
                show(p.m.mid.p, p.m.mid.len));
    else
        assert_slice_at(&p, p.m.mid, want_mid, "mid");
    parsed_free(&p);
}

static void expect_fail(const char *json, int code, const char *why, const char *want_mid)
{
    expect_fail_n(json, strlen(json), code, why, want_mid);
}

/* Refused as broken JSON (SB_MSG_EJSON, SB_MSG_ETRAILING) or JSON that is no object
 * (SB_MSG_ENOT_OBJECT), the offending byte at (0 for SB_MSG_ENOT_OBJECT), and the client is told
 * exactly text; nothing is said about mid (a valid one may have been read before the fault). */
static void expect_bad_json(const char *json, size_t len, int code, size_t at, const char *text)
{
    parsed_t p;

    parse_n(&p, json, len);
    REQUIRE(p.rc == code && p.m.error_at == at, "%s: %d at %zu (%s), want %d at %zu",
            show(json, len), p.rc, p.m.error_at, p.rc ? p.text : "accepted", code, at);
    REQUIRE(strcmp(p.text, text) == 0, "%s: told \"%s\", want \"%s\"", show(json, len), p.text,
            text);
    parsed_free(&p);
}

/* The reasons, word for word (a client sees them in its bad-request errors). */
#define NOT_OBJECT "a message must be a JSON object"
#define MISSING(f) "missing field '" f "'"
#define NOT_STRING(f) "'" f "' must be a string"
#define DUPLICATE(f) "duplicate field '" f "'"
#define BAD_TO "'to' must be 1-64 characters of [A-Za-z0-9_.-]"
#define BAD_ROOM "'room' must be 1-64 characters of [A-Za-z0-9_.:-]"
#define BAD_MID "'mid' must be a string of at most 64 bytes or a number of at most 64 characters"
#define UNKNOWN_TYPE "unknown type: expected offer, answer, candidate, bye, join or leave"

/* A string of n copies of c (n < 512); static, overwritten by the next call. */
static const char *repeat(char c, size_t n)
{
    static char bufs[2][512];
    static int which;
    char *out = bufs[which ^= 1];

    REQUIRE(n < sizeof(bufs[0]), "repeat too long");
    memset(out, c, n);
    out[n] = '\0';
    return out;
}

/* ---- sb_msg_parse: valid messages ----------------------------------------------------------- */

static const char *const relay_names[] = {"offer", "answer", "candidate", "bye"};
static const sb_msg_type_t relay_types[] = {SB_MSG_OFFER, SB_MSG_ANSWER, SB_MSG_CANDIDATE,
                                            SB_MSG_BYE};

START_TEST(test_relay_types_all_fields)
{
    for (size_t i = 0; i < N_ELEMS(relay_names); i++) {
        char json[256];
        parsed_t p;
        snprintf(json, sizeof(json),
                 "{\"type\":\"%s\",\"to\":\"bob\",\"payload\":{\"sdp\":\"v=0\\r\\n\"},"
                 "\"mid\":\"m-1\"}",
                 relay_names[i]);
        expect_ok(&p, json);
        ck_assert_int_eq(p.m.type, relay_types[i]);
        ck_assert_str_eq(p.m.to, "bob");
        assert_slice_at(&p, p.m.payload, "{\"sdp\":\"v=0\\r\\n\"}", "payload");
        assert_slice_at(&p, p.m.mid, "\"m-1\"", "mid");
        parsed_free(&p);
    }
}
END_TEST

START_TEST(test_relay_types_required_only)
{
    for (size_t i = 0; i < N_ELEMS(relay_names); i++) {
        char json[128];
        parsed_t p;
        snprintf(json, sizeof(json), "{\"to\":\"peer_1.x-Y\",\"type\":\"%s\"}", relay_names[i]);
        expect_ok(&p, json);
        ck_assert_int_eq(p.m.type, relay_types[i]);
        ck_assert_str_eq(p.m.to, "peer_1.x-Y");
        ck_assert_uint_eq(p.m.payload.len, 0);
        ck_assert_uint_eq(p.m.mid.len, 0);
        parsed_free(&p);
    }
}
END_TEST

START_TEST(test_room_types)
{
    parsed_t p;

    expect_ok(&p, "{\"type\":\"join\",\"room\":\"lobby:1\",\"mid\":42}");
    ck_assert_int_eq(p.m.type, SB_MSG_JOIN);
    ck_assert_str_eq(p.m.room, "lobby:1");
    assert_slice_at(&p, p.m.mid, "42", "mid");
    parsed_free(&p);

    expect_ok(&p, "{\"mid\":\"x\",\"room\":\"a.b_c-d:e\",\"type\":\"leave\"}");
    ck_assert_int_eq(p.m.type, SB_MSG_LEAVE);
    ck_assert_str_eq(p.m.room, "a.b_c-d:e");
    assert_slice_at(&p, p.m.mid, "\"x\"", "mid");
    parsed_free(&p);

    expect_ok(&p, "{\"type\":\"join\",\"room\":\"r\"}");
    ck_assert_int_eq(p.m.type, SB_MSG_JOIN);
    ck_assert_str_eq(p.m.room, "r");
    ck_assert_uint_eq(p.m.mid.len, 0);
    parsed_free(&p);
}
END_TEST

/* The payload slice is the exact text of the value: no white space around it, nothing changed
 * inside it, wherever the field sits. */
static const char *const payloads[] = {
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1.5e-3",
    "-12E+2",
    "\"\"",
    "\"a \\\" } ] , :\"",
    "\"\\u00e9\\uD83D\\uDE00\xC3\xA9\"",
    "\"\\uD800\"",
    "{}",
    "[]",
    "[ ]",
    "{ }",
    "[ 1 ,\n{ \"a\" : [ ] } ,\t\"}\" ]",
    "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 "
    "127.0.0.1\\r\\n\"}",
    "{\"candidate\":\"candidate:1 1 udp 2122260223 10.0.0.1 54321 typ host\",\"sdpMid\":\"0\","
    "\"sdpMLineIndex\":0}",
    "{\"to\":\"x\",\"type\":\"bye\",\"payload\":{\"mid\":1}}",
    "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
    "{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}"};

START_TEST(test_payload_slices)
{
    static const char *const layouts[] = {
        "{\"type\":\"offer\",\"to\":\"b\",\"payload\":%s}",
        "{\"payload\":%s,\"type\":\"answer\",\"to\":\"b\"}",
        "{ \"type\" : \"candidate\" , \"payload\" :\n\t%s\r\n , \"to\" : \"b\" }",
        "\n {\"type\":\"offer\",\"to\":\"b\",\"mid\":1,\"payload\":  %s  ,\"x\":[]} \t"};

    for (size_t i = 0; i < N_ELEMS(payloads); i++) {
        for (size_t l = 0; l < N_ELEMS(layouts); l++) {
            char json[1024];
            parsed_t p;
            snprintf(json, sizeof(json), layouts[l], payloads[i]);
            expect_ok(&p, json);
            assert_slice_at(&p, p.m.payload, payloads[i], "payload");
            REQUIRE(p.m.payload.p == p.buf + (strstr(json, payloads[i]) - json),
                    "payload slice of %s not at the value", json);
            REQUIRE(strcmp(p.m.to, "b") == 0, "to of %s", json);
            parsed_free(&p);
        }
    }
}
END_TEST

/* The whole message stays within SB_JSON_MAX_DEPTH: the object itself is one level, so a
 * payload may nest one level less, and the relay built from it scans as one value. */
START_TEST(test_payload_depth)
{
    char json[512];
    parsed_t p;

    for (int depth = SB_JSON_MAX_DEPTH - 1; depth <= SB_JSON_MAX_DEPTH; depth++) {
        int n = snprintf(json, sizeof(json), "{\"type\":\"offer\",\"to\":\"b\",\"payload\":%s%s}",
                         repeat('[', (size_t)depth), repeat(']', (size_t)depth));
        parse_n(&p, json, (size_t)n);
        if (depth < SB_JSON_MAX_DEPTH)
            REQUIRE(p.rc == 0 && p.m.payload.len == 2 * (size_t)depth, "depth %d refused: %s",
                    depth, p.text);
        else
            REQUIRE(p.rc == SB_MSG_EJSON && strcmp(p.err, "invalid JSON") == 0, "depth %d: %d (%s)",
                    depth, p.rc, p.rc ? p.text : "accepted");
        parsed_free(&p);
    }
}
END_TEST

START_TEST(test_mid_slices)
{
    static const char *const mids[] = {"\"abc\"",
                                       "\"\"",
                                       "\"\\u00e9\"",
                                       "\"a\\\"b\"",
                                       "0",
                                       "-1",
                                       "1.5e-3",
                                       "-0.0E+0",
                                       "12345678901234567890123456789012345678901234567890",
                                       "\"m-1 with spaces\""};
    for (size_t i = 0; i < N_ELEMS(mids); i++) {
        char json[256];
        parsed_t p;
        snprintf(json, sizeof(json), "{\"type\":\"bye\",\"mid\" : %s ,\"to\":\"b\"}", mids[i]);
        expect_ok(&p, json);
        assert_slice_at(&p, p.m.mid, mids[i], "mid");
        parsed_free(&p);
        snprintf(json, sizeof(json), "{\"type\":\"join\",\"room\":\"r\",\"mid\":%s}", mids[i]);
        expect_ok(&p, json);
        assert_slice_at(&p, p.m.mid, mids[i], "mid");
        parsed_free(&p);
    }
}
END_TEST

/* SB_MID_MAX: 64 bytes once decoded for a string, 64 characters for a number. */
START_TEST(test_mid_limits)
{
    char json[1024], mid[512];
    parsed_t p;

    ck_assert_int_eq(SB_MID_MAX, 64);
    /* 64 plain bytes */
    snprintf(mid, sizeof(mid), "\"%s\"", repeat('m', 64));
    snprintf(json, sizeof(json), "{\"type\":\"bye\",\"to\":\"b\",\"mid\":%s}", mid);
    expect_ok(&p, json);
    assert_slice_at(&p, p.m.mid, mid, "mid");
    parsed_free(&p);
    /* 64 bytes as 32 two-byte characters */
    mid[0] = '"';
    for (int i = 0; i < 32; i++)
        memcpy(mid + 1 + 2 * i, "\xC3\xA9", 2);
    memcpy(mid + 65, "\"", 2);
    snprintf(json, sizeof(json), "{\"type\":\"bye\",\"to\":\"b\",\"mid\":%s}", mid);
    expect_ok(&p, json);
    parsed_free(&p);
    /* 64 decoded bytes written as 384 bytes of escapes */
    mid[0] = '"';
    for (int i = 0; i < 64; i++)
        memcpy(mid + 1 + 6 * i, "\\u0041", 6);
    memcpy(mid + 385, "\"", 2);
    snprintf(json, sizeof(json), "{\"type\":\"bye\",\"to\":\"b\",\"mid\":%s}", mid);
    expect_ok(&p, json);
    assert_slice_at(&p, p.m.mid, mid, "mid");
    parsed_free(&p);
    /* a 64-character number */
    snprintf(json, sizeof(json), "{\"type\":\"bye\",\"to\":\"b\",\"mid\":%s}", repeat('7', 64));
    expect_ok(&p, json);
    ck_assert_uint_eq(p.m.mid.len, 64);
    parsed_free(&p);

    /* one more is too long, in each form; nothing invalid ends up in m->mid */
    snprintf(json, sizeof(json), "{\"type\":\"bye\",\"to\":\"b\",\"mid\":\"%s\"}", repeat('m', 65));
    expect_fail(json, SB_MSG_EVALUE, BAD_MID, NULL);
    mid[0] = '"';
    for (int i = 0; i < 33; i++)
        memcpy(mid + 1 + 2 * i, "\xC3\xA9", 2);
    memcpy(mid + 67, "\"", 2);
    snprintf(json, sizeof(json), "{\"type\":\"bye\",\"to\":\"b\",\"mid\":%s}", mid);
    expect_fail(json, SB_MSG_EVALUE, BAD_MID, NULL);
    mid[0] = '"';
    for (int i = 0; i < 65; i++)
        memcpy(mid + 1 + 6 * i, "\\u0041", 6);
    memcpy(mid + 391, "\"", 2);
    snprintf(json, sizeof(json), "{\"type\":\"bye\",\"to\":\"b\",\"mid\":%s}", mid);
    expect_fail(json, SB_MSG_EVALUE, BAD_MID, NULL);
    snprintf(json, sizeof(json), "{\"type\":\"bye\",\"to\":\"b\",\"mid\":%s}", repeat('7', 65));
    expect_fail(json, SB_MSG_EVALUE, BAD_MID, NULL);
    snprintf(json, sizeof(json), "{\"type\":\"bye\",\"to\":\"b\",\"mid\":-%s}", repeat('7', 64));
    expect_fail(json, SB_MSG_EVALUE, BAD_MID, NULL);
}
END_TEST

/* Fields the protocol does not know are skipped whatever they hold; a client's "from" is one. */
START_TEST(test_unknown_fields_ignored)
{
    parsed_t p;

    expect_ok(&p, "{\"from\":\"mallory\",\"type\":\"offer\",\"x\":{\"type\":\"bye\",\"to\":\"z\"},"
                  "\"to\":\"bob\",\"Type\":1,\"TO\":\"!!\",\"y\":[1,{\"payload\":2}],"
                  "\"z\":null,\"\":\"\",\"peers\":[\"a\"],\"x\":\"dup ok\","
                  "\"a-key-longer-than-sixteen-bytes\":true,\"typ\":0,\"types\":0}");
    ck_assert_int_eq(p.m.type, SB_MSG_OFFER);
    ck_assert_str_eq(p.m.to, "bob");
    ck_assert_uint_eq(p.m.payload.len, 0);
    ck_assert_uint_eq(p.m.mid.len, 0);
    parsed_free(&p);

    /* "from" of any type, and "to" on a join or "room" on a relay, are not checked */
    expect_ok(&p, "{\"type\":\"bye\",\"to\":\"bob\",\"from\":5,\"room\":\"\"}");
    parsed_free(&p);
    expect_ok(&p, "{\"type\":\"bye\",\"to\":\"bob\",\"from\":{\"id\":\"x\"}}");
    ck_assert_str_eq(p.m.to, "bob");
    parsed_free(&p);
}
END_TEST

/* Keys and values are compared after decoding, as JSON defines them. */
START_TEST(test_escaped_names)
{
    parsed_t p;

    expect_ok(&p, "{\"\\u0074ype\":\"\\u006fffer\",\"t\\u006f\":\"b\\u006fb\"}");
    ck_assert_int_eq(p.m.type, SB_MSG_OFFER);
    ck_assert_str_eq(p.m.to, "bob");
    parsed_free(&p);
    expect_ok(&p, "{\"type\":\"jo\\u0069n\",\"r\\u006fom\":\"a\\u003ab\"}");
    ck_assert_int_eq(p.m.type, SB_MSG_JOIN);
    ck_assert_str_eq(p.m.room, "a:b");
    parsed_free(&p);
    /* an escaped key is the same key: a duplicate */
    expect_fail("{\"type\":\"offer\",\"to\":\"a\",\"\\u0074o\":\"b\"}", SB_MSG_EDUPLICATE,
                DUPLICATE("to"), NULL);
}
END_TEST

START_TEST(test_white_space_around)
{
    parsed_t p;

    expect_ok(&p,
              " \t\r\n{ \t\r\n\"type\" \t\r\n: \t\r\n\"offer\" \t\r\n, \t\r\n\"to\"\n:\n\"b\"\n}"
              " \t\r\n");
    ck_assert_int_eq(p.m.type, SB_MSG_OFFER);
    ck_assert_str_eq(p.m.to, "b");
    parsed_free(&p);
}
END_TEST

/* Names at their limits, as the protocol allows them. */
START_TEST(test_name_limits_parse)
{
    char json[256];
    parsed_t p;

    snprintf(json, sizeof(json), "{\"type\":\"offer\",\"to\":\"%s\"}", repeat('Z', 64));
    expect_ok(&p, json);
    ck_assert_str_eq(p.m.to, repeat('Z', 64));
    parsed_free(&p);
    snprintf(json, sizeof(json), "{\"type\":\"leave\",\"room\":\"%s\"}", repeat(':', 64));
    expect_ok(&p, json);
    ck_assert_str_eq(p.m.room, repeat(':', 64));
    parsed_free(&p);
    snprintf(json, sizeof(json), "{\"type\":\"offer\",\"to\":\"%s\"}", repeat('Z', 65));
    expect_fail(json, SB_MSG_EVALUE, BAD_TO, NULL);
    snprintf(json, sizeof(json), "{\"type\":\"join\",\"room\":\"%s\",\"mid\":1}", repeat('r', 65));
    expect_fail(json, SB_MSG_EVALUE, BAD_ROOM, "1");
}
END_TEST

/* ---- sb_msg_parse: errors ------------------------------------------------------------------- */

/* Broken JSON, trailing data, not an object: refused with the code, the offending byte and the
 * message clients have always been told. */
START_TEST(test_invalid_json)
{
    static const struct {
        const char *json;
        int code;
        size_t at;
        const char *text; /* what the client is told */
    } cases[] = {
        {"", SB_MSG_EJSON, 0, "invalid JSON at byte 0"},
        {" ", SB_MSG_EJSON, 1, "invalid JSON at byte 1"},
        {"{", SB_MSG_EJSON, 1, "invalid JSON at byte 1"},
        {"}", SB_MSG_EJSON, 0, "invalid JSON at byte 0"},
        {"{}}", SB_MSG_ETRAILING, 2, "invalid JSON at byte 2: data after the object"},
        {"{\"type\":\"offer\"", SB_MSG_EJSON, 15, "invalid JSON at byte 15"},
        {"{\"type\":\"offer\",\"to\":\"b\",}", SB_MSG_EJSON, 25, "invalid JSON at byte 25"},
        {"{\"type\" \"offer\",\"to\":\"b\"}", SB_MSG_EJSON, 8, "invalid JSON at byte 8"},
        {"{\"type\":\"offer\" \"to\":\"b\"}", SB_MSG_EJSON, 16, "invalid JSON at byte 16"},
        {"{'type':'offer','to':'b'}", SB_MSG_EJSON, 1, "invalid JSON at byte 1"},
        {"{type:\"offer\",to:\"b\"}", SB_MSG_EJSON, 1, "invalid JSON at byte 1"},
        {"{,\"type\":\"offer\",\"to\":\"b\"}", SB_MSG_EJSON, 1, "invalid JSON at byte 1"},
        {"{\"type\":\"offer\",,\"to\":\"b\"}", SB_MSG_EJSON, 16, "invalid JSON at byte 16"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":01}", SB_MSG_EJSON, 36,
         "invalid JSON at byte 36"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":[1,]}", SB_MSG_EJSON, 38,
         "invalid JSON at byte 38"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":+1}", SB_MSG_EJSON, 35,
         "invalid JSON at byte 35"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":NaN}", SB_MSG_EJSON, 35,
         "invalid JSON at byte 35"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":.5}", SB_MSG_EJSON, 35,
         "invalid JSON at byte 35"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":{\"a\":1,}}", SB_MSG_EJSON, 42,
         "invalid JSON at byte 42"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":\"abc}", SB_MSG_EJSON, 40,
         "invalid JSON at byte 40"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":\"a\\x\"}", SB_MSG_EJSON, 38,
         "invalid JSON at byte 38"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":\"\\u12G4\"}", SB_MSG_EJSON, 40,
         "invalid JSON at byte 40"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":\"a\tb\"}", SB_MSG_EJSON, 37,
         "invalid JSON at byte 37"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":\"\xFF\"}", SB_MSG_EJSON, 36,
         "invalid JSON at byte 36"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"\xC0\xAF\":1}", SB_MSG_EJSON, 26,
         "invalid JSON at byte 26"},
        {"{\"type\":\"offer\",\"to\":\"\xC3\"}", SB_MSG_EJSON, 23, "invalid JSON at byte 23"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":}", SB_MSG_EJSON, 35,
         "invalid JSON at byte 35"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\"}", SB_MSG_EJSON, 34,
         "invalid JSON at byte 34"},
        {"{\"type\":\"offer\",\"to\":\"b\":1}", SB_MSG_EJSON, 24, "invalid JSON at byte 24"},
        {"{\"type\":\"offer\";\"to\":\"b\"}", SB_MSG_EJSON, 15, "invalid JSON at byte 15"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":tru}", SB_MSG_EJSON, 38,
         "invalid JSON at byte 38"},
        {"{\"type\":\"offer\",\"to\":\"b\",\"payload\":[1 2]}", SB_MSG_EJSON, 38,
         "invalid JSON at byte 38"},
        /* trailing data */
        {"{\"type\":\"offer\",\"to\":\"b\"} x", SB_MSG_ETRAILING, 26,
         "invalid JSON at byte 26: data after the object"},
        {"{\"type\":\"offer\",\"to\":\"b\"}{}", SB_MSG_ETRAILING, 25,
         "invalid JSON at byte 25: data after the object"},
        {"{\"type\":\"offer\",\"to\":\"b\"},", SB_MSG_ETRAILING, 25,
         "invalid JSON at byte 25: data after the object"},
        {"{\"type\":\"offer\",\"to\":\"b\"}]", SB_MSG_ETRAILING, 25,
         "invalid JSON at byte 25: data after the object"},
        {"{\"type\":\"offer\",\"to\":\"b\"}\f", SB_MSG_ETRAILING, 25,
         "invalid JSON at byte 25: data after the object"},
        {"{\"type\":\"offer\",\"to\":\"b\"}1", SB_MSG_ETRAILING, 25,
         "invalid JSON at byte 25: data after the object"},
        /* not an object */
        {"[]", SB_MSG_ENOT_OBJECT, 0, "a message must be a JSON object"},
        {"[{\"type\":\"offer\",\"to\":\"b\"}]", SB_MSG_ENOT_OBJECT, 0,
         "a message must be a JSON object"},
        {"\"offer\"", SB_MSG_ENOT_OBJECT, 0, "a message must be a JSON object"},
        {"1", SB_MSG_ENOT_OBJECT, 0, "a message must be a JSON object"},
        {"null", SB_MSG_ENOT_OBJECT, 0, "a message must be a JSON object"},
        {"true", SB_MSG_ENOT_OBJECT, 0, "a message must be a JSON object"},
        {"  42  ", SB_MSG_ENOT_OBJECT, 0, "a message must be a JSON object"},
        {"x", SB_MSG_EJSON, 0, "invalid JSON at byte 0"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        expect_bad_json(cases[i].json, strlen(cases[i].json), cases[i].code, cases[i].at,
                        cases[i].text);
    /* NULs: after the object, and in place of white space */
    expect_bad_json("{\"type\":\"offer\",\"to\":\"b\"}\0", 26, SB_MSG_ETRAILING, 25,
                    "invalid JSON at byte 25: data after the object");
    expect_bad_json("{\"type\":\"offer\",\0\"to\":\"b\"}", 26, SB_MSG_EJSON, 16,
                    "invalid JSON at byte 16");
    expect_bad_json("\0{\"type\":\"offer\",\"to\":\"b\"}", 26, SB_MSG_EJSON, 0,
                    "invalid JSON at byte 0");
}
END_TEST

/* Every proper prefix of a valid message is refused as JSON cut short, at the byte where it ends
 * (each in an exact-size buffer). */
START_TEST(test_prefixes_refused)
{
    static const char *const texts[] = {
        "{\"type\":\"offer\",\"to\":\"bob\",\"payload\":{\"sdp\":\"v=0\",\"n\":[1,2.5e3,null]},"
        "\"mid\":\"m\"}",
        " { \"type\" : \"join\" , \"room\" : \"r:1\" , \"mid\" : -12 } "};
    for (size_t t = 0; t < N_ELEMS(texts); t++) {
        size_t len = strlen(texts[t]);
        parsed_t p;
        parse_n(&p, texts[t], len);
        ck_assert_int_eq(p.rc, 0);
        parsed_free(&p);
        for (size_t cut = 0; cut < len; cut++) {
            /* trailing white space may be cut without harm */
            if (strspn(texts[t] + cut, " ") == len - cut)
                break;
            char text[64];
            snprintf(text, sizeof(text), "invalid JSON at byte %zu", cut);
            expect_bad_json(texts[t], cut, SB_MSG_EJSON, cut, text);
        }
    }
}
END_TEST

START_TEST(test_bad_type)
{
    static const char *const types[] = {"1",
                                        "null",
                                        "true",
                                        "{}",
                                        "[]",
                                        "[\"offer\"]",
                                        "\"OFFER\"",
                                        "\"Offer\"",
                                        "\"offer \"",
                                        "\" offer\"",
                                        "\"\"",
                                        "\"welcome\"",
                                        "\"ack\"",
                                        "\"error\"",
                                        "\"joined\"",
                                        "\"left\"",
                                        "\"peer-joined\"",
                                        "\"peer-left\"",
                                        "\"offerx\"",
                                        "\"offe\"",
                                        "\"candidates\"",
                                        "\"a-type-longer-than-sixteen-bytes\"",
                                        "\"\\uD800\""};
    char json[256];

    for (size_t i = 0; i < N_ELEMS(types); i++) {
        snprintf(json, sizeof(json), "{\"type\":%s,\"to\":\"b\",\"room\":\"r\",\"mid\":\"q\"}",
                 types[i]);
        if (types[i][0] == '"')
            expect_fail(json, SB_MSG_EUNKNOWN_TYPE, UNKNOWN_TYPE, "\"q\"");
        else
            expect_fail(json, SB_MSG_ENOT_STRING, NOT_STRING("type"), "\"q\"");
    }
    expect_fail("{\"to\":\"b\",\"room\":\"r\",\"mid\":7}", SB_MSG_EMISSING, MISSING("type"), "7");
    expect_fail("{}", SB_MSG_EMISSING, MISSING("type"), NULL);
}
END_TEST

/* "to" for the relay types and "room" for join and leave: present, strings, within the rules. */
START_TEST(test_bad_to_and_room)
{
    static const char *const bad[] = {NULL,
                                      "1",
                                      "null",
                                      "true",
                                      "{}",
                                      "[]",
                                      "[\"b\"]",
                                      "\"\"",
                                      "\"a b\"",
                                      "\"a/b\"",
                                      "\"a@b\"",
                                      "\"a+b\"",
                                      "\"a,b\"",
                                      "\"\xC3\xA9\"",
                                      "\"a\\u0000b\"",
                                      "\"a\\nb\"",
                                      "\"\\u0020\"",
                                      "\"a\\\"b\"",
                                      "\"a\\\\b\"",
                                      "\"a\\/b\"",
                                      "\"\\uD83D\\uDE00\"",
                                      "\"a\x7F\""};
    char json[256];

    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        /* absent, not a string, or a string breaking the rule */
        int code = bad[i] == NULL     ? SB_MSG_EMISSING
                   : bad[i][0] != '"' ? SB_MSG_ENOT_STRING
                                      : SB_MSG_EVALUE;
        const char *to_why = code == SB_MSG_EMISSING      ? MISSING("to")
                             : code == SB_MSG_ENOT_STRING ? NOT_STRING("to")
                                                          : BAD_TO;
        const char *room_why = code == SB_MSG_EMISSING      ? MISSING("room")
                               : code == SB_MSG_ENOT_STRING ? NOT_STRING("room")
                                                            : BAD_ROOM;
        for (size_t t = 0; t < N_ELEMS(relay_names); t++) {
            if (bad[i] == NULL)
                snprintf(json, sizeof(json), "{\"type\":\"%s\",\"room\":\"r\",\"mid\":\"q\"}",
                         relay_names[t]);
            else
                snprintf(json, sizeof(json), "{\"type\":\"%s\",\"to\":%s,\"mid\":\"q\"}",
                         relay_names[t], bad[i]);
            expect_fail(json, code, to_why, "\"q\"");
        }
        if (bad[i] == NULL) {
            expect_fail("{\"type\":\"join\",\"to\":\"b\",\"mid\":\"q\"}", code, room_why, "\"q\"");
            expect_fail("{\"type\":\"leave\",\"mid\":\"q\"}", code, room_why, "\"q\"");
            continue;
        }
        snprintf(json, sizeof(json), "{\"type\":\"join\",\"room\":%s,\"mid\":\"q\"}", bad[i]);
        expect_fail(json, code, room_why, "\"q\"");
        snprintf(json, sizeof(json), "{\"mid\":1,\"type\":\"leave\",\"room\":%s}", bad[i]);
        expect_fail(json, code, room_why, "1");
    }
    /* ':' is for rooms only */
    expect_fail("{\"type\":\"offer\",\"to\":\"a:b\",\"mid\":2}", SB_MSG_EVALUE, BAD_TO, "2");
}
END_TEST

/* Two values for a known field are refused, whichever it is. */
START_TEST(test_duplicate_fields)
{
    expect_fail("{\"type\":\"offer\",\"type\":\"offer\",\"to\":\"b\"}", SB_MSG_EDUPLICATE,
                DUPLICATE("type"), NULL);
    expect_fail("{\"type\":\"offer\",\"to\":\"b\",\"to\":\"b\"}", SB_MSG_EDUPLICATE,
                DUPLICATE("to"), NULL);
    expect_fail("{\"type\":\"offer\",\"to\":\"b\",\"to\":\"c\"}", SB_MSG_EDUPLICATE,
                DUPLICATE("to"), NULL);
    expect_fail("{\"type\":\"join\",\"room\":\"r\",\"room\":\"s\"}", SB_MSG_EDUPLICATE,
                DUPLICATE("room"), NULL);
    expect_fail("{\"type\":\"offer\",\"to\":\"b\",\"payload\":1,\"payload\":1}", SB_MSG_EDUPLICATE,
                DUPLICATE("payload"), NULL);
    expect_fail("{\"type\":\"offer\",\"to\":\"b\",\"payload\":null,\"payload\":null}",
                SB_MSG_EDUPLICATE, DUPLICATE("payload"), NULL);
    /* (which of two mids an error carries is not specified) */
    static const char dup_mid1[] = "{\"type\":\"offer\",\"to\":\"b\",\"mid\":1,\"mid\":1}";
    static const char dup_mid2[] = "{\"type\":\"offer\",\"to\":\"b\",\"mid\":\"a\",\"mid\":\"b\"}";
    expect_fail_n(dup_mid1, sizeof(dup_mid1) - 1, SB_MSG_EDUPLICATE, DUPLICATE("mid"), ANY_MID);
    expect_fail_n(dup_mid2, sizeof(dup_mid2) - 1, SB_MSG_EDUPLICATE, DUPLICATE("mid"), ANY_MID);
    /* a relay's "room" and a join's "to" count as known too */
    expect_fail("{\"type\":\"offer\",\"to\":\"b\",\"room\":\"r\",\"room\":\"r\"}",
                SB_MSG_EDUPLICATE, DUPLICATE("room"), NULL);
    expect_fail("{\"type\":\"join\",\"room\":\"r\",\"to\":\"b\",\"to\":\"b\"}", SB_MSG_EDUPLICATE,
                DUPLICATE("to"), NULL);
}
END_TEST

START_TEST(test_bad_mid)
{
    static const char *const mids[] = {"null", "true",    "false",      "{}",
                                       "[]",   "[\"x\"]", "{\"mid\":1}"};
    char json[256];

    for (size_t i = 0; i < N_ELEMS(mids); i++) {
        snprintf(json, sizeof(json), "{\"type\":\"offer\",\"to\":\"b\",\"mid\":%s}", mids[i]);
        expect_fail(json, SB_MSG_EVALUE, BAD_MID, NULL);
        /* the mid error wins over other errors, and no bad mid is handed back */
        snprintf(json, sizeof(json), "{\"type\":\"nope\",\"mid\":%s}", mids[i]);
        expect_fail(json, SB_MSG_EVALUE, BAD_MID, NULL);
    }
}
END_TEST

/* err may be NULL; a reason is static text, the same pointer every time. */
START_TEST(test_err_optional_and_static)
{
    static const char json[] = "{\"type\":\"offer\"}";
    sb_msg_t m;
    const char *first = NULL, *second = NULL;

    ck_assert_int_eq(sb_msg_parse(json, sizeof(json) - 1, &m, NULL), SB_MSG_EMISSING);
    ck_assert_int_eq(sb_msg_parse(json, sizeof(json) - 1, &m, &first), SB_MSG_EMISSING);
    ck_assert_int_eq(sb_msg_parse(json, sizeof(json) - 1, &m, &second), SB_MSG_EMISSING);
    ck_assert_ptr_eq(first, second);
    ck_assert_str_eq(first, MISSING("to"));
    /* accepted: err untouched */
    static const char ok[] = "{\"type\":\"bye\",\"to\":\"b\"}";
    first = "untouched";
    ck_assert_int_eq(sb_msg_parse(ok, sizeof(ok) - 1, &m, &first), 0);
    ck_assert_str_eq(first, "untouched");
}
END_TEST

/* The bad-request messages clients get, word for word as before the codes existed: one per code
 * and every field a reason names. */
START_TEST(test_error_texts)
{
    static const struct {
        const char *json;
        int code;
        const char *text;
    } cases[] = {
        {"{\"type\":\"offer\",", SB_MSG_EJSON, "invalid JSON at byte 16"},
        {"{\"type\":\"offer\",\"to\":\"b\"} x", SB_MSG_ETRAILING,
         "invalid JSON at byte 26: data after the object"},
        {"[1]", SB_MSG_ENOT_OBJECT, "a message must be a JSON object"},
        {"{\"type\":\"bye\",\"type\":\"bye\"}", SB_MSG_EDUPLICATE, "duplicate field 'type'"},
        {"{\"to\":\"b\",\"to\":\"b\"}", SB_MSG_EDUPLICATE, "duplicate field 'to'"},
        {"{\"room\":\"r\",\"room\":\"r\"}", SB_MSG_EDUPLICATE, "duplicate field 'room'"},
        {"{\"payload\":1,\"payload\":1}", SB_MSG_EDUPLICATE, "duplicate field 'payload'"},
        {"{\"mid\":1,\"mid\":1}", SB_MSG_EDUPLICATE, "duplicate field 'mid'"},
        {"{\"type\":\"bye\",\"to\":\"b\",\"mid\":true}", SB_MSG_EVALUE,
         "'mid' must be a string of at most 64 bytes or a number of at most 64 characters"},
        {"{\"to\":\"b\"}", SB_MSG_EMISSING, "missing field 'type'"},
        {"{\"type\":1}", SB_MSG_ENOT_STRING, "'type' must be a string"},
        {"{\"type\":\"hello\"}", SB_MSG_EUNKNOWN_TYPE,
         "unknown type: expected offer, answer, candidate, bye, join or leave"},
        {"{\"type\":\"offer\"}", SB_MSG_EMISSING, "missing field 'to'"},
        {"{\"type\":\"offer\",\"to\":[]}", SB_MSG_ENOT_STRING, "'to' must be a string"},
        {"{\"type\":\"offer\",\"to\":\"a b\"}", SB_MSG_EVALUE,
         "'to' must be 1-64 characters of [A-Za-z0-9_.-]"},
        {"{\"type\":\"join\"}", SB_MSG_EMISSING, "missing field 'room'"},
        {"{\"type\":\"leave\",\"room\":null}", SB_MSG_ENOT_STRING, "'room' must be a string"},
        {"{\"type\":\"join\",\"room\":\"\"}", SB_MSG_EVALUE,
         "'room' must be 1-64 characters of [A-Za-z0-9_.:-]"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        parsed_t p;
        parse_n(&p, cases[i].json, strlen(cases[i].json));
        REQUIRE(p.rc == cases[i].code, "%s: %d, want %d", cases[i].json, p.rc, cases[i].code);
        REQUIRE(strcmp(p.text, cases[i].text) == 0, "%s: told \"%s\", want \"%s\"", cases[i].json,
                p.text, cases[i].text);
        parsed_free(&p);
    }
}
END_TEST

/* ---- contract violations found while writing these tests ------------------------------------
 * Each test below names the contract it holds the code to. */

/* PROTOCOL.md: type is one of offer, answer, candidate, bye (join, leave); anything else is an
 * unknown type (bad-request). "offer\u0000junk" is not "offer". */
START_TEST(test_type_with_escaped_nul_is_unknown)
{
    expect_fail("{\"type\":\"offer\\u0000junk\",\"to\":\"b\",\"mid\":1}", SB_MSG_EUNKNOWN_TYPE,
                UNKNOWN_TYPE, "1");
    expect_fail("{\"type\":\"join\\u0000\",\"room\":\"r\",\"mid\":1}", SB_MSG_EUNKNOWN_TYPE,
                UNKNOWN_TYPE, "1");
}
END_TEST

/* PROTOCOL.md: fields a client does not know are ignored. "to\u0000x" is not "to". */
START_TEST(test_key_with_escaped_nul_is_unknown)
{
    parsed_t p;

    expect_fail("{\"type\":\"offer\",\"to\\u0000x\":\"b\",\"mid\":1}", SB_MSG_EMISSING,
                MISSING("to"), "1");
    expect_ok(&p, "{\"type\":\"offer\",\"to\":\"a\",\"to\\u0000\":\"b\"}");
    ck_assert_str_eq(p.m.to, "a");
    parsed_free(&p);
    expect_ok(&p, "{\"type\":\"offer\",\"to\":\"b\",\"payload\\u0000\":[1]}");
    ck_assert_uint_eq(p.m.payload.len, 0);
    parsed_free(&p);
}
END_TEST

/* message.h: "Even on error, m->mid is set when a valid mid was found". Here the parser has read
 * a valid mid before it meets the duplicate. */
START_TEST(test_mid_kept_on_duplicate_field)
{
    expect_fail("{\"mid\":\"m1\",\"type\":\"offer\",\"type\":\"answer\",\"to\":\"b\"}",
                SB_MSG_EDUPLICATE, DUPLICATE("type"), "\"m1\"");
    expect_fail("{\"mid\":2,\"type\":\"offer\",\"to\":\"b\",\"to\":\"c\"}", SB_MSG_EDUPLICATE,
                DUPLICATE("to"), "2");
}
END_TEST

/* ---- sb_peer_id_valid, sb_room_valid -------------------------------------------------------- */

static int valid_in(int (*valid)(const char *, size_t), const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    int r;

    REQUIRE(p != NULL, "out of memory");
    if (len > 0)
        memcpy(p, s, len);
    r = valid(p, len);
    free(p);
    return r;
}

START_TEST(test_name_lengths)
{
    static const size_t lens[] = {0, 1, 2, 63, 64, 65, 100, 500};
    for (size_t i = 0; i < N_ELEMS(lens); i++) {
        int want = lens[i] >= 1 && lens[i] <= 64;
        const char *s = repeat('a', lens[i]);
        REQUIRE(valid_in(sb_peer_id_valid, s, lens[i]) == want, "id of %zu bytes", lens[i]);
        REQUIRE(valid_in(sb_room_valid, s, lens[i]) == want, "room of %zu bytes", lens[i]);
    }
    ck_assert_int_eq(SB_ID_MAX, 64);
    ck_assert_int_eq(SB_ROOM_MAX, 64);
}
END_TEST

/* Every byte value, alone, first, in the middle and last. */
START_TEST(test_name_every_byte)
{
    for (int c = 0; c < 256; c++) {
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        int id_ok = alnum || c == '_' || c == '.' || c == '-';
        int room_ok = id_ok || c == ':';
        char one[1] = {(char)c}, first[3] = {(char)c, 'x', '9'}, mid[3] = {'a', (char)c, 'B'},
             last[3] = {'a', '0', (char)c};
        REQUIRE(valid_in(sb_peer_id_valid, one, 1) == id_ok, "id \\x%02X", c);
        REQUIRE(valid_in(sb_peer_id_valid, first, 3) == id_ok, "id \\x%02Xx9", c);
        REQUIRE(valid_in(sb_peer_id_valid, mid, 3) == id_ok, "id a\\x%02XB", c);
        REQUIRE(valid_in(sb_peer_id_valid, last, 3) == id_ok, "id a0\\x%02X", c);
        REQUIRE(valid_in(sb_room_valid, one, 1) == room_ok, "room \\x%02X", c);
        REQUIRE(valid_in(sb_room_valid, first, 3) == room_ok, "room \\x%02Xx9", c);
        REQUIRE(valid_in(sb_room_valid, mid, 3) == room_ok, "room a\\x%02XB", c);
        REQUIRE(valid_in(sb_room_valid, last, 3) == room_ok, "room a0\\x%02X", c);
    }
}
END_TEST

START_TEST(test_name_punctuation)
{
    ck_assert_int_eq(sb_peer_id_valid("_", 1), 1);
    ck_assert_int_eq(sb_peer_id_valid(".", 1), 1);
    ck_assert_int_eq(sb_peer_id_valid("-", 1), 1);
    ck_assert_int_eq(sb_peer_id_valid(":", 1), 0);
    ck_assert_int_eq(sb_peer_id_valid("a_b.c-d", 7), 1);
    ck_assert_int_eq(sb_peer_id_valid("a:b", 3), 0);
    ck_assert_int_eq(sb_room_valid("_", 1), 1);
    ck_assert_int_eq(sb_room_valid(".", 1), 1);
    ck_assert_int_eq(sb_room_valid("-", 1), 1);
    ck_assert_int_eq(sb_room_valid(":", 1), 1);
    ck_assert_int_eq(sb_room_valid("a_b.c-d:e", 9), 1);
    /* only len bytes count */
    ck_assert_int_eq(valid_in(sb_peer_id_valid, "abc!", 3), 1);
    ck_assert_int_eq(valid_in(sb_room_valid, "abc!", 3), 1);
    ck_assert_int_eq(valid_in(sb_peer_id_valid, "ab\0", 3), 0);
    ck_assert_int_eq(valid_in(sb_room_valid, "ab\0", 3), 0);
    ck_assert_int_eq(valid_in(sb_peer_id_valid, repeat('x', 70), 64), 1);
}
END_TEST

START_TEST(test_type_names)
{
    ck_assert_str_eq(sb_msg_type_name(SB_MSG_OFFER), "offer");
    ck_assert_str_eq(sb_msg_type_name(SB_MSG_ANSWER), "answer");
    ck_assert_str_eq(sb_msg_type_name(SB_MSG_CANDIDATE), "candidate");
    ck_assert_str_eq(sb_msg_type_name(SB_MSG_BYE), "bye");
    ck_assert_str_eq(sb_msg_type_name(SB_MSG_JOIN), "join");
    ck_assert_str_eq(sb_msg_type_name(SB_MSG_LEAVE), "leave");
}
END_TEST

/* ---- builders ------------------------------------------------------------------------------- */

static sb_str_t str(const char *s)
{
    sb_str_t r = {s, s ? strlen(s) : 0};
    return r;
}

static const sb_str_t none = {NULL, 0};

/* Checks a builder's output (len is read after the builder ran): not NULL, *len right, exactly
 * want, one valid JSON value to both sb_json_skip_value and cJSON, an object with nmembers members.
 * Frees out; returns the tree. */
static cJSON *check_built(char *out, const size_t *lenp, const char *want, int nmembers)
{
    const char *end = NULL;
    size_t pos = 0, len = *lenp;
    cJSON *root;

    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(len, strlen(out));
    ck_assert_str_eq(out, want);
    REQUIRE(sb_json_skip_value(out, len, &pos) == 0 && pos == len, "scanner refused %s", out);
    root = cJSON_ParseWithOpts(out, &end, 1);
    REQUIRE(root != NULL && cJSON_IsObject(root), "cJSON refused %s", out);
    ck_assert_ptr_eq(end, out + len);
    ck_assert_int_eq(cJSON_GetArraySize(root), nmembers);
    free(out);
    return root;
}

static void expect_string(const cJSON *root, const char *name, const char *want)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    REQUIRE(cJSON_IsString(item), "field %s missing or not a string", name);
    ck_assert_str_eq(item->valuestring, want);
}

/* The field equals the JSON text want. */
static void expect_json(const cJSON *root, const char *name, const char *want)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    cJSON *w = cJSON_Parse(want);
    REQUIRE(item != NULL, "field %s missing", name);
    REQUIRE(w != NULL, "bad test JSON %s", want);
    REQUIRE(cJSON_Compare(item, w, 1), "field %s differs from %s", name, want);
    cJSON_Delete(w);
}

static void expect_absent(const cJSON *root, const char *name)
{
    REQUIRE(cJSON_GetObjectItemCaseSensitive(root, name) == NULL, "field %s present", name);
}

START_TEST(test_build_welcome)
{
    static const char ice[] = "[{\"urls\":\"stun:stun.l.google.com:19302\"}]";
    size_t len = 0;
    char *out = sb_msg_welcome("AbCdEfGhIjKlMnOp", "node-a", ice, NULL, 0, &len);
    cJSON *root =
        check_built(out, &len,
                    "{\"type\":\"welcome\",\"id\":\"AbCdEfGhIjKlMnOp\",\"node\":\"node-a\","
                    "\"iceServers\":[{\"urls\":\"stun:stun.l.google.com:19302\"}]}",
                    4);
    expect_string(root, "type", "welcome");
    expect_string(root, "id", "AbCdEfGhIjKlMnOp");
    expect_string(root, "node", "node-a");
    expect_json(root, "iceServers", ice);
    cJSON_Delete(root);

    /* ice servers are copied verbatim, formatting included */
    out = sb_msg_welcome("p", "n\"1", "[ ]", NULL, 0, &len);
    root = check_built(
        out, &len, "{\"type\":\"welcome\",\"id\":\"p\",\"node\":\"n\\\"1\",\"iceServers\":[ ]}", 4);
    expect_string(root, "node", "n\"1");
    cJSON_Delete(root);

    /* with sessions: the resume token, and whether this connection took a session back */
    out = sb_msg_welcome("p", "n", "[]", "tok_-9", 1, &len);
    root = check_built(out, &len,
                       "{\"type\":\"welcome\",\"id\":\"p\",\"node\":\"n\",\"iceServers\":[],"
                       "\"resume\":\"tok_-9\",\"resumed\":true}",
                       6);
    expect_string(root, "resume", "tok_-9");
    cJSON_Delete(root);
    out = sb_msg_welcome("p", "n", "[]", "t", 0, &len);
    root = check_built(out, &len,
                       "{\"type\":\"welcome\",\"id\":\"p\",\"node\":\"n\",\"iceServers\":[],"
                       "\"resume\":\"t\",\"resumed\":false}",
                       6);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_build_queued)
{
    size_t len = 0;
    cJSON *root = check_built(sb_msg_queued(str("\"m-1\""), &len), &len,
                              "{\"type\":\"queued\",\"mid\":\"m-1\"}", 2);
    cJSON_Delete(root);
    root = check_built(sb_msg_queued(str("7"), &len), &len, "{\"type\":\"queued\",\"mid\":7}", 2);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_build_relay)
{
    static const char sdp[] = "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}";
    size_t len = 0;
    cJSON *root;

    root = check_built(sb_msg_relay(SB_MSG_OFFER, "alice", str(sdp), str("\"m-1\""), &len), &len,
                       "{\"type\":\"offer\",\"from\":\"alice\",\"payload\":{\"type\":\"offer\","
                       "\"sdp\":\"v=0\\r\\n\"},\"mid\":\"m-1\"}",
                       4);
    expect_string(root, "type", "offer");
    expect_string(root, "from", "alice");
    expect_json(root, "payload", sdp);
    expect_string(root, "mid", "m-1");
    cJSON_Delete(root);

    root = check_built(sb_msg_relay(SB_MSG_ANSWER, "a", str("null"), none, &len), &len,
                       "{\"type\":\"answer\",\"from\":\"a\",\"payload\":null}", 3);
    expect_json(root, "payload", "null");
    expect_absent(root, "mid");
    cJSON_Delete(root);

    root = check_built(sb_msg_relay(SB_MSG_CANDIDATE, "a", none, str("-7.5e1"), &len), &len,
                       "{\"type\":\"candidate\",\"from\":\"a\",\"mid\":-7.5e1}", 3);
    expect_absent(root, "payload");
    expect_json(root, "mid", "-75");
    cJSON_Delete(root);

    root = check_built(sb_msg_relay(SB_MSG_BYE, "a", none, none, &len), &len,
                       "{\"type\":\"bye\",\"from\":\"a\"}", 2);
    cJSON_Delete(root);

    /* the payload is copied byte for byte, odd formatting and all */
    root = check_built(
        sb_msg_relay(SB_MSG_OFFER, "a", str("[ 1 ,\n{ \"a\" : [ ] } ]"), none, &len), &len,
        "{\"type\":\"offer\",\"from\":\"a\",\"payload\":[ 1 ,\n{ \"a\" : [ ] } ]}", 3);
    cJSON_Delete(root);

    /* a slice need not be NUL-terminated */
    sb_str_t cut = {"[1,2]xxx", 5}, mcut = {"\"q\"yyy", 3};
    root = check_built(sb_msg_relay(SB_MSG_ANSWER, "a", cut, mcut, &len), &len,
                       "{\"type\":\"answer\",\"from\":\"a\",\"payload\":[1,2],\"mid\":\"q\"}", 4);
    cJSON_Delete(root);
}
END_TEST

/* Joined, the parts are exactly what sb_msg_relay builds, for every type and field present or not.
 */
START_TEST(test_build_relay_parts)
{
    static const char *const froms[] = {"a", "alice", "A.b_c-9", NULL};
    const sb_str_t bodies[] = {none, str("null"), str("{\"sdp\":\"v=0\\r\\n\"}"),
                               str("[ 1 ,\n{ } ]")};
    const sb_str_t mid_texts[] = {none, str("\"m-1\""), str("-7.5e1")};
    char id[SB_ID_MAX + 1];
    memset(id, 'x', SB_ID_MAX);
    id[SB_ID_MAX] = '\0';

    for (int type = SB_MSG_OFFER; type <= SB_MSG_BYE; type++)
        for (size_t f = 0; f < N_ELEMS(froms); f++)
            for (size_t p = 0; p < N_ELEMS(bodies); p++)
                for (size_t m = 0; m < N_ELEMS(mid_texts); m++) {
                    const char *from = froms[f] ? froms[f] : id;
                    sb_str_t parts[SB_MSG_RELAY_PARTS];
                    size_t len = 0,
                           n = sb_msg_relay_parts(type, from, bodies[p], mid_texts[m], parts);
                    char *want = sb_msg_relay(type, from, bodies[p], mid_texts[m], &len), got[512];
                    size_t at = 0;
                    ck_assert_ptr_nonnull(want);
                    REQUIRE(n <= SB_MSG_RELAY_PARTS, "%zu parts", n);
                    for (size_t i = 0; i < n; i++) {
                        REQUIRE(at + parts[i].len <= sizeof(got), "parts too long");
                        memcpy(got + at, parts[i].p, parts[i].len);
                        at += parts[i].len;
                    }
                    REQUIRE(at == len && memcmp(got, want, len) == 0, "parts give %s, want %s",
                            show(got, at), show(want, len));
                    free(want);
                }
}
END_TEST

START_TEST(test_build_ack)
{
    size_t len = 0;
    cJSON *root;

    root = check_built(sb_msg_ack(str("\"m-1\""), &len), &len, "{\"type\":\"ack\",\"mid\":\"m-1\"}",
                       2);
    expect_string(root, "type", "ack");
    expect_string(root, "mid", "m-1");
    cJSON_Delete(root);
    root = check_built(sb_msg_ack(str("42"), &len), &len, "{\"type\":\"ack\",\"mid\":42}", 2);
    expect_json(root, "mid", "42");
    cJSON_Delete(root);
    /* The parts, joined, are the built message, byte for byte. */
    static const char *mids[] = {"\"m-1\"", "42", "\"\\u00e9t\\u00e9\"", "-1.5e3"};
    for (size_t i = 0; i < N_ELEMS(mids); i++) {
        sb_str_t parts[SB_MSG_ACK_PARTS];
        char joined[128];
        size_t n = sb_msg_ack_parts(str(mids[i]), parts), at = 0;
        ck_assert_uint_eq(n, SB_MSG_ACK_PARTS);
        for (size_t k = 0; k < n; k++) {
            memcpy(joined + at, parts[k].p, parts[k].len);
            at += parts[k].len;
        }
        char *built = sb_msg_ack(str(mids[i]), &len);
        ck_assert_ptr_nonnull(built);
        ck_assert_uint_eq(at, len);
        ck_assert_int_eq(memcmp(joined, built, len), 0);
        free(built);
    }
}
END_TEST

START_TEST(test_build_error)
{
    size_t len = 0;
    cJSON *root;

    root =
        check_built(sb_msg_error("bad-request", "missing field 'to'", NULL, NULL, none, &len), &len,
                    "{\"type\":\"error\",\"code\":\"bad-request\",\"message\":\"missing field "
                    "'to'\"}",
                    3);
    expect_string(root, "code", "bad-request");
    expect_string(root, "message", "missing field 'to'");
    cJSON_Delete(root);

    root = check_built(
        sb_msg_error("peer-unavailable", "bob is not connected", "bob", NULL, str("\"m-1\""), &len),
        &len,
        "{\"type\":\"error\",\"code\":\"peer-unavailable\",\"message\":\"bob is not "
        "connected\",\"to\":\"bob\",\"mid\":\"m-1\"}",
        5);
    expect_string(root, "to", "bob");
    expect_string(root, "mid", "m-1");
    expect_absent(root, "room");
    cJSON_Delete(root);

    root = check_built(sb_msg_error("room-full", "full", NULL, "lobby:1", str("3"), &len), &len,
                       "{\"type\":\"error\",\"code\":\"room-full\",\"message\":\"full\","
                       "\"room\":\"lobby:1\",\"mid\":3}",
                       5);
    expect_string(root, "room", "lobby:1");
    expect_absent(root, "to");
    cJSON_Delete(root);

    root = check_built(sb_msg_error("not-joined", "x", "a", "r", none, &len), &len,
                       "{\"type\":\"error\",\"code\":\"not-joined\",\"message\":\"x\",\"to\":\"a\","
                       "\"room\":\"r\"}",
                       5);
    cJSON_Delete(root);

    /* a message that needs escaping comes back out of cJSON unchanged */
    static const char msg[] = "say \"hi\" \\ /\n\t\x01\x1F \xC3\xA9\xF0\x9F\x98\x80";
    root = check_built(sb_msg_error("bad-request", msg, NULL, NULL, none, &len), &len,
                       "{\"type\":\"error\",\"code\":\"bad-request\",\"message\":\"say \\\"hi\\\" "
                       "\\\\ /\\u000a\\u0009\\u0001\\u001f \xC3\xA9\xF0\x9F\x98\x80\"}",
                       3);
    expect_string(root, "message", msg);
    cJSON_Delete(root);

    /* a long message (past any small stack buffer) */
    char *big = malloc(5001);
    ck_assert_ptr_nonnull(big);
    for (int i = 0; i < 5000; i++)
        big[i] = "a\"\n"[i % 3];
    big[5000] = '\0';
    char *out = sb_msg_error("bad-request", big, NULL, NULL, none, &len);
    ck_assert_ptr_nonnull(out);
    cJSON *r2 = cJSON_Parse(out);
    ck_assert_ptr_nonnull(r2);
    expect_string(r2, "message", big);
    cJSON_Delete(r2);
    free(out);
    free(big);
}
END_TEST

START_TEST(test_build_joined)
{
    static const char *const peers[] = {"alice", "bob", "c.d_e-f"};
    size_t len = 0;
    cJSON *root;

    root = check_built(sb_msg_joined("lobby", peers, 0, none, &len), &len,
                       "{\"type\":\"joined\",\"room\":\"lobby\",\"peers\":[]}", 3);
    expect_json(root, "peers", "[]");
    cJSON_Delete(root);

    root = check_built(sb_msg_joined("lobby", peers, 1, none, &len), &len,
                       "{\"type\":\"joined\",\"room\":\"lobby\",\"peers\":[\"alice\"]}", 3);
    expect_json(root, "peers", "[\"alice\"]");
    cJSON_Delete(root);

    root = check_built(sb_msg_joined("a:b", peers, 3, str("\"j1\""), &len), &len,
                       "{\"type\":\"joined\",\"room\":\"a:b\",\"peers\":[\"alice\",\"bob\","
                       "\"c.d_e-f\"],\"mid\":\"j1\"}",
                       4);
    expect_string(root, "room", "a:b");
    expect_json(root, "peers", "[\"alice\",\"bob\",\"c.d_e-f\"]");
    expect_string(root, "mid", "j1");
    cJSON_Delete(root);

    /* the longest IDs */
    char id[65];
    memcpy(id, repeat('Q', 64), 65);
    const char *const longest[] = {id, id};
    char want[256];
    snprintf(want, sizeof(want), "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"%s\",\"%s\"]}",
             id, id);
    root = check_built(sb_msg_joined("r", longest, 2, none, &len), &len, want, 3);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_build_left_and_events)
{
    size_t len = 0;
    cJSON *root;

    root = check_built(sb_msg_left("lobby", none, &len), &len,
                       "{\"type\":\"left\",\"room\":\"lobby\"}", 2);
    expect_string(root, "type", "left");
    cJSON_Delete(root);
    root = check_built(sb_msg_left("lobby", str("3"), &len), &len,
                       "{\"type\":\"left\",\"room\":\"lobby\",\"mid\":3}", 3);
    cJSON_Delete(root);

    root = check_built(sb_msg_peer_event("peer-joined", "lobby", "bob", &len), &len,
                       "{\"type\":\"peer-joined\",\"room\":\"lobby\",\"peer\":\"bob\"}", 3);
    expect_string(root, "type", "peer-joined");
    expect_string(root, "room", "lobby");
    expect_string(root, "peer", "bob");
    cJSON_Delete(root);
    root = check_built(sb_msg_peer_event("peer-left", "a:b", "x_y", &len), &len,
                       "{\"type\":\"peer-left\",\"room\":\"a:b\",\"peer\":\"x_y\"}", 3);
    expect_string(root, "type", "peer-left");
    cJSON_Delete(root);
}
END_TEST

/* message.h: builders return NULL only when out of memory, and escape IDs, rooms and codes as
 * needed. Long strings full of characters to escape still give valid JSON holding them. */
START_TEST(test_build_long_strings)
{
    char *s = malloc(2001);
    size_t len = 0;
    cJSON *root;
    char *out;

    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < 2000; i++)
        s[i] = "q\"\\\x01"[i % 4];
    s[2000] = '\0';
    const char *const peers[] = {"a", s};

    out = sb_msg_welcome(s, s, "[]", NULL, 0, &len);
    ck_assert_ptr_nonnull(out);
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    expect_string(root, "id", s);
    cJSON_Delete(root);
    free(out);

    out = sb_msg_relay(SB_MSG_OFFER, s, none, none, &len);
    ck_assert_ptr_nonnull(out);
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    expect_string(root, "from", s);
    cJSON_Delete(root);
    free(out);

    out = sb_msg_error(s, s, s, s, none, &len);
    ck_assert_ptr_nonnull(out);
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    expect_string(root, "room", s);
    cJSON_Delete(root);
    free(out);

    out = sb_msg_left(s, none, &len);
    ck_assert_ptr_nonnull(out);
    free(out);
    out = sb_msg_peer_event("peer-left", s, s, &len);
    ck_assert_ptr_nonnull(out);
    free(out);

    out = sb_msg_joined(s, peers, 2, none, &len);
    REQUIRE(out != NULL, "sb_msg_joined returned NULL for a peer of 2000 bytes");
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "peers");
    ck_assert_int_eq(cJSON_GetArraySize(list), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(list, 1)->valuestring, s);
    cJSON_Delete(root);
    free(out);
    free(s);
}
END_TEST

/* What a client sends is what the recipient gets: parse, then relay the slices. */
START_TEST(test_parse_then_relay)
{
    static const char json[] =
        "{ \"mid\" : \"m\\u0031\" , \"type\":\"candidate\", \"from\":\"evil\","
        " \"to\":\"bob\", \"payload\" : {\"candidate\":\"c\\\"1\",\"n\":"
        "[1.0e2, -0, {}]} }";
    parsed_t p;
    size_t len = 0;

    expect_ok(&p, json);
    char *out = sb_msg_relay(p.m.type, "alice", p.m.payload, p.m.mid, &len);
    cJSON *root =
        check_built(out, &len,
                    "{\"type\":\"candidate\",\"from\":\"alice\",\"payload\":{\"candidate\":"
                    "\"c\\\"1\",\"n\":[1.0e2, -0, {}]},\"mid\":\"m\\u0031\"}",
                    4);
    expect_string(root, "from", "alice");
    expect_string(root, "mid", "m1");
    expect_json(root, "payload", "{\"candidate\":\"c\\\"1\",\"n\":[100,0,{}]}");
    cJSON_Delete(root);
    root =
        check_built(sb_msg_ack(p.m.mid, &len), &len, "{\"type\":\"ack\",\"mid\":\"m\\u0031\"}", 2);
    cJSON_Delete(root);
    parsed_free(&p);
}
END_TEST

/* What the node accepts from a client it must be able to forward as JSON that its own scanner
 * accepts: a payload at the deepest nesting sb_msg_parse allows, relayed. */
START_TEST(test_relay_of_deepest_payload_scans)
{
    char json[512];
    parsed_t p;
    size_t len = 0, pos = 0;
    int n, depth;

    /* the deepest payload sb_msg_parse accepts */
    for (depth = 1; depth < 200; depth++) {
        n = snprintf(json, sizeof(json), "{\"type\":\"offer\",\"to\":\"b\",\"payload\":%s%s}",
                     repeat('[', (size_t)depth), repeat(']', (size_t)depth));
        parse_n(&p, json, (size_t)n);
        int rc = p.rc;
        parsed_free(&p);
        if (rc != 0)
            break;
    }
    depth--;
    ck_assert_int_ge(depth, 1);
    n = snprintf(json, sizeof(json), "{\"type\":\"offer\",\"to\":\"b\",\"payload\":%s%s}",
                 repeat('[', (size_t)depth), repeat(']', (size_t)depth));
    parse_n(&p, json, (size_t)n);
    ck_assert_int_eq(p.rc, 0);
    char *out = sb_msg_relay(p.m.type, "a", p.m.payload, p.m.mid, &len);
    ck_assert_ptr_nonnull(out);
    REQUIRE(sb_json_skip_value(out, len, &pos) == 0 && pos == len,
            "payload of depth %d accepted, but its relay (depth %d) is refused by "
            "sb_json_skip_value at byte %zu",
            depth, depth + 1, pos);
    free(out);
    parsed_free(&p);
}
END_TEST

static Suite *message_suite(void)
{
    Suite *s = suite_create("message");
    TCase *tc;

    tc = tcase_create("parse valid");
    tcase_add_test(tc, test_relay_types_all_fields);
    tcase_add_test(tc, test_relay_types_required_only);
    tcase_add_test(tc, test_room_types);
    tcase_add_test(tc, test_payload_slices);
    tcase_add_test(tc, test_payload_depth);
    tcase_add_test(tc, test_mid_slices);
    tcase_add_test(tc, test_mid_limits);
    tcase_add_test(tc, test_unknown_fields_ignored);
    tcase_add_test(tc, test_escaped_names);
    tcase_add_test(tc, test_white_space_around);
    tcase_add_test(tc, test_name_limits_parse);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse errors");
    tcase_add_test(tc, test_invalid_json);
    tcase_add_test(tc, test_prefixes_refused);
    tcase_add_test(tc, test_bad_type);
    tcase_add_test(tc, test_bad_to_and_room);
    tcase_add_test(tc, test_duplicate_fields);
    tcase_add_test(tc, test_bad_mid);
    tcase_add_test(tc, test_err_optional_and_static);
    tcase_add_test(tc, test_error_texts);
    tcase_add_test(tc, test_type_with_escaped_nul_is_unknown);
    tcase_add_test(tc, test_key_with_escaped_nul_is_unknown);
    tcase_add_test(tc, test_mid_kept_on_duplicate_field);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_name_lengths);
    tcase_add_test(tc, test_name_every_byte);
    tcase_add_test(tc, test_name_punctuation);
    tcase_add_test(tc, test_type_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("builders");
    tcase_add_test(tc, test_build_welcome);
    tcase_add_test(tc, test_build_queued);
    tcase_add_test(tc, test_build_relay);
    tcase_add_test(tc, test_build_relay_parts);
    tcase_add_test(tc, test_build_ack);
    tcase_add_test(tc, test_build_error);
    tcase_add_test(tc, test_build_joined);
    tcase_add_test(tc, test_build_left_and_events);
    tcase_add_test(tc, test_build_long_strings);
    tcase_add_test(tc, test_parse_then_relay);
    tcase_add_test(tc, test_relay_of_deepest_payload_scans);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(message_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
