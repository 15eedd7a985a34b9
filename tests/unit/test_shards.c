/* Unit tests for proto/shards: slot tables from CLUSTER SHARDS and CLUSTER SLOTS replies. */
#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "resp.h"
#include "shards.h"

/* Replies of a real Redis Cluster (Debian's redis-server 7.0.15: three masters and three replicas
 * on 127.0.0.1, ports 31001 to 31006, made by redis-cli --cluster create), byte for byte:
 * - shards_ok, slots_ok: all six nodes up (one replica still loading);
 * - shards_failed, slots_failed: the master on 31003 (slots 10923-16383) and its replica shut
 *   down, so no failover; 31002 announces the host name node-b.example;
 * - shards_hosttype, slots_hosttype: the same with cluster-preferred-endpoint-type hostname ("?"
 *   for the nodes without a host name);
 * - slots_unknown: the same with unknown-endpoint (a nil endpoint). */
static const char shards_ok[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:10923\r\n:16383\r\n$5\r\nnodes\r\n"
    "*2\r\n*14\r\n$2\r\nid\r\n$40\r\n74be567923b0277183c824ce917ecd36ed38fbe9\r\n"
    "$4\r\nport\r\n:31003\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
    "*14\r\n$2\r\nid\r\n$40\r\n960cd9396b84bf0c4cff152cea182492c09c2565\r\n"
    "$4\r\nport\r\n:31006\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
    "$18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n$7\r\nloading\r\n"
    "*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n"
    "*14\r\n$2\r\nid\r\n$40\r\n979e0123711a2b2826d53ef4ee2b79069fcfa173\r\n"
    "$4\r\nport\r\n:31001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
    "*14\r\n$2\r\nid\r\n$40\r\n4cd975edacdcd6042e248ef65e6a4e86fa08d980\r\n"
    "$4\r\nport\r\n:31004\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
    "$18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
    "*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n"
    "*2\r\n*14\r\n$2\r\nid\r\n$40\r\n6f21cf768d504983193a9b0167cc9b860f311813\r\n"
    "$4\r\nport\r\n:31002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
    "*14\r\n$2\r\nid\r\n$40\r\nd845f2a0154e1327710e2162f037e1bc6bcffcc7\r\n"
    "$4\r\nport\r\n:31005\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
    "$18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

static const char slots_ok[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:31001\r\n"
    "$40\r\n979e0123711a2b2826d53ef4ee2b79069fcfa173\r\n*0\r\n*4\r\n"
    "$9\r\n127.0.0.1\r\n:31004\r\n$40\r\n4cd975edacdcd6042e248ef65e6a4e86fa08d980\r\n"
    "*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n127.0.0.1\r\n:31002\r\n"
    "$40\r\n6f21cf768d504983193a9b0167cc9b860f311813\r\n*0\r\n*4\r\n"
    "$9\r\n127.0.0.1\r\n:31005\r\n$40\r\nd845f2a0154e1327710e2162f037e1bc6bcffcc7\r\n"
    "*0\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:31003\r\n"
    "$40\r\n74be567923b0277183c824ce917ecd36ed38fbe9\r\n*0\r\n*4\r\n"
    "$9\r\n127.0.0.1\r\n:31006\r\n$40\r\n960cd9396b84bf0c4cff152cea182492c09c2565\r\n"
    "*0\r\n";

static const char shards_failed[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:10923\r\n:16383\r\n$5\r\nnodes\r\n"
    "*2\r\n*14\r\n$2\r\nid\r\n$40\r\n74be567923b0277183c824ce917ecd36ed38fbe9\r\n"
    "$4\r\nport\r\n:31003\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:56\r\n$6\r\nhealth\r\n$4\r\nfail\r\n"
    "*14\r\n$2\r\nid\r\n$40\r\n960cd9396b84bf0c4cff152cea182492c09c2565\r\n"
    "$4\r\nport\r\n:31006\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
    "$18\r\nreplication-offset\r\n:56\r\n$6\r\nhealth\r\n$4\r\nfail\r\n"
    "*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n"
    "*14\r\n$2\r\nid\r\n$40\r\n979e0123711a2b2826d53ef4ee2b79069fcfa173\r\n"
    "$4\r\nport\r\n:31001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:168\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
    "*14\r\n$2\r\nid\r\n$40\r\n4cd975edacdcd6042e248ef65e6a4e86fa08d980\r\n"
    "$4\r\nport\r\n:31004\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
    "$18\r\nreplication-offset\r\n:168\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
    "*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n"
    "*2\r\n*16\r\n$2\r\nid\r\n$40\r\n6f21cf768d504983193a9b0167cc9b860f311813\r\n"
    "$4\r\nport\r\n:31002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$14\r\nnode-b.example\r\n"
    "$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:168\r\n"
    "$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$"
    "40\r\nd845f2a0154e1327710e2162f037e1bc6bcffcc7\r\n"
    "$4\r\nport\r\n:31005\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
    "$18\r\nreplication-offset\r\n:168\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

static const char slots_failed[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:31001\r\n"
    "$40\r\n979e0123711a2b2826d53ef4ee2b79069fcfa173\r\n*0\r\n*4\r\n"
    "$9\r\n127.0.0.1\r\n:31004\r\n$40\r\n4cd975edacdcd6042e248ef65e6a4e86fa08d980\r\n"
    "*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n127.0.0.1\r\n:31002\r\n"
    "$40\r\n6f21cf768d504983193a9b0167cc9b860f311813\r\n*2\r\n$8\r\n"
    "hostname\r\n$14\r\nnode-b.example\r\n*4\r\n$9\r\n127.0.0.1\r\n"
    ":31005\r\n$40\r\nd845f2a0154e1327710e2162f037e1bc6bcffcc7\r\n"
    "*0\r\n*3\r\n:10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:31003\r\n"
    "$40\r\n74be567923b0277183c824ce917ecd36ed38fbe9\r\n*0\r\n";

static const char shards_hosttype[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:10923\r\n:16383\r\n$5\r\nnodes\r\n"
    "*2\r\n*14\r\n$2\r\nid\r\n$40\r\n74be567923b0277183c824ce917ecd36ed38fbe9\r\n"
    "$4\r\nport\r\n:31003\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
    ":56\r\n$6\r\nhealth\r\n$4\r\nfail\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "960cd9396b84bf0c4cff152cea182492c09c2565\r\n$4\r\nport\r\n:31006\r\n"
    "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\n"
    "role\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:56\r\n"
    "$6\r\nhealth\r\n$4\r\nfail\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n"
    ":5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$"
    "40\r\n979e0123711a2b2826d53ef4ee2b79069fcfa173\r\n"
    "$4\r\nport\r\n:31001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
    ":182\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "4cd975edacdcd6042e248ef65e6a4e86fa08d980\r\n$4\r\nport\r\n:31004\r\n"
    "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\n"
    "role\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:182\r\n"
    "$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n"
    ":10922\r\n$5\r\nnodes\r\n*2\r\n*16\r\n$2\r\nid\r\n$"
    "40\r\n6f21cf768d504983193a9b0167cc9b860f311813\r\n"
    "$4\r\nport\r\n:31002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "endpoint\r\n$14\r\nnode-b.example\r\n$8\r\nhostname\r\n$14\r\n"
    "node-b.example\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
    ":182\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "d845f2a0154e1327710e2162f037e1bc6bcffcc7\r\n$4\r\nport\r\n:31005\r\n"
    "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\n"
    "role\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:182\r\n"
    "$6\r\nhealth\r\n$6\r\nonline\r\n";

static const char slots_hosttype[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$1\r\n?\r\n:31001\r\n$40\r\n"
    "979e0123711a2b2826d53ef4ee2b79069fcfa173\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n$1\r\n?\r\n:31004\r\n$"
    "40\r\n4cd975edacdcd6042e248ef65e6a4e86fa08d980\r\n"
    "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n:5461\r\n:10922\r\n"
    "*4\r\n$14\r\nnode-b.example\r\n:31002\r\n$40\r\n6f21cf768d504983193a9b0167cc9b860f311813\r\n"
    "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n$1\r\n?\r\n:31005\r\n"
    "$40\r\nd845f2a0154e1327710e2162f037e1bc6bcffcc7\r\n*2\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n*3\r\n:10923\r\n:16383\r\n*4\r\n$1\r\n"
    "?\r\n:31003\r\n$40\r\n74be567923b0277183c824ce917ecd36ed38fbe9\r\n"
    "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n";

static const char slots_unknown[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$-1\r\n:31001\r\n$"
    "40\r\n979e0123711a2b2826d53ef4ee2b79069fcfa173\r\n"
    "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n$-1\r\n:31004\r\n$40\r\n"
    "4cd975edacdcd6042e248ef65e6a4e86fa08d980\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$-1\r\n:31002\r\n"
    "$40\r\n6f21cf768d504983193a9b0167cc9b860f311813\r\n*4\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$14\r\nnode-b.example\r\n"
    "*4\r\n$-1\r\n:31005\r\n$40\r\nd845f2a0154e1327710e2162f037e1bc6bcffcc7\r\n"
    "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*3\r\n:10923\r\n:16383\r\n"
    "*4\r\n$-1\r\n:31003\r\n$40\r\n74be567923b0277183c824ce917ecd36ed38fbe9\r\n"
    "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n";

#define ID_31001 "979e0123711a2b2826d53ef4ee2b79069fcfa173"
#define ID_31002 "6f21cf768d504983193a9b0167cc9b860f311813"
#define ID_31003 "74be567923b0277183c824ce917ecd36ed38fbe9"

#define MAX_NODES 512
#define MAX_MASTERS 8

typedef int (*reader_t)(const sb_resp_t *, size_t, int16_t *, sb_shards_master_t *, size_t,
                        const char **);

/* The slot table between canaries, to see any write outside it. */
static struct {
    int16_t before[16];
    int16_t slots[SB_SLOTS];
    int16_t after[16];
} table;
static sb_shards_master_t masters[MAX_MASTERS + 1];
static sb_resp_t nodes[MAX_NODES];

/* Parses reply (len bytes) and reads it with read, max_masters at most; checks that nothing
 * outside the table and the masters allowed was written, and that every slot holds -1 or an index
 * below the answer. */
static int read_with(reader_t read, const char *reply, size_t len, size_t max_masters,
                     const char **err)
{
    size_t used;
    const char *perr = NULL;
    int n = sb_resp_parse(reply, len, nodes, MAX_NODES, &used, &perr);
    ck_assert_msg(n == (int)len, "the reply does not parse: %d %s", n, n < 0 ? perr : "");

    memset(&table, 0x7e, sizeof(table));
    memset(masters, 0x7e, sizeof(masters));
    int rc = read(nodes, used, table.slots, masters, max_masters, err);
    for (size_t i = 0; i < N_ELEMS(table.before); i++)
        ck_assert(table.before[i] == 0x7e7e && table.after[i] == 0x7e7e);
    for (size_t i = max_masters; i < N_ELEMS(masters); i++)
        ck_assert_int_eq(masters[i].port, 0x7e7e7e7e);
    for (size_t s = 0; s < SB_SLOTS; s++)
        REQUIRE(table.slots[s] == -1 || (rc > 0 && table.slots[s] < rc), "slot %zu holds %d", s,
                table.slots[s]);
    return rc;
}

static int read_reply(reader_t read, const char *reply, const char **err)
{
    return read_with(read, reply, strlen(reply), MAX_MASTERS, err);
}

/* The port of the master serving slot s, or -1. */
static int port_of(size_t s)
{
    int16_t m = table.slots[s];
    return m < 0 ? -1 : masters[m].port;
}

static void expect_master(int i, const char *host, int port, int tls_port, const char *id)
{
    ck_assert_str_eq(masters[i].host, host);
    ck_assert_int_eq(masters[i].port, port);
    ck_assert_int_eq(masters[i].tls_port, tls_port);
    ck_assert_str_eq(masters[i].id, id);
}

/* The three masters serve their thirds, and no slot is left out. */
static void expect_thirds(int with_31003)
{
    ck_assert_int_eq(port_of(0), 31001);
    ck_assert_int_eq(port_of(5460), 31001);
    ck_assert_int_eq(port_of(5461), 31002);
    ck_assert_int_eq(port_of(10922), 31002);
    ck_assert_int_eq(port_of(10923), with_31003 ? 31003 : -1);
    ck_assert_int_eq(port_of(16383), with_31003 ? 31003 : -1);
    for (size_t s = 0; s < SB_SLOTS; s++) {
        int want = s <= 5460 ? 31001 : s <= 10922 ? 31002 : with_31003 ? 31003 : -1;
        REQUIRE(port_of(s) == want, "slot %zu: port %d, not %d", s, port_of(s), want);
    }
}

START_TEST(test_captured_prefixes)
{
    const char *replies[] = {shards_ok,       slots_ok,       shards_failed, slots_failed,
                             shards_hosttype, slots_hosttype, slots_unknown};
    size_t used;

    for (size_t r = 0; r < N_ELEMS(replies); r++) {
        size_t len = strlen(replies[r]);
        for (size_t cut = 0; cut < len; cut++) {
            char *copy = malloc(cut ? cut : 1);
            ck_assert_ptr_nonnull(copy);
            memcpy(copy, replies[r], cut);
            int rc = sb_resp_parse(copy, cut, nodes, MAX_NODES, &used, NULL);
            free(copy);
            REQUIRE(rc == 0, "reply %zu cut at %zu gave %d", r, cut, rc);
        }
        ck_assert_int_eq(sb_resp_parse(replies[r], len, nodes, MAX_NODES, &used, NULL), (int)len);
    }
}
END_TEST

START_TEST(test_shards_captured)
{
    const char *err = NULL;

    ck_assert_int_eq(read_reply(sb_shards_read, shards_ok, &err), 3);
    /* in the reply's order; the replicas (31004-31006) are not masters */
    expect_master(0, "127.0.0.1", 31003, 0, ID_31003);
    expect_master(1, "127.0.0.1", 31001, 0, ID_31001);
    expect_master(2, "127.0.0.1", 31002, 0, ID_31002);
    expect_thirds(1);

    /* the failed master's slots are left unassigned */
    ck_assert_int_eq(read_reply(sb_shards_read, shards_failed, &err), 2);
    expect_master(0, "127.0.0.1", 31001, 0, ID_31001);
    expect_master(1, "127.0.0.1", 31002, 0, ID_31002);
    expect_thirds(0);

    /* a host name as the preferred endpoint; "?" for unknown ones, where the IP is used */
    ck_assert_int_eq(read_reply(sb_shards_read, shards_hosttype, &err), 2);
    expect_master(0, "127.0.0.1", 31001, 0, ID_31001);
    expect_master(1, "node-b.example", 31002, 0, ID_31002);
    expect_thirds(0);

    /* exactly enough room, and too little */
    ck_assert_int_eq(read_with(sb_shards_read, shards_ok, strlen(shards_ok), 3, &err), 3);
    ck_assert_int_eq(read_with(sb_shards_read, shards_ok, strlen(shards_ok), 2, &err),
                     SB_SHARDS_EMASTERS);
    ck_assert_str_eq(err, "more masters than room to list them");
    ck_assert_int_eq(read_with(sb_shards_read, shards_ok, strlen(shards_ok), 0, NULL),
                     SB_SHARDS_EMASTERS);
    ck_assert_int_eq(read_with(sb_shards_read, shards_failed, strlen(shards_failed), 2, &err), 2);
}
END_TEST

START_TEST(test_slots_captured)
{
    const char *err = NULL;

    ck_assert_int_eq(read_reply(sb_shards_read_slots, slots_ok, &err), 3);
    expect_master(0, "127.0.0.1", 31001, 0, ID_31001);
    expect_master(1, "127.0.0.1", 31002, 0, ID_31002);
    expect_master(2, "127.0.0.1", 31003, 0, ID_31003);
    expect_thirds(1);

    /* CLUSTER SLOTS does not tell a failed master */
    ck_assert_int_eq(read_reply(sb_shards_read_slots, slots_failed, &err), 3);
    expect_thirds(1);

    ck_assert_int_eq(read_reply(sb_shards_read_slots, slots_hosttype, &err), 3);
    expect_master(0, "127.0.0.1", 31001, 0, ID_31001); /* "?", and the ip in the metadata */
    expect_master(1, "node-b.example", 31002, 0, ID_31002);
    expect_master(2, "127.0.0.1", 31003, 0, ID_31003);
    expect_thirds(1);

    ck_assert_int_eq(read_reply(sb_shards_read_slots, slots_unknown, &err), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(masters[i].host, "127.0.0.1"); /* nil, and the ip in the metadata */
    expect_thirds(1);

    ck_assert_int_eq(read_with(sb_shards_read_slots, slots_ok, strlen(slots_ok), 2, &err),
                     SB_SHARDS_EMASTERS);

    /* the readers are not interchangeable */
    ck_assert_int_eq(read_reply(sb_shards_read_slots, shards_ok, &err), SB_SHARDS_ESHAPE);
    ck_assert_int_eq(read_reply(sb_shards_read, slots_ok, &err), SB_SHARDS_ESHAPE);
}
END_TEST

START_TEST(test_error_reply)
{
    const char *err = NULL;
    const char *unknown = "-ERR unknown subcommand 'shards'. Try CLUSTER HELP.\r\n";

    ck_assert_int_eq(read_reply(sb_shards_read, unknown, &err), SB_SHARDS_EREPLY);
    ck_assert_str_eq(err, "the server answered with an error");
    ck_assert_int_eq(nodes[0].type, SB_RESP_ERROR);
    ck_assert_int_eq(read_reply(sb_shards_read_slots, unknown, &err), SB_SHARDS_EREPLY);
    ck_assert_int_eq(read_reply(sb_shards_read, "+OK\r\n", &err), SB_SHARDS_ESHAPE);
    ck_assert_int_eq(read_reply(sb_shards_read, "*-1\r\n", &err), SB_SHARDS_ESHAPE);
    ck_assert_int_eq(read_reply(sb_shards_read, ":3\r\n", &err), SB_SHARDS_ESHAPE);
    ck_assert_int_eq(read_reply(sb_shards_read_slots, "$-1\r\n", &err), SB_SHARDS_ESHAPE);
    /* no shards at all: nothing assigned */
    ck_assert_int_eq(read_reply(sb_shards_read, "*0\r\n", &err), 0);
    ck_assert_int_eq(read_reply(sb_shards_read_slots, "*0\r\n", &err), 0);
    ck_assert_int_eq(table.slots[0], -1);
    /* no parsed reply */
    int16_t slots[SB_SLOTS];
    ck_assert_int_eq(sb_shards_read(nodes, 0, slots, masters, MAX_MASTERS, NULL), SB_SHARDS_ESHAPE);
}
END_TEST

/* ---- replies built here, to break one thing at a time ------------------------------------------
 * A tiny RESP writer: "*" then a count, "$" a string, ":" an integer, each a separate argument:
 * build("*", 2, "$", "a", ":", 5, NULL). */

static char built[8192];

static const char *build(const char *first, ...)
{
    va_list ap;
    size_t n = 0;

    va_start(ap, first);
    for (const char *t = first; t != NULL; t = va_arg(ap, const char *)) {
        if (t[0] == '$') {
            const char *s = va_arg(ap, const char *);
            n += (size_t)snprintf(built + n, sizeof(built) - n, "$%zu\r\n%s\r\n", strlen(s), s);
        } else if (t[0] == '!') { /* raw text */
            n += (size_t)snprintf(built + n, sizeof(built) - n, "%s", va_arg(ap, const char *));
        } else {
            n += (size_t)snprintf(built + n, sizeof(built) - n, "%c%d\r\n", t[0], va_arg(ap, int));
        }
        ck_assert_uint_lt(n, sizeof(built));
    }
    va_end(ap);
    return built;
}

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ID_C "0123456789abcdef0123456789abcdef01234567"

/* A node as CLUSTER SHARDS writes it, in one static buffer per call site. */
static const char *node(char *out, const char *id, int port, const char *role, const char *health)
{
    snprintf(out, 512,
             "*12\r\n$2\r\nid\r\n$%zu\r\n%s\r\n$4\r\nport\r\n:%d\r\n$2\r\nip\r\n$8\r\n10.0.0.1\r\n"
             "$8\r\nendpoint\r\n$8\r\n10.0.0.1\r\n$4\r\nrole\r\n$%zu\r\n%s\r\n"
             "$6\r\nhealth\r\n$%zu\r\n%s\r\n",
             strlen(id), id, port, strlen(role), role, strlen(health), health);
    return out;
}

static int shards(const char *reply, const char **err)
{
    return read_reply(sb_shards_read, reply, err);
}

START_TEST(test_shards_built)
{
    char a[512], b[512];
    const char *err = NULL;

    /* one shard, two ranges; a replica and unknown keys (with nested values) skipped */
    ck_assert_int_eq(shards(build("*", 1, "*", 6, "$", "slots", "*", 4, ":", 0, ":", 9, ":", 100,
                                  ":", 100, "$", "shard-id", "*", 1, "*", 0, "$", "nodes", "*", 2,
                                  "!", node(a, ID_B, 7001, "replica", "online"), "!",
                                  node(b, ID_A, 7000, "master", "online"), NULL),
                            &err),
                     1);
    expect_master(0, "10.0.0.1", 7000, 0, ID_A);
    ck_assert_int_eq(table.slots[0], 0);
    ck_assert_int_eq(table.slots[9], 0);
    ck_assert_int_eq(table.slots[10], -1);
    ck_assert_int_eq(table.slots[100], 0);
    ck_assert_int_eq(table.slots[101], -1);

    /* a master loading or failed serves nothing; a replica never does */
    const char *not_serving[][2] = {{"master", "loading"}, {"master", "fail"},
                                    {"master", "failed"},  {"replica", "online"},
                                    {"Master", "online"},  {"master", "ONLINE"}};
    for (size_t i = 0; i < N_ELEMS(not_serving); i++) {
        ck_assert_int_eq(
            shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 0, ":", 16383, "$", "nodes",
                         "*", 1, "!", node(a, ID_A, 7000, not_serving[i][0], not_serving[i][1]),
                         NULL),
                   &err),
            0);
        ck_assert_int_eq(table.slots[0], -1);
    }
    /* an online master without slots is not listed */
    ck_assert_int_eq(
        shards(build("*", 1, "*", 4, "$", "nodes", "*", 1, "!",
                     node(a, ID_A, 7000, "master", "online"), "$", "slots", "*", 0, NULL),
               &err),
        0);

    /* TLS only, a host name endpoint, and one of 255 bytes */
    ck_assert_int_eq(
        shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 5, ":", 5, "$", "nodes", "*", 1,
                     "*", 12, "$", "id", "$", ID_C, "$", "tls-port", ":", 6380, "$", "endpoint",
                     "$", "redis-0.example", "$", "role", "$", "master", "$", "health", "$",
                     "online", "$", "hostname", "$", "redis-0.example", NULL),
               &err),
        1);
    expect_master(0, "redis-0.example", 0, 6380, ID_C);
    char host[300];
    memset(host, 'h', 255);
    host[255] = '\0';
    ck_assert_int_eq(
        shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 5, ":", 5, "$", "nodes", "*", 1,
                     "*", 10, "$", "id", "$", ID_C, "$", "port", ":", 1, "$", "endpoint", "$", host,
                     "$", "role", "$", "master", "$", "health", "$", "online", NULL),
               &err),
        1);
    ck_assert_str_eq(masters[0].host, host);
    host[255] = 'h';
    host[256] = '\0';
    ck_assert_int_eq(
        shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 5, ":", 5, "$", "nodes", "*", 1,
                     "*", 10, "$", "id", "$", ID_C, "$", "port", ":", 1, "$", "endpoint", "$", host,
                     "$", "role", "$", "master", "$", "health", "$", "online", NULL),
               &err),
        SB_SHARDS_ENODE);
    ck_assert_str_eq(err, "a master's address is over 255 bytes or holds a NUL");
    /* neither endpoint nor ip: connect where the reply came from */
    ck_assert_int_eq(shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 5, ":", 5, "$",
                                  "nodes", "*", 1, "*", 12, "$", "id", "$", ID_C, "$", "port", ":",
                                  7000, "$", "endpoint", "$", "", "$", "ip", "$", "", "$", "role",
                                  "$", "master", "$", "health", "$", "online", NULL),
                            &err),
                     1);
    expect_master(0, "", 7000, 0, ID_C);
}
END_TEST

START_TEST(test_shards_malformed)
{
    char a[512], b[512];
    const char *err = NULL;
    const struct {
        const char *reply;
        int code;
        const char *err;
    } cases[] = {
        {"*1\r\n:1\r\n", SB_SHARDS_ESHAPE, "a shard is not a flat map"},
        {"*1\r\n*1\r\n$5\r\nslots\r\n", SB_SHARDS_ESHAPE, "a shard is not a flat map"},
        {"*1\r\n*2\r\n:1\r\n*0\r\n", SB_SHARDS_ESHAPE, "a shard is not a flat map"},
        {"*1\r\n*2\r\n$5\r\nslots\r\n*0\r\n", SB_SHARDS_ESHAPE, "a shard without slots or nodes"},
        {"*1\r\n*2\r\n$5\r\nnodes\r\n*0\r\n", SB_SHARDS_ESHAPE, "a shard without slots or nodes"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*1\r\n:1\r\n$5\r\nnodes\r\n*0\r\n", SB_SHARDS_ESHAPE,
         "a shard's slots are not pairs of integers"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n:1\r\n$5\r\nnodes\r\n*0\r\n", SB_SHARDS_ESHAPE,
         "a shard's slots are not pairs of integers"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n$1\r\n0\r\n$1\r\n1\r\n$5\r\nnodes\r\n*0\r\n",
         SB_SHARDS_ESHAPE, "a slot range's bounds are not integers"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n$0\r\n\r\n", SB_SHARDS_ESHAPE,
         "a shard's nodes are not an array"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n:1\r\n", SB_SHARDS_ESHAPE,
         "a node is not a flat map with string id, ip, endpoint, role and health, and integer "
         "ports"},
        /* slots without an online master still count against overlaps */
        {"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16384\r\n$5\r\nnodes\r\n*0\r\n", SB_SHARDS_ESLOT,
         "a slot range is reversed or outside 0-16383"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:-1\r\n:5\r\n$5\r\nnodes\r\n*0\r\n", SB_SHARDS_ESLOT,
         "a slot range is reversed or outside 0-16383"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:6\r\n:5\r\n$5\r\nnodes\r\n*0\r\n", SB_SHARDS_ESLOT,
         "a slot range is reversed or outside 0-16383"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*4\r\n:0\r\n:5\r\n:5\r\n:6\r\n$5\r\nnodes\r\n*0\r\n",
         SB_SHARDS_ESLOT, "a slot is in two ranges"},
        {"*2\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5\r\n$5\r\nnodes\r\n*0\r\n"
         "*4\r\n$5\r\nslots\r\n*2\r\n:5\r\n:9\r\n$5\r\nnodes\r\n*0\r\n",
         SB_SHARDS_ESLOT, "a slot is in two ranges"},
    };

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        err = NULL;
        ck_assert_msg(shards(cases[i].reply, &err) == cases[i].code, "case %zu", i);
        ck_assert_str_eq(err, cases[i].err);
        for (size_t s = 0; s < SB_SLOTS; s++)
            REQUIRE(table.slots[s] == -1, "case %zu: slot %zu left %d", i, s, table.slots[s]);
        ck_assert_int_eq(read_reply(sb_shards_read, cases[i].reply, NULL), cases[i].code);
    }

    /* node fields */
    ck_assert_int_eq(shards(build("*", 1, "*", 4, "$", "slots", "*", 0, "$", "nodes", "*", 1, "*",
                                  4, "$", "id", "$", ID_A, "$", "role", "$", "master", NULL),
                            &err),
                     SB_SHARDS_ESHAPE);
    ck_assert_str_eq(err, "a node without an id, role or health");
    ck_assert_int_eq(
        shards(build("*", 1, "*", 4, "$", "slots", "*", 0, "$", "nodes", "*", 1, "*", 6, "$", "id",
                     "$", ID_A, "$", "role", "$", "master", "$", "port", "$", "7000", NULL),
               &err),
        SB_SHARDS_ESHAPE);
    ck_assert_int_eq(
        shards(build("*", 1, "*", 4, "$", "slots", "*", 0, "$", "nodes", "*", 1, "*", 6, "$", "id",
                     ":", 1, "$", "role", "$", "master", "$", "health", "$", "online", NULL),
               &err),
        SB_SHARDS_ESHAPE);
    const char *bad_ids[] = {
        "", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < N_ELEMS(bad_ids); i++) {
        ck_assert_int_eq(
            shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 1, ":", 1, "$", "nodes", "*", 1,
                         "!", node(a, bad_ids[i], 7000, "master", "online"), NULL),
                   &err),
            SB_SHARDS_ENODE);
        ck_assert_str_eq(err, "a master's ID is not 40 hexadecimal digits");
    }
    /* a replica's ID is not the reader's business */
    ck_assert_int_eq(
        shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 1, ":", 1, "$", "nodes", "*", 1,
                     "!", node(a, "x", 7000, "replica", "online"), NULL),
               &err),
        0);
    const int bad_ports[] = {0, -1, 65536, 1 << 30};
    for (size_t i = 0; i < N_ELEMS(bad_ports); i++) {
        ck_assert_int_eq(
            shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 1, ":", 1, "$", "nodes", "*", 1,
                         "!", node(a, ID_A, bad_ports[i], "master", "online"), NULL),
                   &err),
            SB_SHARDS_ENODE);
        ck_assert_str_eq(err, "a master's port is not a number from 1 to 65535");
    }
    /* no port at all */
    ck_assert_int_eq(shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 1, ":", 1, "$",
                                  "nodes", "*", 1, "*", 6, "$", "id", "$", ID_A, "$", "role", "$",
                                  "master", "$", "health", "$", "online", NULL),
                            &err),
                     SB_SHARDS_ENODE);
    /* a NUL in the endpoint */
    static const char with_nul[] =
        "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:1\r\n:1\r\n$5\r\nnodes\r\n*1\r\n*10\r\n$2\r\nid\r\n"
        "$40\r\n" ID_A "\r\n$4\r\nport\r\n:1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$6\r\nhealth\r\n"
        "$6\r\nonline\r\n$8\r\nendpoint\r\n$3\r\na\0b\r\n";
    ck_assert_int_eq(read_with(sb_shards_read, with_nul, sizeof(with_nul) - 1, MAX_MASTERS, &err),
                     SB_SHARDS_ENODE);
    ck_assert_str_eq(err, "a master's address is over 255 bytes or holds a NUL");

    /* two online masters in a shard; one master in two shards */
    ck_assert_int_eq(shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 1, ":", 1, "$",
                                  "nodes", "*", 2, "!", node(a, ID_A, 7000, "master", "online"),
                                  "!", node(b, ID_B, 7001, "master", "online"), NULL),
                            &err),
                     SB_SHARDS_ESHAPE);
    ck_assert_str_eq(err, "a shard has two online masters");
    ck_assert_int_eq(
        shards(build("*", 2, "*", 4, "$", "slots", "*", 2, ":", 1, ":", 1, "$", "nodes", "*", 1,
                     "!", node(a, ID_A, 7000, "master", "online"), "*", 4, "$", "slots", "*", 2,
                     ":", 2, ":", 2, "$", "nodes", "*", 1, "!", a, NULL),
               &err),
        SB_SHARDS_ENODE);
    ck_assert_str_eq(err, "a master is listed in two shards");
    /* a failed master beside an online one (the shard of a failover) is fine */
    ck_assert_int_eq(shards(build("*", 1, "*", 4, "$", "slots", "*", 2, ":", 1, ":", 1, "$",
                                  "nodes", "*", 2, "!", node(a, ID_A, 7000, "master", "fail"), "!",
                                  node(b, ID_B, 7001, "master", "online"), NULL),
                            &err),
                     1);
    expect_master(0, "10.0.0.1", 7001, 0, ID_B);
}
END_TEST

static int slots(const char *reply, const char **err)
{
    return read_reply(sb_shards_read_slots, reply, err);
}

#define MASTER_A "*3\r\n$8\r\n10.0.0.1\r\n:7000\r\n$40\r\n" ID_A "\r\n"
#define MASTER_B "*3\r\n$8\r\n10.0.0.2\r\n:7000\r\n$40\r\n" ID_B "\r\n"

START_TEST(test_slots_built)
{
    const char *err = NULL;

    /* a master with two ranges is listed once; Redis 6's three-part nodes; replicas skipped */
    ck_assert_int_eq(slots("*3\r\n*3\r\n:0\r\n:9\r\n" MASTER_A "*4\r\n:10\r\n:19\r\n" MASTER_B
                           "*3\r\n$0\r\n\r\n:1\r\n$0\r\n\r\n*3\r\n:20\r\n:20\r\n" MASTER_A,
                           &err),
                     2);
    expect_master(0, "10.0.0.1", 7000, 0, ID_A);
    expect_master(1, "10.0.0.2", 7000, 0, ID_B);
    ck_assert_int_eq(table.slots[0], 0);
    ck_assert_int_eq(table.slots[9], 0);
    ck_assert_int_eq(table.slots[10], 1);
    ck_assert_int_eq(table.slots[19], 1);
    ck_assert_int_eq(table.slots[20], 0);
    ck_assert_int_eq(table.slots[21], -1);
    /* "?" or nil without metadata: the address the reply came from */
    ck_assert_int_eq(
        slots("*1\r\n*3\r\n:0\r\n:0\r\n*3\r\n$1\r\n?\r\n:7000\r\n$40\r\n" ID_A "\r\n", &err), 1);
    expect_master(0, "", 7000, 0, ID_A);
    ck_assert_int_eq(
        slots("*1\r\n*3\r\n:0\r\n:0\r\n*3\r\n$-1\r\n:7000\r\n$40\r\n" ID_A "\r\n", &err), 1);
    expect_master(0, "", 7000, 0, ID_A);

    const struct {
        const char *reply;
        int code;
        const char *err;
    } cases[] = {
        {"*1\r\n:1\r\n", SB_SHARDS_ESHAPE, NULL},
        {"*1\r\n*2\r\n:0\r\n:0\r\n", SB_SHARDS_ESHAPE, NULL},
        {"*1\r\n*3\r\n:0\r\n:0\r\n$1\r\nx\r\n", SB_SHARDS_ESHAPE, NULL},
        {"*1\r\n*3\r\n:0\r\n:0\r\n*2\r\n$1\r\nx\r\n:1\r\n", SB_SHARDS_ESHAPE, NULL},
        {"*1\r\n*3\r\n:0\r\n:0\r\n*3\r\n:1\r\n:7000\r\n$40\r\n" ID_A "\r\n", SB_SHARDS_ESHAPE,
         NULL},
        {"*1\r\n*3\r\n:0\r\n:0\r\n*3\r\n$1\r\nx\r\n$4\r\n7000\r\n$40\r\n" ID_A "\r\n",
         SB_SHARDS_ESHAPE, NULL},
        {"*1\r\n*4\r\n:0\r\n:0\r\n" MASTER_A ":1\r\n", SB_SHARDS_ESHAPE, NULL},
        {"*1\r\n*3\r\n:0\r\n:0\r\n*4\r\n$1\r\nx\r\n:1\r\n$40\r\n" ID_A "\r\n*1\r\n$2\r\nip\r\n",
         SB_SHARDS_ESHAPE, "a node's metadata is not a flat map"},
        {"*1\r\n*3\r\n$1\r\n0\r\n:0\r\n" MASTER_A, SB_SHARDS_ESHAPE,
         "a slot range's bounds are not integers"},
        {"*1\r\n*3\r\n:0\r\n:0\r\n*3\r\n$1\r\nx\r\n:0\r\n$40\r\n" ID_A "\r\n", SB_SHARDS_ENODE,
         "a master's port is not a number from 1 to 65535"},
        {"*1\r\n*3\r\n:0\r\n:0\r\n*3\r\n$1\r\nx\r\n:65536\r\n$40\r\n" ID_A "\r\n", SB_SHARDS_ENODE,
         "a master's port is not a number from 1 to 65535"},
        {"*1\r\n*3\r\n:0\r\n:0\r\n*3\r\n$1\r\nx\r\n:1\r\n$1\r\na\r\n", SB_SHARDS_ENODE,
         "a master's ID is not 40 hexadecimal digits"},
        {"*1\r\n*3\r\n:9\r\n:0\r\n" MASTER_A, SB_SHARDS_ESLOT,
         "a slot range is reversed or outside 0-16383"},
        {"*1\r\n*3\r\n:0\r\n:16384\r\n" MASTER_A, SB_SHARDS_ESLOT,
         "a slot range is reversed or outside 0-16383"},
        {"*2\r\n*3\r\n:0\r\n:5\r\n" MASTER_A "*3\r\n:5\r\n:6\r\n" MASTER_B, SB_SHARDS_ESLOT,
         "a slot is in two ranges"},
        {"*2\r\n*3\r\n:0\r\n:5\r\n" MASTER_A "*3\r\n:6\r\n:6\r\n*3\r\n$8\r\n10.0.0.1\r\n:7001\r\n"
         "$40\r\n" ID_A "\r\n",
         SB_SHARDS_ENODE, "a master is listed twice with different addresses"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        err = NULL;
        ck_assert_msg(slots(cases[i].reply, &err) == cases[i].code, "case %zu", i);
        ck_assert_ptr_nonnull(err);
        if (cases[i].err != NULL)
            ck_assert_str_eq(err, cases[i].err);
        for (size_t s = 0; s < SB_SLOTS; s++)
            REQUIRE(table.slots[s] == -1, "case %zu: slot %zu left %d", i, s, table.slots[s]);
    }
}
END_TEST

START_TEST(test_redirect)
{
    sb_shards_redirect_t r;
    const char *moved = "MOVED 3999 127.0.0.1:6381";
    ck_assert_int_eq(sb_shards_redirect(moved, strlen(moved), &r), 0);
    ck_assert_int_eq(r.ask, 0);
    ck_assert_uint_eq(r.slot, 3999);
    ck_assert_str_eq(r.host, "127.0.0.1");
    ck_assert_int_eq(r.port, 6381);
    const char *ask = "ASK 16383 redis-2.example:7000";
    ck_assert_int_eq(sb_shards_redirect(ask, strlen(ask), &r), 0);
    ck_assert_int_eq(r.ask, 1);
    ck_assert_uint_eq(r.slot, 16383);
    ck_assert_str_eq(r.host, "redis-2.example");
    ck_assert_int_eq(r.port, 7000);
    /* IPv6, written by Redis without brackets: the port is after the last colon. */
    const char *v6 = "MOVED 0 2001:db8::7:6379";
    ck_assert_int_eq(sb_shards_redirect(v6, strlen(v6), &r), 0);
    ck_assert_str_eq(r.host, "2001:db8::7");
    ck_assert_int_eq(r.port, 6379);
    /* An unknown endpoint: no host, the port alone. */
    const char *bare = "MOVED 12 :6380";
    ck_assert_int_eq(sb_shards_redirect(bare, strlen(bare), &r), 0);
    ck_assert_str_eq(r.host, "");
    ck_assert_int_eq(r.port, 6380);
    /* The length bounds it, not a NUL: the bytes after it are not read. */
    const char *longer = "MOVED 5 10.0.0.1:7001 and more";
    ck_assert_int_eq(sb_shards_redirect(longer, 21, &r), 0);
    ck_assert_int_eq(r.port, 7001);

    static const char *const bad[] = {
        "MOVED",
        "MOVED ",
        "MOVED 1",
        "MOVED 1 ",
        "MOVED 1 host",
        "MOVED 1 host:",
        "MOVED 16384 h:1",
        "MOVED -1 h:1",
        "MOVED +1 h:1",
        "MOVED 01 h:1",
        "MOVED 1 h:0",
        "MOVED 1 h:65536",
        "MOVED 1 h:070",
        "MOVED 1 h:1x",
        "MOVED 1 h :1",
        "MOVED 1 h\t:1",
        "MOVED  1 h:1",
        "moved 1 h:1",
        "ASKING 1 h:1",
        "ERR unknown command",
        "CLUSTERDOWN The cluster is down",
        "TRYAGAIN Multiple keys request during rehashing of slot",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        memset(&r, 0x5a, sizeof(r));
        ck_assert_msg(sb_shards_redirect(bad[i], strlen(bad[i]), &r) == -1, "accepted %s", bad[i]);
        ck_assert_int_eq(r.port, 0);
        ck_assert_str_eq(r.host, "");
    }
    char host[300];
    memset(host, 'h', sizeof(host));
    int n = snprintf(host, sizeof(host), "MOVED 1 ");
    memset(host + n, 'a', 256);
    memcpy(host + n + 256, ":1", 3);
    ck_assert_int_eq(sb_shards_redirect(host, strlen(host), &r), -1);
    host[n + 255] = ':', host[n + 256] = '1', host[n + 257] = '\0';
    ck_assert_int_eq(sb_shards_redirect(host, strlen(host), &r), 0);
    ck_assert_uint_eq(strlen(r.host), 255);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shards");
    TCase *tc = tcase_create("shards");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_captured_prefixes);
    tcase_add_test(tc, test_shards_captured);
    tcase_add_test(tc, test_slots_captured);
    tcase_add_test(tc, test_error_reply);
    tcase_add_test(tc, test_shards_built);
    tcase_add_test(tc, test_shards_malformed);
    tcase_add_test(tc, test_slots_built);
    tcase_add_test(tc, test_redirect);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
