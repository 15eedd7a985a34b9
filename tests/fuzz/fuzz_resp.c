/* libFuzzer target for proto/resp and proto/shards: RESP2 replies, pub/sub messages, slot tables,
 * MOVED and ASK redirects.
 */
#include "check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"
#include "shards.h"

#define MAX_NODES 1024
#define MAX_MASTERS 8

static sb_resp_t nodes[MAX_NODES];

/* sb_resp_parse on an exact-size copy of data[0, len), so that ASan sees a read past len. */
static int parse_copy(const uint8_t *data, size_t len, size_t max_nodes, size_t *used)
{
    static sb_resp_t scratch[MAX_NODES];
    char *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, data, len);
    int rc = sb_resp_parse(copy, len, scratch, max_nodes, used, NULL);
    free(copy);
    return rc;
}

/* Writes the tree back as RESP; it is flat and in pre-order, so one pass in order does it. */
static size_t serialize(const sb_resp_t *n, size_t used, char *out, size_t cap)
{
    static const char types[] = {'+', '-', ':', '$', '$', '*', '*', '>'};
    size_t len = 0;

    for (size_t i = 0; i < used; i++) {
        char head[32];
        int h;
        CHECK((unsigned)n[i].type < sizeof(types));
        switch (n[i].type) {
        case SB_RESP_INTEGER:
            h = snprintf(head, sizeof(head), ":%" PRId64 "\r\n", n[i].integer);
            break;
        case SB_RESP_BULK:
            h = snprintf(head, sizeof(head), "$%zu\r\n", n[i].str.len);
            break;
        case SB_RESP_NIL:
        case SB_RESP_NIL_ARRAY:
            h = snprintf(head, sizeof(head), "%c-1\r\n", types[n[i].type]);
            break;
        case SB_RESP_ARRAY:
        case SB_RESP_PUSH:
            h = snprintf(head, sizeof(head), "%c%zu\r\n", types[n[i].type], n[i].count);
            break;
        default:
            h = snprintf(head, sizeof(head), "%c", types[n[i].type]);
        }
        CHECK(len + (size_t)h <= cap);
        memcpy(out + len, head, (size_t)h);
        len += (size_t)h;
        if (n[i].type == SB_RESP_STATUS || n[i].type == SB_RESP_ERROR ||
            n[i].type == SB_RESP_BULK) {
            CHECK(len + n[i].str.len + 2 <= cap);
            if (n[i].str.len > 0)
                memcpy(out + len, n[i].str.p, n[i].str.len);
            memcpy(out + len + n[i].str.len, "\r\n", 2);
            len += n[i].str.len + 2;
        }
    }
    return len;
}

/* Checks the subtree at i and returns the index after it, walking the elements one by one. */
static size_t walk(const sb_resp_t *n, size_t used, size_t i, int depth)
{
    CHECK(i < used);
    const sb_resp_t *x = &n[i];
    int aggregate =
        x->type == SB_RESP_ARRAY || x->type == SB_RESP_PUSH || x->type == SB_RESP_NIL_ARRAY;
    CHECK(!aggregate || depth <= SB_RESP_DEPTH_MAX); /* arrays, not what they hold */
    CHECK(x->type == SB_RESP_ARRAY || x->type == SB_RESP_PUSH || x->count == 0);
    size_t j = i + 1;
    for (size_t e = 0; e < x->count; e++)
        j = walk(n, used, j, depth + 1);
    CHECK(x->next == j);
    return j;
}

static void check_nodes(const uint8_t *data, size_t rc, size_t used)
{
    const char *buf = (const char *)data;

    CHECK(used >= 1 && used <= MAX_NODES);
    CHECK(nodes[0].next == used);
    CHECK(walk(nodes, used, 0, 1) == used);
    for (size_t i = 0; i < used; i++) {
        const sb_resp_t *x = &nodes[i];
        int text = x->type == SB_RESP_STATUS || x->type == SB_RESP_ERROR || x->type == SB_RESP_BULK;
        CHECK(text == (x->str.p != NULL));
        if (text) {
            CHECK(x->str.p >= buf + 1 && x->str.p + x->str.len <= buf + rc);
            if (x->type != SB_RESP_BULK)
                CHECK(memchr(x->str.p, '\r', x->str.len) == NULL &&
                      memchr(x->str.p, '\n', x->str.len) == NULL);
        } else {
            CHECK(x->str.len == 0);
        }
        CHECK(x->type == SB_RESP_INTEGER || x->integer == 0);
    }
    /* written back, the tree is exactly the bytes it was read from */
    char *out = malloc(rc);
    CHECK(out != NULL);
    CHECK(serialize(nodes, used, out, rc) == rc);
    CHECK(memcmp(out, data, rc) == 0);
    free(out);
}

/* Prefixes to try: all of them for a short input, else a spread. */
static size_t next_cut(size_t cut, size_t end) { return end <= 64 ? cut + 1 : cut + 1 + end / 32; }

static void check_pubsub(size_t used)
{
    sb_resp_msg_t m;
    int kind = sb_resp_pubsub_message(nodes, used, &m);
    const sb_resp_t *r = nodes;

    /* a reference: an array or push of bulk strings, named and counted as messages are */
    int ref = 0;
    if ((r->type == SB_RESP_ARRAY || r->type == SB_RESP_PUSH) && used == r->count + 1 &&
        (r->count == 3 || r->count == 4)) {
        int bulks = 1;
        for (size_t i = 1; i <= r->count; i++)
            bulks &= nodes[i].type == SB_RESP_BULK;
        const sb_str_t *k = &nodes[1].str;
        if (bulks && r->count == 3 && k->len == 7 && memcmp(k->p, "message", 7) == 0)
            ref = SB_RESP_MESSAGE;
        if (bulks && r->count == 3 && k->len == 8 && memcmp(k->p, "smessage", 8) == 0)
            ref = SB_RESP_SMESSAGE;
        if (bulks && r->count == 4 && k->len == 8 && memcmp(k->p, "pmessage", 8) == 0)
            ref = SB_RESP_PMESSAGE;
    }
    CHECK(kind == ref);
    CHECK((int)m.kind == kind);
    if (kind == 0) {
        CHECK(m.channel.p == NULL && m.payload.p == NULL && m.pattern.p == NULL);
        return;
    }
    CHECK(m.payload.p == nodes[r->count].str.p && m.payload.len == nodes[r->count].str.len);
    CHECK(m.channel.p == nodes[r->count - 1].str.p);
    CHECK((kind == SB_RESP_PMESSAGE) == (m.pattern.p != NULL));
    CHECK(sb_resp_pubsub_message(nodes, used - 1, &m) == 0);
}

typedef int (*reader_t)(const sb_resp_t *, size_t, int16_t *, sb_shards_master_t *, size_t,
                        const char **);

static void check_reader(reader_t read, size_t used, size_t max_masters)
{
    /* exact-size tables, so that ASan sees a write outside them */
    int16_t *slots = malloc(SB_SLOTS * sizeof(*slots));
    sb_shards_master_t *masters = malloc((max_masters ? max_masters : 1) * sizeof(*masters));
    const char *err = NULL;
    CHECK(slots != NULL && masters != NULL);

    int rc = read(nodes, used, slots, masters, max_masters, &err);
    CHECK(rc >= SB_SHARDS_EMASTERS && rc <= (int)max_masters);
    CHECK((rc < 0) == (err != NULL));
    /* every slot unassigned or a listed master's, and every listed master serving a slot */
    unsigned char serves[MAX_MASTERS] = {0};
    for (size_t s = 0; s < SB_SLOTS; s++) {
        CHECK(slots[s] >= -1 && slots[s] < (rc > 0 ? rc : 0));
        if (slots[s] >= 0)
            serves[slots[s]] = 1;
    }
    for (int i = 0; i < rc; i++)
        CHECK(serves[i]);
    for (int i = 0; i < rc; i++) {
        const sb_shards_master_t *m = &masters[i];
        CHECK(strlen(m->id) == SB_SHARDS_ID_LEN && strspn(m->id, "0123456789abcdef") == 40);
        CHECK(strlen(m->host) < sizeof(m->host));
        CHECK(m->port >= 0 && m->port <= 65535 && m->tls_port >= 0 && m->tls_port <= 65535);
        CHECK(m->port > 0 || m->tls_port > 0);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(masters[j].id, m->id) != 0);
    }
    /* the same answer with err NULL; with more room, EMASTERS goes away */
    CHECK(read(nodes, used, slots, masters, max_masters, NULL) == rc);
    if (rc == SB_SHARDS_EMASTERS) {
        sb_shards_master_t *more = malloc(64 * sizeof(*more));
        CHECK(more != NULL);
        int again = read(nodes, used, slots, more, 64, NULL);
        CHECK(again == SB_SHARDS_EMASTERS || again < 0 || again > (int)max_masters);
        free(more);
    }
    free(masters);
    free(slots);
}

/* The input as an error's text: a redirect read from it, written again, is the input itself (the
 * reader takes one canonical form only); read from an exact copy, so that ASan sees any read past
 * its length. */
static void check_redirect(const uint8_t *data, size_t size)
{
    sb_shards_redirect_t r;
    char *copy = malloc(size ? size : 1), again[300];
    CHECK(copy != NULL);
    memcpy(copy, data, size);
    if (sb_shards_redirect(copy, size, &r) == 0) {
        CHECK(r.slot < SB_SLOTS && r.port >= 1 && r.port <= 65535);
        int n = snprintf(again, sizeof(again), "%s %u %s:%d", r.ask ? "ASK" : "MOVED", r.slot,
                         r.host, r.port);
        CHECK(n >= 0 && (size_t)n == size && memcmp(again, data, size) == 0);
    } else {
        CHECK(r.port == 0 && r.host[0] == '\0');
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_redirect(data, size);
    const char *err = NULL;
    size_t used = 99, u2;
    int rc = sb_resp_parse((const char *)data, size, nodes, MAX_NODES, &used, &err);

    CHECK(rc <= (int)size && rc >= SB_RESP_EBIG);
    CHECK((rc < 0) == (err != NULL));
    CHECK(rc > 0 || used == 0);
    CHECK(parse_copy(data, size, MAX_NODES, &u2) == rc && u2 == used);
    CHECK(sb_resp_parse((const char *)data, size, nodes + 0, MAX_NODES, NULL, NULL) == rc);
    rc = sb_resp_parse((const char *)data, size, nodes, MAX_NODES, &used, NULL);

    /* prefixes: a complete reply needs every byte; an answer, once given, stays */
    size_t end = rc > 0 ? (size_t)rc : size;
    for (size_t cut = 0; cut < end; cut = next_cut(cut, end)) {
        int p = parse_copy(data, cut, MAX_NODES, &u2);
        CHECK(p == 0 || (rc < 0 && p == rc));
    }
    if (rc <= 0)
        return 0;
    CHECK(parse_copy(data, (size_t)rc, MAX_NODES, &u2) == rc && u2 == used);

    check_nodes(data, (size_t)rc, used);
    /* with exactly the nodes it needs it reads the same; with one fewer it asks for more */
    CHECK(parse_copy(data, size, used, &u2) == rc);
    CHECK(parse_copy(data, size, used - 1, &u2) == SB_RESP_ENODES);

    check_pubsub(used);
    size_t max_masters = size % (MAX_MASTERS + 1);
    check_reader(sb_shards_read, used, max_masters);
    check_reader(sb_shards_read_slots, used, max_masters);
    return 0;
}
