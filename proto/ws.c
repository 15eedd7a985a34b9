/* RFC 6455 WebSocket framing: a streaming message reader that fails fast, and frame writers. */
#include "ws.h"

#include <stdlib.h>
#include <string.h>

/* A message buffer larger than this is released when the next message starts, so an idle
 * connection does not keep the memory of its largest message. */
#define KEEP_BUFFER 4096

/* Reasons given from two places each (a frame read whole in place, or piece by piece). */
static const char bad_utf8[] = "invalid UTF-8 in a text message";
static const char cut_utf8[] = "text message ends inside a UTF-8 sequence";

void sb_ws_reader_init(sb_ws_reader_t *r, sb_ws_role_t role, size_t max_message, int allow_binary)
{
    memset(r, 0, sizeof(*r));
    r->role = role;
    r->max_message = max_message;
    r->allow_binary = allow_binary;
    sb_utf8_reset(&r->utf8);
}

void sb_ws_reader_free(sb_ws_reader_t *r)
{
    free(r->msg);
    r->msg = NULL;
    r->msg_len = r->msg_cap = 0;
    free(r->ctl);
    r->ctl = NULL;
}

/* Records the failure, which every later call reports again, and returns its code. */
static int fail(sb_ws_reader_t *r, int code, const char *why)
{
    r->failed = code;
    r->failed_why = why;
    return code;
}

uint16_t sb_ws_error_close_code(int code)
{
    switch (code) {
    case SB_WS_EPROTOCOL:
        return SB_WS_CLOSE_PROTOCOL_ERROR;
    case SB_WS_EBINARY:
        return SB_WS_CLOSE_UNSUPPORTED;
    case SB_WS_EUTF8:
        return SB_WS_CLOSE_INVALID_DATA;
    case SB_WS_ETOO_BIG:
        return SB_WS_CLOSE_TOO_BIG;
    default:
        return SB_WS_CLOSE_INTERNAL;
    }
}

static int is_control(int opcode) { return (opcode & 0x8) != 0; }

/* Makes room for n more message bytes; the caller has checked the total against max_message. */
static int reserve(sb_ws_reader_t *r, size_t n)
{
    size_t want = r->msg_len + n;
    if (want <= r->msg_cap)
        return 0;
    size_t cap = r->msg_cap ? r->msg_cap : 256;
    while (cap < want)
        cap *= 2;
    if (cap > r->max_message)
        cap = r->max_message;
    uint8_t *p = realloc(r->msg, cap);
    if (p == NULL)
        return -1;
    r->msg = p;
    r->msg_cap = cap;
    return 0;
}

/* Parses and checks a frame header. Returns its length, 0 when more bytes are needed, an
 * SB_WS_E* code on a violation. Checks that the first two bytes decide come first, so a bad frame
 * is refused however its header is split. */
static int parse_header(sb_ws_reader_t *r, const uint8_t *buf, size_t len)
{
    if (len < 2)
        return 0;
    int fin = buf[0] >> 7;
    int opcode = buf[0] & 0x0F;
    int masked = buf[1] >> 7;
    unsigned len7 = buf[1] & 0x7F;

    if (buf[0] & 0x70)
        return fail(r, SB_WS_EPROTOCOL, "reserved bits set without an extension");
    switch (opcode) {
    case SB_WS_OP_CONT:
    case SB_WS_OP_TEXT:
    case SB_WS_OP_BINARY:
    case SB_WS_OP_CLOSE:
    case SB_WS_OP_PING:
    case SB_WS_OP_PONG:
        break;
    default:
        return fail(r, SB_WS_EPROTOCOL, "reserved opcode");
    }
    if (r->role == SB_WS_SERVER && !masked)
        return fail(r, SB_WS_EPROTOCOL, "client frame is not masked");
    if (r->role == SB_WS_CLIENT && masked)
        return fail(r, SB_WS_EPROTOCOL, "server frame is masked");
    if (is_control(opcode)) {
        if (!fin)
            return fail(r, SB_WS_EPROTOCOL, "fragmented control frame");
        if (len7 > SB_WS_MAX_CONTROL)
            return fail(r, SB_WS_EPROTOCOL, "control frame payload over 125 bytes");
    } else if (opcode == SB_WS_OP_CONT) {
        if (r->msg_opcode == 0)
            return fail(r, SB_WS_EPROTOCOL, "continuation frame without a message");
    } else {
        if (r->msg_opcode != 0)
            return fail(r, SB_WS_EPROTOCOL, "new message inside a fragmented one");
        if (opcode == SB_WS_OP_BINARY && !r->allow_binary)
            return fail(r, SB_WS_EBINARY, "binary messages are not supported");
    }

    size_t hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (len < hlen)
        return 0;
    const uint8_t *p = buf + 2;
    uint64_t plen = len7;
    if (len7 == 126) {
        plen = (uint64_t)p[0] << 8 | p[1];
        p += 2;
        if (plen < 126)
            return fail(r, SB_WS_EPROTOCOL, "length not in its minimal encoding");
    } else if (len7 == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | p[i];
        p += 8;
        if (plen >> 63)
            return fail(r, SB_WS_EPROTOCOL, "length has its most significant bit set");
        if (plen <= 0xFFFF)
            return fail(r, SB_WS_EPROTOCOL, "length not in its minimal encoding");
    }
    if (!is_control(opcode)) {
        size_t before = opcode == SB_WS_OP_CONT ? r->msg_len : 0;
        if (plen > r->max_message || before + plen > r->max_message)
            return fail(r, SB_WS_ETOO_BIG, "message too big");
    }

    r->frame_fin = fin;
    r->frame_opcode = opcode;
    r->frame_masked = masked;
    if (masked)
        memcpy(r->frame_mask, p, 4);
    r->frame_left = plen;
    r->frame_pos = 0;
    return (int)hlen;
}

/* Starts a new data message, releasing a large buffer kept from the previous one. */
static void start_message(sb_ws_reader_t *r, int opcode)
{
    if (r->msg_cap > KEEP_BUFFER)
        sb_ws_reader_free(r);
    r->msg_opcode = opcode;
    r->msg_len = 0;
    sb_utf8_reset(&r->utf8);
}

/* Consumes n payload bytes of the current frame. Returns 0 or an SB_WS_E* code. */
static int take_payload(sb_ws_reader_t *r, const uint8_t *buf, size_t n)
{
    uint8_t *dst;
    if (is_control(r->frame_opcode)) {
        if (r->ctl == NULL && (r->ctl = malloc(SB_WS_MAX_CONTROL)) == NULL)
            return fail(r, SB_WS_ENOMEM, "out of memory");
        dst = r->ctl + r->ctl_len;
        r->ctl_len += n;
    } else {
        if (reserve(r, n) != 0)
            return fail(r, SB_WS_ENOMEM, "out of memory");
        dst = r->msg + r->msg_len;
        r->msg_len += n;
    }
    memcpy(dst, buf, n);
    if (r->frame_masked)
        sb_ws_mask(dst, n, r->frame_mask, r->frame_pos);
    r->frame_pos += n;
    r->frame_left -= n;
    if (r->msg_opcode == SB_WS_OP_TEXT && !is_control(r->frame_opcode) &&
        sb_utf8_feed(&r->utf8, dst, n) != 0)
        return fail(r, SB_WS_EUTF8, bad_utf8);
    return 0;
}

/* A complete control frame's event, its payload p[0, n) (unmasked). Returns 0 or an SB_WS_E*
 * code. */
static int control_event(sb_ws_reader_t *r, const uint8_t *p, size_t n, sb_ws_event_t *ev)
{
    if (p == NULL) /* an empty payload, and no buffer ever needed */
        p = (const uint8_t *)"";
    if (r->frame_opcode != SB_WS_OP_CLOSE) {
        ev->type = r->frame_opcode == SB_WS_OP_PING ? SB_WS_EV_PING : SB_WS_EV_PONG;
        ev->data = p;
        ev->len = n;
        return 0;
    }
    ev->type = SB_WS_EV_CLOSE;
    ev->close_code = SB_WS_CLOSE_NO_STATUS;
    if (n == 1)
        return fail(r, SB_WS_EPROTOCOL, "close frame with a 1-byte payload");
    if (n >= 2) {
        unsigned code = (unsigned)p[0] << 8 | p[1];
        if (!sb_ws_close_code_valid(code))
            return fail(r, SB_WS_EPROTOCOL, "invalid close code");
        if (sb_utf8_valid(p + 2, n - 2) != 0)
            return fail(r, SB_WS_EUTF8, "close reason is not valid UTF-8");
        ev->close_code = (uint16_t)code;
        ev->data = p + 2;
        ev->len = n - 2;
    }
    return 0;
}

/* The current frame is complete: report what it finished, if anything. Returns 0 or an SB_WS_E*
 * code. */
static int end_frame(sb_ws_reader_t *r, sb_ws_event_t *ev)
{
    r->in_payload = 0;
    switch (r->frame_opcode) {
    case SB_WS_OP_PING:
    case SB_WS_OP_PONG:
    case SB_WS_OP_CLOSE:
        return control_event(r, r->ctl, r->ctl_len, ev);
    default:
        if (!r->frame_fin)
            return 0;
        if (r->msg_opcode == SB_WS_OP_TEXT && !sb_utf8_complete(&r->utf8))
            return fail(r, SB_WS_EUTF8, cut_utf8);
        ev->type = r->msg_opcode == SB_WS_OP_TEXT ? SB_WS_EV_TEXT : SB_WS_EV_BINARY;
        ev->data = r->msg;
        ev->len = r->msg_len;
        r->msg_opcode = 0;
        return 0;
    }
}

/* A whole unfragmented data frame lying in a writable buf: unmasked and checked where it is,
 * and reported pointing into buf (no copy). Returns the bytes it takes, or an SB_WS_E* code. */
static int whole_frame_in_place(sb_ws_reader_t *r, uint8_t *payload, size_t used, sb_ws_event_t *ev)
{
    size_t n = (size_t)r->frame_left;
    if (r->frame_masked)
        sb_ws_mask(payload, n, r->frame_mask, 0);
    r->frame_pos = n;
    r->frame_left = 0;
    r->in_payload = 0;
    if (r->frame_opcode == SB_WS_OP_TEXT) {
        /* As take_payload and end_frame would say it. */
        if (sb_utf8_feed(&r->utf8, payload, n) != 0)
            return fail(r, SB_WS_EUTF8, bad_utf8);
        if (!sb_utf8_complete(&r->utf8))
            return fail(r, SB_WS_EUTF8, cut_utf8);
    }
    ev->type = r->frame_opcode == SB_WS_OP_TEXT ? SB_WS_EV_TEXT : SB_WS_EV_BINARY;
    ev->data = payload;
    ev->len = n;
    r->msg_opcode = 0;
    return (int)(used + n);
}

/* A whole control frame lying in a writable buf: unmasked and checked where it is, as
 * take_payload and end_frame would (no buffer of the reader's needed). Returns the bytes it takes,
 * or an SB_WS_E* code. */
static int whole_control_in_place(sb_ws_reader_t *r, uint8_t *payload, size_t used,
                                  sb_ws_event_t *ev)
{
    size_t n = (size_t)r->frame_left;
    if (r->frame_masked)
        sb_ws_mask(payload, n, r->frame_mask, 0);
    r->frame_pos = n;
    r->frame_left = 0;
    r->in_payload = 0;
    int rc = control_event(r, payload, n, ev);
    return rc != 0 ? rc : (int)(used + n);
}

static int feed(sb_ws_reader_t *r, const uint8_t *buf, uint8_t *writable, size_t len,
                sb_ws_event_t *ev)
{
    size_t used = 0;
    int rc;

    if (r->failed)
        return r->failed;
    if (!r->in_payload) {
        int n = parse_header(r, buf, len);
        if (n <= 0)
            return n;
        used = (size_t)n;
        r->in_payload = 1;
        if (is_control(r->frame_opcode))
            r->ctl_len = 0;
        else if (r->frame_opcode != SB_WS_OP_CONT)
            start_message(r, r->frame_opcode);
        if (writable != NULL && r->frame_fin && !is_control(r->frame_opcode) &&
            r->frame_opcode != SB_WS_OP_CONT && len - used >= r->frame_left)
            return whole_frame_in_place(r, writable + used, used, ev);
        if (writable != NULL && is_control(r->frame_opcode) && len - used >= r->frame_left)
            return whole_control_in_place(r, writable + used, used, ev);
    }

    size_t n = len - used;
    if (n > r->frame_left)
        n = (size_t)r->frame_left;
    if (n > 0 && (rc = take_payload(r, buf + used, n)) != 0)
        return rc;
    used += n;
    if (r->frame_left == 0 && (rc = end_frame(r, ev)) != 0)
        return rc;
    return (int)used;
}

int sb_ws_reader_feed(sb_ws_reader_t *r, const uint8_t *buf, size_t len, sb_ws_event_t *ev,
                      const char **err)
{
    memset(ev, 0, sizeof(*ev));
    int rc = feed(r, buf, NULL, len, ev);
    if (rc < 0) {
        memset(ev, 0, sizeof(*ev)); /* nothing half-reported */
        if (err != NULL)
            *err = r->failed_why;
    }
    return rc;
}

int sb_ws_reader_feed_in_place(sb_ws_reader_t *r, uint8_t *buf, size_t len, sb_ws_event_t *ev,
                               const char **err)
{
    memset(ev, 0, sizeof(*ev));
    int rc = feed(r, buf, buf, len, ev);
    if (rc < 0) {
        memset(ev, 0, sizeof(*ev)); /* nothing half-reported */
        if (err != NULL)
            *err = r->failed_why;
    }
    return rc;
}

size_t sb_ws_write_header(uint8_t *out, int fin, int opcode, uint64_t len, const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask != NULL) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void sb_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    size_t i = 0;
    /* Eight bytes at a time with the mask repeated from where this stretch starts in it. */
    if (len >= 8) {
        uint8_t rot[8];
        for (int k = 0; k < 8; k++)
            rot[k] = mask[(offset + (uint64_t)k) & 3];
        uint64_t m;
        memcpy(&m, rot, 8);
        for (; i + 8 <= len; i += 8) {
            uint64_t w;
            memcpy(&w, data + i, 8);
            w ^= m;
            memcpy(data + i, &w, 8);
        }
    }
    for (; i < len; i++)
        data[i] ^= mask[(offset + i) & 3];
}

size_t sb_ws_close_payload(uint8_t *out, uint16_t code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    if (n > SB_WS_MAX_CONTROL - 2) {
        n = SB_WS_MAX_CONTROL - 2;
        /* Cut before a code point, never inside one. */
        while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80)
            n--;
    }
    if (code == SB_WS_CLOSE_NO_STATUS)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (n > 0)
        memcpy(out + 2, reason, n);
    return 2 + n;
}

int sb_ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}
