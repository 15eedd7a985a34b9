/* libFuzzer target for proto/ws: whole vs split feeding, event invariants, writer round trips. */
#include "check.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "ws.h"

/*
 * Input layout. Byte 0 bit 7 picks the test:
 *
 * 0: raw stream. Bytes 0-3 configure the reader, the rest is fed to it as the peer's bytes.
 *    byte 0: bit 0 role (0 server, 1 client), bit 1 allow_binary, bits 2-3 max_message
 *            (0: bytes 1-2 modulo 301, 1: 65536, 2: 125, 3: 65535), bits 4-6 chunk pattern
 *    bytes 1-2: max_message (little endian, modulo 301); byte 3: seed of the chunk sizes
 *
 * 1: round trip. The first PARAMS bytes (see P_* below) choose a message (text or binary, its
 *    fragments, pings and pongs between them, a closing frame) and the rest is its payload. The
 *    frames are built with sb_ws_write_header, sb_ws_mask and sb_ws_close_payload, each checked
 *    against a reference, and must read back exactly, or fail with the code the fault calls for.
 *
 * Both feed the reader all at once and in pieces and require the same events and outcome; the
 * raw stream's events and outcome must also match a reference reader (model below).
 */

/* A growable byte buffer: the log of events a run produced, or a stream of frames. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

/* Makes room for n more bytes. Sizing a buffer up front spares the 64 KiB messages a chain of
 * reallocations, which ASan makes slow. */
static void reserve(buf_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    CHECK(p != NULL);
    b->p = p;
    b->cap = cap;
}

static void put(buf_t *b, const void *src, size_t n)
{
    if (n == 0)
        return;
    reserve(b, n);
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_event(buf_t *log, int type, uint16_t close_code, const uint8_t *data, size_t len)
{
    uint8_t head[11] = {(uint8_t)type, (uint8_t)(close_code >> 8), (uint8_t)close_code};
    for (int i = 0; i < 8; i++)
        head[3 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    put(log, head, sizeof(head));
    put(log, data, len);
}

/* xorshift64*: chunk sizes and masks drawn from the input, so every run is reproducible. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

typedef struct {
    sb_ws_role_t role;
    size_t max_message;
    int allow_binary;
} cfg_t;

typedef struct {
    int failed;          /* feed returned a negative SB_WS_E* code */
    uint16_t error_code; /* the close code that code calls for, when failed */
    const char *error;   /* the reason feed gave, when failed */
    size_t consumed;     /* bytes consumed before the end (or the failing call) */
} outcome_t;

static int close_code_ref(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* What must hold for every event, however the bytes arrived. */
static void check_event(const cfg_t *c, const sb_ws_event_t *ev)
{
    CHECK(ev->len == 0 || ev->data != NULL);
    switch (ev->type) {
    case SB_WS_EV_TEXT:
        CHECK(ev->len <= c->max_message);
        CHECK(sb_utf8_valid(ev->data, ev->len) == 0);
        break;
    case SB_WS_EV_BINARY:
        CHECK(c->allow_binary);
        CHECK(ev->len <= c->max_message);
        break;
    case SB_WS_EV_PING:
    case SB_WS_EV_PONG:
        CHECK(ev->len <= SB_WS_MAX_CONTROL);
        break;
    case SB_WS_EV_CLOSE:
        CHECK(ev->len <= SB_WS_MAX_CONTROL - 2);
        if (ev->close_code == SB_WS_CLOSE_NO_STATUS)
            CHECK(ev->len == 0);
        else
            CHECK(sb_ws_close_code_valid(ev->close_code));
        CHECK(sb_utf8_valid(ev->data, ev->len) == 0);
        break;
    default:
        CHECK(!"unknown event type");
    }
}

/* Reads n bytes with a fresh reader and logs every event. bound 0 presents everything at once
 * (stream must end where its allocation ends, so ASan sees a read past it); otherwise the bytes
 * arrive in pieces of 1..bound bytes (sizes from rng), whatever the reader leaves unconsumed is
 * presented again with the next piece, as the header contract asks, and each call gets an
 * exact-size copy, freed after it, so ASan sees a read past len or a pointer kept into buf. */
static void run(const cfg_t *c, const uint8_t *stream, size_t n, size_t bound, int in_place,
                uint64_t *rng, buf_t *log, outcome_t *out)
{
    sb_ws_reader_t r;
    size_t pos = 0, avail = bound == 0 ? n : 0;
    int stalls = 0;

    sb_ws_reader_init(&r, c->role, c->max_message, c->allow_binary);
    reserve(log, n + 64); /* events hold at most the stream's bytes, plus their own headers */
    memset(out, 0, sizeof(*out));
    for (;;) {
        size_t len = avail - pos;
        const uint8_t *in = stream + pos;
        uint8_t *copy = NULL;
        if (bound != 0 || in_place) {
            copy = malloc(len ? len : 1);
            CHECK(copy != NULL);
            if (len > 0)
                memcpy(copy, in, len);
            in = copy;
        }

        sb_ws_event_t ev;
        memset(&ev, 0x5A, sizeof(ev)); /* feed must set every field it reports */
        ev.type = (sb_ws_event_type_t)77;
        const char *why = NULL;
        int k = in_place ? sb_ws_reader_feed_in_place(&r, copy, len, &ev, &why)
                         : sb_ws_reader_feed(&r, in, len, &ev, &why);
        /* sb_ws_reader_feed writes nothing; in place, only the bytes consumed may change (and a
         * frame refused for its UTF-8 was unmasked first) */
        size_t kept = in_place && k > 0 ? (size_t)k : 0;
        CHECK((in_place && k < 0) || len == kept ||
              memcmp(in + kept, stream + pos + kept, len - kept) == 0);

        if (k < 0) {
            CHECK(k == SB_WS_EPROTOCOL || k == SB_WS_EBINARY || k == SB_WS_EUTF8 ||
                  k == SB_WS_ETOO_BIG);
            CHECK(why != NULL && why[0] != '\0');
            CHECK(ev.type == SB_WS_EV_NONE);
            uint16_t code = sb_ws_error_close_code(k);
            CHECK(code == SB_WS_CLOSE_PROTOCOL_ERROR || code == SB_WS_CLOSE_UNSUPPORTED ||
                  code == SB_WS_CLOSE_INVALID_DATA || code == SB_WS_CLOSE_TOO_BIG);
            /* a failed reader stays failed: the same answer, nothing consumed, err may be NULL */
            const char *again = NULL;
            CHECK(sb_ws_reader_feed(&r, in, len, &ev, &again) == k && again == why);
            CHECK(ev.type == SB_WS_EV_NONE);
            CHECK(sb_ws_reader_feed(&r, in, len, &ev, NULL) == k);
            free(copy);
            out->failed = 1;
            out->error_code = code;
            out->error = why;
            break;
        }
        CHECK((size_t)k <= len);
        if (ev.type != SB_WS_EV_NONE) {
            check_event(c, &ev);
            put_event(log, ev.type, ev.type == SB_WS_EV_CLOSE ? ev.close_code : 0, ev.data, ev.len);
        }
        free(copy);
        if (k == 0 && ev.type == SB_WS_EV_NONE) {
            /* more bytes are needed: a header is at most 14 bytes and a payload byte can always
             * be taken, so the reader cannot stall on a full header's worth */
            CHECK(len < SB_WS_MAX_HEADER);
            if (avail == n)
                break;
            size_t piece = 1 + (size_t)(next_rand(rng) % bound);
            avail += piece < n - avail ? piece : n - avail;
            continue;
        }
        pos += (size_t)k;
        stalls = k == 0 ? stalls + 1 : 0;
        CHECK(stalls < 3); /* events without progress would loop forever */
    }
    out->consumed = pos;
    if (!out->failed)
        CHECK(n - pos < SB_WS_MAX_HEADER);
    sb_ws_reader_free(&r);
}

/* Runs the stream whole and in pieces; both must give the same events and the same end. */
static void run_both(const cfg_t *c, const uint8_t *stream, size_t n, size_t bound, uint64_t *rng,
                     buf_t *log_whole, outcome_t *whole)
{
    buf_t log_split = {0};
    outcome_t split;

    run(c, stream, n, 0, 0, rng, log_whole, whole);
    run(c, stream, n, bound, 0, rng, &log_split, &split);
    CHECK(log_whole->len == log_split.len);
    CHECK(log_whole->len == 0 || memcmp(log_whole->p, log_split.p, log_whole->len) == 0);
    CHECK(whole->failed == split.failed);
    CHECK(whole->error_code == split.error_code);
    CHECK(whole->error == split.error); /* the same reason, too */
    if (!whole->failed)
        CHECK(whole->consumed == split.consumed);
    /* In place, whole and in pieces: the same events, end and reason again. */
    for (int pieces = 0; pieces < 2; pieces++) {
        buf_t log_in_place = {0};
        outcome_t in_place;
        run(c, stream, n, pieces ? bound : 0, 1, rng, &log_in_place, &in_place);
        CHECK(log_whole->len == log_in_place.len);
        CHECK(log_whole->len == 0 || memcmp(log_whole->p, log_in_place.p, log_whole->len) == 0);
        CHECK(whole->failed == in_place.failed && whole->error == in_place.error);
        if (!whole->failed)
            CHECK(whole->consumed == in_place.consumed);
        free(log_in_place.p);
    }
    free(log_split.p);
}

static size_t chunk_bound(unsigned pattern, size_t n)
{
    static const size_t bounds[8] = {1, 2, 3, 7, 16, 64, 500, 0};
    size_t b = bounds[pattern & 7];
    return b == 0 ? (n > 0 ? n : 1) : b;
}

/* ---- raw stream ---- */

/* Error codes the model allows, as a bit set. */
enum { E1002 = 1, E1003 = 2, E1007 = 4, E1009 = 8 };

typedef enum {
    M_OK,        /* the stream ends inside or between frames: consumed bytes are known */
    M_FAIL,      /* the reader must fail with one of codes */
    M_UNDECIDED, /* RFC 6455 leaves the rest to the implementation: only the events so far count */
} model_end_t;

typedef struct {
    model_end_t end;
    unsigned codes;
    size_t consumed;
} model_t;

static int code_in(unsigned codes, uint16_t code)
{
    return ((codes & E1002) && code == SB_WS_CLOSE_PROTOCOL_ERROR) ||
           ((codes & E1003) && code == SB_WS_CLOSE_UNSUPPORTED) ||
           ((codes & E1007) && code == SB_WS_CLOSE_INVALID_DATA) ||
           ((codes & E1009) && code == SB_WS_CLOSE_TOO_BIG);
}

/* A reference reader, RFC 6455 section 5 read straight: decodes the whole stream at once and
 * logs the events the reader must report. UTF-8 comes from sb_utf8 (fuzz_utf8 checks it). */
static void model(const cfg_t *c, const uint8_t *s, size_t n, buf_t *log, model_t *m)
{
    buf_t msg = {0};
    int msg_op = 0;
    sb_utf8_t u;
    size_t pos = 0;

    sb_utf8_reset(&u);
    m->end = M_OK;
    m->codes = 0;
    for (;;) {
        m->consumed = pos;
        if (n - pos < 2)
            break;
        int fin = s[pos] >> 7, op = s[pos] & 0xF, masked = s[pos + 1] >> 7;
        unsigned len7 = s[pos + 1] & 0x7F, codes = 0;
        int control = op >= 8, known = op <= 2 || (op >= 8 && op <= 10);
        if (s[pos] & 0x70)
            codes |= E1002; /* no extension was negotiated */
        if (!known)
            codes |= E1002;
        if (masked != (c->role == SB_WS_SERVER))
            codes |= E1002; /* clients mask, servers do not */
        if (known && control && (!fin || len7 > SB_WS_MAX_CONTROL))
            codes |= E1002;
        if (known && op == SB_WS_OP_CONT && msg_op == 0)
            codes |= E1002;
        if ((op == SB_WS_OP_TEXT || op == SB_WS_OP_BINARY) && msg_op != 0)
            codes |= E1002;
        if (op == SB_WS_OP_BINARY && !c->allow_binary)
            codes |= E1003;

        size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0, hlen = 2 + ext + (masked ? 4 : 0);
        if (n - pos < hlen) {
            /* a fault in the first two bytes may be reported now or once the header is whole */
            m->end = codes ? M_UNDECIDED : M_OK;
            break;
        }
        uint64_t plen = len7;
        if (ext > 0) {
            plen = 0;
            for (size_t i = 0; i < ext; i++)
                plen = plen << 8 | s[pos + 2 + i];
            int minimal = ext == 2 ? plen >= 126 : plen > 0xFFFF;
            if (ext == 8 && plen >> 63)
                codes |= E1002;
            if (!minimal) {
                /* RFC 6455 asks senders for the minimal form; a reader may refuse others */
                if (codes == 0) {
                    m->end = M_UNDECIDED;
                    break;
                }
                codes |= E1002;
            }
        }
        if (!control && known && (op == SB_WS_OP_CONT ? msg.len : 0) + plen > c->max_message)
            codes |= E1009;
        if (codes) {
            m->end = M_FAIL;
            m->codes = codes;
            break;
        }

        const uint8_t *key = s + pos + 2 + ext;
        size_t take = n - pos - hlen < plen ? n - pos - hlen : (size_t)plen;
        uint8_t *p = malloc(take ? take : 1);
        CHECK(p != NULL);
        for (size_t i = 0; i < take; i++)
            p[i] = s[pos + hlen + i] ^ (masked ? key[i % 4] : 0);
        if (op == SB_WS_OP_TEXT || op == SB_WS_OP_BINARY) {
            msg_op = op;
            msg.len = 0;
            sb_utf8_reset(&u);
        }
        if (!control) {
            put(&msg, p, take);
            if (msg_op == SB_WS_OP_TEXT && sb_utf8_feed(&u, p, take) != 0) {
                m->end = M_FAIL;
                m->codes = E1007;
                free(p);
                break;
            }
        }
        if (take < plen) { /* the stream ends inside the payload */
            m->consumed = pos + hlen + take;
            free(p);
            break;
        }
        pos += hlen + take;

        if (op == SB_WS_OP_PING || op == SB_WS_OP_PONG) {
            put_event(log, op == SB_WS_OP_PING ? SB_WS_EV_PING : SB_WS_EV_PONG, 0, p, take);
        } else if (op == SB_WS_OP_CLOSE) {
            unsigned code = take >= 2 ? (unsigned)p[0] << 8 | p[1] : SB_WS_CLOSE_NO_STATUS;
            if (take == 1 || (take >= 2 && !close_code_ref(code)))
                codes |= E1002;
            if (take > 2 && sb_utf8_valid(p + 2, take - 2) != 0)
                codes |= E1007;
            if (codes) {
                m->end = M_FAIL;
                m->codes = codes;
            } else {
                put_event(log, SB_WS_EV_CLOSE, (uint16_t)code, p + 2, take > 2 ? take - 2 : 0);
                m->end = M_UNDECIDED; /* nothing may follow a close: what the reader does with
                                       * it is its own business */
            }
            free(p);
            break;
        } else if (fin) {
            if (msg_op == SB_WS_OP_TEXT && !sb_utf8_complete(&u)) {
                m->end = M_FAIL;
                m->codes = E1007;
                free(p);
                break;
            }
            put_event(log, msg_op == SB_WS_OP_TEXT ? SB_WS_EV_TEXT : SB_WS_EV_BINARY, 0, msg.p,
                      msg.len);
            msg_op = 0;
        }
        free(p);
    }
    free(msg.p);
}

static void raw_stream(const uint8_t *data, size_t size)
{
    uint8_t cfgb[4] = {0};
    memcpy(cfgb, data, size < 4 ? size : 4);
    const uint8_t *stream = data + (size < 4 ? size : 4);
    size_t n = size < 4 ? 0 : size - 4;

    cfg_t c;
    c.role = cfgb[0] & 1 ? SB_WS_CLIENT : SB_WS_SERVER;
    c.allow_binary = (cfgb[0] >> 1) & 1;
    switch ((cfgb[0] >> 2) & 3) {
    case 0:
        c.max_message = (size_t)(cfgb[1] | cfgb[2] << 8) % 301;
        break;
    case 1:
        c.max_message = 65536;
        break;
    case 2:
        c.max_message = 125;
        break;
    default:
        c.max_message = 65535;
        break;
    }
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)cfgb[3] << 32) ^ n;

    buf_t log = {0}, want = {0};
    outcome_t out;
    model_t m;
    run_both(&c, stream, n, chunk_bound(cfgb[0] >> 4, n), &rng, &log, &out);
    model(&c, stream, n, &want, &m);
    switch (m.end) {
    case M_OK:
        CHECK(!out.failed && out.consumed == m.consumed);
        CHECK(log.len == want.len && (log.len == 0 || memcmp(log.p, want.p, log.len) == 0));
        break;
    case M_FAIL:
        CHECK(out.failed && code_in(m.codes, out.error_code));
        CHECK(log.len == want.len && (log.len == 0 || memcmp(log.p, want.p, log.len) == 0));
        break;
    case M_UNDECIDED:
        CHECK(log.len >= want.len && (want.len == 0 || memcmp(log.p, want.p, want.len) == 0));
        break;
    }
    free(log.p);
    free(want.p);
}

/* ---- round trip ---- */

/* Round-trip parameters: byte offsets into the first PARAMS bytes of the input. */
enum {
    P_FLAGS,            /* bit 0 role, 1 binary, 2 allow_binary, 3 64-bit length (with P_BIG),
                         * bits 4-5 max_message: 65536, the payload length, one less, or P_MAX,
                         * bit 6: a 64-bit length message has 65537 bytes rather than 65536 */
    P_FRAGS,            /* bits 0-1: fragments - 1 */
    P_BIG,              /* BIG_MAGIC (with P_FLAGS bit 3): a 64-bit length message */
    P_MAX,              /* max_message, modulo 301 (with P_FRAGS as the high byte) */
    P_CUTS,             /* 3 x 2 bytes: fragment boundaries */
    P_CTL = P_CUTS + 6, /* bit i: a control frame before fragment i */
    P_PONG,             /* bit i: that control frame is a pong */
    P_CTL_LEN,          /* control payload length */
    P_MASK,             /* 4 bytes: the masking key (server role) */
    P_MASK_SPLIT = P_MASK + 4, /* offset at which sb_ws_mask is called a second time */
    P_CLOSE,                   /* bits 0-1: 2 an empty close frame, 3 a code and reason;
                                * bit 2: a second message before it */
    P_CODE,                    /* index of the close code */
    P_REASON,                  /* reason length, modulo 140 */
    P_CHUNKS,                  /* chunk pattern and seed */
    P_HDR_LEN,                 /* 8 bytes, then a shift and a mask byte: a header for any length */
    PARAMS = P_HDR_LEN + 10
};

#define BIG_MAGIC 0x64

/* The header RFC 6455 section 5.2 describes, built independently of sb_ws_write_header. */
static size_t ref_header(uint8_t *out, int fin, int opcode, uint64_t len, const uint8_t *mask)
{
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t m = mask ? 0x80 : 0;
    if (len <= 125) {
        out[n++] = (uint8_t)(m | len);
    } else if (len <= 65535) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len / 256);
        out[n++] = (uint8_t)(len % 256);
    } else {
        out[n++] = m | 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)(len >> shift);
    }
    for (int i = 0; mask && i < 4; i++)
        out[n++] = mask[i];
    return n;
}

/* Appends one frame to the stream: the header from sb_ws_write_header (checked against the
 * reference), then the payload masked with sb_ws_mask in two calls split at a chosen offset
 * (checked against a plain XOR). */
static void add_frame(buf_t *s, int fin, int opcode, const uint8_t *payload, size_t len,
                      const uint8_t *mask, size_t split)
{
    uint8_t *hdr = malloc(SB_WS_MAX_HEADER);
    uint8_t want[SB_WS_MAX_HEADER];
    CHECK(hdr != NULL);
    size_t hn = sb_ws_write_header(hdr, fin, opcode, len, mask);
    CHECK(hn == ref_header(want, fin, opcode, len, mask));
    CHECK(memcmp(hdr, want, hn) == 0);
    put(s, hdr, hn);
    free(hdr);

    uint8_t *body = malloc(len ? len : 1);
    CHECK(body != NULL);
    if (len > 0)
        memcpy(body, payload, len);
    if (mask) {
        if (split > len)
            split = len;
        sb_ws_mask(body, split, mask, 0);
        sb_ws_mask(body + split, len - split, mask, split);
        for (size_t i = 0; i < len; i++)
            CHECK(body[i] == (payload[i] ^ mask[i % 4]));
    }
    put(s, body, len);
    free(body);
}

/* Checks sb_ws_write_header on any length, including those no test could send. */
static void check_header_lengths(const uint8_t *p)
{
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len = len << 8 | p[i];
    len >>= p[8] & 63; /* favour short lengths and the 126 and 65536 boundaries */
    uint8_t mask[4] = {p[9], 1, 2, 3};
    uint8_t got[SB_WS_MAX_HEADER], want[SB_WS_MAX_HEADER];
    for (int masked = 0; masked < 2; masked++) {
        size_t n =
            sb_ws_write_header(got, (int)(len & 1), SB_WS_OP_BINARY, len, masked ? mask : NULL);
        CHECK(n <= SB_WS_MAX_HEADER);
        CHECK(n == ref_header(want, (int)(len & 1), SB_WS_OP_BINARY, len, masked ? mask : NULL));
        CHECK(memcmp(got, want, n) == 0);
    }
}

/* Builds a NUL-terminated close reason of want bytes from the payload: the payload itself when
 * it is valid UTF-8 without NUL (so multi-byte text gets truncated), else letters. */
static char *make_reason(const uint8_t *payload, size_t plen, size_t want)
{
    char *s = malloc(want + 1);
    CHECK(s != NULL);
    size_t n = want < plen ? want : plen;
    int usable = sb_utf8_valid(payload, n) == 0 && (n == 0 || memchr(payload, 0, n) == NULL);
    if (usable && n > 0)
        memcpy(s, payload, n);
    else
        n = 0;
    for (size_t i = n; i < want; i++)
        s[i] = (char)('a' + (i < plen ? payload[i] : i) % 26);
    s[want] = '\0';
    return s;
}

/* Checks sb_ws_close_payload: code in network order, then the longest prefix of the reason that
 * fits and ends between code points. Returns the payload length. */
static size_t close_payload(uint8_t *out, uint16_t code, const char *reason)
{
    size_t rn = strlen(reason);
    size_t n = sb_ws_close_payload(out, code, reason);
    CHECK(n >= 2 && n <= SB_WS_MAX_CONTROL);
    CHECK(out[0] == code >> 8 && out[1] == (code & 0xFF));
    size_t got = n - 2, room = SB_WS_MAX_CONTROL - 2;
    CHECK(got <= rn && memcmp(out + 2, reason, got) == 0);
    if (rn <= room) {
        CHECK(got == rn);
    } else {
        CHECK(((uint8_t)reason[got] & 0xC0) != 0x80);
        for (size_t j = got + 1; j <= room; j++)
            CHECK(((uint8_t)reason[j] & 0xC0) == 0x80);
    }
    CHECK(sb_utf8_valid(out + 2, got) == 0);
    return n;
}

static void round_trip(const uint8_t *data, size_t size)
{
    uint8_t p[PARAMS] = {0};
    size_t np = size < PARAMS ? size : PARAMS;
    memcpy(p, data, np);
    const uint8_t *payload = data + np;
    size_t plen = size - np;
    uint8_t *big = NULL;

    cfg_t c;
    c.role = p[P_FLAGS] & 1 ? SB_WS_CLIENT : SB_WS_SERVER;
    int binary = (p[P_FLAGS] >> 1) & 1;
    c.allow_binary = (p[P_FLAGS] >> 2) & 1; /* a binary message without it must fail (1003) */
    if ((p[P_FLAGS] >> 3) & 1 && p[P_BIG] == BIG_MAGIC) {
        /* a 64-bit length: whole copies of the payload (so valid text stays valid) past 65535.
         * A magic byte keeps these rare: one costs as much as a hundred small inputs. */
        size_t total = 65536 + ((p[P_FLAGS] >> 6) & 1);
        size_t unit = plen > 0 ? plen : 1, copies = (total + unit - 1) / unit;
        big = malloc(copies * unit);
        CHECK(big != NULL);
        for (size_t i = 0; i < copies; i++) {
            if (plen > 0)
                memcpy(big + i * unit, payload, unit);
            else
                big[i] = 'a';
        }
        payload = big;
        plen = copies * unit;
    }
    switch ((p[P_FLAGS] >> 4) & 3) {
    case 0:
        c.max_message = big ? 1 << 20 : 65536;
        break;
    case 1:
        c.max_message = plen; /* exactly fits */
        break;
    case 2:
        c.max_message = plen > 0 ? plen - 1 : 0; /* one byte too many */
        break;
    default:
        c.max_message = (size_t)(p[P_MAX] | p[P_FRAGS] << 8) % 301;
        break;
    }

    /* up to 4 fragments, with a ping or pong before any of them */
    size_t nfrag = 1 + (p[P_FRAGS] & 3);
    size_t cut[5];
    cut[0] = 0;
    cut[nfrag] = plen;
    for (size_t i = 1; i < nfrag; i++) {
        size_t x = (size_t)(p[P_CUTS + 2 * i - 2] | p[P_CUTS + 2 * i - 1] << 8) % (plen + 1);
        size_t j = i;
        while (j > 1 && cut[j - 1] > x) /* insertion sort keeps the cuts in order */
            cut[j] = cut[j - 1], j--;
        cut[j] = x;
    }
    const uint8_t *mask = p + P_MASK;
    static const uint16_t codes[] = {1000, 1001, 1002, 1003, 1007, 1008,
                                     1009, 1010, 1011, 3000, 4000, 4999};
    uint16_t code = codes[p[P_CODE] % (sizeof(codes) / sizeof(codes[0]))];
    check_header_lengths(p + P_HDR_LEN);

    int opcode = binary ? SB_WS_OP_BINARY : SB_WS_OP_TEXT;
    const uint8_t *fmask = c.role == SB_WS_SERVER ? mask : NULL;
    buf_t s = {0}, want = {0};
    reserve(&s, plen + 10 * (SB_WS_MAX_HEADER + SB_WS_MAX_CONTROL));
    reserve(&want, plen + 10 * (16 + SB_WS_MAX_CONTROL));

    /* the frames, and the events they must produce when nothing is wrong */
    for (size_t i = 0; i < nfrag; i++) {
        if ((p[P_CTL] >> i) & 1) {
            int pong = (p[P_PONG] >> i) & 1;
            size_t cl = (p[P_CTL_LEN] + 37 * i) % (SB_WS_MAX_CONTROL + 1);
            if (cl > plen)
                cl = plen;
            add_frame(&s, 1, pong ? SB_WS_OP_PONG : SB_WS_OP_PING, payload, cl, fmask,
                      p[P_MASK_SPLIT]);
            put_event(&want, pong ? SB_WS_EV_PONG : SB_WS_EV_PING, 0, payload, cl);
        }
        add_frame(&s, i == nfrag - 1, i == 0 ? opcode : SB_WS_OP_CONT, payload + cut[i],
                  cut[i + 1] - cut[i], fmask, p[P_MASK_SPLIT]);
    }
    put_event(&want, binary ? SB_WS_EV_BINARY : SB_WS_EV_TEXT, 0, payload, plen);
    if ((p[P_CLOSE] >> 2) & 1) {
        /* a second, short message: the reader starts over (and drops a large buffer) */
        static const uint8_t again[] = "again";
        size_t an = c.max_message < 5 ? c.max_message : 5;
        add_frame(&s, 1, SB_WS_OP_TEXT, again, an, fmask, p[P_MASK_SPLIT]);
        put_event(&want, SB_WS_EV_TEXT, 0, again, an);
    }
    if ((p[P_CLOSE] & 3) == 2) {
        add_frame(&s, 1, SB_WS_OP_CLOSE, NULL, 0, fmask, p[P_MASK_SPLIT]);
        put_event(&want, SB_WS_EV_CLOSE, SB_WS_CLOSE_NO_STATUS, NULL, 0);
    } else if ((p[P_CLOSE] & 3) == 3) {
        char *reason = make_reason(payload, plen, p[P_REASON] % 140);
        uint8_t *cp = malloc(SB_WS_MAX_CONTROL); /* exactly what the contract promises */
        CHECK(cp != NULL);
        size_t cn = close_payload(cp, code, reason);
        add_frame(&s, 1, SB_WS_OP_CLOSE, cp, cn, fmask, p[P_MASK_SPLIT]);
        put_event(&want, SB_WS_EV_CLOSE, code, cp + 2, cn - 2);
        free(cp);
        free(reason);
    }

    /* what must go wrong, if anything; with several faults any of their codes will do */
    int bad_binary = binary && !c.allow_binary;
    int too_big = plen > c.max_message;
    int bad_text = !binary && sb_utf8_valid(payload, plen) != 0;

    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)p[P_CHUNKS] << 40) ^ s.len;
    size_t bound = chunk_bound(p[P_CHUNKS], s.len);
    if (s.len > 4096 && bound < 4096)
        bound = 4096; /* keep the 64 KiB messages fast */
    uint8_t *exact = malloc(s.len ? s.len : 1);
    CHECK(exact != NULL);
    if (s.len > 0)
        memcpy(exact, s.p, s.len);
    buf_t log = {0};
    outcome_t out;
    run_both(&c, exact, s.len, bound, &rng, &log, &out);
    free(exact);

    if (bad_binary || too_big || bad_text) {
        CHECK(out.failed);
        CHECK((bad_binary && out.error_code == SB_WS_CLOSE_UNSUPPORTED) ||
              (too_big && out.error_code == SB_WS_CLOSE_TOO_BIG) ||
              (bad_text && out.error_code == SB_WS_CLOSE_INVALID_DATA));
        /* only the control frames before the fault may have been reported */
        CHECK(log.len <= want.len && (log.len == 0 || memcmp(log.p, want.p, log.len) == 0));
    } else {
        CHECK(!out.failed);
        CHECK(out.consumed == s.len);
        CHECK(log.len == want.len && memcmp(log.p, want.p, log.len) == 0);
    }
    free(log.p);
    free(want.p);
    free(s.p);
    free(big);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 2) {
        unsigned code = (unsigned)data[size - 2] << 8 | data[size - 1];
        CHECK((sb_ws_close_code_valid(code) != 0) == close_code_ref(code));
    }
    if (size > 0 && data[0] & 0x80)
        round_trip(data, size);
    else
        raw_stream(data, size);
    return 0;
}
