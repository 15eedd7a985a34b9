/* Unit tests for proto/ws: the streaming RFC 6455 frame reader, close codes and frame writers. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define BIG (1u << 20) /* a max_message no test frame reaches */

static const uint8_t MASK[4] = {0x37, 0xFA, 0x21, 0x3D}; /* RFC 6455 section 5.7's key */

/* The reader's reasons, word for word: they go to the peer in the close frame. */
#define NOT_MASKED "client frame is not masked"
#define MASKED "server frame is masked"
#define NO_BINARY "binary messages are not supported"
#define NOT_MINIMAL "length not in its minimal encoding"
#define TOP_BIT "length has its most significant bit set"
#define RSV "reserved bits set without an extension"
#define RESERVED_OP "reserved opcode"
#define CONTROL_LONG "control frame payload over 125 bytes"
#define CONTROL_FRAGMENTED "fragmented control frame"
#define CONT_ALONE "continuation frame without a message"
#define NEW_INSIDE "new message inside a fragmented one"
#define TOO_BIG "message too big"
#define BAD_UTF8 "invalid UTF-8 in a text message"
#define CUT_UTF8 "text message ends inside a UTF-8 sequence"
#define CLOSE_ONE_BYTE "close frame with a 1-byte payload"
#define CLOSE_CODE "invalid close code"
#define CLOSE_UTF8 "close reason is not valid UTF-8"

/* ---- building input -------------------------------------------------------------------------- */

/* A growable byte buffer holding the wire bytes of one test. */
typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
    size_t ends[32]; /* offset just past each frame appended with put_frame/put_raw */
    size_t nframes;
} wire_t;

static void put(wire_t *w, const void *data, size_t len)
{
    if (w->len + len > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < w->len + len)
            cap *= 2;
        w->p = realloc(w->p, cap);
        ck_assert_ptr_nonnull(w->p);
        w->cap = cap;
    }
    if (len)
        memcpy(w->p + w->len, data, len);
    w->len += len;
}

static void end_frame(wire_t *w)
{
    ck_assert_uint_lt(w->nframes, sizeof w->ends / sizeof w->ends[0]);
    w->ends[w->nframes++] = w->len;
}

/* Appends a frame built with the writer under test; mask is NULL for an unmasked frame. */
static void put_frame(wire_t *w, int fin, int opcode, const void *payload, size_t len,
                      const uint8_t *mask)
{
    uint8_t hdr[SB_WS_MAX_HEADER];
    size_t n = sb_ws_write_header(hdr, fin, opcode, len, mask);
    size_t at;

    ck_assert_uint_le(n, SB_WS_MAX_HEADER);
    put(w, hdr, n);
    at = w->len;
    put(w, payload, len);
    if (mask && len)
        sb_ws_mask(w->p + at, len, mask, 0);
    end_frame(w);
}

static void put_text(wire_t *w, int fin, int opcode, const char *s)
{
    put_frame(w, fin, opcode, s, strlen(s), MASK);
}

/* Appends a frame whose header is written by hand, so that the test can break its rules:
 * b0 is the first byte (FIN, RSV, opcode); form is 7, 16 or 64 (the length encoding). The
 * payload is masked here with a plain XOR, independently of sb_ws_mask. */
static void put_raw(wire_t *w, uint8_t b0, int form, uint64_t len, const uint8_t *mask,
                    const void *payload, size_t payload_len)
{
    uint8_t h[SB_WS_MAX_HEADER];
    size_t n = 0;
    uint8_t m = mask ? 0x80 : 0;
    size_t at;

    h[n++] = b0;
    if (form == 7) {
        h[n++] = m | (uint8_t)len;
    } else if (form == 16) {
        h[n++] = m | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = m | 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            h[n++] = (uint8_t)(len >> shift);
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    put(w, h, n);
    at = w->len;
    put(w, payload, payload_len);
    if (mask)
        for (size_t i = 0; i < payload_len; i++)
            w->p[at + i] ^= mask[i % 4];
    end_frame(w);
}

/* Appends a masked close frame with a code and reason. */
static void put_close(wire_t *w, unsigned code, const void *reason, size_t reason_len)
{
    uint8_t p[SB_WS_MAX_CONTROL];

    ck_assert_uint_le(reason_len + 2, sizeof p);
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (reason_len)
        memcpy(p + 2, reason, reason_len);
    put_raw(w, 0x88, 7, reason_len + 2, MASK, p, reason_len + 2);
}

static void wire_free(wire_t *w)
{
    free(w->p);
    memset(w, 0, sizeof *w);
}

/* ---- driving the reader ---------------------------------------------------------------------- */

typedef struct {
    sb_ws_event_type_t type;
    uint8_t *data;
    size_t len;
    uint16_t close_code;
    size_t at; /* input offset consumed when the event was reported */
} rec_t;

typedef struct {
    int rc;            /* 0, or the SB_WS_E* code of the protocol violation the reader reported */
    const char *error; /* the reason it gave with rc */
    size_t consumed;   /* input bytes consumed in total */
    rec_t ev[64];
    size_t nev;
    const char *misuse; /* set when the reader broke its own contract */
} run_t;

static void run_free(run_t *run)
{
    for (size_t i = 0; i < run->nev; i++)
        free(run->ev[i].data);
    run->nev = 0;
}

/* Feeds buf to r the way a connection would: bytes become available chunk at a time (all at once
 * when chunk is 0); after each arrival the reader is called until it needs more, and bytes it did
 * not consume are presented again, followed by the next ones. Each call gets a heap copy of
 * exactly the pending bytes, so ASan catches reads past them, and the copy is checked unchanged.
 * Events are copied out at once (their data lives only until the next call). */
static void drive(sb_ws_reader_t *r, const uint8_t *buf, size_t len, size_t chunk, run_t *run)
{
    size_t pos = 0, avail = 0;

    memset(run, 0, sizeof *run);
    for (;;) {
        avail = (chunk == 0 || len - avail < chunk) ? len : avail + chunk;
        for (;;) {
            size_t n = avail - pos;
            uint8_t *copy = malloc(n ? n : 1);
            sb_ws_event_t ev;
            int rc;
            const char *why = NULL;

            ck_assert_ptr_nonnull(copy);
            memcpy(copy, buf + pos, n);
            memset(&ev, 0xA5, sizeof ev);
            rc = sb_ws_reader_feed(r, copy, n, &ev, &why);
            if (rc >= 0 && memcmp(copy, buf + pos, n) != 0)
                run->misuse = "feed wrote into its input buffer";
            if (rc < 0) {
                run->rc = rc;
                run->error = why;
                run->consumed = pos;
                if (rc < SB_WS_ENOMEM)
                    run->misuse = "feed returned a negative value that is no SB_WS_E* code";
                else if (ev.type != SB_WS_EV_NONE)
                    run->misuse = "feed failed with an event";
                else if (why == NULL)
                    run->misuse = "feed failed without a reason";
                /* a failed reader stays failed: the same code and reason, nothing consumed, and
                 * err may be NULL */
                else if (sb_ws_reader_feed(r, copy, n, &ev, &why) != rc || why != run->error ||
                         ev.type != SB_WS_EV_NONE)
                    run->misuse = "a second call after a failure answered differently";
                else if (sb_ws_reader_feed(r, copy, n, &ev, NULL) != rc)
                    run->misuse = "a call with err NULL answered differently";
                free(copy);
                return;
            }
            if ((size_t)rc > n) {
                free(copy);
                run->misuse = "feed consumed more bytes than it was given";
                return;
            }
            if ((unsigned)ev.type > SB_WS_EV_CLOSE) {
                free(copy);
                run->misuse = "feed did not set *ev";
                return;
            }
            pos += (size_t)rc;
            if (ev.type != SB_WS_EV_NONE) {
                rec_t *e = &run->ev[run->nev];

                if (run->nev == sizeof run->ev / sizeof run->ev[0]) {
                    free(copy);
                    run->misuse = "too many events";
                    return;
                }
                e->type = ev.type;
                e->len = ev.len;
                e->close_code = ev.close_code;
                e->at = pos;
                e->data = malloc(ev.len ? ev.len : 1);
                ck_assert_ptr_nonnull(e->data);
                if (ev.len) {
                    ck_assert_ptr_nonnull(ev.data);
                    memcpy(e->data, ev.data, ev.len);
                }
                run->nev++;
            }
            free(copy);
            if (rc == 0 && ev.type == SB_WS_EV_NONE)
                break;
        }
        if (avail == len)
            break;
    }
    run->consumed = pos;
}

/* Runs buf through a fresh reader and returns the result in *run. */
static void feed_new(const uint8_t *buf, size_t len, sb_ws_role_t role, size_t max_message,
                     int allow_binary, size_t chunk, run_t *run)
{
    sb_ws_reader_t r;

    sb_ws_reader_init(&r, role, max_message, allow_binary);
    drive(&r, buf, len, chunk, run);
    sb_ws_reader_free(&r);
}

static const char *event_name(sb_ws_event_type_t t)
{
    switch (t) {
    case SB_WS_EV_NONE:
        return "NONE";
    case SB_WS_EV_TEXT:
        return "TEXT";
    case SB_WS_EV_BINARY:
        return "BINARY";
    case SB_WS_EV_PING:
        return "PING";
    case SB_WS_EV_PONG:
        return "PONG";
    case SB_WS_EV_CLOSE:
        return "CLOSE";
    }
    return "?";
}

/* What a test expects: events in order, then either the end of input or an error. */
typedef struct {
    sb_ws_event_type_t type;
    const void *data;
    size_t len;
    uint16_t close_code;
} want_t;

/* The fields of a want_t for a text message with the data of a string literal. */
#define TEXT_OF(s) SB_WS_EV_TEXT, (s), sizeof(s) - 1, 0

static void assert_events(const run_t *run, const want_t *want, size_t nwant)
{
    ck_assert_msg(run->misuse == NULL, "reader misuse: %s", run->misuse);
    ck_assert_msg(run->nev == nwant, "%zu events, expected %zu", run->nev, nwant);
    for (size_t i = 0; i < nwant; i++) {
        const rec_t *e = &run->ev[i];
        ck_assert_msg(e->type == want[i].type, "event %zu is %s, expected %s", i,
                      event_name(e->type), event_name(want[i].type));
        ck_assert_msg(e->len == want[i].len, "event %zu (%s) has %zu bytes, expected %zu", i,
                      event_name(e->type), e->len, want[i].len);
        if (want[i].len)
            ck_assert_msg(memcmp(e->data, want[i].data, want[i].len) == 0,
                          "event %zu (%s): wrong data", i, event_name(e->type));
        if (want[i].type == SB_WS_EV_CLOSE)
            ck_assert_msg(e->close_code == want[i].close_code, "close code %u, expected %u",
                          e->close_code, want[i].close_code);
    }
}

/* Asserts that the whole input was consumed without error and produced exactly want. */
static void assert_ok(const run_t *run, size_t len, const want_t *want, size_t nwant)
{
    ck_assert_msg(run->rc == 0, "feed failed with %d (%s)", run->rc,
                  run->error ? run->error : "no error text");
    assert_events(run, want, nwant);
    ck_assert_msg(run->consumed == len, "consumed %zu of %zu bytes", run->consumed, len);
}

/* Asserts that the reader failed with code and exactly the reason why, after producing exactly
 * want. */
static void assert_fail(const run_t *run, int code, const char *why, const want_t *want,
                        size_t nwant)
{
    ck_assert_msg(run->misuse == NULL, "reader misuse: %s", run->misuse);
    ck_assert_msg(run->rc < 0, "feed accepted the input (%zu events), expected error %d (%s)",
                  run->nev, code, why);
    ck_assert_msg(run->rc == code && strcmp(run->error, why) == 0,
                  "error %d (%s), expected %d (%s)", run->rc, run->error, code, why);
    assert_events(run, want, nwant);
}

/* Feeds w to a fresh server reader (whole, then byte by byte) and expects one error. */
static void expect_error(const wire_t *w, sb_ws_role_t role, size_t max, int allow_binary, int code,
                         const char *why)
{
    run_t run;

    feed_new(w->p, w->len, role, max, allow_binary, 0, &run);
    assert_fail(&run, code, why, NULL, 0);
    run_free(&run);
    feed_new(w->p, w->len, role, max, allow_binary, 1, &run);
    assert_fail(&run, code, why, NULL, 0);
    run_free(&run);
}

/* Feeds w to a fresh reader (whole, then byte by byte) and expects exactly want. */
static void expect_events(const wire_t *w, sb_ws_role_t role, size_t max, int allow_binary,
                          const want_t *want, size_t nwant)
{
    run_t run;

    feed_new(w->p, w->len, role, max, allow_binary, 0, &run);
    assert_ok(&run, w->len, want, nwant);
    run_free(&run);
    feed_new(w->p, w->len, role, max, allow_binary, 1, &run);
    assert_ok(&run, w->len, want, nwant);
    run_free(&run);
}

static uint8_t *pattern(size_t len)
{
    uint8_t *p = malloc(len ? len : 1);

    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)('a' + i % 26);
    return p;
}

/* ---- data frames ----------------------------------------------------------------------------- */

START_TEST(test_masked_text)
{
    wire_t w = {0};
    const want_t want[] = {{TEXT_OF("Hello, switchboard")}};

    put_text(&w, 1, SB_WS_OP_TEXT, "Hello, switchboard");
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);
}
END_TEST

START_TEST(test_unmasked_to_server)
{
    wire_t w = {0};

    put_frame(&w, 1, SB_WS_OP_TEXT, "hi", 2, NULL);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, NOT_MASKED);
    wire_free(&w);
}
END_TEST

START_TEST(test_client_role)
{
    wire_t w = {0};
    const want_t want[] = {{TEXT_OF("hi")}};

    put_frame(&w, 1, SB_WS_OP_TEXT, "hi", 2, NULL);
    expect_events(&w, SB_WS_CLIENT, BIG, 0, want, 1);
    wire_free(&w);

    put_frame(&w, 1, SB_WS_OP_TEXT, "hi", 2, MASK); /* a server must not mask */
    expect_error(&w, SB_WS_CLIENT, BIG, 0, SB_WS_EPROTOCOL, MASKED);
    wire_free(&w);
}
END_TEST

START_TEST(test_empty_text)
{
    wire_t w = {0};
    const want_t want[] = {{SB_WS_EV_TEXT, "", 0, 0}};

    put_text(&w, 1, SB_WS_OP_TEXT, "");
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);
}
END_TEST

START_TEST(test_binary_refused)
{
    wire_t w = {0};

    put_frame(&w, 1, SB_WS_OP_BINARY, "\x00\x01", 2, MASK);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EBINARY, NO_BINARY);
    wire_free(&w);

    put_frame(&w, 0, SB_WS_OP_BINARY, "\x00\x01", 2, MASK); /* the first fragment already */
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EBINARY, NO_BINARY);
    wire_free(&w);
}
END_TEST

START_TEST(test_binary_allowed)
{
    wire_t w = {0};
    static const uint8_t bin[] = {0x00, 0xFF, 0xC0, 0x80, 0xED, 0xA0, 0x80}; /* not UTF-8 */
    const want_t want[] = {{SB_WS_EV_BINARY, bin, sizeof bin, 0}};

    put_frame(&w, 1, SB_WS_OP_BINARY, bin, sizeof bin, MASK);
    expect_events(&w, SB_WS_SERVER, BIG, 1, want, 1);
    wire_free(&w);

    put_frame(&w, 0, SB_WS_OP_BINARY, bin, 3, MASK);
    put_frame(&w, 1, SB_WS_OP_CONT, bin + 3, sizeof bin - 3, MASK);
    expect_events(&w, SB_WS_SERVER, BIG, 1, want, 1);
    wire_free(&w);
}
END_TEST

/* Each length in its minimal encoding: 7-bit for 0 and 125, 16-bit for 126 and 65535, 64-bit
 * for 65536. Text and binary, masked to a server and unmasked to a client. */
static const size_t lengths[] = {0, 1, 125, 126, 127, 65535, 65536, 100000};

START_TEST(test_lengths)
{
    size_t len = lengths[_i];
    uint8_t *payload = pattern(len);
    wire_t w = {0};
    run_t run;
    const want_t text[] = {{SB_WS_EV_TEXT, payload, len, 0}};
    const want_t bin[] = {{SB_WS_EV_BINARY, payload, len, 0}};

    put_frame(&w, 1, SB_WS_OP_TEXT, payload, len, MASK);
    feed_new(w.p, w.len, SB_WS_SERVER, BIG, 0, 0, &run);
    assert_ok(&run, w.len, text, 1);
    run_free(&run);
    feed_new(w.p, w.len, SB_WS_SERVER, BIG, 0, 1000, &run);
    assert_ok(&run, w.len, text, 1);
    run_free(&run);
    wire_free(&w);

    put_frame(&w, 1, SB_WS_OP_BINARY, payload, len, NULL);
    feed_new(w.p, w.len, SB_WS_CLIENT, BIG, 1, 0, &run);
    assert_ok(&run, w.len, bin, 1);
    run_free(&run);
    wire_free(&w);

    /* the same frame with a hand-written header */
    put_raw(&w, 0x81, len < 126 ? 7 : len <= 65535 ? 16 : 64, len, MASK, payload, len);
    feed_new(w.p, w.len, SB_WS_SERVER, BIG, 0, 0, &run);
    assert_ok(&run, w.len, text, 1);
    run_free(&run);
    wire_free(&w);
    free(payload);
}
END_TEST

/* A length in a longer encoding than it needs is a protocol error (RFC 6455 5.2: "the minimal
 * number of bytes MUST be used"). */
START_TEST(test_non_minimal_length)
{
    static const struct {
        int form;
        size_t len;
    } cases[] = {{16, 0}, {16, 1}, {16, 125}, {64, 0}, {64, 125}, {64, 126}, {64, 65535}};
    uint8_t *payload = pattern(65535);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wire_t w = {0};
        run_t run;

        put_raw(&w, 0x81, cases[i].form, cases[i].len, MASK, payload, cases[i].len);
        feed_new(w.p, w.len, SB_WS_SERVER, BIG, 0, 0, &run);
        ck_assert_msg(run.rc == SB_WS_EPROTOCOL && strcmp(run.error, NOT_MINIMAL) == 0,
                      "length %zu in the %d-bit form: rc %d (%s), expected SB_WS_EPROTOCOL",
                      cases[i].len, cases[i].form, run.rc, run.error ? run.error : "no reason");
        run_free(&run);
        wire_free(&w);
    }
    free(payload);
}
END_TEST

START_TEST(test_length_top_bit)
{
    wire_t w = {0};

    put_raw(&w, 0x81, 64, UINT64_C(0x8000000000000000), MASK, NULL, 0);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, TOP_BIT);
    wire_free(&w);

    put_raw(&w, 0x82, 64, UINT64_C(0xFFFFFFFFFFFFFFFF), MASK, NULL, 0);
    expect_error(&w, SB_WS_SERVER, BIG, 1, SB_WS_EPROTOCOL, TOP_BIT);
    wire_free(&w);
}
END_TEST

START_TEST(test_rsv_bits)
{
    static const uint8_t b0[] = {0xC1, 0xA1, 0x91, 0xF1, 0xC9, 0xA8, 0x90};
    wire_t w = {0};

    for (size_t i = 0; i < sizeof b0; i++) {
        put_raw(&w, b0[i], 7, 1, MASK, "x", 1);
        expect_error(&w, SB_WS_SERVER, BIG, 1, SB_WS_EPROTOCOL, RSV);
        wire_free(&w);
    }
}
END_TEST

START_TEST(test_reserved_opcodes)
{
    static const int ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    wire_t w = {0};

    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        put_raw(&w, (uint8_t)(0x80 | ops[i]), 7, 0, MASK, NULL, 0);
        expect_error(&w, SB_WS_SERVER, BIG, 1, SB_WS_EPROTOCOL, RESERVED_OP);
        wire_free(&w);

        put_raw(&w, (uint8_t)ops[i], 7, 1, MASK, "x", 1); /* FIN clear */
        expect_error(&w, SB_WS_SERVER, BIG, 1, SB_WS_EPROTOCOL, RESERVED_OP);
        wire_free(&w);
    }
}
END_TEST

/* ---- control frames -------------------------------------------------------------------------- */

START_TEST(test_ping_pong)
{
    wire_t w = {0};
    const want_t want[] = {
        {SB_WS_EV_PING, "are you there", 13, 0},
        {SB_WS_EV_PONG, "yes", 3, 0},
        {SB_WS_EV_PING, "", 0, 0},
        {SB_WS_EV_PONG, "", 0, 0},
    };

    put_frame(&w, 1, SB_WS_OP_PING, "are you there", 13, MASK);
    put_frame(&w, 1, SB_WS_OP_PONG, "yes", 3, MASK);
    put_frame(&w, 1, SB_WS_OP_PING, NULL, 0, MASK);
    put_frame(&w, 1, SB_WS_OP_PONG, NULL, 0, MASK);
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 4);
    wire_free(&w);
}
END_TEST

START_TEST(test_control_max_payload)
{
    uint8_t *payload = pattern(126);
    wire_t w = {0};
    const want_t want[] = {{SB_WS_EV_PING, payload, 125, 0}};

    /* pings carry arbitrary bytes, not text: no UTF-8 check */
    payload[0] = 0xFF;
    put_frame(&w, 1, SB_WS_OP_PING, payload, 125, MASK);
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);

    put_raw(&w, 0x89, 16, 126, MASK, payload, 126);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CONTROL_LONG);
    wire_free(&w);
    put_raw(&w, 0x8A, 16, 126, MASK, payload, 126);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CONTROL_LONG);
    wire_free(&w);
    put_raw(&w, 0x88, 16, 126, MASK, payload, 126);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CONTROL_LONG);
    wire_free(&w);
    free(payload);
}
END_TEST

START_TEST(test_control_fragmented)
{
    wire_t w = {0};

    put_frame(&w, 0, SB_WS_OP_PING, "x", 1, MASK);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CONTROL_FRAGMENTED);
    wire_free(&w);
    put_frame(&w, 0, SB_WS_OP_PONG, "x", 1, MASK);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CONTROL_FRAGMENTED);
    wire_free(&w);
    put_raw(&w, 0x08, 7, 2, MASK, "\x03\xE8", 2);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CONTROL_FRAGMENTED);
    wire_free(&w);
}
END_TEST

/* ---- fragmentation --------------------------------------------------------------------------- */

START_TEST(test_fragments)
{
    wire_t w = {0};
    const want_t want[] = {{TEXT_OF("Hello world")}};

    put_text(&w, 0, SB_WS_OP_TEXT, "Hel");
    put_text(&w, 0, SB_WS_OP_CONT, "lo ");
    put_text(&w, 1, SB_WS_OP_CONT, "world");
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);

    /* empty fragments are allowed anywhere */
    put_text(&w, 0, SB_WS_OP_TEXT, "");
    put_text(&w, 0, SB_WS_OP_CONT, "Hello world");
    put_text(&w, 1, SB_WS_OP_CONT, "");
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);
}
END_TEST

START_TEST(test_control_between_fragments)
{
    wire_t w = {0};
    const want_t want[] = {
        {SB_WS_EV_PING, "p", 1, 0},
        {SB_WS_EV_PONG, "q", 1, 0},
        {TEXT_OF("Hello world")},
        {TEXT_OF("next")},
    };

    put_text(&w, 0, SB_WS_OP_TEXT, "Hel");
    put_text(&w, 1, SB_WS_OP_PING, "p");
    put_text(&w, 0, SB_WS_OP_CONT, "lo ");
    put_text(&w, 1, SB_WS_OP_PONG, "q");
    put_text(&w, 1, SB_WS_OP_CONT, "world");
    put_text(&w, 1, SB_WS_OP_TEXT, "next"); /* and the reader is ready for a new message */
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 4);
    wire_free(&w);
}
END_TEST

START_TEST(test_cont_without_message)
{
    wire_t w = {0};

    put_text(&w, 1, SB_WS_OP_CONT, "x");
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CONT_ALONE);
    wire_free(&w);

    put_text(&w, 0, SB_WS_OP_CONT, "x");
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CONT_ALONE);
    wire_free(&w);

    /* after a complete message there is again none in progress */
    {
        const want_t want[] = {{TEXT_OF("done")}};
        run_t run;

        put_text(&w, 1, SB_WS_OP_TEXT, "done");
        put_text(&w, 1, SB_WS_OP_CONT, "x");
        feed_new(w.p, w.len, SB_WS_SERVER, BIG, 0, 0, &run);
        assert_fail(&run, SB_WS_EPROTOCOL, CONT_ALONE, want, 1);
        run_free(&run);
        wire_free(&w);
    }
}
END_TEST

START_TEST(test_new_message_during_fragments)
{
    wire_t w = {0};

    put_text(&w, 0, SB_WS_OP_TEXT, "Hel");
    put_text(&w, 1, SB_WS_OP_TEXT, "lo");
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, NEW_INSIDE);
    wire_free(&w);

    put_text(&w, 0, SB_WS_OP_TEXT, "Hel");
    put_frame(&w, 1, SB_WS_OP_BINARY, "lo", 2, MASK);
    expect_error(&w, SB_WS_SERVER, BIG, 1, SB_WS_EPROTOCOL, NEW_INSIDE);
    wire_free(&w);

    put_frame(&w, 0, SB_WS_OP_BINARY, "Hel", 3, MASK);
    put_text(&w, 0, SB_WS_OP_TEXT, "lo");
    expect_error(&w, SB_WS_SERVER, BIG, 1, SB_WS_EPROTOCOL, NEW_INSIDE);
    wire_free(&w);
}
END_TEST

/* ---- size limit ------------------------------------------------------------------------------ */

START_TEST(test_max_message)
{
    wire_t w = {0};
    const want_t want[] = {{TEXT_OF("0123456789")}};

    put_text(&w, 1, SB_WS_OP_TEXT, "0123456789");
    expect_events(&w, SB_WS_SERVER, 10, 0, want, 1);
    wire_free(&w);

    put_text(&w, 1, SB_WS_OP_TEXT, "0123456789A");
    expect_error(&w, SB_WS_SERVER, 10, 0, SB_WS_ETOO_BIG, TOO_BIG);
    wire_free(&w);

    put_frame(&w, 1, SB_WS_OP_BINARY, "0123456789A", 11, MASK);
    expect_error(&w, SB_WS_SERVER, 10, 1, SB_WS_ETOO_BIG, TOO_BIG);
    wire_free(&w);
}
END_TEST

START_TEST(test_max_message_fragments)
{
    wire_t w = {0};
    const want_t want[] = {{TEXT_OF("0123456789")}};

    put_text(&w, 0, SB_WS_OP_TEXT, "01234");
    put_text(&w, 0, SB_WS_OP_CONT, "567");
    put_text(&w, 1, SB_WS_OP_CONT, "89");
    expect_events(&w, SB_WS_SERVER, 10, 0, want, 1);
    wire_free(&w);

    /* each fragment fits, their sum does not */
    put_text(&w, 0, SB_WS_OP_TEXT, "01234");
    put_text(&w, 0, SB_WS_OP_CONT, "567");
    put_text(&w, 1, SB_WS_OP_CONT, "89A");
    expect_error(&w, SB_WS_SERVER, 10, 0, SB_WS_ETOO_BIG, TOO_BIG);
    wire_free(&w);
}
END_TEST

/* The limit is enforced from the header alone: nothing of the payload has to arrive. */
START_TEST(test_max_message_from_header)
{
    wire_t w = {0};
    uint8_t hdr[SB_WS_MAX_HEADER];
    size_t n;
    run_t run;

    n = sb_ws_write_header(hdr, 1, SB_WS_OP_TEXT, 11, MASK);
    feed_new(hdr, n, SB_WS_SERVER, 10, 0, 0, &run);
    assert_fail(&run, SB_WS_ETOO_BIG, TOO_BIG, NULL, 0);
    run_free(&run);

    n = sb_ws_write_header(hdr, 1, SB_WS_OP_TEXT, UINT64_C(1) << 40, MASK);
    feed_new(hdr, n, SB_WS_SERVER, BIG, 0, 0, &run);
    assert_fail(&run, SB_WS_ETOO_BIG, TOO_BIG, NULL, 0);
    run_free(&run);

    /* fragments: the second header pushes the sum over */
    put_text(&w, 0, SB_WS_OP_TEXT, "0123456");
    n = sb_ws_write_header(hdr, 1, SB_WS_OP_CONT, 4, MASK);
    put(&w, hdr, n);
    feed_new(w.p, w.len, SB_WS_SERVER, 10, 0, 0, &run);
    assert_fail(&run, SB_WS_ETOO_BIG, TOO_BIG, NULL, 0);
    run_free(&run);
    feed_new(w.p, w.len, SB_WS_SERVER, 10, 0, 1, &run);
    assert_fail(&run, SB_WS_ETOO_BIG, TOO_BIG, NULL, 0);
    run_free(&run);
    wire_free(&w);
}
END_TEST

/* ---- UTF-8 in text messages ------------------------------------------------------------------ */

START_TEST(test_invalid_utf8)
{
    static const struct {
        const char *text, *why;
    } bad[] = {{"\xFF", BAD_UTF8},         {"abc\xC0\x80", BAD_UTF8},
               {"\xED\xA0\x80", BAD_UTF8}, {"\xF4\x90\x80\x80", BAD_UTF8},
               {"caf\xC3", CUT_UTF8},      {"\xE2\x82", CUT_UTF8}};
    wire_t w = {0};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_text(&w, 1, SB_WS_OP_TEXT, bad[i].text);
        expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EUTF8, bad[i].why);
        wire_free(&w);
    }
}
END_TEST

/* Invalid text is refused as soon as the bad byte arrives, not when the frame is complete. */
START_TEST(test_invalid_utf8_fail_fast)
{
    uint8_t payload[100];
    wire_t w = {0};
    run_t run;

    memset(payload, 'a', sizeof payload);
    payload[1] = 0xFF;
    put_frame(&w, 1, SB_WS_OP_TEXT, payload, sizeof payload, MASK);
    ck_assert_uint_eq(w.len, 2 + 4 + 100);
    feed_new(w.p, 2 + 4 + 3, SB_WS_SERVER, BIG, 0, 0, &run);
    assert_fail(&run, SB_WS_EUTF8, BAD_UTF8, NULL, 0);
    run_free(&run);
    wire_free(&w);

    /* the first fragment alone, before any continuation arrives */
    put_text(&w, 0, SB_WS_OP_TEXT, "ok\xC0");
    feed_new(w.p, w.len, SB_WS_SERVER, BIG, 0, 0, &run);
    assert_fail(&run, SB_WS_EUTF8, BAD_UTF8, NULL, 0);
    run_free(&run);
    wire_free(&w);
}
END_TEST

START_TEST(test_utf8_across_fragments)
{
    wire_t w = {0};
    const want_t want[] = {{TEXT_OF("\xF0\x9F\x98\x80 caf\xC3\xA9")}};

    put_text(&w, 0, SB_WS_OP_TEXT, "\xF0\x9F");
    put_text(&w, 0, SB_WS_OP_CONT, "\x98");
    put_text(&w, 0, SB_WS_OP_CONT, "\x80 caf\xC3");
    put_text(&w, 1, SB_WS_OP_CONT, "\xA9");
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);
}
END_TEST

START_TEST(test_message_ends_inside_code_point)
{
    wire_t w = {0};

    put_text(&w, 1, SB_WS_OP_TEXT, "a\xE2\x82");
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EUTF8, CUT_UTF8);
    wire_free(&w);

    put_text(&w, 0, SB_WS_OP_TEXT, "a\xE2");
    put_text(&w, 1, SB_WS_OP_CONT, "\x82");
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EUTF8, CUT_UTF8);
    wire_free(&w);

    /* an empty final fragment cannot finish the code point either */
    put_text(&w, 0, SB_WS_OP_TEXT, "a\xC3");
    put_text(&w, 1, SB_WS_OP_CONT, "");
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EUTF8, CUT_UTF8);
    wire_free(&w);
}
END_TEST

/* ---- close frames ---------------------------------------------------------------------------- */

START_TEST(test_close_empty)
{
    wire_t w = {0};
    const want_t want[] = {{SB_WS_EV_CLOSE, "", 0, SB_WS_CLOSE_NO_STATUS}};

    put_frame(&w, 1, SB_WS_OP_CLOSE, NULL, 0, MASK);
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);
}
END_TEST

START_TEST(test_close_one_byte)
{
    wire_t w = {0};

    put_frame(&w, 1, SB_WS_OP_CLOSE, "\x03", 1, MASK);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CLOSE_ONE_BYTE);
    wire_free(&w);
}
END_TEST

static const unsigned valid_codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                       1010, 1011, 3000, 3999, 4000, 4999};
static const unsigned invalid_codes[] = {0,    1,    999,  1004, 1005, 1006, 1012, 1013,
                                         1014, 1015, 1016, 2000, 2999, 5000, 65535};

START_TEST(test_close_valid_codes)
{
    unsigned code = valid_codes[_i];
    wire_t w = {0};
    const want_t want[] = {{SB_WS_EV_CLOSE, "", 0, (uint16_t)code}};

    put_close(&w, code, NULL, 0);
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);
}
END_TEST

START_TEST(test_close_invalid_codes)
{
    unsigned code = invalid_codes[_i];
    wire_t w = {0};

    put_close(&w, code, NULL, 0);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CLOSE_CODE);
    wire_free(&w);
    put_close(&w, code, "bye", 3);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EPROTOCOL, CLOSE_CODE);
    wire_free(&w);
}
END_TEST

START_TEST(test_close_reason)
{
    wire_t w = {0};
    const want_t want[] = {{SB_WS_EV_CLOSE, "going \xE2\x86\x92 away", 12, 1001}};
    uint8_t long_reason[123];
    const want_t want_long[] = {{SB_WS_EV_CLOSE, long_reason, 123, 4000}};

    put_close(&w, 1001, "going \xE2\x86\x92 away", 12);
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);

    memset(long_reason, 'r', sizeof long_reason); /* the largest reason that fits */
    put_close(&w, 4000, long_reason, sizeof long_reason);
    expect_events(&w, SB_WS_SERVER, BIG, 0, want_long, 1);
    wire_free(&w);
}
END_TEST

START_TEST(test_close_reason_invalid_utf8)
{
    wire_t w = {0};

    put_close(&w, 1000, "\xFF", 1);
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EUTF8, CLOSE_UTF8);
    wire_free(&w);

    put_close(&w, 1000, "bye \xE2\x82", 6); /* ends inside a code point */
    expect_error(&w, SB_WS_SERVER, BIG, 0, SB_WS_EUTF8, CLOSE_UTF8);
    wire_free(&w);
}
END_TEST

START_TEST(test_close_between_fragments)
{
    wire_t w = {0};
    const want_t want[] = {{SB_WS_EV_CLOSE, "", 0, 1000}};

    put_text(&w, 0, SB_WS_OP_TEXT, "Hel");
    put_close(&w, 1000, NULL, 0);
    expect_events(&w, SB_WS_SERVER, BIG, 0, want, 1);
    wire_free(&w);
}
END_TEST

/* ---- streaming ------------------------------------------------------------------------------- */

/* A conversation of several frames, events expected after the frame with the same index. */
static void conversation(wire_t *w, uint8_t *bin)
{
    for (int i = 0; i < 300; i++)
        bin[i] = (uint8_t)i;
    put_text(w, 1, SB_WS_OP_PING, "p1");                   /* 0: PING */
    put_text(w, 0, SB_WS_OP_TEXT, "Hello, ");              /* 1 */
    put_frame(w, 1, SB_WS_OP_PONG, NULL, 0, MASK);         /* 2: PONG */
    put_text(w, 0, SB_WS_OP_CONT, "w\xC3");                /* 3 */
    put_text(w, 1, SB_WS_OP_CONT, "\xA9rld");              /* 4: TEXT */
    put_frame(w, 1, SB_WS_OP_BINARY, bin, 300, MASK);      /* 5: BINARY (16-bit length) */
    put_text(w, 1, SB_WS_OP_TEXT, "");                     /* 6: TEXT */
    put_text(w, 1, SB_WS_OP_TEXT, "{\"type\":\"offer\"}"); /* 7: TEXT */
    put_close(w, 1000, "bye", 3);                          /* 8: CLOSE */
}

static const size_t chunks[] = {0, 1, 2, 3, 5, 7, 13, 64, 1000};

START_TEST(test_streaming)
{
    uint8_t bin[300];
    wire_t w = {0};
    run_t run;
    sb_ws_reader_t r;
    static const size_t frame_of_event[] = {0, 2, 4, 5, 6, 7, 8};
    const want_t want[] = {
        {SB_WS_EV_PING, "p1", 2, 0},
        {SB_WS_EV_PONG, "", 0, 0},
        {TEXT_OF("Hello, w\xC3\xA9rld")},
        {SB_WS_EV_BINARY, bin, 300, 0},
        {TEXT_OF("")},
        {TEXT_OF("{\"type\":\"offer\"}")},
        {SB_WS_EV_CLOSE, "bye", 3, 1000},
    };

    conversation(&w, bin);
    sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 1);
    drive(&r, w.p, w.len, chunks[_i], &run);
    sb_ws_reader_free(&r);
    assert_ok(&run, w.len, want, 7);

    /* at most one event per call, reported with the last byte of its frame: nothing of the next
     * frame is consumed in the same call */
    for (size_t i = 0; i < 7; i++)
        ck_assert_msg(run.ev[i].at == w.ends[frame_of_event[i]],
                      "chunk %zu: event %zu reported after %zu bytes, its frame ends at %zu",
                      chunks[_i], i, run.ev[i].at, w.ends[frame_of_event[i]]);
    run_free(&run);
    wire_free(&w);
}
END_TEST

/* An incomplete header is not consumed, however much of it is there. */
START_TEST(test_partial_header_not_consumed)
{
    uint8_t hdr[SB_WS_MAX_HEADER + 1];
    static const uint64_t lens[] = {5, 300, 70000};
    sb_ws_reader_t r;

    for (size_t i = 0; i < 3; i++) {
        size_t n = sb_ws_write_header(hdr, 1, SB_WS_OP_TEXT, lens[i], MASK);

        hdr[n] = 'a' ^ MASK[0]; /* the first payload byte */
        sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 0);
        for (size_t k = 0; k < n; k++) {
            sb_ws_event_t ev;
            int rc = sb_ws_reader_feed(&r, hdr, k, &ev, NULL);
            ck_assert_msg(rc == 0, "%zu of %zu header bytes: feed returned %d", k, n, rc);
            ck_assert_int_eq(ev.type, SB_WS_EV_NONE);
        }
        {
            sb_ws_event_t ev;
            int rc = sb_ws_reader_feed(&r, hdr, n + 1, &ev, NULL);
            ck_assert_msg(rc > 0 && (size_t)rc <= n + 1,
                          "a complete header and one payload byte: feed returned %d", rc);
            ck_assert_int_eq(ev.type, SB_WS_EV_NONE);
        }
        sb_ws_reader_free(&r);
    }
}
END_TEST

/* The payload streams through: a partial frame is consumed, with no event yet. */
START_TEST(test_partial_payload_consumed)
{
    wire_t w = {0};
    sb_ws_reader_t r;
    sb_ws_event_t ev;
    size_t pos = 0;
    int rc;

    put_text(&w, 1, SB_WS_OP_TEXT, "0123456789");
    sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 0);
    while (pos < 2 + 4 + 5) {
        rc = sb_ws_reader_feed(&r, w.p + pos, 2 + 4 + 5 - pos, &ev, NULL);
        ck_assert_int_gt(rc, 0);
        ck_assert_int_eq(ev.type, SB_WS_EV_NONE);
        pos += (size_t)rc;
    }
    ck_assert_uint_eq(pos, 11);
    rc = sb_ws_reader_feed(&r, w.p + pos, w.len - pos, &ev, NULL);
    ck_assert_int_eq(rc, 5);
    ck_assert_int_eq(ev.type, SB_WS_EV_TEXT);
    ck_assert_uint_eq(ev.len, 10);
    ck_assert_mem_eq(ev.data, "0123456789", 10);
    sb_ws_reader_free(&r);
    wire_free(&w);
}
END_TEST

/* ---- RFC 6455 section 5.7 examples, hand-written so the writer is checked independently ------ */

static const uint8_t rfc_text_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_text_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t rfc_fragmented[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
static const uint8_t rfc_ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};

static void check_rfc_examples(size_t chunk)
{
    run_t run;
    const want_t text[] = {{TEXT_OF("Hello")}};
    const want_t ping[] = {{SB_WS_EV_PING, "Hello", 5, 0}};
    const want_t pong[] = {{SB_WS_EV_PONG, "Hello", 5, 0}};

    feed_new(rfc_text_unmasked, sizeof rfc_text_unmasked, SB_WS_CLIENT, BIG, 0, chunk, &run);
    assert_ok(&run, sizeof rfc_text_unmasked, text, 1);
    run_free(&run);
    feed_new(rfc_text_masked, sizeof rfc_text_masked, SB_WS_SERVER, BIG, 0, chunk, &run);
    assert_ok(&run, sizeof rfc_text_masked, text, 1);
    run_free(&run);
    feed_new(rfc_fragmented, sizeof rfc_fragmented, SB_WS_CLIENT, BIG, 0, chunk, &run);
    assert_ok(&run, sizeof rfc_fragmented, text, 1);
    run_free(&run);
    feed_new(rfc_ping, sizeof rfc_ping, SB_WS_CLIENT, BIG, 0, chunk, &run);
    assert_ok(&run, sizeof rfc_ping, ping, 1);
    run_free(&run);
    feed_new(rfc_pong_masked, sizeof rfc_pong_masked, SB_WS_SERVER, BIG, 0, chunk, &run);
    assert_ok(&run, sizeof rfc_pong_masked, pong, 1);
    run_free(&run);

    /* the wrong role refuses each of them */
    feed_new(rfc_text_unmasked, sizeof rfc_text_unmasked, SB_WS_SERVER, BIG, 0, chunk, &run);
    assert_fail(&run, SB_WS_EPROTOCOL, NOT_MASKED, NULL, 0);
    run_free(&run);
    feed_new(rfc_text_masked, sizeof rfc_text_masked, SB_WS_CLIENT, BIG, 0, chunk, &run);
    assert_fail(&run, SB_WS_EPROTOCOL, MASKED, NULL, 0);
    run_free(&run);
}

START_TEST(test_rfc_examples) { check_rfc_examples(0); }
END_TEST

START_TEST(test_rfc_examples_byte_by_byte) { check_rfc_examples(1); }
END_TEST

/* 256 bytes and 64 KiB in one unmasked binary frame (RFC 6455 5.7). */
START_TEST(test_rfc_binary_lengths)
{
    static const uint8_t h256[] = {0x82, 0x7E, 0x01, 0x00};
    static const uint8_t h64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    uint8_t *payload = pattern(65536);
    wire_t w = {0};
    run_t run;
    const want_t want256[] = {{SB_WS_EV_BINARY, payload, 256, 0}};
    const want_t want64k[] = {{SB_WS_EV_BINARY, payload, 65536, 0}};

    put(&w, h256, sizeof h256);
    put(&w, payload, 256);
    feed_new(w.p, w.len, SB_WS_CLIENT, BIG, 1, 0, &run);
    assert_ok(&run, w.len, want256, 1);
    run_free(&run);
    feed_new(w.p, w.len, SB_WS_CLIENT, BIG, 1, 1, &run);
    assert_ok(&run, w.len, want256, 1);
    run_free(&run);
    wire_free(&w);

    put(&w, h64k, sizeof h64k);
    put(&w, payload, 65536);
    feed_new(w.p, w.len, SB_WS_CLIENT, BIG, 1, 0, &run);
    assert_ok(&run, w.len, want64k, 1);
    run_free(&run);
    feed_new(w.p, w.len, SB_WS_CLIENT, BIG, 1, 4096, &run);
    assert_ok(&run, w.len, want64k, 1);
    run_free(&run);
    wire_free(&w);
    free(payload);
}
END_TEST

/* ---- the reader's memory --------------------------------------------------------------------- */

/* Freed mid-message, mid-frame and after an error, a reader leaks nothing (LeakSanitizer checks
 * at exit) and can be initialised again. */
START_TEST(test_free_partial)
{
    uint8_t *payload = pattern(5000);
    wire_t w = {0};
    sb_ws_reader_t r;
    run_t run;

    /* a fresh reader owns nothing */
    sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 0);
    sb_ws_reader_free(&r);

    /* inside a fragmented message */
    put_text(&w, 0, SB_WS_OP_TEXT, "first fragment");
    put_text(&w, 0, SB_WS_OP_CONT, "second fragment");
    sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 0);
    drive(&r, w.p, w.len, 0, &run);
    ck_assert_int_eq(run.rc, 0);
    ck_assert_uint_eq(run.nev, 0);
    sb_ws_reader_free(&r);
    run_free(&run);
    wire_free(&w);

    /* inside a large frame's payload */
    put_frame(&w, 1, SB_WS_OP_TEXT, payload, 5000, MASK);
    sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 0);
    drive(&r, w.p, 2000, 0, &run);
    ck_assert_int_eq(run.rc, 0);
    sb_ws_reader_free(&r);
    run_free(&run);

    /* and again, the same reader initialised anew, now completing the message */
    {
        const want_t want[] = {{SB_WS_EV_TEXT, payload, 5000, 0}};
        sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 0);
        drive(&r, w.p, w.len, 0, &run);
        assert_ok(&run, w.len, want, 1);
        sb_ws_reader_free(&r);
        run_free(&run);
    }
    wire_free(&w);

    /* after an error in the middle of a fragmented message */
    put_text(&w, 0, SB_WS_OP_TEXT, "partial");
    put_text(&w, 1, SB_WS_OP_CONT, "\xFF");
    sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 0);
    drive(&r, w.p, w.len, 0, &run);
    assert_fail(&run, SB_WS_EUTF8, BAD_UTF8, NULL, 0);
    sb_ws_reader_free(&r);
    run_free(&run);
    wire_free(&w);
    free(payload);
}
END_TEST

/* Messages are delivered one after another from the same reader, each with only its own data. */
START_TEST(test_reader_reuse_across_messages)
{
    wire_t w = {0};
    const want_t want[] = {
        {TEXT_OF("a long first message")},
        {TEXT_OF("b")},
        {TEXT_OF("fragmented third")},
        {TEXT_OF("")},
    };

    put_text(&w, 1, SB_WS_OP_TEXT, "a long first message");
    put_text(&w, 1, SB_WS_OP_TEXT, "b");
    put_text(&w, 0, SB_WS_OP_TEXT, "fragmented");
    put_text(&w, 1, SB_WS_OP_CONT, " third");
    put_text(&w, 1, SB_WS_OP_TEXT, "");
    expect_events(&w, SB_WS_SERVER, 20, 0, want, 4);
    wire_free(&w);

    /* large, small, large again: whatever the reader keeps or releases between messages */
    {
        uint8_t *big = pattern(70000);
        const want_t sizes[] = {
            {SB_WS_EV_TEXT, big, 5000, 0},    {TEXT_OF("small")},
            {SB_WS_EV_PING, "p", 1, 0},       {SB_WS_EV_BINARY, big, 70000, 0},
            {SB_WS_EV_TEXT, big + 1, 300, 0}, {TEXT_OF("x")},
        };

        put_frame(&w, 1, SB_WS_OP_TEXT, big, 5000, MASK);
        put_text(&w, 1, SB_WS_OP_TEXT, "small");
        put_frame(&w, 0, SB_WS_OP_BINARY, big, 30000, MASK);
        put_text(&w, 1, SB_WS_OP_PING, "p");
        put_frame(&w, 1, SB_WS_OP_CONT, big + 30000, 40000, MASK);
        put_frame(&w, 0, SB_WS_OP_TEXT, big + 1, 100, MASK);
        put_frame(&w, 1, SB_WS_OP_CONT, big + 101, 200, MASK);
        put_text(&w, 1, SB_WS_OP_TEXT, "x");
        expect_events(&w, SB_WS_SERVER, BIG, 1, sizes, 6);
        wire_free(&w);
        free(big);
    }
}
END_TEST

/* ---- writers --------------------------------------------------------------------------------- */

static void assert_header(int fin, int opcode, uint64_t len, const uint8_t *mask,
                          const uint8_t *want, size_t want_len)
{
    uint8_t out[SB_WS_MAX_HEADER + 8];
    size_t n;

    memset(out, 0xEE, sizeof out);
    n = sb_ws_write_header(out, fin, opcode, len, mask);
    ck_assert_msg(n == want_len, "header for len %llu: %zu bytes, expected %zu",
                  (unsigned long long)len, n, want_len);
    ck_assert_msg(memcmp(out, want, want_len) == 0, "header for len %llu: wrong bytes",
                  (unsigned long long)len);
    for (size_t i = n; i < sizeof out; i++)
        ck_assert_msg(out[i] == 0xEE, "header for len %llu wrote byte %zu", (unsigned long long)len,
                      i);
}

#define HDR(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

START_TEST(test_write_header_unmasked)
{
    assert_header(1, SB_WS_OP_TEXT, 0, NULL, HDR(0x81, 0x00));
    assert_header(1, SB_WS_OP_TEXT, 5, NULL, HDR(0x81, 0x05));
    assert_header(1, SB_WS_OP_TEXT, 125, NULL, HDR(0x81, 0x7D));
    assert_header(1, SB_WS_OP_TEXT, 126, NULL, HDR(0x81, 0x7E, 0x00, 0x7E));
    assert_header(1, SB_WS_OP_BINARY, 256, NULL, HDR(0x82, 0x7E, 0x01, 0x00));
    assert_header(1, SB_WS_OP_TEXT, 65535, NULL, HDR(0x81, 0x7E, 0xFF, 0xFF));
    assert_header(1, SB_WS_OP_BINARY, 65536, NULL,
                  HDR(0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00));
    assert_header(1, SB_WS_OP_BINARY, UINT64_C(0x0123456789ABCDEF), NULL,
                  HDR(0x82, 0x7F, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF));
}
END_TEST

START_TEST(test_write_header_masked)
{
    assert_header(1, SB_WS_OP_TEXT, 0, MASK, HDR(0x81, 0x80, 0x37, 0xFA, 0x21, 0x3D));
    assert_header(1, SB_WS_OP_TEXT, 5, MASK, HDR(0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D));
    assert_header(1, SB_WS_OP_TEXT, 125, MASK, HDR(0x81, 0xFD, 0x37, 0xFA, 0x21, 0x3D));
    assert_header(1, SB_WS_OP_TEXT, 126, MASK, HDR(0x81, 0xFE, 0x00, 0x7E, 0x37, 0xFA, 0x21, 0x3D));
    assert_header(1, SB_WS_OP_TEXT, 65535, MASK,
                  HDR(0x81, 0xFE, 0xFF, 0xFF, 0x37, 0xFA, 0x21, 0x3D));
    assert_header(
        1, SB_WS_OP_TEXT, 65536, MASK,
        HDR(0x81, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x37, 0xFA, 0x21, 0x3D));
}
END_TEST

START_TEST(test_write_header_fin_opcode)
{
    assert_header(0, SB_WS_OP_TEXT, 3, NULL, HDR(0x01, 0x03));
    assert_header(0, SB_WS_OP_CONT, 3, NULL, HDR(0x00, 0x03));
    assert_header(1, SB_WS_OP_CONT, 2, NULL, HDR(0x80, 0x02));
    assert_header(0, SB_WS_OP_BINARY, 1, NULL, HDR(0x02, 0x01));
    assert_header(1, SB_WS_OP_CLOSE, 2, NULL, HDR(0x88, 0x02));
    assert_header(1, SB_WS_OP_PING, 5, NULL, HDR(0x89, 0x05));
    assert_header(1, SB_WS_OP_PONG, 5, MASK, HDR(0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D));
}
END_TEST

START_TEST(test_mask)
{
    uint8_t hello[] = {'H', 'e', 'l', 'l', 'o'};
    static const uint8_t masked[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t at5[] = {0xFA, 0x21, 0x3D, 0x37};
    static const uint8_t at3[] = {0x3D, 0x37, 0xFA, 0x21};
    static const uint8_t inside[] = {0x00, 0x21, 0x3D, 0x37, 0x00};
    uint8_t data[37], whole[37], ref[37];

    sb_ws_mask(hello, 5, MASK, 0);
    ck_assert_mem_eq(hello, masked, 5); /* RFC 6455 5.7 */
    sb_ws_mask(hello, 5, MASK, 0);
    ck_assert_mem_eq(hello, "Hello", 5); /* its own inverse */

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = ref[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof ref; i++)
        ref[i] ^= MASK[i % 4];
    memcpy(whole, data, sizeof data);
    sb_ws_mask(whole, sizeof whole, MASK, 0);
    ck_assert_mem_eq(whole, ref, sizeof ref);

    /* masking in pieces at their offsets equals masking the whole */
    for (size_t cut = 0; cut <= sizeof data; cut++) {
        uint8_t parts[37];
        memcpy(parts, data, sizeof data);
        sb_ws_mask(parts, cut, MASK, 0);
        sb_ws_mask(parts + cut, sizeof parts - cut, MASK, cut);
        ck_assert_msg(memcmp(parts, ref, sizeof ref) == 0, "split at %zu differs", cut);
    }

    /* the offset selects the key byte: offset 5 starts at MASK[1], also beyond 32 bits */
    memset(data, 0, sizeof data);
    sb_ws_mask(data, 4, MASK, 5);
    ck_assert_mem_eq(data, at5, 4);
    memset(data, 0, sizeof data);
    sb_ws_mask(data, 4, MASK, UINT64_C(0x100000003));
    ck_assert_mem_eq(data, at3, 4);

    /* nothing outside [data, data + len) is touched */
    memset(data, 0, sizeof data);
    sb_ws_mask(data + 1, 0, MASK, 0);
    sb_ws_mask(data + 1, 3, MASK, 2);
    ck_assert_mem_eq(data, inside, 5);
}
END_TEST

static void assert_close_payload(uint16_t code, const char *reason, const uint8_t *want,
                                 size_t want_len)
{
    uint8_t *out = malloc(SB_WS_MAX_CONTROL); /* exactly the documented size, for ASan */
    size_t n;

    ck_assert_ptr_nonnull(out);
    n = sb_ws_close_payload(out, code, reason);
    ck_assert_msg(n == want_len, "close payload of %zu bytes, expected %zu", n, want_len);
    ck_assert_msg(memcmp(out, want, want_len) == 0, "close payload: wrong bytes");
    ck_assert_int_eq(sb_utf8_valid(out + 2, n - 2), 0);
    free(out);
}

START_TEST(test_close_payload)
{
    char reason[200];
    uint8_t want[SB_WS_MAX_CONTROL];

    assert_close_payload(1000, "", HDR(0x03, 0xE8));
    assert_close_payload(1001, "bye", HDR(0x03, 0xE9, 'b', 'y', 'e'));
    assert_close_payload(4999, "x", HDR(0x13, 0x87, 'x'));
    assert_close_payload(1009, "caf\xC3\xA9", HDR(0x03, 0xF1, 'c', 'a', 'f', 0xC3, 0xA9));

    /* ASCII: cut at 123 bytes of reason */
    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    want[0] = 0x03;
    want[1] = 0xEF; /* 1007 */
    memset(want + 2, 'r', 123);
    assert_close_payload(1007, reason, want, 125);

    /* one byte too many, then exactly 123 bytes that fit */
    reason[124] = '\0';
    assert_close_payload(1007, reason, want, 125);
    reason[123] = '\0';
    assert_close_payload(1007, reason, want, 125);
    reason[122] = '\0';
    assert_close_payload(1007, reason, want, 124);
}
END_TEST

/* A multi-byte character that would straddle byte 125 is dropped whole. */
START_TEST(test_close_payload_utf8_boundary)
{
    static const struct {
        size_t ascii;    /* 'r' bytes before the character */
        const char *chr; /* the character */
        size_t want;     /* expected payload length */
    } cases[] = {
        {121, "\xC3\xA9", 125},         {122, "\xC3\xA9", 124},
        {120, "\xE2\x82\xAC", 125},     {121, "\xE2\x82\xAC", 123},
        {122, "\xE2\x82\xAC", 124},     {119, "\xF0\x9F\x98\x80", 125},
        {120, "\xF0\x9F\x98\x80", 122}, {121, "\xF0\x9F\x98\x80", 123},
        {122, "\xF0\x9F\x98\x80", 124},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char reason[200] = {0};
        uint8_t want[SB_WS_MAX_CONTROL + 8];
        size_t clen = strlen(cases[i].chr);

        memset(reason, 'r', cases[i].ascii);
        memcpy(reason + cases[i].ascii, cases[i].chr, clen);
        strcpy(reason + cases[i].ascii + clen, "tail"); /* more text after it */
        want[0] = 0x03;
        want[1] = 0xE8;
        memcpy(want + 2, reason, sizeof want - 2);
        assert_close_payload(1000, reason, want, cases[i].want);
    }
}
END_TEST

START_TEST(test_close_code_valid_table)
{
    unsigned bad = 0, first = 0;

    for (unsigned code = 0; code < 70000; code++) {
        int want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                   (code >= 3000 && code <= 4999);
        if (sb_ws_close_code_valid(code) != want && bad++ == 0)
            first = code;
    }
    ck_assert_msg(bad == 0, "%u codes misjudged, the first %u (returned %d)", bad, first,
                  sb_ws_close_code_valid(first));
    ck_assert_int_eq(sb_ws_close_code_valid(1000), 1);
    ck_assert_int_eq(sb_ws_close_code_valid(1005), 0);
    ck_assert_int_eq(sb_ws_close_code_valid(1006), 0);
    ck_assert_int_eq(sb_ws_close_code_valid(1012), 0);
    ck_assert_int_eq(sb_ws_close_code_valid(1015), 0);
    ck_assert_int_eq(sb_ws_close_code_valid(2999), 0);
    ck_assert_int_eq(sb_ws_close_code_valid(5000), 0);
    ck_assert_int_eq(sb_ws_close_code_valid(65535), 0);
    ck_assert_int_eq(sb_ws_close_code_valid(0x10000 + 1000), 0);
    ck_assert_int_eq(sb_ws_close_code_valid(~0u), 0);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

/* Each SB_WS_E* code names the close code RFC 6455 section 7.4.1 gives for it. */
START_TEST(test_error_close_codes)
{
    ck_assert_uint_eq(sb_ws_error_close_code(SB_WS_EPROTOCOL), 1002);
    ck_assert_uint_eq(sb_ws_error_close_code(SB_WS_EBINARY), 1003);
    ck_assert_uint_eq(sb_ws_error_close_code(SB_WS_EUTF8), 1007);
    ck_assert_uint_eq(sb_ws_error_close_code(SB_WS_ETOO_BIG), 1009);
    ck_assert_uint_eq(sb_ws_error_close_code(SB_WS_ENOMEM), 1011);
    /* anything else is the server's own fault */
    ck_assert_uint_eq(sb_ws_error_close_code(0), 1011);
    ck_assert_uint_eq(sb_ws_error_close_code(-6), 1011);
    ck_assert_uint_eq(sb_ws_error_close_code(1002), 1011);
    /* the codes are distinct and negative */
    ck_assert_int_eq(SB_WS_EPROTOCOL, -1);
    ck_assert_int_eq(SB_WS_EBINARY, -2);
    ck_assert_int_eq(SB_WS_EUTF8, -3);
    ck_assert_int_eq(SB_WS_ETOO_BIG, -4);
    ck_assert_int_eq(SB_WS_ENOMEM, -5);
}
END_TEST

/* A failed reader stays failed: later calls, even with valid frames, consume nothing and give the
 * same code and reason; err may be NULL. */
START_TEST(test_failure_is_final)
{
    wire_t w = {0}, good = {0};
    sb_ws_reader_t r;
    sb_ws_event_t ev;
    const char *why = NULL;

    put_frame(&w, 1, SB_WS_OP_BINARY, "x", 1, MASK);
    put_text(&good, 1, SB_WS_OP_TEXT, "fine");
    sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 0);
    ck_assert_int_eq(sb_ws_reader_feed(&r, w.p, w.len, &ev, &why), SB_WS_EBINARY);
    ck_assert_str_eq(why, NO_BINARY);
    ck_assert_int_eq(ev.type, SB_WS_EV_NONE);
    for (int i = 0; i < 3; i++) {
        const char *again = NULL;
        ck_assert_int_eq(sb_ws_reader_feed(&r, good.p, good.len, &ev, &again), SB_WS_EBINARY);
        ck_assert_ptr_eq(again, why);
        ck_assert_int_eq(ev.type, SB_WS_EV_NONE);
        ck_assert_int_eq(sb_ws_reader_feed(&r, good.p, 0, &ev, NULL), SB_WS_EBINARY);
    }
    sb_ws_reader_free(&r);

    /* initialised again, it reads */
    sb_ws_reader_init(&r, SB_WS_SERVER, BIG, 0);
    ck_assert_int_eq(sb_ws_reader_feed(&r, good.p, good.len, &ev, NULL), (int)good.len);
    ck_assert_int_eq(ev.type, SB_WS_EV_TEXT);
    sb_ws_reader_free(&r);
    wire_free(&w);
    wire_free(&good);
}
END_TEST

/* The close frame a failure calls for, built the way a connection builds it: the code in network
 * order, then the reason (every reason fits a control frame). */
START_TEST(test_failure_close_payload)
{
    wire_t w = {0};
    sb_ws_reader_t r;
    sb_ws_event_t ev;
    const char *why = NULL;
    uint8_t payload[SB_WS_MAX_CONTROL];

    put_text(&w, 1, SB_WS_OP_TEXT, "0123456789A");
    sb_ws_reader_init(&r, SB_WS_SERVER, 10, 0);
    int rc = sb_ws_reader_feed(&r, w.p, w.len, &ev, &why);
    ck_assert_int_eq(rc, SB_WS_ETOO_BIG);
    size_t n = sb_ws_close_payload(payload, sb_ws_error_close_code(rc), why);
    ck_assert_uint_eq(n, 2 + strlen(TOO_BIG));
    ck_assert_mem_eq(payload, "\x03\xF1" TOO_BIG, n); /* 1009 */
    sb_ws_reader_free(&r);
    wire_free(&w);
}
END_TEST

static Suite *ws_suite(void)
{
    Suite *s = suite_create("ws");
    TCase *tc;

    tc = tcase_create("data frames");
    tcase_add_test(tc, test_masked_text);
    tcase_add_test(tc, test_unmasked_to_server);
    tcase_add_test(tc, test_client_role);
    tcase_add_test(tc, test_empty_text);
    tcase_add_test(tc, test_binary_refused);
    tcase_add_test(tc, test_binary_allowed);
    tcase_add_loop_test(tc, test_lengths, 0, sizeof lengths / sizeof lengths[0]);
    tcase_add_test(tc, test_non_minimal_length);
    tcase_add_test(tc, test_length_top_bit);
    tcase_add_test(tc, test_rsv_bits);
    tcase_add_test(tc, test_reserved_opcodes);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("control frames");
    tcase_add_test(tc, test_ping_pong);
    tcase_add_test(tc, test_control_max_payload);
    tcase_add_test(tc, test_control_fragmented);
    suite_add_tcase(s, tc);

    tc = tcase_create("fragmentation");
    tcase_add_test(tc, test_fragments);
    tcase_add_test(tc, test_control_between_fragments);
    tcase_add_test(tc, test_cont_without_message);
    tcase_add_test(tc, test_new_message_during_fragments);
    suite_add_tcase(s, tc);

    tc = tcase_create("size limit");
    tcase_add_test(tc, test_max_message);
    tcase_add_test(tc, test_max_message_fragments);
    tcase_add_test(tc, test_max_message_from_header);
    suite_add_tcase(s, tc);

    tc = tcase_create("utf-8");
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_invalid_utf8_fail_fast);
    tcase_add_test(tc, test_utf8_across_fragments);
    tcase_add_test(tc, test_message_ends_inside_code_point);
    suite_add_tcase(s, tc);

    tc = tcase_create("close frames");
    tcase_add_test(tc, test_close_empty);
    tcase_add_test(tc, test_close_one_byte);
    tcase_add_loop_test(tc, test_close_valid_codes, 0, sizeof valid_codes / sizeof valid_codes[0]);
    tcase_add_loop_test(tc, test_close_invalid_codes, 0,
                        sizeof invalid_codes / sizeof invalid_codes[0]);
    tcase_add_test(tc, test_close_reason);
    tcase_add_test(tc, test_close_reason_invalid_utf8);
    tcase_add_test(tc, test_close_between_fragments);
    suite_add_tcase(s, tc);

    tc = tcase_create("streaming");
    tcase_add_loop_test(tc, test_streaming, 0, sizeof chunks / sizeof chunks[0]);
    tcase_add_test(tc, test_partial_header_not_consumed);
    tcase_add_test(tc, test_partial_payload_consumed);
    tcase_add_test(tc, test_rfc_examples);
    tcase_add_test(tc, test_rfc_examples_byte_by_byte);
    tcase_add_test(tc, test_rfc_binary_lengths);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_add_test(tc, test_free_partial);
    tcase_add_test(tc, test_reader_reuse_across_messages);
    tcase_set_timeout(tc, 60); /* large messages fed byte by byte under ASan */
    suite_add_tcase(s, tc);

    tc = tcase_create("writers");
    tcase_add_test(tc, test_write_header_unmasked);
    tcase_add_test(tc, test_write_header_masked);
    tcase_add_test(tc, test_write_header_fin_opcode);
    tcase_add_test(tc, test_mask);
    tcase_add_test(tc, test_close_payload);
    tcase_add_test(tc, test_close_payload_utf8_boundary);
    tcase_add_test(tc, test_close_code_valid_table);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_error_close_codes);
    tcase_add_test(tc, test_failure_is_final);
    tcase_add_test(tc, test_failure_close_payload);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ws_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
