/* Unit tests for proto/resp: RESP2 replies whole, prefix by prefix and malformed; pub/sub messages.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "resp.h"

#define MAX_NODES 64

/* Replies as a cluster-enabled redis-server 7.0.15 sent them on a subscribed connection (the
 * first buffer holds two replies, as one read returned them). */
static const char message_pmessage[] =
    "*3\r\n$7\r\nmessage\r\n$13\r\nsb:{alice}:ch\r\n$57\r\nsb1 offer 1700000000000000 alice bob  2 "
    "\"1{\"sdp\":\"v=0\r\n"
    "\"}\r\n*4\r\n$8\r\npmessage\r\n$4\r\nsb:*\r\n$13\r\nsb:{alice}:ch\r\n"
    "$57\r\nsb1 offer 1700000000000000 alice bob  2 \"1{\"sdp\":\"v=0\r\n"
    "\"}\r\n";

static const char smessage[] = "*3\r\n$8\r\nsmessage\r\n$13\r\nsb:{alice}:ch\r\n$0\r\n\r\n";

static const char subscribe[] = "*3\r\n$9\r\nsubscribe\r\n$13\r\nsb:{alice}:ch\r\n:1\r\n";

static const char psubscribe[] = "*3\r\n$10\r\npsubscribe\r\n$4\r\nsb:*\r\n:2\r\n";

static const char ssubscribe[] = "*3\r\n$10\r\nssubscribe\r\n$13\r\nsb:{alice}:ch\r\n:1\r\n";

static const char unsubscribe[] = "*3\r\n$11\r\nunsubscribe\r\n$13\r\nsb:{alice}:ch\r\n:1\r\n";

static const char punsubscribe[] = "*3\r\n$12\r\npunsubscribe\r\n$4\r\nsb:*\r\n:0\r\n";

static const char pong[] = "*2\r\n$4\r\npong\r\n$0\r\n\r\n";

/* sb_resp_parse on an exact-size copy of buf[0, len), so that ASan sees any read past len. */
static int parse(const char *buf, size_t len, sb_resp_t *nodes, size_t max, size_t *used,
                 const char **err)
{
    char *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, len);
    int rc = sb_resp_parse(copy, len, nodes, max, used, err);
    /* point the slices back into buf, so callers may compare them */
    if (rc > 0 && used != NULL)
        for (size_t i = 0; i < *used; i++)
            if (nodes[i].str.p != NULL)
                nodes[i].str.p = buf + (nodes[i].str.p - copy);
    free(copy);
    return rc;
}

/* Parses the NUL-terminated s whole and expects it to be one reply of exactly its length, after
 * checking that every shorter prefix needs more; returns the nodes used. */
static size_t parse_whole(const char *s, sb_resp_t *nodes)
{
    size_t len = strlen(s), used = 99;
    const char *err = NULL;

    for (size_t cut = 0; cut < len; cut++) {
        int rc = parse(s, cut, nodes, MAX_NODES, &used, &err);
        REQUIRE(rc == 0, "prefix %zu of '%s' gave %d", cut, show(s, len), rc);
        REQUIRE(used == 0, "prefix %zu: used %zu", cut, used);
    }
    int rc = parse(s, len, nodes, MAX_NODES, &used, &err);
    ck_assert_msg(rc == (int)len, "'%s' gave %d (%s)", show(s, len), rc, rc < 0 ? err : "");
    ck_assert_uint_eq(nodes[0].next, used);
    return used;
}

static void expect_str(const sb_resp_t *n, sb_resp_type_t type, const char *text, size_t len)
{
    ck_assert_int_eq(n->type, type);
    ck_assert_uint_eq(n->str.len, len);
    ck_assert_ptr_nonnull(n->str.p);
    ck_assert(memcmp(n->str.p, text, len) == 0);
    ck_assert_uint_eq(n->count, 0);
}

START_TEST(test_scalars)
{
    sb_resp_t n[MAX_NODES];

    ck_assert_uint_eq(parse_whole("+OK\r\n", n), 1);
    expect_str(&n[0], SB_RESP_STATUS, "OK", 2);
    ck_assert_uint_eq(n[0].next, 1);
    ck_assert_uint_eq(parse_whole("+\r\n", n), 1);
    expect_str(&n[0], SB_RESP_STATUS, "", 0);
    ck_assert_uint_eq(parse_whole("-MOVED 749 127.0.0.1:31001\r\n", n), 1);
    expect_str(&n[0], SB_RESP_ERROR, "MOVED 749 127.0.0.1:31001", 25);

    ck_assert_uint_eq(parse_whole(":0\r\n", n), 1);
    ck_assert_int_eq(n[0].type, SB_RESP_INTEGER);
    ck_assert_int_eq(n[0].integer, 0);
    ck_assert_ptr_null(n[0].str.p);
    parse_whole(":-42\r\n", n);
    ck_assert_int_eq(n[0].integer, -42);
    parse_whole(":9223372036854775807\r\n", n);
    ck_assert_int_eq(n[0].integer, INT64_MAX);
    parse_whole(":-9223372036854775808\r\n", n);
    ck_assert_int_eq(n[0].integer, INT64_MIN);
    parse_whole(":1000\r\n", n);
    ck_assert_int_eq(n[0].integer, 1000);

    parse_whole("$5\r\nhello\r\n", n);
    expect_str(&n[0], SB_RESP_BULK, "hello", 5);
    parse_whole("$0\r\n\r\n", n);
    expect_str(&n[0], SB_RESP_BULK, "", 0);
    parse_whole("$-1\r\n", n);
    ck_assert_int_eq(n[0].type, SB_RESP_NIL);
    ck_assert_ptr_null(n[0].str.p);
    parse_whole("*-1\r\n", n);
    ck_assert_int_eq(n[0].type, SB_RESP_NIL_ARRAY);
    ck_assert_uint_eq(n[0].count, 0);
    parse_whole("*0\r\n", n);
    ck_assert_int_eq(n[0].type, SB_RESP_ARRAY);
    ck_assert_uint_eq(n[0].count, 0);
    ck_assert_uint_eq(n[0].next, 1);

    /* a bulk string holds any byte, CR, LF and NUL included */
    sb_resp_t one;
    size_t used;
    ck_assert_int_eq(parse("$6\r\na\r\n\0\rb\r\n", 12, &one, 1, &used, NULL), 12);
    ck_assert_uint_eq(used, 1);
    ck_assert_uint_eq(one.str.len, 6);
    ck_assert(memcmp(one.str.p, "a\r\n\0\rb", 6) == 0);
    /* a simple string any byte but CR and LF */
    ck_assert_int_eq(parse("+a\0\x01\xff b\r\n", 9, &one, 1, &used, NULL), 9);
    ck_assert_uint_eq(one.str.len, 6);
}
END_TEST

START_TEST(test_arrays)
{
    sb_resp_t n[MAX_NODES];

    /* ["a", [1, [], nil], nil, -ERR] */
    ck_assert_uint_eq(parse_whole("*4\r\n$1\r\na\r\n*3\r\n:1\r\n*0\r\n*-1\r\n$-1\r\n-E\r\n", n), 8);
    ck_assert_int_eq(n[0].type, SB_RESP_ARRAY);
    ck_assert_uint_eq(n[0].count, 4);
    ck_assert_uint_eq(n[0].next, 8);
    expect_str(&n[1], SB_RESP_BULK, "a", 1);
    ck_assert_uint_eq(n[1].next, 2);
    ck_assert_int_eq(n[2].type, SB_RESP_ARRAY);
    ck_assert_uint_eq(n[2].count, 3);
    ck_assert_uint_eq(n[2].next, 6);
    ck_assert_int_eq(n[3].integer, 1);
    ck_assert_int_eq(n[4].type, SB_RESP_ARRAY);
    ck_assert_uint_eq(n[4].count, 0);
    ck_assert_uint_eq(n[4].next, 5);
    ck_assert_int_eq(n[5].type, SB_RESP_NIL_ARRAY);
    ck_assert_int_eq(n[6].type, SB_RESP_NIL);
    ck_assert_uint_eq(n[6].next, 7);
    expect_str(&n[7], SB_RESP_ERROR, "E", 1);

    /* arrays closing together: [[[1]], 2] */
    ck_assert_uint_eq(parse_whole("*2\r\n*1\r\n*1\r\n:1\r\n:2\r\n", n), 5);
    ck_assert_uint_eq(n[0].next, 5);
    ck_assert_uint_eq(n[1].next, 4);
    ck_assert_uint_eq(n[2].next, 4);
    ck_assert_uint_eq(n[4].next, 5);

    /* RESP3's push reads like an array */
    ck_assert_uint_eq(parse_whole(">2\r\n+a\r\n:7\r\n", n), 3);
    ck_assert_int_eq(n[0].type, SB_RESP_PUSH);
    ck_assert_uint_eq(n[0].count, 2);

    /* bytes after the reply are left alone; two replies in a row are read one at a time */
    size_t used, len = strlen(message_pmessage);
    int first = parse(message_pmessage, len, n, MAX_NODES, &used, NULL);
    ck_assert_int_eq(first, 101);
    ck_assert_uint_eq(used, 4);
    ck_assert_int_eq(
        parse(message_pmessage + first, len - (size_t)first, n, MAX_NODES, &used, NULL),
        (int)len - first);
    ck_assert_uint_eq(used, 5);
}
END_TEST

START_TEST(test_depth)
{
    char buf[256];
    sb_resp_t n[MAX_NODES];
    size_t used, len = 0;
    const char *err = NULL;

    for (int d = 0; d < SB_RESP_DEPTH_MAX; d++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "*1\r\n");
    memcpy(buf + len, ":5\r\n", 4);
    ck_assert_int_eq(parse(buf, len + 4, n, MAX_NODES, &used, NULL), (int)len + 4);
    ck_assert_uint_eq(used, SB_RESP_DEPTH_MAX + 1);
    for (int i = 0; i < SB_RESP_DEPTH_MAX; i++)
        ck_assert_uint_eq(n[i].next, SB_RESP_DEPTH_MAX + 1);
    /* one more level is refused, empty or nil or not, as soon as its type byte is seen */
    memcpy(buf + len, "*0\r\n", 4);
    ck_assert_int_eq(parse(buf, len + 4, n, MAX_NODES, &used, &err), SB_RESP_EDEPTH);
    ck_assert_str_eq(err, "arrays nested deeper than 16");
    ck_assert_uint_eq(used, 0);
    ck_assert_int_eq(parse(buf, len + 1, n, MAX_NODES, &used, NULL), SB_RESP_EDEPTH);
    memcpy(buf + len, ">1\r\n", 4);
    ck_assert_int_eq(parse(buf, len + 4, n, MAX_NODES, &used, NULL), SB_RESP_EDEPTH);
    /* depth, not width: many siblings at depth 16 are fine */
    memcpy(buf + len - 4, "*3\r\n:1\r\n:2\r\n:3\r\n", 16);
    ck_assert_int_eq(parse(buf, len + 12, n, MAX_NODES, &used, NULL), (int)len + 12);
}
END_TEST

START_TEST(test_nodes)
{
    sb_resp_t n[8];
    size_t used = 99;
    const char *err = NULL;
    const char *three = "*2\r\n:1\r\n:2\r\n";

    ck_assert_int_eq(parse(three, 12, n, 3, &used, NULL), 12);
    ck_assert_uint_eq(used, 3);
    ck_assert_int_eq(parse(three, 12, n, 2, &used, &err), SB_RESP_ENODES);
    ck_assert_str_eq(err, "the reply has more parts than nodes to hold them");
    ck_assert_uint_eq(used, 0);
    /* known from the count alone, before the elements arrive */
    ck_assert_int_eq(parse(three, 4, n, 2, &used, NULL), SB_RESP_ENODES);
    ck_assert_int_eq(parse("*1000\r\n", 7, n, 8, &used, NULL), SB_RESP_ENODES);
    ck_assert_int_eq(parse(three, 3, n, 2, &used, NULL), 0);
    /* a nested array counted against what is left */
    ck_assert_int_eq(parse("*2\r\n*2\r\n", 8, n, 4, &used, NULL), SB_RESP_ENODES);
    ck_assert_int_eq(parse("*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n", 20, n, 5, &used, NULL), 20);
    ck_assert_int_eq(parse("+OK\r\n", 5, n, 0, &used, NULL), SB_RESP_ENODES);
    ck_assert_int_eq(parse("+OK\r\n", 0, n, 0, &used, NULL), 0);
    /* used_nodes and err may be NULL */
    ck_assert_int_eq(sb_resp_parse(three, 12, n, 3, NULL, NULL), 12);
    ck_assert_int_eq(sb_resp_parse(three, 12, n, 1, NULL, NULL), SB_RESP_ENODES);
}
END_TEST

static const struct {
    const char *in;
    int code;
} malformed[] = {
    {"x", SB_RESP_ETYPE},
    {"\r\n", SB_RESP_ETYPE},
    {"OK\r\n", SB_RESP_ETYPE},
    {"_\r\n", SB_RESP_ETYPE}, /* RESP3's null: not spoken here */
    {"%1\r\n", SB_RESP_ETYPE},
    {"*1\r\n?", SB_RESP_ETYPE},
    {"+a\rb\r\n", SB_RESP_ECRLF},
    {"+a\nb\r\n", SB_RESP_ECRLF},
    {"-ERR\n", SB_RESP_ECRLF},
    {":1\n", SB_RESP_ECRLF},
    {":1\rx", SB_RESP_ECRLF},
    {"$1\r\nab\r\n", SB_RESP_ECRLF},
    {"$1\r\na\rx", SB_RESP_ECRLF},
    {"$1\r\na\n", SB_RESP_ECRLF},
    {"$3\r\nab\r\n\r\n", SB_RESP_ECRLF},
    {"*1\r:1\r\n", SB_RESP_ECRLF},
    {":\r\n", SB_RESP_EINT},
    {":-\r\n", SB_RESP_EINT},
    {":+1\r\n", SB_RESP_EINT},
    {": 1\r\n", SB_RESP_EINT},
    {":1 \r\n", SB_RESP_EINT},
    {":01\r\n", SB_RESP_EINT},
    {":-0\r\n", SB_RESP_EINT},
    {":-01\r\n", SB_RESP_EINT},
    {":1.5\r\n", SB_RESP_EINT},
    {":9223372036854775808\r\n", SB_RESP_EINT},
    {":-9223372036854775809\r\n", SB_RESP_EINT},
    {":99999999999999999999999", SB_RESP_EINT},
    {"$\r\n", SB_RESP_ELEN},
    {"$x\r\n", SB_RESP_ELEN},
    {"$01\r\na\r\n", SB_RESP_ELEN},
    {"$-0\r\n", SB_RESP_ELEN},
    {"$-2\r\n", SB_RESP_ELEN},
    {"$-10\r\n", SB_RESP_ELEN},
    {"$-\r\n", SB_RESP_ELEN},
    {"$+1\r\na\r\n", SB_RESP_ELEN},
    {"*\r\n", SB_RESP_ELEN},
    {"*-2\r\n", SB_RESP_ELEN},
    {"*1x\r\n", SB_RESP_ELEN},
    {"*00\r\n", SB_RESP_ELEN},
    {">-1\r\n", SB_RESP_ELEN}, /* a push is never nil */
    {"*2\r\n:1\r\n$-5\r\n", SB_RESP_ELEN},
    {"$536870913\r\n", SB_RESP_EBIG},
    {"$99999999999999999999999\r\n", SB_RESP_EBIG},
    {"*536870913\r\n", SB_RESP_EBIG},
};

START_TEST(test_malformed)
{
    sb_resp_t n[MAX_NODES];

    for (size_t i = 0; i < N_ELEMS(malformed); i++) {
        const char *in = malformed[i].in, *err = NULL, *again = NULL;
        size_t len = strlen(in), used = 99;
        int rc = parse(in, len, n, MAX_NODES, &used, &err);
        ck_assert_msg(rc == malformed[i].code, "'%s' gave %d, not %d", show(in, len), rc,
                      malformed[i].code);
        ck_assert_uint_eq(used, 0);
        ck_assert_ptr_nonnull(err);
        ck_assert(err[0] != '\0');
        ck_assert(err < in || err > in + len);
        /* the same with err NULL, and with any bytes after the point of refusal */
        ck_assert_int_eq(parse(in, len, n, MAX_NODES, NULL, NULL), rc);
        char longer[64];
        ck_assert_uint_lt(len + 6, sizeof(longer));
        memcpy(longer, in, len);
        memcpy(longer + len, ":1\r\n\r\n", 6);
        ck_assert_int_eq(parse(longer, len + 6, n, MAX_NODES, &used, &again), rc);
        ck_assert_str_eq(again, err);
        /* each prefix needs more, or is refused the same way */
        for (size_t cut = 0; cut < len; cut++) {
            int p = parse(in, cut, n, MAX_NODES, &used, NULL);
            ck_assert_msg(p == 0 || p == rc, "prefix %zu of '%s' gave %d", cut, show(in, len), p);
        }
    }
}
END_TEST

START_TEST(test_limits)
{
    sb_resp_t n[2];
    size_t used;
    const char *err = NULL;

    /* the largest bulk string waits for its bytes; one more is refused at once */
    ck_assert_int_eq(parse("$536870912\r\n", 12, n, 2, &used, NULL), 0);
    ck_assert_int_eq(parse("$536870913\r\n", 12, n, 2, &used, &err), SB_RESP_EBIG);
    ck_assert_str_eq(err, "a bulk string or array is over 512 MiB");
    ck_assert_int_eq(parse("$5368709120", 11, n, 2, &used, NULL), SB_RESP_EBIG);
    ck_assert_int_eq(parse("$536870912", 10, n, 2, &used, NULL), 0);

    /* a simple string of SB_RESP_LINE_MAX bytes is read; one byte more is refused before its end */
    size_t max = SB_RESP_LINE_MAX;
    char *line = malloc(max + 4);
    ck_assert_ptr_nonnull(line);
    line[0] = '+';
    memset(line + 1, 'a', max + 1);
    memcpy(line + 1 + max, "\r\n", 2);
    ck_assert_int_eq(parse(line, max + 3, n, 2, &used, NULL), (int)max + 3);
    ck_assert_uint_eq(n[0].str.len, max);
    line[0] = '-';
    memset(line + 1, 'a', max + 1);
    ck_assert_int_eq(parse(line, max + 1, n, 2, &used, NULL), 0);
    ck_assert_int_eq(parse(line, max + 2, n, 2, &used, &err), SB_RESP_EBIG);
    ck_assert_str_eq(err, "a simple string or error is over 64 KiB");
    free(line);

    /* a large bulk string whole and cut short */
    size_t big = 1 << 20;
    char *bulk = malloc(big + 16);
    ck_assert_ptr_nonnull(bulk);
    int head = snprintf(bulk, 16, "$%zu\r\n", big);
    memset(bulk + head, 'z', big);
    memcpy(bulk + head + big, "\r\n", 2);
    size_t total = (size_t)head + big + 2;
    ck_assert_int_eq(parse(bulk, total, n, 2, &used, NULL), (int)total);
    ck_assert_uint_eq(n[0].str.len, big);
    ck_assert_int_eq(parse(bulk, total - 1, n, 2, &used, NULL), 0);
    ck_assert_int_eq(parse(bulk, total - 2, n, 2, &used, NULL), 0);
    ck_assert_int_eq(parse(bulk, (size_t)head, n, 2, &used, NULL), 0);
    free(bulk);
}
END_TEST

/* Every captured reply, whole and cut short at every byte. */
START_TEST(test_captured_prefixes)
{
    const char *replies[] = {smessage,    subscribe,    psubscribe, ssubscribe,
                             unsubscribe, punsubscribe, pong};
    sb_resp_t n[MAX_NODES];

    for (size_t i = 0; i < N_ELEMS(replies); i++)
        ck_assert_uint_eq(parse_whole(replies[i], n), 4 - (replies[i] == pong));
}
END_TEST

static int pubsub(const char *reply, sb_resp_msg_t *msg)
{
    sb_resp_t n[MAX_NODES];
    size_t used;

    ck_assert_int_gt(parse(reply, strlen(reply), n, MAX_NODES, &used, NULL), 0);
    return sb_resp_pubsub_message(n, used, msg);
}

static void expect_slice(sb_str_t s, const char *text)
{
    ck_assert_uint_eq(s.len, strlen(text));
    ck_assert(memcmp(s.p, text, s.len) == 0);
}

START_TEST(test_pubsub)
{
    sb_resp_msg_t m;
    const char *payload = "sb1 offer 1700000000000000 alice bob  2 \"1{\"sdp\":\"v=0\r\n\"}";

    ck_assert_int_eq(pubsub(message_pmessage, &m), SB_RESP_MESSAGE);
    ck_assert_int_eq(m.kind, SB_RESP_MESSAGE);
    ck_assert_ptr_null(m.pattern.p);
    expect_slice(m.channel, "sb:{alice}:ch");
    expect_slice(m.payload, payload);
    ck_assert_int_eq(pubsub(message_pmessage + 101, &m), SB_RESP_PMESSAGE);
    expect_slice(m.pattern, "sb:*");
    expect_slice(m.channel, "sb:{alice}:ch");
    expect_slice(m.payload, payload);
    ck_assert_int_eq(pubsub(smessage, &m), SB_RESP_SMESSAGE);
    expect_slice(m.channel, "sb:{alice}:ch");
    expect_slice(m.payload, "");
    ck_assert_ptr_nonnull(m.payload.p);
    ck_assert_int_eq(pubsub("*3\r\n$8\r\nsmessage\r\n$13\r\nsb:{alice}:ch\r\n$5\r\nhello\r\n", &m),
                     SB_RESP_SMESSAGE);
    expect_slice(m.payload, "hello");
    /* RESP3 delivers them as pushes */
    ck_assert_int_eq(pubsub(">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\np\r\n", &m), SB_RESP_MESSAGE);

    /* not messages: confirmations, pongs, errors, and shapes that are almost messages */
    const char *others[] = {
        subscribe,
        psubscribe,
        ssubscribe,
        unsubscribe,
        punsubscribe,
        pong,
        "*3\r\n$12\r\nsunsubscribe\r\n$13\r\nsb:{alice}:ch\r\n:0\r\n",
        "-MOVED 749 127.0.0.1:31001\r\n",
        "+OK\r\n",
        ":1\r\n",
        "$7\r\nmessage\r\n",
        "*-1\r\n",
        "*0\r\n",
        "*3\r\n+message\r\n$1\r\nc\r\n$1\r\np\r\n",       /* kind not a bulk string */
        "*3\r\n$7\r\nMessage\r\n$1\r\nc\r\n$1\r\np\r\n",  /* kind compared exactly */
        "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n:1\r\n",       /* payload not a bulk string */
        "*3\r\n$7\r\nmessage\r\n$-1\r\n$1\r\np\r\n",      /* nil channel */
        "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n*1\r\n:1\r\n", /* nested */
        "*4\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nc\r\n$1\r\np\r\n",
        "*2\r\n$7\r\nmessage\r\n$1\r\nc\r\n",
        "*3\r\n$8\r\npmessage\r\n$1\r\nc\r\n$1\r\np\r\n", /* pmessage needs a pattern */
        "*4\r\n$8\r\nsmessage\r\n$1\r\na\r\n$1\r\nc\r\n$1\r\np\r\n",
        "*3\r\n$8\r\nmessagex\r\n$1\r\nc\r\n$1\r\np\r\n",
        "*1\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\np\r\n",
    };
    for (size_t i = 0; i < N_ELEMS(others); i++) {
        memset(&m, 0x5a, sizeof(m));
        ck_assert_msg(pubsub(others[i], &m) == 0, "'%s' read as a message",
                      show(others[i], strlen(others[i])));
        ck_assert_int_eq(m.kind, 0);
        ck_assert_ptr_null(m.channel.p);
        ck_assert_ptr_null(m.payload.p);
        ck_assert_ptr_null(m.pattern.p);
    }
    /* fewer nodes than the message needs */
    sb_resp_t n[MAX_NODES];
    size_t used;
    ck_assert_int_gt(parse(smessage, strlen(smessage), n, MAX_NODES, &used, NULL), 0);
    ck_assert_int_eq(sb_resp_pubsub_message(n, 3, &m), 0);
    ck_assert_int_eq(sb_resp_pubsub_message(n, 0, &m), 0);
}
END_TEST

START_TEST(test_str_is)
{
    sb_resp_t n[4];
    size_t used;

    ck_assert_int_gt(parse("*3\r\n$4\r\nslot\r\n+slot\r\n:4\r\n", 25, n, 4, &used, NULL), 0);
    ck_assert(sb_resp_str_is(&n[1], "slot"));
    ck_assert(sb_resp_str_is(&n[2], "slot"));
    ck_assert(!sb_resp_str_is(&n[1], "slots"));
    ck_assert(!sb_resp_str_is(&n[1], "slo"));
    ck_assert(!sb_resp_str_is(&n[3], "4"));
    ck_assert(!sb_resp_str_is(&n[0], ""));
    ck_assert_int_gt(parse("$0\r\n\r\n", 6, n, 4, &used, NULL), 0);
    ck_assert(sb_resp_str_is(&n[0], ""));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resp");
    TCase *tc = tcase_create("resp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_arrays);
    tcase_add_test(tc, test_depth);
    tcase_add_test(tc, test_nodes);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_captured_prefixes);
    tcase_add_test(tc, test_pubsub);
    tcase_add_test(tc, test_str_is);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
