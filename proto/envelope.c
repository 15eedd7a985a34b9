/* The bus envelope between nodes (one per pub/sub message): parse, size and write; no I/O. */
#include "envelope.h"

#include <string.h>

static const char *const kind_names[] = {"offer",       "answer",    "candidate", "bye",
                                         "peer-joined", "peer-left", "replaced",  "resent"};
#define NUM_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))
#define KIND_MAX 11 /* "peer-joined" */

/* The longest decimal texts: UINT64_MAX, and SB_ENV_MID_MAX. */
#define SENT_DIGITS_MAX 20
#define MIDLEN_DIGITS_MAX 3
_Static_assert(SB_ENV_MID_MAX == 386, "the mid length reason below says 386");

const char *sb_env_kind_name(sb_env_kind_t kind)
{
    return (unsigned)kind < NUM_KINDS ? kind_names[kind] : NULL;
}

int sb_env_kind_parse(const char *s, size_t len)
{
    for (size_t i = 0; i < NUM_KINDS; i++)
        if (len == strlen(kind_names[i]) && memcmp(s, kind_names[i], len) == 0)
            return (int)i;
    return -1;
}

int sb_env_is_relay(sb_env_kind_t kind)
{
    return kind == SB_ENV_OFFER || kind == SB_ENV_ANSWER || kind == SB_ENV_CANDIDATE ||
           kind == SB_ENV_BYE;
}

static int fail(const char **err, const char *reason, int code)
{
    if (err != NULL)
        *err = reason;
    return code;
}

/* Reads the field at *pos: the bytes up to the next space or the end, but no more than max + 1,
 * so that a field too long for its rule is seen as such without scanning the rest. Leaves *pos
 * past the separator and returns 1 when one follows the field; else leaves *pos at the field's
 * end and returns 0 (the caller checks the field first, so that a bad field is reported as
 * such). */
static int field(const char *buf, size_t len, size_t *pos, size_t max, sb_str_t *f)
{
    size_t start = *pos, end = start;

    while (end < len && buf[end] != ' ' && end - start <= max)
        end++;
    f->p = end > start ? buf + start : NULL;
    f->len = end - start;
    if (end < len && buf[end] == ' ') {
        *pos = end + 1;
        return 1;
    }
    *pos = end;
    return 0;
}

/* A decimal of 1 to max digits without a leading zero (but "0") and not over limit. */
static int decimal(const sb_str_t *f, size_t max, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;

    if (f->len == 0 || f->len > max || (f->p[0] == '0' && f->len > 1))
        return -1;
    for (size_t i = 0; i < f->len; i++) {
        char c = f->p[i];
        if (c < '0' || c > '9')
            return -1;
        unsigned d = (unsigned)(c - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static const char e_sep[] = "missing separator: the envelope ends early or a field runs on";

int sb_env_parse(const char *buf, size_t len, sb_env_t *env, const char **err)
{
    sb_str_t f;
    size_t pos = 0;
    uint64_t midlen;
    int sep, kind;

    memset(env, 0, sizeof(*env));

    sep = field(buf, len, &pos, sizeof(SB_ENV_VERSION) - 1, &f);
    if (!sb_str_eq(&f, SB_ENV_VERSION, 0))
        return fail(err, "unknown envelope version", SB_ENV_EVERSION);
    if (!sep)
        return fail(err, e_sep, SB_ENV_ESEP);

    sep = field(buf, len, &pos, KIND_MAX, &f);
    kind = f.len > 0 ? sb_env_kind_parse(f.p, f.len) : -1;
    if (kind < 0)
        return fail(err, "unknown envelope kind", SB_ENV_EKIND);
    env->kind = (sb_env_kind_t)kind;
    if (!sep)
        return fail(err, e_sep, SB_ENV_ESEP);

    sep = field(buf, len, &pos, SENT_DIGITS_MAX, &f);
    if (decimal(&f, SENT_DIGITS_MAX, UINT64_MAX, &env->sent_us) != 0)
        return fail(err,
                    "bad send time: expected 1-20 digits without a leading zero, at most 2^64-1",
                    SB_ENV_ESENT);
    if (!sep)
        return fail(err, e_sep, SB_ENV_ESEP);

    sep = field(buf, len, &pos, SB_ID_MAX, &env->from);
    if (env->from.len > 0 && !sb_peer_id_valid(env->from.p, env->from.len))
        return fail(err, "bad 'from': expected 1-64 characters of [A-Za-z0-9_.-]", SB_ENV_EFIELD);
    if (!sep)
        return fail(err, e_sep, SB_ENV_ESEP);

    sep = field(buf, len, &pos, SB_ID_MAX, &env->to);
    if (env->to.len > 0 && !sb_peer_id_valid(env->to.p, env->to.len))
        return fail(err, "bad 'to': expected 1-64 characters of [A-Za-z0-9_.-]", SB_ENV_EFIELD);
    if (!sep)
        return fail(err, e_sep, SB_ENV_ESEP);

    sep = field(buf, len, &pos, SB_ROOM_MAX, &env->room);
    if (env->room.len > 0 && !sb_room_valid(env->room.p, env->room.len))
        return fail(err, "bad 'room': expected 1-64 characters of [A-Za-z0-9_.:-]", SB_ENV_EFIELD);
    if (!sep)
        return fail(err, e_sep, SB_ENV_ESEP);

    /* The kind's rules, before reading on: what follows cannot change them. */
    if (env->from.len == 0)
        return fail(err, "no 'from': every kind names its sender", SB_ENV_ESHAPE);
    if (sb_env_is_relay(env->kind)) {
        if (env->to.len == 0)
            return fail(err, "no 'to' in a relayed message", SB_ENV_ESHAPE);
        if (env->room.len > 0)
            return fail(err, "a 'room' in a relayed message", SB_ENV_ESHAPE);
    } else if (env->kind == SB_ENV_REPLACED || env->kind == SB_ENV_RESENT) {
        if (env->to.len == 0)
            return fail(err, "no 'to' in a session event", SB_ENV_ESHAPE);
        if (env->room.len > 0)
            return fail(err, "a 'room' in a session event", SB_ENV_ESHAPE);
    } else {
        if (env->room.len == 0)
            return fail(err, "no 'room' in a room event", SB_ENV_ESHAPE);
        if (env->to.len > 0)
            return fail(err, "a 'to' in a room event", SB_ENV_ESHAPE);
    }

    sep = field(buf, len, &pos, MIDLEN_DIGITS_MAX, &f);
    if (decimal(&f, MIDLEN_DIGITS_MAX, SB_ENV_MID_MAX, &midlen) != 0)
        return fail(err, "bad mid length: expected 1-3 digits without a leading zero, at most 386",
                    SB_ENV_EMID);
    if (!sep)
        return fail(err, e_sep, SB_ENV_ESEP);
    if (midlen > len - pos)
        return fail(err, "bad mid length: longer than the rest of the envelope", SB_ENV_EMID);
    if (midlen > 0)
        env->mid = (sb_str_t){buf + pos, (size_t)midlen};
    pos += (size_t)midlen;
    if (pos < len)
        env->payload = (sb_str_t){buf + pos, len - pos};

    if (!sb_env_is_relay(env->kind) && (env->mid.len > 0 || env->payload.len > 0))
        return fail(err, "a mid or payload in an event", SB_ENV_ESHAPE);
    return 0;
}

static size_t digits(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

size_t sb_env_size(const sb_env_t *env)
{
    /* the version, seven separators, the fields */
    return sizeof(SB_ENV_VERSION) - 1 + 7 + strlen(sb_env_kind_name(env->kind)) +
           digits(env->sent_us) + env->from.len + env->to.len + env->room.len +
           digits(env->mid.len) + env->mid.len + env->payload.len;
}

static char *put(char *out, const char *s, size_t n)
{
    if (n > 0)
        memcpy(out, s, n); /* n == 0 may come with s NULL, which memcpy does not allow */
    return out + n;
}

static char *put_decimal(char *out, uint64_t v)
{
    size_t n = digits(v);
    for (size_t i = n; i > 0; i--) {
        out[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    return out + n;
}

size_t sb_env_write(const sb_env_t *env, char *out)
{
    char *p = out + sb_env_write_head(env, out);
    p = put(p, env->mid.p, env->mid.len);
    p = put(p, env->payload.p, env->payload.len);
    return (size_t)(p - out);
}

size_t sb_env_write_head(const sb_env_t *env, char *out)
{
    const char *kind = sb_env_kind_name(env->kind);
    char *p = out;

    p = put(p, SB_ENV_VERSION " ", sizeof(SB_ENV_VERSION));
    p = put(p, kind, strlen(kind));
    *p++ = ' ';
    p = put_decimal(p, env->sent_us);
    *p++ = ' ';
    p = put(p, env->from.p, env->from.len);
    *p++ = ' ';
    p = put(p, env->to.p, env->to.len);
    *p++ = ' ';
    p = put(p, env->room.p, env->room.len);
    *p++ = ' ';
    p = put_decimal(p, env->mid.len);
    *p++ = ' ';
    return (size_t)(p - out);
}

size_t sb_env_peer_channel(const char *id, int sharded, char *out)
{
    size_t n = strlen(id);
    if (n > SB_ID_MAX)
        n = SB_ID_MAX;
    if (sharded) {
        memcpy(out, "sb:{", 4);
        memcpy(out + 4, id, n);
        memcpy(out + 4 + n, "}:ch", 5);
        return n + 8;
    }
    memcpy(out, SB_ENV_PEER_CHANNEL, sizeof(SB_ENV_PEER_CHANNEL) - 1);
    memcpy(out + sizeof(SB_ENV_PEER_CHANNEL) - 1, id, n);
    out[sizeof(SB_ENV_PEER_CHANNEL) - 1 + n] = '\0';
    return sizeof(SB_ENV_PEER_CHANNEL) - 1 + n;
}

#define RESEND_PREFIX SB_ENV_VERSION " resend "

size_t sb_env_resend_head(uint64_t from_ms, uint64_t until_ms, char *out)
{
    char *p = put(out, RESEND_PREFIX, sizeof(RESEND_PREFIX) - 1);
    p = put_decimal(p, from_ms);
    *p++ = ' ';
    return (size_t)(put_decimal(p, until_ms) - out);
}

int sb_env_resend_parse(const char *buf, size_t len, uint64_t *from_ms, uint64_t *until_ms,
                        size_t *ids, const char **err)
{
    size_t pos = sizeof(RESEND_PREFIX) - 1;
    sb_str_t f;

    if (len < pos || memcmp(buf, SB_ENV_VERSION " ", sizeof(SB_ENV_VERSION)) != 0)
        return fail(err, "not an sb1 message", SB_ENV_EVERSION);
    if (memcmp(buf, RESEND_PREFIX, pos) != 0)
        return fail(err, "not a resend request", SB_ENV_EKIND);
    int more = field(buf, len, &pos, 20, &f);
    if (decimal(&f, 20, UINT64_MAX, from_ms) != 0)
        return fail(err, "from_ms is not a decimal of at most 20 digits", SB_ENV_ESENT);
    if (!more)
        return fail(err, e_sep, SB_ENV_ESEP);
    more = field(buf, len, &pos, 20, &f);
    if (decimal(&f, 20, UINT64_MAX, until_ms) != 0 || *until_ms > *from_ms)
        return fail(err, "until_ms is not a decimal of at most 20 digits, at most from_ms",
                    SB_ENV_ESENT);
    *ids = more ? pos - 1 : pos;
    while (more) {
        more = field(buf, len, &pos, SB_ID_MAX, &f);
        if (!sb_peer_id_valid(f.p, f.len))
            return fail(err, "a peer ID of the request is not valid", SB_ENV_EFIELD);
    }
    return 0;
}

int sb_env_resend_next(const char *buf, size_t len, size_t *pos, sb_str_t *id)
{
    if (*pos >= len)
        return 0;
    size_t at = *pos + 1; /* past the space before the ID */
    *pos = field(buf, len, &at, SB_ID_MAX, id) ? at - 1 : at;
    return 1;
}
