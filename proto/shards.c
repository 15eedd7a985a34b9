/* Redis Cluster's slot map read from a parsed CLUSTER SHARDS (or CLUSTER SLOTS) reply; no I/O. */
#include "shards.h"

#include <string.h>

/* A slot held by a shard without an online master, while reading: -1 once done. Telling it from
 * -1 lets a second shard claiming the slot be refused all the same. */
#define HELD_NOWHERE (-2)

static int fail(const char **err, const char *reason, int code)
{
    if (err != NULL)
        *err = reason;
    return code;
}

static int is_string(const sb_resp_t *n)
{
    return n->type == SB_RESP_BULK || n->type == SB_RESP_STATUS;
}

/* 1 when nodes[i] is a flat map: an array of an even count whose keys are strings. */
static int is_map(const sb_resp_t *nodes, size_t i)
{
    if (nodes[i].type != SB_RESP_ARRAY || nodes[i].count % 2 != 0)
        return 0;
    size_t k = i + 1;
    for (size_t e = 0; e < nodes[i].count; e += 2) {
        if (!is_string(&nodes[k]))
            return 0;
        k = nodes[nodes[k].next].next;
    }
    return 1;
}

/* What a node's map says, as far as finding and reaching a master goes (NULL: absent). */
typedef struct {
    const sb_resp_t *id, *ip, *endpoint, *role, *health, *port, *tls_port;
} fields_t;

static const char e_node_shape[] =
    "a node is not a flat map with string id, ip, endpoint, role and health, and integer ports";

static int read_fields(const sb_resp_t *nodes, size_t i, fields_t *f, const char **err)
{
    memset(f, 0, sizeof(*f));
    if (!is_map(nodes, i))
        return fail(err, e_node_shape, SB_SHARDS_ESHAPE);
    size_t k = i + 1;
    for (size_t e = 0; e < nodes[i].count; e += 2) {
        const sb_resp_t *key = &nodes[k], *val = &nodes[key->next];
        const sb_resp_t **slot = NULL;
        int want_int = 0;
        if (sb_resp_str_is(key, "id"))
            slot = &f->id;
        else if (sb_resp_str_is(key, "ip"))
            slot = &f->ip;
        else if (sb_resp_str_is(key, "endpoint"))
            slot = &f->endpoint;
        else if (sb_resp_str_is(key, "role"))
            slot = &f->role;
        else if (sb_resp_str_is(key, "health"))
            slot = &f->health;
        else if (sb_resp_str_is(key, "port"))
            slot = &f->port, want_int = 1;
        else if (sb_resp_str_is(key, "tls-port"))
            slot = &f->tls_port, want_int = 1;
        if (slot != NULL) {
            if (want_int ? val->type != SB_RESP_INTEGER : !is_string(val))
                return fail(err, e_node_shape, SB_SHARDS_ESHAPE);
            *slot = val;
        }
        k = val->next;
    }
    if (f->id == NULL || f->role == NULL || f->health == NULL)
        return fail(err, "a node without an id, role or health", SB_SHARDS_ESHAPE);
    return 0;
}

/* An endpoint or address that says where to connect: not absent, empty, nil or "?". */
static int usable(const sb_resp_t *n)
{
    return n != NULL && is_string(n) && n->str.len > 0 && !sb_resp_str_is(n, "?");
}

/* Fills *m from a master's parts (endpoint and ip NULL when absent; ports 0 when absent). */
static int make_master(sb_shards_master_t *m, const sb_resp_t *id, const sb_resp_t *endpoint,
                       const sb_resp_t *ip, int64_t port, int64_t tls_port, const char **err)
{
    const sb_resp_t *host = usable(endpoint) ? endpoint : usable(ip) ? ip : NULL;

    memset(m, 0, sizeof(*m));
    if (!is_string(id) || id->str.len != SB_SHARDS_ID_LEN)
        return fail(err, "a master's ID is not 40 hexadecimal digits", SB_SHARDS_ENODE);
    for (size_t i = 0; i < SB_SHARDS_ID_LEN; i++) {
        char c = id->str.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return fail(err, "a master's ID is not 40 hexadecimal digits", SB_SHARDS_ENODE);
    }
    memcpy(m->id, id->str.p, SB_SHARDS_ID_LEN);
    if (port < 0 || port > 65535 || tls_port < 0 || tls_port > 65535 ||
        (port == 0 && tls_port == 0))
        return fail(err, "a master's port is not a number from 1 to 65535", SB_SHARDS_ENODE);
    m->port = (int)port;
    m->tls_port = (int)tls_port;
    if (host != NULL) {
        if (host->str.len >= sizeof(m->host) || memchr(host->str.p, '\0', host->str.len) != NULL)
            return fail(err, "a master's address is over 255 bytes or holds a NUL",
                        SB_SHARDS_ENODE);
        memcpy(m->host, host->str.p, host->str.len);
    }
    return 0;
}

/* Lists m unless its ID is listed already; returns its index. With same_ok, an ID listed before
 * with the same address is that master again (CLUSTER SLOTS lists a master once per range). */
static int add_master(sb_shards_master_t *masters, size_t cap, size_t *n,
                      const sb_shards_master_t *m, int same_ok, const char **err)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(masters[i].id, m->id) != 0)
            continue;
        if (same_ok && strcmp(masters[i].host, m->host) == 0 && masters[i].port == m->port &&
            masters[i].tls_port == m->tls_port)
            return (int)i;
        return fail(err,
                    same_ok ? "a master is listed twice with different addresses"
                            : "a master is listed in two shards",
                    SB_SHARDS_ENODE);
    }
    if (*n == cap)
        return fail(err, "more masters than room to list them", SB_SHARDS_EMASTERS);
    masters[*n] = *m;
    return (int)(*n)++;
}

/* Gives the slots start to end (integer nodes) to who (a master's index or HELD_NOWHERE). */
static int assign(int16_t *slots, const sb_resp_t *start, const sb_resp_t *end, int who,
                  const char **err)
{
    if (start->type != SB_RESP_INTEGER || end->type != SB_RESP_INTEGER)
        return fail(err, "a slot range's bounds are not integers", SB_SHARDS_ESHAPE);
    if (start->integer < 0 || start->integer > end->integer || end->integer >= SB_SLOTS)
        return fail(err, "a slot range is reversed or outside 0-16383", SB_SHARDS_ESLOT);
    for (int64_t s = start->integer; s <= end->integer; s++) {
        if (slots[s] != -1)
            return fail(err, "a slot is in two ranges", SB_SHARDS_ESLOT);
        slots[s] = (int16_t)who;
    }
    return 0;
}

/* The checks both readers start with; sets every slot to -1. */
static int begin(const sb_resp_t *nodes, size_t used, int16_t *slots, const char **err)
{
    for (size_t s = 0; s < SB_SLOTS; s++)
        slots[s] = -1;
    if (used == 0 || nodes[0].next > used)
        return fail(err, "no parsed reply", SB_SHARDS_ESHAPE);
    if (nodes[0].type == SB_RESP_ERROR)
        return fail(err, "the server answered with an error", SB_SHARDS_EREPLY);
    if (nodes[0].type != SB_RESP_ARRAY)
        return fail(err, "the reply is not an array", SB_SHARDS_ESHAPE);
    return 0;
}

/* What both readers end with: the return value, and a clean table on failure. */
static int end(int rc, size_t nmasters, int16_t *slots)
{
    for (size_t s = 0; s < SB_SLOTS; s++)
        if (rc < 0 || slots[s] == HELD_NOWHERE)
            slots[s] = -1;
    return rc < 0 ? rc : (int)nmasters;
}

/* Slot indexes are int16_t. */
static size_t capacity(size_t max_masters)
{
    return max_masters < INT16_MAX ? max_masters : INT16_MAX;
}

static int read_shard(const sb_resp_t *nodes, size_t i, int16_t *slots, sb_shards_master_t *masters,
                      size_t cap, size_t *nmasters, const char **err)
{
    const sb_resp_t *ranges = NULL, *list = NULL;
    fields_t f, master = {0};
    int found = 0, who = HELD_NOWHERE, rc;

    if (!is_map(nodes, i))
        return fail(err, "a shard is not a flat map", SB_SHARDS_ESHAPE);
    size_t k = i + 1;
    for (size_t e = 0; e < nodes[i].count; e += 2) {
        const sb_resp_t *val = &nodes[nodes[k].next];
        if (sb_resp_str_is(&nodes[k], "slots"))
            ranges = val;
        else if (sb_resp_str_is(&nodes[k], "nodes"))
            list = val;
        k = val->next;
    }
    if (ranges == NULL || list == NULL)
        return fail(err, "a shard without slots or nodes", SB_SHARDS_ESHAPE);
    if (ranges->type != SB_RESP_ARRAY || ranges->count % 2 != 0)
        return fail(err, "a shard's slots are not pairs of integers", SB_SHARDS_ESHAPE);
    if (list->type != SB_RESP_ARRAY)
        return fail(err, "a shard's nodes are not an array", SB_SHARDS_ESHAPE);

    size_t n = (size_t)(list - nodes) + 1;
    for (size_t e = 0; e < list->count; e++, n = nodes[n].next) {
        if ((rc = read_fields(nodes, n, &f, err)) < 0)
            return rc;
        if (!sb_resp_str_is(f.role, "master") || !sb_resp_str_is(f.health, "online"))
            continue;
        if (found)
            return fail(err, "a shard has two online masters", SB_SHARDS_ESHAPE);
        master = f;
        found = 1;
    }
    if (found && ranges->count > 0) {
        sb_shards_master_t m;
        rc = make_master(&m, master.id, master.endpoint, master.ip,
                         master.port ? master.port->integer : 0,
                         master.tls_port ? master.tls_port->integer : 0, err);
        if (rc < 0 || (rc = who = add_master(masters, cap, nmasters, &m, 0, err)) < 0)
            return rc;
    }
    size_t r = (size_t)(ranges - nodes) + 1;
    for (size_t e = 0; e < ranges->count; e += 2) {
        const sb_resp_t *start = &nodes[r], *stop = &nodes[start->next];
        if ((rc = assign(slots, start, stop, who, err)) < 0)
            return rc;
        r = stop->next;
    }
    return 0;
}

int sb_shards_read(const sb_resp_t *nodes, size_t used, int16_t slots[SB_SLOTS],
                   sb_shards_master_t *masters, size_t max_masters, const char **err)
{
    size_t nmasters = 0;
    int rc = begin(nodes, used, slots, err);

    for (size_t e = 0, i = 1; rc == 0 && e < nodes[0].count; e++, i = nodes[i].next)
        rc = read_shard(nodes, i, slots, masters, capacity(max_masters), &nmasters, err);
    return end(rc, nmasters, slots);
}

static const char e_slots_entry[] =
    "a CLUSTER SLOTS entry is not [start, end, [endpoint, port, id, ...], ...]";

static int read_range(const sb_resp_t *nodes, size_t i, int16_t *slots, sb_shards_master_t *masters,
                      size_t cap, size_t *nmasters, const char **err)
{
    const sb_resp_t *entry = &nodes[i], *ip = NULL;
    sb_shards_master_t m;
    int rc;

    if (entry->type != SB_RESP_ARRAY || entry->count < 3)
        return fail(err, e_slots_entry, SB_SHARDS_ESHAPE);
    const sb_resp_t *start = &nodes[i + 1], *stop = &nodes[start->next];
    const sb_resp_t *node = &nodes[stop->next];
    if (node->type != SB_RESP_ARRAY || node->count < 3)
        return fail(err, e_slots_entry, SB_SHARDS_ESHAPE);
    for (const sb_resp_t *rep = &nodes[node->next]; rep < &nodes[entry->next];
         rep = &nodes[rep->next])
        if (rep->type != SB_RESP_ARRAY)
            return fail(err, e_slots_entry, SB_SHARDS_ESHAPE);

    const sb_resp_t *endpoint = node + 1, *port = &nodes[endpoint->next];
    const sb_resp_t *id = &nodes[port->next];
    if ((!is_string(endpoint) && endpoint->type != SB_RESP_NIL) || port->type != SB_RESP_INTEGER)
        return fail(err, e_slots_entry, SB_SHARDS_ESHAPE);
    if (node->count >= 4) {
        size_t meta = id->next;
        if (!is_map(nodes, meta))
            return fail(err, "a node's metadata is not a flat map", SB_SHARDS_ESHAPE);
        size_t k = meta + 1;
        for (size_t e = 0; e < nodes[meta].count; e += 2) {
            const sb_resp_t *val = &nodes[nodes[k].next];
            if (sb_resp_str_is(&nodes[k], "ip"))
                ip = val;
            k = val->next;
        }
    }
    if (port->integer == 0)
        return fail(err, "a master's port is not a number from 1 to 65535", SB_SHARDS_ENODE);
    if ((rc = make_master(&m, id, endpoint, ip, port->integer, 0, err)) < 0)
        return rc;
    if ((rc = add_master(masters, cap, nmasters, &m, 1, err)) < 0)
        return rc;
    return assign(slots, start, stop, rc, err);
}

int sb_shards_read_slots(const sb_resp_t *nodes, size_t used, int16_t slots[SB_SLOTS],
                         sb_shards_master_t *masters, size_t max_masters, const char **err)
{
    size_t nmasters = 0;
    int rc = begin(nodes, used, slots, err);

    for (size_t e = 0, i = 1; rc == 0 && e < nodes[0].count; e++, i = nodes[i].next)
        rc = read_range(nodes, i, slots, masters, capacity(max_masters), &nmasters, err);
    return end(rc, nmasters, slots);
}

/* The decimal number in s[0, len): no sign, no leading zero but "0" itself, at most max. Returns
 * it, or -1. */
static long decimal(const char *s, size_t len, long max)
{
    long v = 0;
    if (len == 0 || len > 6 || (len > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

int sb_shards_redirect(const char *err, size_t len, sb_shards_redirect_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t at;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0)
        at = 6;
    else if (len > 4 && memcmp(err, "ASK ", 4) == 0)
        at = 4, out->ask = 1;
    else
        goto bad;
    const char *p = err + at, *end = err + len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (sp == NULL)
        goto bad;
    long slot = decimal(p, (size_t)(sp - p), SB_SLOTS - 1);
    const char *addr = sp + 1, *colon = NULL;
    for (const char *q = addr; q < end; q++) {
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            goto bad;
        if (*q == ':')
            colon = q;
    }
    if (slot < 0 || colon == NULL || (size_t)(colon - addr) >= sizeof(out->host))
        goto bad;
    long port = decimal(colon + 1, (size_t)(end - colon - 1), 65535);
    if (port < 1)
        goto bad;
    out->slot = (unsigned)slot;
    memcpy(out->host, addr, (size_t)(colon - addr));
    out->host[colon - addr] = '\0';
    out->port = (int)port;
    return 0;
bad:
    memset(out, 0, sizeof(*out));
    return -1;
}
