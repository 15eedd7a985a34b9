/* Unit tests for proto/envelope: the bus envelope's wire, round trips, truncation and errors. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "helpers.h"
#include "message.h"

/* ---- helpers -------------------------------------------------------------------------------- */

/* One parse: the input lives in an exact-size heap copy (ASan sees reads past it) for as long
 * as the slices in env point into it. */
typedef struct {
    char *buf;
    size_t len;
    sb_env_t env;
    const char *err;
    int rc;
} parsed_t;

static void parse_n(parsed_t *p, const char *wire, size_t len)
{
    p->buf = malloc(len ? len : 1);
    REQUIRE(p->buf != NULL, "out of memory");
    if (len > 0)
        memcpy(p->buf, wire, len);
    p->len = len;
    /* garbage in, so that "len 0 when absent" means something */
    memset(&p->env, 0x5A, sizeof(p->env));
    p->err = NULL;
    p->rc = sb_env_parse(p->buf, len, &p->env, &p->err);
    REQUIRE(p->rc <= 0 && p->rc >= SB_ENV_ESEP, "sb_env_parse(%s) returned %d", show(wire, len),
            p->rc);
    if (p->rc == 0)
        REQUIRE(p->err == NULL, "err set on success for %s", show(wire, len));
    else
        REQUIRE(p->err != NULL && p->err[0] != '\0', "no reason for %s", show(wire, len));
}

static void parsed_free(parsed_t *p)
{
    free(p->buf);
    p->buf = NULL;
}

static sb_str_t str_n(const char *s, size_t n) { return (sb_str_t){n ? s : NULL, n}; }

static sb_str_t str(const char *s) { return str_n(s, s ? strlen(s) : 0); }

static int slice_eq(sb_str_t a, sb_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* A slice lies inside p's buffer, or is absent with p NULL. */
static void assert_inside(const parsed_t *p, sb_str_t s, const char *what)
{
    if (s.len == 0)
        REQUIRE(s.p == NULL, "%s of %s: absent but p set", what, show(p->buf, p->len));
    else
        REQUIRE(s.p >= p->buf && s.p + s.len <= p->buf + p->len, "%s of %s outside the input", what,
                show(p->buf, p->len));
}

/* Every field of got equals want, byte for byte. */
static void assert_env_eq(const parsed_t *p, const sb_env_t *got, const sb_env_t *want)
{
    const char *wire = show(p->buf, p->len);

    REQUIRE(got->kind == want->kind, "kind of %s: %d, want %d", wire, got->kind, want->kind);
    REQUIRE(got->sent_us == want->sent_us, "sent of %s: %llu, want %llu", wire,
            (unsigned long long)got->sent_us, (unsigned long long)want->sent_us);
    REQUIRE(slice_eq(got->from, want->from), "from of %s", wire);
    REQUIRE(slice_eq(got->to, want->to), "to of %s", wire);
    REQUIRE(slice_eq(got->room, want->room), "room of %s", wire);
    REQUIRE(slice_eq(got->mid, want->mid), "mid of %s", wire);
    REQUIRE(slice_eq(got->payload, want->payload), "payload of %s", wire);
    assert_inside(p, got->from, "from");
    assert_inside(p, got->to, "to");
    assert_inside(p, got->room, "room");
    assert_inside(p, got->mid, "mid");
    assert_inside(p, got->payload, "payload");
}

/* Writes env into an exact-size heap buffer (ASan sees a write past sb_env_size); sets *len. */
static char *write_env(const sb_env_t *env, size_t *len)
{
    size_t n = sb_env_size(env);
    char *out = malloc(n ? n : 1);

    REQUIRE(out != NULL, "out of memory");
    REQUIRE(sb_env_write(env, out) == n, "sb_env_write wrote other than sb_env_size");
    *len = n;
    return out;
}

/* Writes env, parses the wire back and compares; returns the wire (the caller frees it). */
static char *round_trip(const sb_env_t *env, size_t *len)
{
    parsed_t p;
    char *wire = write_env(env, len);

    parse_n(&p, wire, *len);
    REQUIRE(p.rc == 0, "refused its own %s: %s", show(wire, *len), p.err);
    assert_env_eq(&p, &p.env, env);
    parsed_free(&p);
    return wire;
}

static void round_trip_free(const sb_env_t *env)
{
    size_t len;
    free(round_trip(env, &len));
}

static void expect_code_n(const char *wire, size_t len, int code)
{
    parsed_t p;

    parse_n(&p, wire, len);
    REQUIRE(p.rc == code, "%s: got %d (%s), want %d", show(wire, len), p.rc,
            p.err ? p.err : "no reason", code);
    parsed_free(&p);
}

static void expect_code(const char *wire, int code) { expect_code_n(wire, strlen(wire), code); }

static void expect_ok(parsed_t *p, const char *wire)
{
    parse_n(p, wire, strlen(wire));
    REQUIRE(p->rc == 0, "refused %s: %d %s", show(wire, strlen(wire)), p->rc, p->err);
}

/* A string of n copies of c (n < 512); static, overwritten by the call after the next. */
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

static const sb_env_kind_t relay_kinds[] = {SB_ENV_OFFER, SB_ENV_ANSWER, SB_ENV_CANDIDATE,
                                            SB_ENV_BYE};
static const sb_env_kind_t event_kinds[] = {SB_ENV_PEER_JOINED, SB_ENV_PEER_LEFT};

static sb_env_t relay(sb_env_kind_t kind, uint64_t sent, const char *mid, sb_str_t payload)
{
    return (sb_env_t){kind, sent, str("alice"), str("bob"), str(NULL), str(mid), payload};
}

static sb_env_t event(sb_env_kind_t kind, uint64_t sent, const char *peer, const char *room)
{
    return (sb_env_t){kind, sent, str(peer), str(NULL), str(room), str(NULL), str(NULL)};
}

/* ---- the wire ------------------------------------------------------------------------------- */

/* The bytes on the bus, as another implementation would have to write them. */
START_TEST(test_exact_bytes)
{
    static const struct {
        sb_env_t env;
        const char *wire;
    } cases[] = {
        {{SB_ENV_OFFER,
          1712345678901234u,
          {"alice", 5},
          {"bob", 3},
          {NULL, 0},
          {"\"m-1\"", 5},
          {"{\"sdp\":\"v=0\"}", 13}},
         "sb1 offer 1712345678901234 alice bob  5 \"m-1\"{\"sdp\":\"v=0\"}"},
        {{SB_ENV_ANSWER, 0, {"a", 1}, {"b", 1}, {NULL, 0}, {NULL, 0}, {NULL, 0}},
         "sb1 answer 0 a b  0 "},
        {{SB_ENV_CANDIDATE, 7, {"a.b_c-D", 7}, {"9", 1}, {NULL, 0}, {"42", 2}, {"null", 4}},
         "sb1 candidate 7 a.b_c-D 9  2 42null"},
        {{SB_ENV_BYE, 10, {"x", 1}, {"y", 1}, {NULL, 0}, {NULL, 0}, {" [1, 2] ", 8}},
         "sb1 bye 10 x y  0  [1, 2] "},
        {{SB_ENV_PEER_JOINED, 1, {"alice", 5}, {NULL, 0}, {"lobby:1", 7}, {NULL, 0}, {NULL, 0}},
         "sb1 peer-joined 1 alice  lobby:1 0 "},
        {{SB_ENV_PEER_LEFT, UINT64_MAX, {"z", 1}, {NULL, 0}, {"r", 1}, {NULL, 0}, {NULL, 0}},
         "sb1 peer-left 18446744073709551615 z  r 0 "},
    };

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        size_t len;
        char *wire = round_trip(&cases[i].env, &len);
        REQUIRE(len == strlen(cases[i].wire) && memcmp(wire, cases[i].wire, len) == 0,
                "wrote %s, want %s", show(wire, len), cases[i].wire);
        free(wire);
    }
}
END_TEST

/* The head, then the mid and payload, is the whole envelope; the longest head fits the bound. */
START_TEST(test_head)
{
    char id[SB_ID_MAX + 1], room[SB_ROOM_MAX + 1], head[SB_ENV_HEAD_MAX], whole[1024];
    memset(id, 'i', SB_ID_MAX);
    id[SB_ID_MAX] = '\0';
    memset(room, 'r', SB_ROOM_MAX);
    room[SB_ROOM_MAX] = '\0';
    sb_env_t relay = {
        SB_ENV_CANDIDATE,           UINT64_MAX, str(id), str(id), str(NULL), str("\"mid\""),
        str("{\"candidate\":\"\"}")};
    sb_env_t event = {SB_ENV_PEER_JOINED, UINT64_MAX, str(id),  str(NULL),
                      str(room),          str(NULL),  str(NULL)};
    const sb_env_t *cases[] = {&relay, &event};
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        size_t n = sb_env_write_head(cases[i], head), total = sb_env_write(cases[i], whole);
        REQUIRE(n <= SB_ENV_HEAD_MAX, "head of %zu bytes", n);
        REQUIRE(n + cases[i]->mid.len + cases[i]->payload.len == total &&
                    memcmp(head, whole, n) == 0,
                "head %s is not the start of %s", show(head, n), show(whole, total));
    }
    /* The longest possible head: relay kinds have no room, so the widest is an ID, an ID and the
     * longest kind with a room instead; both are under the bound with room to spare. */
    sb_env_t widest = {SB_ENV_PEER_JOINED, UINT64_MAX, str(id),  str(id),
                       str(room),          str(NULL),  str(NULL)};
    REQUIRE(sb_env_write_head(&widest, head) <= SB_ENV_HEAD_MAX, "widest head over the bound");
}
END_TEST

START_TEST(test_round_trip_every_kind)
{
    for (size_t i = 0; i < N_ELEMS(relay_kinds); i++) {
        sb_env_t env = relay(relay_kinds[i], 1712345678901234u, "\"m-1\"",
                             str("{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}"));
        round_trip_free(&env);
        env.mid = str(NULL);
        round_trip_free(&env);
        env.payload = str(NULL);
        round_trip_free(&env);
        env.mid = str("17");
        round_trip_free(&env);
    }
    for (size_t i = 0; i < N_ELEMS(event_kinds); i++) {
        sb_env_t env = event(event_kinds[i], 1712345678901234u, "alice", "lobby:1");
        round_trip_free(&env);
        env.room = str("a.b_c-d:e");
        env.from = str("P_1.x-Y");
        round_trip_free(&env);
    }
}
END_TEST

/* The payload is every byte after the mid, whatever they are: spaces, line ends, NULs, UTF-8,
 * text that looks like another envelope. */
START_TEST(test_round_trip_payload_bytes)
{
    static const struct {
        const char *p;
        size_t len;
    } payloads[] = {
#define BYTES(lit) {lit, sizeof(lit) - 1}
        BYTES("{\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\n\"}"),
        BYTES(" "),
        BYTES("  leading and trailing  "),
        BYTES("\n"),
        BYTES("{\n\t\"a\" : [ 1 ,\r\n 2 ]\n}\n"),
        BYTES("\0"),
        BYTES("a\0b\0\0"),
        BYTES("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\""),
        BYTES("\xFF\xFE\x80"),
        BYTES("sb1 offer 1 alice bob  0 "),
        BYTES("0 "),
        BYTES("\""),
#undef BYTES
    };

    for (size_t i = 0; i < N_ELEMS(payloads); i++) {
        for (size_t k = 0; k < N_ELEMS(relay_kinds); k++) {
            sb_env_t env = relay(relay_kinds[k], 5, NULL, str_n(payloads[i].p, payloads[i].len));
            round_trip_free(&env);
            env.mid = str("\"a b\"");
            round_trip_free(&env);
        }
    }
}
END_TEST

/* A mid is its JSON text: a string with its quotes (spaces and all), or a number; up to
 * SB_ENV_MID_MAX bytes. */
START_TEST(test_round_trip_mids)
{
    static const char *const mids[] = {
        "\"m-1\"", "\"\"",       "\"m 1 with spaces \"",
        "\" \"",   "\"a\\\"b\"", "\"\\u00e9\xC3\xA9\"",
        "0",       "42",         "-1",
        "1.5e-3",  "-0.0E+0",    "12345678901234567890123456789012345678901234567890"};
    char mid[SB_ENV_MID_MAX + 1];

    for (size_t i = 0; i < N_ELEMS(mids); i++) {
        sb_env_t env = relay(SB_ENV_OFFER, 99, mids[i], str("{}"));
        round_trip_free(&env);
        env.payload = str(NULL);
        round_trip_free(&env);
    }

    /* the longest: 64 decoded bytes written as \u escapes */
    ck_assert_int_eq(SB_ENV_MID_MAX, 386);
    mid[0] = '"';
    for (int i = 0; i < SB_MID_MAX; i++)
        memcpy(mid + 1 + 6 * i, "\\u0041", 6);
    memcpy(mid + SB_ENV_MID_MAX - 1, "\"", 2);
    ck_assert_uint_eq(strlen(mid), SB_ENV_MID_MAX);
    sb_env_t env = relay(SB_ENV_BYE, 1, mid, str("[]"));
    size_t len;
    char *wire = round_trip(&env, &len);
    static const char head[] = "sb1 bye 1 alice bob  386 ";
    REQUIRE(len == sizeof(head) - 1 + SB_ENV_MID_MAX + 2 &&
                memcmp(wire, head, sizeof(head) - 1) == 0,
            "wrote %s", show(wire, len));
    free(wire);
}
END_TEST

START_TEST(test_round_trip_sent)
{
    static const uint64_t sents[] = {0,
                                     1,
                                     9,
                                     10,
                                     99,
                                     100,
                                     1712345678901234u,
                                     9999999999999999999u,
                                     10000000000000000000u,
                                     UINT64_MAX - 1,
                                     UINT64_MAX};

    for (size_t i = 0; i < N_ELEMS(sents); i++) {
        sb_env_t env = relay(SB_ENV_ANSWER, sents[i], "1", str("{}"));
        round_trip_free(&env);
        env = event(SB_ENV_PEER_LEFT, sents[i], "p", "r");
        round_trip_free(&env);
    }
    for (uint64_t v = 1; v != 0 && v <= UINT64_MAX / 3; v = v * 3 + 1) {
        sb_env_t env = event(SB_ENV_PEER_JOINED, v, "p", "r");
        round_trip_free(&env);
    }
}
END_TEST

/* IDs and rooms at their limits, and every character each may hold. */
START_TEST(test_round_trip_names)
{
    static const char id_chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
    static const char room_chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-";
    char from[SB_ID_MAX + 1], to[SB_ID_MAX + 1];

    memcpy(from, id_chars, SB_ID_MAX);
    from[SB_ID_MAX] = '\0';
    memcpy(to, id_chars + 1, SB_ID_MAX);
    to[SB_ID_MAX] = '\0';
    sb_env_t env = relay(SB_ENV_CANDIDATE, 3, "\"x\"", str("{}"));
    env.from = str(from);
    env.to = str(to);
    round_trip_free(&env);

    env = event(SB_ENV_PEER_JOINED, 3, from, room_chars + 2);
    ck_assert_uint_eq(env.room.len, SB_ROOM_MAX);
    round_trip_free(&env);
    env = event(SB_ENV_PEER_LEFT, 3, repeat('-', SB_ID_MAX), repeat(':', SB_ROOM_MAX));
    round_trip_free(&env);
}
END_TEST

/* Absent fields are len 0 and p NULL after a parse, whatever env held before. */
START_TEST(test_absent_fields_reset)
{
    parsed_t p;

    expect_ok(&p, "sb1 bye 1 a b  0 ");
    ck_assert_uint_eq(p.env.room.len, 0);
    ck_assert_uint_eq(p.env.mid.len, 0);
    ck_assert_uint_eq(p.env.payload.len, 0);
    ck_assert_ptr_null(p.env.room.p);
    ck_assert_ptr_null(p.env.mid.p);
    ck_assert_ptr_null(p.env.payload.p);
    REQUIRE(p.env.from.p == p.buf + 10 && p.env.to.p == p.buf + 12, "slices not at the fields");
    parsed_free(&p);

    expect_ok(&p, "sb1 peer-left 1 a  r 0 ");
    ck_assert_uint_eq(p.env.to.len, 0);
    ck_assert_ptr_null(p.env.to.p);
    REQUIRE(p.env.room.p == p.buf + 19, "room slice not at the field");
    parsed_free(&p);
}
END_TEST

/* ---- truncation ----------------------------------------------------------------------------- */

/* Every proper prefix of a valid envelope is refused, except those that keep the whole mid and
 * cut the payload: those parse with the payload cut at the same place and every other field
 * unchanged. */
static void check_prefixes(const sb_env_t *env)
{
    size_t len;
    char *wire = round_trip(env, &len);
    size_t payload_at = len - env->payload.len;

    for (size_t n = 0; n < len; n++) {
        parsed_t p;
        parse_n(&p, wire, n);
        if (n < payload_at) {
            REQUIRE(p.rc < 0, "prefix %zu of %s accepted", n, show(wire, len));
        } else {
            REQUIRE(p.rc == 0, "prefix %zu of %s refused: %s", n, show(wire, len), p.err);
            sb_env_t want = *env;
            want.payload = str_n(env->payload.p, n - payload_at);
            assert_env_eq(&p, &p.env, &want);
        }
        parsed_free(&p);
    }
    free(wire);
}

START_TEST(test_truncation)
{
    for (size_t i = 0; i < N_ELEMS(relay_kinds); i++) {
        sb_env_t env =
            relay(relay_kinds[i], 1712345678901234u, "\"m 1\"", str("{\"sdp\":\"v=0\\r\\n a b\"}"));
        check_prefixes(&env);
        env.mid = str("12");
        check_prefixes(&env);
        env.mid = str(NULL);
        check_prefixes(&env);
        env.payload = str(NULL);
        check_prefixes(&env);
        env.sent_us = 0;
        check_prefixes(&env);
        env.sent_us = UINT64_MAX;
        env.payload = str_n("\0 \n\0", 4);
        check_prefixes(&env);
    }
    for (size_t i = 0; i < N_ELEMS(event_kinds); i++) {
        sb_env_t env = event(event_kinds[i], 1712345678901234u, "alice", "lobby:1");
        check_prefixes(&env);
        env.sent_us = 0;
        check_prefixes(&env);
    }
}
END_TEST

/* ---- rejections ----------------------------------------------------------------------------- */

START_TEST(test_bad_version)
{
    expect_code("", SB_ENV_EVERSION);
    expect_code(" ", SB_ENV_EVERSION);
    expect_code("s", SB_ENV_EVERSION);
    expect_code("sb", SB_ENV_EVERSION);
    expect_code("sb2 offer 1 a b  0 ", SB_ENV_EVERSION);
    expect_code("sb0 offer 1 a b  0 ", SB_ENV_EVERSION);
    expect_code("SB1 offer 1 a b  0 ", SB_ENV_EVERSION);
    expect_code("sb10 offer 1 a b  0 ", SB_ENV_EVERSION);
    expect_code("sb1x offer 1 a b  0 ", SB_ENV_EVERSION);
    expect_code(" sb1 offer 1 a b  0 ", SB_ENV_EVERSION);
    expect_code("sb1\toffer 1 a b  0 ", SB_ENV_EVERSION);
    expect_code("{\"type\":\"offer\",\"from\":\"a\"}", SB_ENV_EVERSION);
    expect_code_n("sb1\0offer 1 a b  0 ", 19, SB_ENV_EVERSION);
}
END_TEST

START_TEST(test_bad_kind)
{
    static const char *const kinds[] = {
        "",
        "join",
        "leave",
        "Offer",
        "OFFER",
        "offe",
        "offerx",
        "peer",
        "peer-",
        "peer-joined2",
        "peer_joined",
        "welcome",
        "ack",
        "error",
        "candidatee",
        "offer\t",
        "peer-joinedpeer-left",
    };
    char wire[128];

    for (size_t i = 0; i < N_ELEMS(kinds); i++) {
        snprintf(wire, sizeof(wire), "sb1 %s 1 a b  0 ", kinds[i]);
        expect_code(wire, SB_ENV_EKIND);
    }
    expect_code_n("sb1 offer\0 1 a b  0 ", 20, SB_ENV_EKIND);
    expect_code("sb1  offer 1 a b  0 ", SB_ENV_EKIND);
}
END_TEST

START_TEST(test_bad_sent)
{
    static const char *const sents[] = {
        "",
        "+1",
        "-1",
        "-0",
        "1.5",
        "1e3",
        "0x10",
        "12a",
        "a12",
        "01",
        "00",
        "007",
        "18446744073709551616",  /* UINT64_MAX + 1 */
        "18446744073709551620",  /* overflows in the last digit */
        "18446744073709551700",  /* overflows before the last digit */
        "99999999999999999999",  /* 20 digits, over */
        "100000000000000000000", /* 21 digits */
        "000000000000000000001",
        "\xD9\xA1", /* ARABIC-INDIC DIGIT ONE */
    };
    char wire[128];

    for (size_t i = 0; i < N_ELEMS(sents); i++) {
        snprintf(wire, sizeof(wire), "sb1 offer %s a b  0 ", sents[i]);
        expect_code(wire, SB_ENV_ESENT);
        snprintf(wire, sizeof(wire), "sb1 peer-left %s a  r 0 ", sents[i]);
        expect_code(wire, SB_ENV_ESENT);
    }
    expect_code_n("sb1 offer 1\0 a b  0 ", 20, SB_ENV_ESENT);
    /* the largest value is accepted */
    parsed_t p;
    expect_ok(&p, "sb1 offer 18446744073709551615 a b  0 ");
    ck_assert(p.env.sent_us == UINT64_MAX);
    parsed_free(&p);
    expect_ok(&p, "sb1 offer 0 a b  0 ");
    ck_assert(p.env.sent_us == 0);
    parsed_free(&p);
}
END_TEST

START_TEST(test_bad_names)
{
    static const char *const bad_ids[] = {"al!ce", "al:ce", "al/ce", "\xC3\xA9", "a\"b",
                                          "a\tb",  "a\nb",  "a%20",  "a,b",      "a+b"};
    static const char *const bad_rooms[] = {"lob!by", "lob/by", "\xC3\xA9", "a\"b",
                                            "a\tb",   "a\r\nb", "a%20",     "a@b"};
    char wire[256];

    for (size_t i = 0; i < N_ELEMS(bad_ids); i++) {
        snprintf(wire, sizeof(wire), "sb1 offer 1 %s b  0 ", bad_ids[i]);
        expect_code(wire, SB_ENV_EFIELD);
        snprintf(wire, sizeof(wire), "sb1 offer 1 a %s  0 ", bad_ids[i]);
        expect_code(wire, SB_ENV_EFIELD);
        snprintf(wire, sizeof(wire), "sb1 peer-joined 1 %s  r 0 ", bad_ids[i]);
        expect_code(wire, SB_ENV_EFIELD);
    }
    for (size_t i = 0; i < N_ELEMS(bad_rooms); i++) {
        snprintf(wire, sizeof(wire), "sb1 peer-joined 1 a  %s 0 ", bad_rooms[i]);
        expect_code(wire, SB_ENV_EFIELD);
    }
    expect_code_n("sb1 offer 1 a\0 b  0 ", 20, SB_ENV_EFIELD);
    expect_code_n("sb1 offer 1 a \0b  0 ", 20, SB_ENV_EFIELD);
    expect_code_n("sb1 peer-left 1 a  \0 0 ", 23, SB_ENV_EFIELD);
    /* the field's rule is checked even where the kind forbids the field */
    expect_code("sb1 offer 1 a b r! 0 ", SB_ENV_EFIELD);
    expect_code("sb1 peer-left 1 a b! r 0 ", SB_ENV_EFIELD);
}
END_TEST

/* Every byte, in an ID and in a room name: accepted exactly when the rule allows it. */
START_TEST(test_name_every_byte)
{
    for (int c = 0; c < 256; c++) {
        char wire[64];
        int n;
        if (c == ' ')
            continue; /* the separator: it splits the field instead */
        int id_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
        int room_ok = id_ok || c == ':';

        /* %c writes a NUL too, and n counts it */
        n = snprintf(wire, sizeof(wire), "sb1 bye 1 a%cz b  0 ", c);
        expect_code_n(wire, (size_t)n, id_ok ? 0 : SB_ENV_EFIELD);
        n = snprintf(wire, sizeof(wire), "sb1 bye 1 a b%c  0 ", c);
        expect_code_n(wire, (size_t)n, id_ok ? 0 : SB_ENV_EFIELD);
        n = snprintf(wire, sizeof(wire), "sb1 peer-joined 1 a  r%c 0 ", c);
        expect_code_n(wire, (size_t)n, room_ok ? 0 : SB_ENV_EFIELD);
    }
}
END_TEST

START_TEST(test_name_lengths)
{
    char wire[512];

    snprintf(wire, sizeof(wire), "sb1 offer 1 %s b  0 ", repeat('f', SB_ID_MAX));
    expect_code(wire, 0);
    snprintf(wire, sizeof(wire), "sb1 offer 1 %s b  0 ", repeat('f', SB_ID_MAX + 1));
    expect_code(wire, SB_ENV_EFIELD);
    snprintf(wire, sizeof(wire), "sb1 offer 1 a %s  0 ", repeat('t', SB_ID_MAX));
    expect_code(wire, 0);
    snprintf(wire, sizeof(wire), "sb1 offer 1 a %s  0 ", repeat('t', SB_ID_MAX + 1));
    expect_code(wire, SB_ENV_EFIELD);
    snprintf(wire, sizeof(wire), "sb1 peer-left 1 %s  r 0 ", repeat('p', SB_ID_MAX + 1));
    expect_code(wire, SB_ENV_EFIELD);
    snprintf(wire, sizeof(wire), "sb1 peer-left 1 p  %s 0 ", repeat('r', SB_ROOM_MAX));
    expect_code(wire, 0);
    snprintf(wire, sizeof(wire), "sb1 peer-left 1 p  %s 0 ", repeat('r', SB_ROOM_MAX + 1));
    expect_code(wire, SB_ENV_EFIELD);
    /* much longer, and running to the end of the input */
    snprintf(wire, sizeof(wire), "sb1 offer 1 %s", repeat('f', 300));
    expect_code(wire, SB_ENV_EFIELD);
    snprintf(wire, sizeof(wire), "sb1 offer 1 %s", repeat('f', SB_ID_MAX + 1));
    expect_code(wire, SB_ENV_EFIELD);
    snprintf(wire, sizeof(wire), "sb1 offer 1 %s", repeat('f', SB_ID_MAX));
    expect_code(wire, SB_ENV_ESEP);
}
END_TEST

/* Fields the kind requires must be there; fields it forbids must not. */
START_TEST(test_kind_rules)
{
    for (size_t i = 0; i < N_ELEMS(relay_kinds); i++) {
        const char *k = sb_env_kind_name(relay_kinds[i]);
        char wire[128];
        snprintf(wire, sizeof(wire), "sb1 %s 1 a b r 0 ", k); /* room on a relay kind */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a b r 2 42{}", k);
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1  b  0 ", k); /* no from */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a   0 ", k); /* no to */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a  r 0 ", k); /* a room event's shape */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a b  0 ", k);
        expect_code(wire, 0);
    }
    for (size_t i = 0; i < N_ELEMS(event_kinds); i++) {
        const char *k = sb_env_kind_name(event_kinds[i]);
        char wire[128];
        snprintf(wire, sizeof(wire), "sb1 %s 1 a b r 0 ", k); /* to on a room event */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a  r 2 42", k); /* mid on a room event */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a  r 5 \"m-1\"", k);
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a  r 0 {}", k); /* payload on a room event */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a  r 0  ", k); /* even one space */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1  b r 0 ", k);
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a   0 ", k); /* no room */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1   r 0 ", k); /* no from */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a b  0 ", k); /* a relay's shape */
        expect_code(wire, SB_ENV_ESHAPE);
        snprintf(wire, sizeof(wire), "sb1 %s 1 a  r 0 ", k);
        expect_code(wire, 0);
    }
}
END_TEST

START_TEST(test_bad_midlen)
{
    char wire[1024];

    expect_code("sb1 offer 1 a b  6 \"m-1\"", SB_ENV_EMID); /* larger than the rest */
    expect_code("sb1 offer 1 a b  1 ", SB_ENV_EMID);
    expect_code("sb1 offer 1 a b  386 \"x\"", SB_ENV_EMID);
    expect_code("sb1 offer 1 a b  05 \"m-1\"", SB_ENV_EMID); /* leading zero */
    expect_code("sb1 offer 1 a b  00 ", SB_ENV_EMID);
    expect_code("sb1 offer 1 a b  005 \"m-1\"", SB_ENV_EMID);
    expect_code("sb1 offer 1 a b  +5 \"m-1\"", SB_ENV_EMID);
    expect_code("sb1 offer 1 a b  -5 \"m-1\"", SB_ENV_EMID);
    expect_code("sb1 offer 1 a b  5x \"m-1\"", SB_ENV_EMID);
    expect_code("sb1 offer 1 a b   \"m-1\"", SB_ENV_EMID); /* empty */
    expect_code("sb1 offer 1 a b  1000 x", SB_ENV_EMID);   /* four digits */
    expect_code("sb1 offer 1 a b  999 x", SB_ENV_EMID);    /* over SB_ENV_MID_MAX */
    expect_code("sb1 peer-left 1 a  r 00 ", SB_ENV_EMID);
    expect_code("sb1 peer-left 1 a  r 1 ", SB_ENV_EMID);

    /* exactly SB_ENV_MID_MAX, and one more (with the bytes there) */
    int n = snprintf(wire, sizeof(wire), "sb1 offer 1 a b  386 %s", repeat('7', 386));
    expect_code_n(wire, (size_t)n, 0);
    n = snprintf(wire, sizeof(wire), "sb1 offer 1 a b  387 %s", repeat('7', 387));
    expect_code_n(wire, (size_t)n, SB_ENV_EMID);
    /* midlen that fits exactly, and one more than the rest */
    expect_code("sb1 offer 1 a b  5 \"m-1\"", 0);
    expect_code("sb1 offer 1 a b  6 \"m-1\"", SB_ENV_EMID);
}
END_TEST

/* A separator missing at the end is ESEP; one missing inside merges two fields, and the error is
 * the merged field's. */
START_TEST(test_missing_separators)
{
    static const char *const cut[] = {
        "sb1",
        "sb1 offer",
        "sb1 offer 1",
        "sb1 offer 1 a",
        "sb1 offer 1 a b",
        "sb1 offer 1 a b ",
        "sb1 offer 1 a b  0",
        "sb1 offer 1 a b  5",
        "sb1 peer-joined 1 a  r",
        "sb1 peer-joined 1 a  r 0",
        "sb1 candidate 18446744073709551615",
    };

    for (size_t i = 0; i < N_ELEMS(cut); i++)
        expect_code(cut[i], SB_ENV_ESEP);

    /* cut just after a separator: the empty field is checked first */
    expect_code("sb1 ", SB_ENV_EKIND);
    expect_code("sb1 offer ", SB_ENV_ESENT);
    expect_code("sb1 offer 1 ", SB_ENV_ESEP); /* an empty from is well formed */
    expect_code("sb1 offer 1 a b  ", SB_ENV_EMID);
    expect_code("sb1 peer-joined 1 a  r ", SB_ENV_EMID);

    expect_code("sb1offer 1 a b  0 ", SB_ENV_EVERSION);
    expect_code("sb1 offer1 a b  0 ", SB_ENV_EKIND);
    expect_code("sb1 offer 1a b  0 ", SB_ENV_ESENT);
    expect_code("sb1 offer 1 a b 0 ", SB_ENV_ESHAPE);     /* one space short: 0 read as the room */
    expect_code("sb1 peer-left 1 a r 0 ", SB_ENV_ESHAPE); /* r read as to, 0 as room */
    expect_code("sb1 offer 1 a b  0\"m\"", SB_ENV_EMID);
    expect_code("sb1 offer 1 a b  3\"m\"", SB_ENV_EMID);
}
END_TEST

/* err may be NULL; each code comes with its own reason. */
START_TEST(test_err_reasons)
{
    static const struct {
        const char *wire;
        int code;
    } cases[] = {
        {"sb2 offer 1 a b  0 ", SB_ENV_EVERSION}, {"sb1 join 1 a b  0 ", SB_ENV_EKIND},
        {"sb1 offer 1 a! b  0 ", SB_ENV_EFIELD},  {"sb1 offer 1 a b  9 ", SB_ENV_EMID},
        {"sb1 offer x a b  0 ", SB_ENV_ESENT},    {"sb1 offer 1 a  r 0 ", SB_ENV_ESHAPE},
        {"sb1 offer 1 a b", SB_ENV_ESEP},
    };
    const char *reasons[N_ELEMS(cases)];
    sb_env_t env;

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *w = cases[i].wire;
        ck_assert_int_eq(sb_env_parse(w, strlen(w), &env, NULL), cases[i].code);
        reasons[i] = NULL;
        ck_assert_int_eq(sb_env_parse(w, strlen(w), &env, &reasons[i]), cases[i].code);
        ck_assert_ptr_nonnull(reasons[i]);
        ck_assert(strlen(reasons[i]) > 10);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(reasons[i], reasons[j]);
    }
    ck_assert_str_eq(reasons[0], "unknown envelope version");
    ck_assert_int_eq(sb_env_parse("sb1 bye 1 a b  0 ", 17, &env, NULL), 0);
    /* replaced names the session's peer as from and to, with no room, mid or payload */
    ck_assert_int_eq(sb_env_parse("sb1 replaced 1 a a  0 ", 22, &env, NULL), 0);
    ck_assert_int_eq(env.kind, SB_ENV_REPLACED);
    ck_assert_int_eq(sb_env_parse("sb1 replaced 1 a   0 ", 21, &env, NULL), SB_ENV_ESHAPE);
    ck_assert_int_eq(sb_env_parse("sb1 replaced 1 a a r 0 ", 23, &env, NULL), SB_ENV_ESHAPE);
    ck_assert_int_eq(sb_env_parse("sb1 replaced 1 a a  0 x", 23, &env, NULL), SB_ENV_ESHAPE);
    /* resent too */
    ck_assert_int_eq(sb_env_parse("sb1 resent 1 a a  0 ", 20, &env, NULL), 0);
    ck_assert_int_eq(env.kind, SB_ENV_RESENT);
    ck_assert_int_eq(sb_env_parse("sb1 resent 1 a   0 ", 19, &env, NULL), SB_ENV_ESHAPE);
    ck_assert_int_eq(sb_env_parse("sb1 resent 1 a a r 0 ", 21, &env, NULL), SB_ENV_ESHAPE);
    ck_assert_int_eq(sb_env_parse("sb1 resent 1 a a  3 \"m\"", 23, &env, NULL), SB_ENV_ESHAPE);
}
END_TEST

/* ---- names and the Lua pattern -------------------------------------------------------------- */

START_TEST(test_kind_names)
{
    static const char *const names[] = {"offer",       "answer",    "candidate", "bye",
                                        "peer-joined", "peer-left", "replaced",  "resent"};

    for (int k = SB_ENV_OFFER; k <= SB_ENV_RESENT; k++) {
        ck_assert_str_eq(sb_env_kind_name((sb_env_kind_t)k), names[k]);
        ck_assert_int_eq(sb_env_kind_parse(names[k], strlen(names[k])), k);
        ck_assert_int_eq(sb_env_is_relay((sb_env_kind_t)k), k <= SB_ENV_BYE);
        /* compared with the length, never as a prefix either way */
        ck_assert_int_eq(sb_env_kind_parse(names[k], strlen(names[k]) - 1), -1);
    }
    ck_assert_int_eq(sb_env_kind_parse("offerx", 5), SB_ENV_OFFER);
    ck_assert_int_eq(sb_env_kind_parse("offerx", 6), -1);
    ck_assert_int_eq(sb_env_kind_parse("", 0), -1);
    ck_assert_int_eq(sb_env_kind_parse("Offer", 5), -1);
    ck_assert_int_eq(sb_env_kind_parse("join", 4), -1);
    ck_assert_int_eq(sb_env_kind_parse("peer-joined\0", 12), -1);
    ck_assert_ptr_null(sb_env_kind_name((sb_env_kind_t)(SB_ENV_RESENT + 1)));
    ck_assert_ptr_null(sb_env_kind_name((sb_env_kind_t)-1));
    /* the room events share their names with the client messages they become */
    ck_assert_str_eq(sb_env_kind_name(SB_ENV_OFFER), sb_msg_type_name(SB_MSG_OFFER));
    ck_assert_str_eq(sb_env_kind_name(SB_ENV_BYE), sb_msg_type_name(SB_MSG_BYE));
}
END_TEST

/* What the Redis scripts build with string.format is what sb_env_write builds. */
START_TEST(test_lua_pattern)
{
    static const uint64_t sents[] = {0, 7, 1712345678901234u, UINT64_MAX};
    const char *peers[] = {"alice", "a", repeat('p', SB_ID_MAX)};
    char room_max[SB_ROOM_MAX + 1];

    memcpy(room_max, repeat(':', SB_ROOM_MAX), sizeof(room_max));
    const char *rooms[] = {"lobby:1", "r", room_max};

    /* only %s conversions, and nothing a Lua string literal would need to escape */
    const char *pat = SB_ENV_ROOM_EVENT_LUA;
    int conversions = 0;
    for (const char *c = pat; *c; c++) {
        REQUIRE(*c != '"' && *c != '\'' && *c != '\\' && *c != '\n', "pattern holds %c", *c);
        if (*c == '%') {
            REQUIRE(c[1] == 's', "pattern holds %%%c", c[1]);
            conversions++;
            c++;
        }
    }
    ck_assert_int_eq(conversions, 4);

    for (size_t e = 0; e < N_ELEMS(event_kinds); e++) {
        for (size_t s = 0; s < N_ELEMS(sents); s++) {
            for (size_t i = 0; i < N_ELEMS(peers); i++) {
                char sent[32], lua[512];
                size_t len;
                sb_env_t env = event(event_kinds[e], sents[s], peers[i], rooms[i]);
                char *wire = round_trip(&env, &len);
                snprintf(sent, sizeof(sent), "%llu", (unsigned long long)sents[s]);
                int n = snprintf(lua, sizeof(lua), SB_ENV_ROOM_EVENT_LUA,
                                 sb_env_kind_name(event_kinds[e]), sent, peers[i], rooms[i]);
                REQUIRE((size_t)n == len && memcmp(lua, wire, len) == 0,
                        "Lua pattern gives %s, sb_env_write %s", show(lua, (size_t)n),
                        show(wire, len));
                free(wire);
            }
        }
    }
}
END_TEST

/* ---- resend requests ------------------------------------------------------------------------- */

/* Parses a request from an exact-size heap copy and returns the IDs it names, comma-separated,
 * in out; or the parse's error code. */
static int resend_ids(const char *wire, uint64_t *from, uint64_t *until, char *out, size_t cap)
{
    size_t len = strlen(wire), ids = 0;
    char *buf = malloc(len ? len : 1);
    REQUIRE(buf != NULL, "out of memory");
    memcpy(buf, wire, len);
    const char *err = NULL;
    int rc = sb_env_resend_parse(buf, len, from, until, &ids, &err);
    out[0] = '\0';
    if (rc == 0) {
        REQUIRE(err == NULL, "an error reason on success");
        sb_str_t id;
        size_t pos = ids, used = 0;
        while (sb_env_resend_next(buf, len, &pos, &id)) {
            REQUIRE(id.len > 0 && used + id.len + 2 < cap, "an empty or too long ID");
            if (used > 0)
                out[used++] = ',';
            memcpy(out + used, id.p, id.len);
            used += id.len;
            out[used] = '\0';
        }
    } else {
        REQUIRE(err != NULL && err[0] != '\0', "no reason for %d", rc);
    }
    free(buf);
    return rc;
}

START_TEST(test_resend_requests)
{
    char head[SB_ENV_RESEND_HEAD_MAX], ids[4096];
    uint64_t from = 7, until = 7;

    size_t n = sb_env_resend_head(0, 0, head);
    ck_assert_uint_eq(n, strlen("sb1 resend 0 0"));
    ck_assert(memcmp(head, "sb1 resend 0 0", n) == 0);
    n = sb_env_resend_head(UINT64_MAX, UINT64_MAX, head);
    ck_assert(n < SB_ENV_RESEND_HEAD_MAX);
    ck_assert(memcmp(head, "sb1 resend 18446744073709551615 18446744073709551615", n) == 0);

    ck_assert_int_eq(resend_ids("sb1 resend 0 0", &from, &until, ids, sizeof(ids)), 0);
    ck_assert(from == 0 && until == 0);
    ck_assert_str_eq(ids, "");
    ck_assert_int_eq(resend_ids("sb1 resend 2500 40 alice", &from, &until, ids, sizeof(ids)), 0);
    ck_assert(from == 2500 && until == 40);
    ck_assert_str_eq(ids, "alice");
    ck_assert_int_eq(resend_ids("sb1 resend 18446744073709551615 9 a b.c d_e-f", &from, &until, ids,
                                sizeof(ids)),
                     0);
    ck_assert(from == UINT64_MAX && until == 9);
    ck_assert_str_eq(ids, "a,b.c,d_e-f");

    /* the longest ID, and one past it */
    char wire[256], id[SB_ID_MAX + 2];
    memset(id, 'x', SB_ID_MAX);
    id[SB_ID_MAX] = '\0';
    snprintf(wire, sizeof(wire), "sb1 resend 1 1 %s", id);
    ck_assert_int_eq(resend_ids(wire, &from, &until, ids, sizeof(ids)), 0);
    ck_assert_str_eq(ids, id);
    id[SB_ID_MAX] = 'x';
    id[SB_ID_MAX + 1] = '\0';
    snprintf(wire, sizeof(wire), "sb1 resend 1 1 %s", id);
    ck_assert_int_eq(resend_ids(wire, &from, &until, ids, sizeof(ids)), SB_ENV_EFIELD);

    static const struct {
        const char *wire;
        int rc;
    } bad[] = {
        {"", SB_ENV_EVERSION},
        {"sb2 resend 0 0", SB_ENV_EVERSION},
        {"sb1", SB_ENV_EVERSION},
        {"sb1 offer 0 a b  0 ", SB_ENV_EKIND},
        {"sb1 resends 0 0", SB_ENV_EKIND},
        {"sb1 resend ", SB_ENV_ESENT},
        {"sb1 resend 0", SB_ENV_ESEP},
        {"sb1 resend 0 ", SB_ENV_ESENT},
        {"sb1 resend 01 0", SB_ENV_ESENT},
        {"sb1 resend 1 01", SB_ENV_ESENT},
        {"sb1 resend x 0", SB_ENV_ESENT},
        {"sb1 resend 18446744073709551616 0", SB_ENV_ESENT},
        {"sb1 resend 5 6", SB_ENV_ESENT},
        {"sb1 resend 0 0 ", SB_ENV_EFIELD},
        {"sb1 resend 0 0 a ", SB_ENV_EFIELD},
        {"sb1 resend 0 0 a  b", SB_ENV_EFIELD},
        {"sb1 resend 0 0 a/b", SB_ENV_EFIELD},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        REQUIRE(resend_ids(bad[i].wire, &from, &until, ids, sizeof(ids)) == bad[i].rc,
                "\"%s\" not refused with %d", bad[i].wire, bad[i].rc);
}
END_TEST

/* A peer's channel: sb:peer:<id> on one Redis, sb:{<id>}:ch on a Redis Cluster (its hash tag
 * the ID, as the directory's keys of that peer), and the longest ID's fits the buffer. */
START_TEST(test_peer_channel)
{
    char out[SB_ENV_CHANNEL_MAX], id[SB_ID_MAX + 1];
    ck_assert_uint_eq(sb_env_peer_channel("alice", 0, out), 13);
    ck_assert_str_eq(out, "sb:peer:alice");
    ck_assert_uint_eq(sb_env_peer_channel("alice", 1, out), 13);
    ck_assert_str_eq(out, "sb:{alice}:ch");
    memset(id, 'x', SB_ID_MAX);
    id[SB_ID_MAX] = '\0';
    for (int sharded = 0; sharded <= 1; sharded++) {
        size_t n = sb_env_peer_channel(id, sharded, out);
        ck_assert_uint_lt(n, sizeof(out));
        ck_assert_uint_eq(strlen(out), n);
    }
}
END_TEST

static Suite *envelope_suite(void)
{
    Suite *s = suite_create("envelope");
    TCase *tc;

    tc = tcase_create("round trips");
    tcase_add_test(tc, test_exact_bytes);
    tcase_add_test(tc, test_head);
    tcase_add_test(tc, test_round_trip_every_kind);
    tcase_add_test(tc, test_round_trip_payload_bytes);
    tcase_add_test(tc, test_round_trip_mids);
    tcase_add_test(tc, test_round_trip_sent);
    tcase_add_test(tc, test_round_trip_names);
    tcase_add_test(tc, test_absent_fields_reset);
    tcase_add_test(tc, test_truncation);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse errors");
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_bad_kind);
    tcase_add_test(tc, test_bad_sent);
    tcase_add_test(tc, test_bad_names);
    tcase_add_test(tc, test_name_every_byte);
    tcase_add_test(tc, test_name_lengths);
    tcase_add_test(tc, test_kind_rules);
    tcase_add_test(tc, test_bad_midlen);
    tcase_add_test(tc, test_missing_separators);
    tcase_add_test(tc, test_err_reasons);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_kind_names);
    tcase_add_test(tc, test_lua_pattern);
    suite_add_tcase(s, tc);

    tc = tcase_create("resend requests");
    tcase_add_test(tc, test_resend_requests);
    tcase_add_test(tc, test_peer_channel);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(envelope_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
