/* Signaling protocol v1 (PROTOCOL.md): parses client messages and builds server messages. */
#include "message.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"

static const char *const type_names[] = {"offer", "answer", "candidate", "bye", "join", "leave"};
#define NUM_TYPES (sizeof(type_names) / sizeof(type_names[0]))

const char *sb_msg_type_name(sb_msg_type_t type) { return type_names[type]; }

static int fail(const char **err, int code, const char *why)
{
    if (err != NULL)
        *err = why;
    return code;
}

/* A JSON syntax error at byte at. */
static int bad_json(sb_msg_t *m, const char **err, size_t at)
{
    m->error_at = at;
    return fail(err, SB_MSG_EJSON, "invalid JSON");
}

/* The fields the protocol knows; others are ignored so that later versions can add some. Each
 * has its reasons written out, so that they are static and still name the field. */
enum { F_TYPE, F_TO, F_ROOM, F_PAYLOAD, F_MID, NUM_FIELDS };
static const struct {
    const char *name;
    const char *missing;    /* type, to, room: required */
    const char *not_string; /* type, to, room: strings */
    const char *duplicate;
    const char *invalid; /* to, room, mid: the rule the value breaks */
} fields[NUM_FIELDS] = {
    [F_TYPE] = {"type", "missing field 'type'", "'type' must be a string", "duplicate field 'type'",
                NULL},
    [F_TO] = {"to", "missing field 'to'", "'to' must be a string", "duplicate field 'to'",
              "'to' must be 1-64 characters of [A-Za-z0-9_.-]"},
    [F_ROOM] = {"room", "missing field 'room'", "'room' must be a string", "duplicate field 'room'",
                "'room' must be 1-64 characters of [A-Za-z0-9_.:-]"},
    [F_PAYLOAD] = {"payload", NULL, NULL, "duplicate field 'payload'", NULL},
    [F_MID] = {"mid", NULL, NULL, "duplicate field 'mid'",
               "'mid' must be a string of at most 64 bytes or a number of at most 64 characters"},
};
_Static_assert(SB_ID_MAX == 64 && SB_ROOM_MAX == 64 && SB_MID_MAX == 64,
               "the reasons above say 64");

static int is_string(const sb_str_t *v) { return v->len > 0 && v->p[0] == '"'; }

/* Decodes string field f, which must be a name; writes it NUL-terminated into out. */
static int name_field(const sb_str_t *v, int f, char *out, size_t cap,
                      int (*valid)(const char *, size_t), const char **err)
{
    int n;
    if (v->len == 0)
        return fail(err, SB_MSG_EMISSING, fields[f].missing);
    if (!is_string(v))
        return fail(err, SB_MSG_ENOT_STRING, fields[f].not_string);
    n = sb_json_decode_string(v, out, cap);
    if (n < 0 || !valid(out, (size_t)n))
        return fail(err, SB_MSG_EVALUE, fields[f].invalid);
    return 0;
}

static int mid_valid(const sb_str_t *v)
{
    char buf[SB_MID_MAX + 1];
    if (is_string(v))
        return sb_json_decode_string(v, buf, sizeof(buf)) >= 0;
    return v->len <= SB_MID_MAX && (v->p[0] == '-' || (v->p[0] >= '0' && v->p[0] <= '9'));
}

int sb_msg_parse(const char *json, size_t len, sb_msg_t *m, const char **err)
{
    sb_str_t f[NUM_FIELDS];
    size_t pos = 0;

    memset(m, 0, sizeof(*m));
    memset(f, 0, sizeof(f));

    /* One pass over the top-level object, remembering where each known field's value is. */
    sb_json_skip_ws(json, len, &pos);
    if (pos >= len || json[pos] != '{') {
        size_t check = pos;
        if (pos < len && sb_json_skip_value(json, len, &check) == 0)
            return fail(err, SB_MSG_ENOT_OBJECT, "a message must be a JSON object");
        return bad_json(m, err, check);
    }
    pos++;
    sb_json_skip_ws(json, len, &pos);
    int first = 1;
    while (pos < len && json[pos] != '}') {
        if (!first) {
            if (json[pos] != ',')
                return bad_json(m, err, pos);
            pos++;
            sb_json_skip_ws(json, len, &pos);
        }
        first = 0;
        size_t kstart = pos;
        if (pos >= len || json[pos] != '"' || sb_json_skip_value(json, len, &pos) != 0)
            return bad_json(m, err, pos);
        sb_str_t klit = {json + kstart, pos - kstart};
        char key[16];
        int known = -1, klen = sb_json_decode_string(&klit, key, sizeof(key));
        for (int i = 0; klen >= 0 && i < NUM_FIELDS; i++)
            if ((size_t)klen == strlen(fields[i].name) &&
                memcmp(key, fields[i].name, (size_t)klen) == 0)
                known = i; /* compared with its length: a decoded \u0000 cannot cut a key short */
        sb_json_skip_ws(json, len, &pos);
        if (pos >= len || json[pos] != ':')
            return bad_json(m, err, pos);
        pos++;
        sb_json_skip_ws(json, len, &pos);
        size_t vstart = pos;
        if (sb_json_skip_nested(json, len, &pos, 1) != 0) /* inside the message object */
            return bad_json(m, err, pos);
        if (known >= 0) {
            /* Two values for one field could be read two ways: refuse rather than guess. */
            if (f[known].p != NULL)
                return fail(err, SB_MSG_EDUPLICATE, fields[known].duplicate);
            f[known].p = json + vstart;
            f[known].len = pos - vstart;
            /* Keep a valid mid as soon as it is seen, so that an error found later carries it. */
            if (known == F_MID && mid_valid(&f[F_MID]))
                m->mid = f[F_MID];
        }
        sb_json_skip_ws(json, len, &pos);
    }
    if (pos >= len)
        return bad_json(m, err, pos);
    pos++;
    sb_json_skip_ws(json, len, &pos);
    if (pos != len) {
        m->error_at = pos;
        return fail(err, SB_MSG_ETRAILING, "data after the object");
    }

    if (f[F_MID].len > 0 && m->mid.len == 0)
        return fail(err, SB_MSG_EVALUE, fields[F_MID].invalid);

    char type[16];
    if (f[F_TYPE].len == 0)
        return fail(err, SB_MSG_EMISSING, fields[F_TYPE].missing);
    if (!is_string(&f[F_TYPE]))
        return fail(err, SB_MSG_ENOT_STRING, fields[F_TYPE].not_string);
    int found = -1, tlen = sb_json_decode_string(&f[F_TYPE], type, sizeof(type));
    for (size_t i = 0; tlen >= 0 && i < NUM_TYPES; i++)
        if ((size_t)tlen == strlen(type_names[i]) && memcmp(type, type_names[i], (size_t)tlen) == 0)
            found = (int)i;
    if (found < 0)
        return fail(err, SB_MSG_EUNKNOWN_TYPE,
                    "unknown type: expected offer, answer, candidate, bye, join or leave");
    m->type = (sb_msg_type_t)found;

    if (m->type == SB_MSG_JOIN || m->type == SB_MSG_LEAVE)
        return name_field(&f[F_ROOM], F_ROOM, m->room, sizeof(m->room), sb_room_valid, err);

    m->payload = f[F_PAYLOAD];
    return name_field(&f[F_TO], F_TO, m->to, sizeof(m->to), sb_peer_id_valid, err);
}

/* A growing output string for the builders. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256; /* most answers fit at once */
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (p == NULL) {
            o->failed = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }

/* Writes value as a JSON string literal. */
static void put_string(out_t *o, const char *value)
{
    size_t cap = strlen(value) * 6 + 3;
    char stack[512], *buf = cap <= sizeof(stack) ? stack : malloc(cap);
    if (buf == NULL) {
        o->failed = 1;
        return;
    }
    sb_json_escape(value, buf, cap);
    puts_(o, buf);
    if (buf != stack)
        free(buf);
}

/* Writes ,"name":"escaped value". */
static void put_string_field(out_t *o, const char *name, const char *value)
{
    puts_(o, ",\"");
    puts_(o, name);
    puts_(o, "\":");
    put_string(o, value);
}

static void put_raw_field(out_t *o, const char *name, sb_str_t json)
{
    if (json.len == 0)
        return;
    puts_(o, ",\"");
    puts_(o, name);
    puts_(o, "\":");
    put(o, json.p, json.len);
}

/* Every message starts {"type":"..." (a fixed name), continues with fields, ends with }. */
static void begin(out_t *o, const char *type)
{
    memset(o, 0, sizeof(*o));
    puts_(o, "{\"type\":\"");
    puts_(o, type);
    puts_(o, "\"");
}

static char *end(out_t *o, size_t *len)
{
    puts_(o, "}");
    if (o->failed) {
        free(o->p);
        return NULL;
    }
    *len = o->len;
    return o->p;
}

char *sb_msg_welcome(const char *id, const char *node, const char *ice_servers, const char *resume,
                     int resumed, size_t *len)
{
    out_t o;
    begin(&o, "welcome");
    put_string_field(&o, "id", id);
    put_string_field(&o, "node", node);
    put_raw_field(&o, "iceServers", (sb_str_t){ice_servers, strlen(ice_servers)});
    if (resume != NULL) {
        put_string_field(&o, "resume", resume);
        put_raw_field(&o, "resumed", resumed ? (sb_str_t){"true", 4} : (sb_str_t){"false", 5});
    }
    return end(&o, len);
}

size_t sb_msg_relay_parts(sb_msg_type_t type, const char *from, sb_str_t payload, sb_str_t mid,
                          sb_str_t parts[SB_MSG_RELAY_PARTS])
{
    size_t n = 0;
#define PART(s, l) (parts[n++] = (sb_str_t){(s), (l)})
#define LIT(s) PART(s, sizeof(s) - 1)
    LIT("{\"type\":\"");
    PART(sb_msg_type_name(type), strlen(sb_msg_type_name(type)));
    LIT("\",\"from\":\""); /* a peer ID needs no escaping */
    PART(from, strlen(from));
    LIT("\"");
    if (payload.len > 0) {
        LIT(",\"payload\":");
        PART(payload.p, payload.len);
    }
    if (mid.len > 0) {
        LIT(",\"mid\":");
        PART(mid.p, mid.len);
    }
    LIT("}");
#undef LIT
#undef PART
    return n;
}

char *sb_msg_relay(sb_msg_type_t type, const char *from, sb_str_t payload, sb_str_t mid,
                   size_t *len)
{
    out_t o;
    begin(&o, sb_msg_type_name(type));
    put_string_field(&o, "from", from);
    put_raw_field(&o, "payload", payload);
    put_raw_field(&o, "mid", mid);
    return end(&o, len);
}

char *sb_msg_ack(sb_str_t mid, size_t *len)
{
    out_t o;
    begin(&o, "ack");
    put_raw_field(&o, "mid", mid);
    return end(&o, len);
}

char *sb_msg_queued(sb_str_t mid, size_t *len)
{
    out_t o;
    begin(&o, "queued");
    put_raw_field(&o, "mid", mid);
    return end(&o, len);
}

size_t sb_msg_ack_parts(sb_str_t mid, sb_str_t parts[SB_MSG_ACK_PARTS])
{
    static const char head[] = "{\"type\":\"ack\",\"mid\":";
    parts[0] = (sb_str_t){head, sizeof(head) - 1};
    parts[1] = mid;
    parts[2] = (sb_str_t){"}", 1};
    return SB_MSG_ACK_PARTS;
}

char *sb_msg_error(const char *code, const char *message, const char *to, const char *room,
                   sb_str_t mid, size_t *len)
{
    out_t o;
    begin(&o, "error");
    put_string_field(&o, "code", code);
    put_string_field(&o, "message", message);
    if (to)
        put_string_field(&o, "to", to);
    if (room)
        put_string_field(&o, "room", room);
    put_raw_field(&o, "mid", mid);
    return end(&o, len);
}

char *sb_msg_joined(const char *room, const char *const *peers, size_t npeers, sb_str_t mid,
                    size_t *len)
{
    out_t o;
    begin(&o, "joined");
    put_string_field(&o, "room", room);
    puts_(&o, ",\"peers\":[");
    for (size_t i = 0; i < npeers; i++) {
        if (i > 0)
            puts_(&o, ",");
        put_string(&o, peers[i]);
    }
    puts_(&o, "]");
    put_raw_field(&o, "mid", mid);
    return end(&o, len);
}

char *sb_msg_left(const char *room, sb_str_t mid, size_t *len)
{
    out_t o;
    begin(&o, "left");
    put_string_field(&o, "room", room);
    put_raw_field(&o, "mid", mid);
    return end(&o, len);
}

char *sb_msg_peer_event(const char *event, const char *room, const char *peer, size_t *len)
{
    out_t o;
    begin(&o, event);
    put_string_field(&o, "room", room);
    put_string_field(&o, "peer", peer);
    return end(&o, len);
}
