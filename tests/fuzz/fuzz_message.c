/* libFuzzer target for proto/message and proto/json: sb_msg_parse checked against cJSON. */
#include "check.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "message.h"
#include "utf8.h"

static const char sender[] = "fuzz-sender_1.x";

/* ---- cJSON as the reference ------------------------------------------------------------------
 * cJSON refuses a \u escape of a lone surrogate, which RFC 8259's grammar allows (section 8.2
 * only calls it unwise) and sb_json_skip_value accepts. Such escapes are the one place cJSON is
 * stricter, so they are rewritten to \uFFFD, same length, before cJSON sees a text. */

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int h = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* A NUL-terminated copy of the JSON text s for cJSON; the caller frees it. */
static char *for_cjson(const char *s, size_t len)
{
    char *t = malloc(len + 1);
    int in_string = 0;

    CHECK(t != NULL);
    memcpy(t, s, len);
    t[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = t[i] == '"';
            continue;
        }
        if (t[i] == '"') {
            in_string = 0;
            continue;
        }
        if (t[i] != '\\')
            continue;
        if (i + 1 < len && t[i + 1] == 'u' && i + 5 < len) {
            int cp = hex4(t + i + 2);
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 11 < len && t[i + 6] == '\\' &&
                t[i + 7] == 'u') {
                int lo = hex4(t + i + 8);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    i += 11; /* a proper pair */
                    continue;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                memcpy(t + i + 2, "FFFD", 4);
            i += 5;
        } else {
            i++; /* the escaped byte */
        }
    }
    return t;
}

/* Parses the JSON text s (len bytes) with cJSON; NULL when cJSON refuses it or finds anything
 * but white space after the value. */
static cJSON *cjson_parse(const char *s, size_t len)
{
    char *t = for_cjson(s, len);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(t, len, &end, 0);

    if (root != NULL) {
        CHECK(end != NULL && end >= t && end <= t + len);
        for (; end < t + len; end++) {
            if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
                cJSON_Delete(root);
                root = NULL;
                break;
            }
        }
    }
    free(t);
    return root;
}

/* Structural equality in document order. cJSON_Compare is not enough on its own: it calls two
 * infinities (1e999) different, and an object with a duplicate key different from itself. */
static int same_json(const cJSON *a, const cJSON *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if ((a->type & 0xFF) != (b->type & 0xFF))
        return 0;
    switch (a->type & 0xFF) {
    case cJSON_Number:
        return a->valuedouble == b->valuedouble || (isnan(a->valuedouble) && isnan(b->valuedouble));
    case cJSON_String:
        return strcmp(a->valuestring, b->valuestring) == 0;
    case cJSON_Array:
    case cJSON_Object:
        for (a = a->child, b = b->child; a != NULL && b != NULL; a = a->next, b = b->next) {
            if ((a->string == NULL) != (b->string == NULL))
                return 0;
            if (a->string != NULL && strcmp(a->string, b->string) != 0)
                return 0;
            if (!same_json(a, b))
                return 0;
        }
        return a == NULL && b == NULL;
    default:
        return 1;
    }
}

/* 1 when cJSON_Compare can be trusted on this tree: finite numbers, no duplicate keys. */
static int compare_safe(const cJSON *j)
{
    if (cJSON_IsNumber(j))
        return isfinite(j->valuedouble);
    for (const cJSON *c = j->child; c != NULL; c = c->next) {
        if (cJSON_IsObject(j))
            for (const cJSON *d = c->next; d != NULL; d = d->next)
                if (strcmp(c->string, d->string) == 0)
                    return 0;
        if (!compare_safe(c))
            return 0;
    }
    return 1;
}

static void check_equal(const cJSON *a, const cJSON *b)
{
    CHECK(same_json(a, b));
    if (compare_safe(a))
        CHECK(cJSON_Compare(a, b, 1));
}

/* ---- helpers -------------------------------------------------------------------------------- */

static int inside(sb_str_t s, const uint8_t *data, size_t size)
{
    return s.p >= (const char *)data && s.p + s.len <= (const char *)data + size;
}

/* s is exactly one JSON value, no white space around it, per sb_json_skip_value. */
static int exact_value(sb_str_t s)
{
    size_t pos = 0;
    return s.len > 0 && sb_json_skip_value(s.p, s.len, &pos) == 0 && pos == s.len;
}

/* The rule for mid: a string of at most SB_MID_MAX bytes decoded, or a number of at most
 * SB_MID_MAX characters. */
static void check_mid(sb_str_t mid, const uint8_t *data, size_t size)
{
    char buf[SB_MID_MAX + 1];

    CHECK(inside(mid, data, size));
    CHECK(exact_value(mid));
    if (mid.p[0] == '"')
        CHECK(sb_json_decode_string(&mid, buf, sizeof(buf)) >= 0);
    else
        CHECK(mid.len <= SB_MID_MAX && (mid.p[0] == '-' || (mid.p[0] >= '0' && mid.p[0] <= '9')));
}

static void check_string_field(const cJSON *root, const char *name, const char *want)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    CHECK(cJSON_IsString(item));
    CHECK(strcmp(item->valuestring, want) == 0);
}

/* A builder's output (*lenp is read once the builder has run): one complete value to
 * sb_json_skip_value and to cJSON, an object whose "type" is type. Returns the cJSON tree; frees
 * out. */
static cJSON *check_built(char *out, const size_t *lenp, const char *type)
{
    size_t pos = 0, len = *lenp;
    cJSON *root;

    CHECK(out != NULL);
    CHECK(strlen(out) == len);
    CHECK(sb_json_skip_value(out, len, &pos) == 0);
    CHECK(pos == len);
    root = cjson_parse(out, len);
    CHECK(root != NULL);
    CHECK(cJSON_IsObject(root));
    check_string_field(root, "type", type);
    free(out);
    return root;
}

/* The "mid" member of a built message equals the mid slice, or is absent with it. */
static void check_built_mid(const cJSON *root, sb_str_t mid)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "mid");
    if (mid.len == 0) {
        CHECK(item == NULL);
        return;
    }
    cJSON *want = cjson_parse(mid.p, mid.len);
    CHECK(want != NULL);
    check_equal(item, want);
    cJSON_Delete(want);
}

/* ---- the properties ------------------------------------------------------------------------- */

/* (1) What sb_msg_parse accepts cJSON accepts, as an object, and reads the same fields from. */
static cJSON *check_accepted_by_cjson(const uint8_t *data, size_t size, const sb_msg_t *m)
{
    cJSON *root = cjson_parse((const char *)data, size);

    CHECK(root != NULL);
    CHECK(cJSON_IsObject(root));
    check_string_field(root, "type", sb_msg_type_name(m->type));
    if (m->type == SB_MSG_JOIN || m->type == SB_MSG_LEAVE)
        check_string_field(root, "room", m->room);
    else
        check_string_field(root, "to", m->to);
    CHECK((cJSON_GetObjectItemCaseSensitive(root, "mid") != NULL) == (m->mid.len > 0));
    return root;
}

/* (2) The slices lie in the input and are exact values; names follow their rules. */
static void check_fields(const uint8_t *data, size_t size, const sb_msg_t *m)
{
    if (m->type == SB_MSG_JOIN || m->type == SB_MSG_LEAVE) {
        CHECK(sb_room_valid(m->room, strlen(m->room)));
    } else {
        CHECK(sb_peer_id_valid(m->to, strlen(m->to)));
    }
    if (m->payload.len > 0) {
        CHECK(m->type != SB_MSG_JOIN && m->type != SB_MSG_LEAVE);
        CHECK(inside(m->payload, data, size));
        CHECK(exact_value(m->payload));
    }
    if (m->mid.len > 0)
        check_mid(m->mid, data, size);
}

/* (3) Relaying what was parsed gives valid JSON carrying the same payload and mid; so do the
 * other answers built from the parsed fields. */
static void check_relay(const sb_msg_t *m, const cJSON *input)
{
    const cJSON *in_payload = cJSON_GetObjectItemCaseSensitive(input, "payload");
    size_t len = 0;
    cJSON *root, *slice;

    /* the parts, joined, are exactly the built message */
    char *whole = sb_msg_relay(m->type, sender, m->payload, m->mid, &len);
    CHECK(whole != NULL);
    sb_str_t parts[SB_MSG_RELAY_PARTS];
    size_t n = sb_msg_relay_parts(m->type, sender, m->payload, m->mid, parts), at = 0;
    CHECK(n <= SB_MSG_RELAY_PARTS);
    for (size_t i = 0; i < n; i++) {
        CHECK(at + parts[i].len <= len && memcmp(whole + at, parts[i].p, parts[i].len) == 0);
        at += parts[i].len;
    }
    CHECK(at == len);
    free(whole);

    root = check_built(sb_msg_relay(m->type, sender, m->payload, m->mid, &len), &len,
                       sb_msg_type_name(m->type));
    check_string_field(root, "from", sender);
    check_built_mid(root, m->mid);
    const cJSON *out_payload = cJSON_GetObjectItemCaseSensitive(root, "payload");
    if (m->payload.len == 0) {
        CHECK(out_payload == NULL);
        CHECK(in_payload == NULL);
    } else {
        slice = cjson_parse(m->payload.p, m->payload.len);
        CHECK(slice != NULL);
        check_equal(out_payload, slice);
        check_equal(in_payload, slice);
        cJSON_Delete(slice);
    }
    cJSON_Delete(root);

    if (m->mid.len > 0) {
        root = check_built(sb_msg_ack(m->mid, &len), &len, "ack");
        check_built_mid(root, m->mid);
        cJSON_Delete(root);
    }
    root = check_built(sb_msg_error("peer-unavailable", "not connected", m->to, NULL, m->mid, &len),
                       &len, "error");
    check_string_field(root, "to", m->to);
    check_built_mid(root, m->mid);
    cJSON_Delete(root);
}

static void check_room_answers(const sb_msg_t *m)
{
    const char *const peers[] = {sender, "a"};
    size_t len = 0;
    cJSON *root;

    root = check_built(sb_msg_joined(m->room, peers, 2, m->mid, &len), &len, "joined");
    check_string_field(root, "room", m->room);
    check_built_mid(root, m->mid);
    cJSON_Delete(root);
    root = check_built(sb_msg_left(m->room, m->mid, &len), &len, "left");
    check_string_field(root, "room", m->room);
    check_built_mid(root, m->mid);
    cJSON_Delete(root);
    root =
        check_built(sb_msg_peer_event("peer-joined", m->room, sender, &len), &len, "peer-joined");
    check_string_field(root, "peer", sender);
    cJSON_Delete(root);
}

/* A refused message is answered with its error text (built as node/app/relay.c builds it: the
 * byte of a JSON error after the reason) and the mid, if one was read. */
static void check_refused(const uint8_t *data, size_t size, const sb_msg_t *m, int rc,
                          const char *err)
{
    size_t len = 0;
    cJSON *root;
    char text[160];

    CHECK(err[0] != '\0');
    if (rc == SB_MSG_EJSON || rc == SB_MSG_ETRAILING)
        CHECK(m->error_at < size || (rc == SB_MSG_EJSON && m->error_at == size));
    else
        CHECK(m->error_at == 0);
    if (rc == SB_MSG_EJSON)
        snprintf(text, sizeof(text), "%s at byte %zu", err, m->error_at);
    else if (rc == SB_MSG_ETRAILING)
        snprintf(text, sizeof(text), "invalid JSON at byte %zu: %s", m->error_at, err);
    else
        snprintf(text, sizeof(text), "%s", err);
    if (m->mid.len > 0)
        check_mid(m->mid, data, size);
    root = check_built(sb_msg_error("bad-request", text, NULL, NULL, m->mid, &len), &len, "error");
    check_string_field(root, "message", text);
    check_built_mid(root, m->mid);
    cJSON_Delete(root);
}

/* (4) sb_json_escape then sb_json_decode_string gives back any valid UTF-8 without NULs, and
 * cJSON reads the escaped form as the same string. Both need exactly the room they report. */
static void check_escape_round_trip(const uint8_t *data, size_t size)
{
    if (memchr(data, '\0', size) != NULL || sb_utf8_valid(data, size) != 0)
        return;

    char *s = malloc(size + 1), *lit = malloc(6 * size + 3), *back = malloc(size + 1);
    CHECK(s != NULL && lit != NULL && back != NULL);
    memcpy(s, data, size);
    s[size] = '\0';

    int n = sb_json_escape(s, lit, 6 * size + 3);
    CHECK(n >= 2);
    CHECK(sb_json_escape(s, back, 0) == -1);
    char *tight = malloc((size_t)n + 1);
    CHECK(tight != NULL);
    CHECK(sb_json_escape(s, tight, (size_t)n + 1) == n);
    CHECK(memcmp(tight, lit, (size_t)n + 1) == 0);
    CHECK(sb_json_escape(s, tight, (size_t)n) == -1);
    free(tight);

    sb_str_t v = {lit, (size_t)n};
    CHECK(exact_value(v));
    cJSON *j = cjson_parse(lit, (size_t)n);
    CHECK(cJSON_IsString(j));
    CHECK(strcmp(j->valuestring, s) == 0);
    cJSON_Delete(j);

    CHECK(sb_json_decode_string(&v, back, size + 1) == (int)size);
    CHECK(memcmp(back, s, size + 1) == 0);
    if (size > 0)
        CHECK(sb_json_decode_string(&v, back, size) == -1);
    free(back);
    free(lit);
    free(s);
}

/* Any text sb_json_skip_value takes as one whole value, cJSON takes too; a string literal decodes
 * to what cJSON reads (up to an escaped NUL, where cJSON's C string ends). */
static void check_scanner(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t pos = 0;

    if (sb_json_skip_value(s, size, &pos) != 0) {
        CHECK(pos <= size);
        return;
    }
    CHECK(pos <= size);
    size_t end = pos;
    sb_json_skip_ws(s, size, &end);
    if (end != size)
        return;
    cJSON *j = cjson_parse(s, size);
    CHECK(j != NULL);
    cJSON_Delete(j);

    size_t start = 0;
    sb_json_skip_ws(s, size, &start);
    if (s[start] != '"')
        return;
    sb_str_t lit = {s + start, pos - start};
    char *out = malloc(lit.len + 1);
    CHECK(out != NULL);
    int n = sb_json_decode_string(&lit, out, lit.len + 1);
    char *raw = malloc(lit.len + 1);
    CHECK(raw != NULL);
    memcpy(raw, lit.p, lit.len);
    raw[lit.len] = '\0';
    j = cJSON_ParseWithLengthOpts(raw, lit.len, NULL, 0);
    /* both refuse exactly the lone surrogates */
    CHECK((n >= 0) == (j != NULL));
    if (n >= 0) {
        CHECK(cJSON_IsString(j));
        size_t k = strlen(j->valuestring);
        CHECK(k <= (size_t)n);
        CHECK(memcmp(j->valuestring, out, k) == 0);
        CHECK(k == (size_t)n || out[k] == '\0');
    }
    cJSON_Delete(j);
    free(raw);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_msg_t m;
    const char *err = NULL;

    memset(&m, 0x5A, sizeof(m));
    int rc = sb_msg_parse((const char *)data, size, &m, &err);
    CHECK(rc <= 0 && rc >= SB_MSG_EUNKNOWN_TYPE);
    CHECK((rc == 0) == (err == NULL)); /* a reason exactly when refused */
    if (rc != 0) {
        /* err may be NULL: the same answer */
        sb_msg_t again;
        CHECK(sb_msg_parse((const char *)data, size, &again, NULL) == rc);
        CHECK(again.error_at == m.error_at);
        CHECK(again.mid.p == m.mid.p && again.mid.len == m.mid.len);
    }

    if (rc == 0) {
        cJSON *input = check_accepted_by_cjson(data, size, &m);
        check_fields(data, size, &m);
        if (m.type == SB_MSG_JOIN || m.type == SB_MSG_LEAVE)
            check_room_answers(&m);
        else
            check_relay(&m, input);
        cJSON_Delete(input);
    } else {
        check_refused(data, size, &m, rc, err);
    }

    check_scanner(data, size);
    check_escape_round_trip(data, size);
    return 0;
}
