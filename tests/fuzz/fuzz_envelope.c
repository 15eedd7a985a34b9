/* libFuzzer target for proto/envelope: parse against a reference; write(parse(x)) == x. */
#include "check.h"
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "message.h"

/* ---- a reference reader ----------------------------------------------------------------------
 * Written another way on purpose: it splits the header at its first seven spaces with memchr and
 * reads numbers with strtoull, where sb_env_parse scans field by field with bounds. */

typedef struct {
    sb_str_t f[7]; /* version, kind, sent, from, to, room, midlen */
    sb_str_t mid, payload;
    unsigned long long sent;
    int kind;
} ref_t;

/* 1 when s is 1 to max digits, "0" or without a leading zero, and strtoull reads it whole. */
static int ref_number(sb_str_t s, size_t max, unsigned long long *out)
{
    char buf[32], *end;

    if (s.len == 0 || s.len > max || (s.len > 1 && s.p[0] == '0'))
        return 0;
    for (size_t i = 0; i < s.len; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return 0; /* strtoull would also take white space, a sign, "0x" */
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    errno = 0;
    *out = strtoull(buf, &end, 10);
    return errno == 0 && end == buf + s.len;
}

static int ref_name(sb_str_t s, int (*valid)(const char *, size_t))
{
    return s.len == 0 || valid(s.p, s.len);
}

/* 0 when the reference accepts data, else -1. */
static int ref_parse(const char *data, size_t size, ref_t *r)
{
    static const char *const kinds[] = {"offer",       "answer",    "candidate", "bye",
                                        "peer-joined", "peer-left", "replaced",  "resent"};
    const char *p = data, *end = data + size;
    unsigned long long midlen;

    memset(r, 0, sizeof(*r));
    for (int i = 0; i < 7; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        if (sp == NULL)
            return -1;
        r->f[i] = (sb_str_t){p, (size_t)(sp - p)};
        p = sp + 1;
    }
    if (!sb_str_eq(&r->f[0], "sb1", 0))
        return -1;
    r->kind = -1;
    for (int k = 0; k < 8; k++)
        if (sb_str_eq(&r->f[1], kinds[k], 0))
            r->kind = k;
    if (r->kind < 0 || !ref_number(r->f[2], 20, &r->sent))
        return -1;
    if (!ref_name(r->f[3], sb_peer_id_valid) || !ref_name(r->f[4], sb_peer_id_valid) ||
        !ref_name(r->f[5], sb_room_valid))
        return -1;
    if (!ref_number(r->f[6], 3, &midlen) || midlen > 386 || midlen > (size_t)(end - p))
        return -1;
    r->mid = (sb_str_t){p, (size_t)midlen};
    r->payload = (sb_str_t){p + midlen, (size_t)(end - p) - (size_t)midlen};
    if (r->f[3].len == 0)
        return -1;
    if (r->kind <= 3)
        return r->f[4].len > 0 && r->f[5].len == 0 ? 0 : -1;
    if (r->kind >= 6) /* replaced, resent: the session's peer as from and to, nothing else */
        return r->f[4].len > 0 && r->f[5].len == 0 && r->mid.len == 0 && r->payload.len == 0 ? 0
                                                                                             : -1;
    return r->f[4].len == 0 && r->f[5].len > 0 && r->mid.len == 0 && r->payload.len == 0 ? 0 : -1;
}

/* ---- the properties ------------------------------------------------------------------------- */

static int same(sb_str_t a, sb_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* In the input, or absent with p NULL. */
static void check_slice(sb_str_t s, const uint8_t *data, size_t size)
{
    if (s.len == 0) {
        CHECK(s.p == NULL);
        return;
    }
    CHECK(s.p >= (const char *)data && s.p + s.len <= (const char *)data + size);
}

static void check_accepted(const uint8_t *data, size_t size, const sb_env_t *env, const ref_t *r)
{
    const char *in = (const char *)data;

    /* (1) the fields lie in the input, where the reference found them */
    check_slice(env->from, data, size);
    check_slice(env->to, data, size);
    check_slice(env->room, data, size);
    check_slice(env->mid, data, size);
    check_slice(env->payload, data, size);
    CHECK((int)env->kind == r->kind);
    CHECK(env->sent_us == r->sent);
    CHECK(same(env->from, r->f[3]) && (env->from.len == 0 || env->from.p == r->f[3].p));
    CHECK(same(env->to, r->f[4]) && (env->to.len == 0 || env->to.p == r->f[4].p));
    CHECK(same(env->room, r->f[5]) && (env->room.len == 0 || env->room.p == r->f[5].p));
    CHECK(same(env->mid, r->mid) && (env->mid.len == 0 || env->mid.p == r->mid.p));
    CHECK(same(env->payload, r->payload) &&
          (env->payload.len == 0 || env->payload.p == r->payload.p));
    if (env->payload.len > 0)
        CHECK(env->payload.p + env->payload.len == in + size);

    /* (2) the kind's rules */
    CHECK(sb_env_kind_name(env->kind) != NULL);
    CHECK(sb_env_kind_parse(r->f[1].p, r->f[1].len) == (int)env->kind);
    CHECK(sb_peer_id_valid(env->from.p, env->from.len));
    CHECK(env->mid.len <= SB_ENV_MID_MAX);
    if (sb_env_is_relay(env->kind)) {
        CHECK(sb_peer_id_valid(env->to.p, env->to.len));
        CHECK(env->room.len == 0);
    } else if (env->kind == SB_ENV_REPLACED || env->kind == SB_ENV_RESENT) {
        CHECK(sb_peer_id_valid(env->to.p, env->to.len));
        CHECK(env->room.len == 0 && env->mid.len == 0 && env->payload.len == 0);
    } else {
        CHECK(sb_room_valid(env->room.p, env->room.len));
        CHECK(env->to.len == 0 && env->mid.len == 0 && env->payload.len == 0);
    }

    /* (3) one encoding: the size is the input's, and writing gives the input back (into an
     * exact-size buffer, so that ASan sees a byte too many) */
    CHECK(sb_env_size(env) == size);
    char *out = malloc(size);
    CHECK(out != NULL);
    CHECK(sb_env_write(env, out) == size);
    CHECK(memcmp(out, in, size) == 0);
    free(out);

    /* (3b) the head is the input up to the mid, within SB_ENV_HEAD_MAX */
    char head[SB_ENV_HEAD_MAX];
    size_t hlen = sb_env_write_head(env, head);
    CHECK(hlen + env->mid.len + env->payload.len == size);
    CHECK(memcmp(head, in, hlen) == 0);

    /* (4) a room event is what the Redis scripts' pattern builds, and so is replaced */
    if (env->kind == SB_ENV_REPLACED) {
        char lua[256], sent[32], from[SB_ID_MAX + 1], to[SB_ID_MAX + 1];
        snprintf(sent, sizeof(sent), "%llu", (unsigned long long)env->sent_us);
        memcpy(from, env->from.p, env->from.len);
        from[env->from.len] = '\0';
        memcpy(to, env->to.p, env->to.len);
        to[env->to.len] = '\0';
        int n = snprintf(lua, sizeof(lua), SB_ENV_REPLACED_LUA, sent, from, to);
        CHECK(n > 0 && (size_t)n == size && memcmp(lua, in, size) == 0);
    } else if (env->kind == SB_ENV_PEER_JOINED || env->kind == SB_ENV_PEER_LEFT) {
        char lua[256], sent[32], from[SB_ID_MAX + 1], room[SB_ROOM_MAX + 1];
        snprintf(sent, sizeof(sent), "%llu", (unsigned long long)env->sent_us);
        memcpy(from, env->from.p, env->from.len);
        from[env->from.len] = '\0';
        memcpy(room, env->room.p, env->room.len);
        room[env->room.len] = '\0';
        int n = snprintf(lua, sizeof(lua), SB_ENV_ROOM_EVENT_LUA, sb_env_kind_name(env->kind), sent,
                         from, room);
        CHECK(n > 0 && (size_t)n == size && memcmp(lua, in, size) == 0);
    }

    /* (5) one byte less: the same envelope with a shorter payload, or refused when the cut
     * reaches the mid or the header */
    if (size > 0) {
        sb_env_t shorter;
        const char *err = NULL;
        char *cut = malloc(size - 1 ? size - 1 : 1);
        CHECK(cut != NULL);
        memcpy(cut, in, size - 1);
        int rc = sb_env_parse(cut, size - 1, &shorter, &err);
        if (env->payload.len > 0) {
            CHECK(rc == 0);
            CHECK(shorter.kind == env->kind && shorter.sent_us == env->sent_us);
            CHECK(same(shorter.from, env->from) && same(shorter.to, env->to));
            CHECK(same(shorter.room, env->room) && same(shorter.mid, env->mid));
            CHECK(shorter.payload.len == env->payload.len - 1);
            CHECK(same(shorter.payload, (sb_str_t){env->payload.p, env->payload.len - 1}));
        } else {
            CHECK(rc < 0 && err != NULL);
        }
        free(cut);
    }
}

/* A resend request: accepted exactly when its two ages read as numbers, the second no larger,
 * and every space-separated ID after them is valid; then the IDs come back one by one, each
 * pointing into the input. */
static void check_resend(const char *buf, size_t size)
{
    uint64_t from, until;
    size_t ids = 0;
    const char *err = NULL;
    int rc = sb_env_resend_parse(buf, size, &from, &until, &ids, &err);
    int ref = size >= 11 && memcmp(buf, "sb1 resend ", 11) == 0;
    unsigned long long age[2] = {0, 0};
    size_t at = 11, end = at;
    for (int k = 0; k < 2 && ref; k++) {
        end = at;
        while (end < size && buf[end] != ' ')
            end++;
        ref = ref_number((sb_str_t){buf + at, end - at}, 20, &age[k]) && (k == 1 || end < size);
        at = end + 1;
    }
    ref = ref && age[1] <= age[0];
    for (at = end; ref && at < size;) {
        size_t next = at + 1;
        while (next < size && buf[next] != ' ')
            next++;
        ref = sb_peer_id_valid(buf + at + 1, next - at - 1);
        at = next;
    }
    CHECK((rc == 0) == ref);
    if (rc != 0) {
        CHECK(err != NULL && rc < 0 && rc >= SB_ENV_ESEP);
        return;
    }
    CHECK(from == age[0] && until == age[1] && ids == end);
    sb_str_t id;
    size_t pos = ids, n = 0;
    while (sb_env_resend_next(buf, size, &pos, &id)) {
        CHECK(id.p > buf && id.p + id.len <= buf + size && id.p[-1] == ' ');
        CHECK(sb_peer_id_valid(id.p, id.len));
        CHECK(++n <= size);
    }
    CHECK(pos == size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_resend((const char *)data, size);

    sb_env_t env;
    ref_t r;
    const char *err = NULL;

    memset(&env, 0x5A, sizeof(env));
    int rc = sb_env_parse((const char *)data, size, &env, &err);
    CHECK(rc <= 0 && rc >= SB_ENV_ESEP);
    int ref = ref_parse((const char *)data, size, &r);
    CHECK((rc == 0) == (ref == 0));

    if (rc == 0) {
        CHECK(err == NULL);
        check_accepted(data, size, &env, &r);
    } else {
        CHECK(err != NULL && err[0] != '\0' && strlen(err) < 200);
        CHECK(sb_env_parse((const char *)data, size, &env, NULL) == rc);
        /* the version is checked first, so a future version is always refused as such */
        if (size < 3 || memcmp(data, "sb1", 3) != 0 || (size > 3 && data[3] != ' '))
            CHECK(rc == SB_ENV_EVERSION);
    }
    return 0;
}
