/* switchboard-bench's command line: the mode, the targets and every knob, checked. */
#include "options.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: switchboard-bench relay|conns|baseline [options] [URL...]\n"
    "\n"
    "A load generator for Switchboard nodes, speaking protocol v1 over ws://.\n"
    "\n"
    "Modes:\n"
    "  relay      P pairs of peers relay offer/answer/candidate messages; each is answered\n"
    "             ack (or an error, counted as refused by code) and delivered to its recipient.\n"
    "             Latency is from the message's intended send time to its delivery.\n"
    "  conns      opens N idle, welcomed connections to one node; reports the setup rate and the\n"
    "             node's resident memory per connection; with --relay-pairs, relays through\n"
    "             some pairs before and while they are open, to compare CPU per message.\n"
    "  baseline   the floor: a bare hiredis publisher and subscriber moving the same messages\n"
    "             through the same Redis (--redis), one channel per pair, the same way.\n"
    "\n"
    "Targets:\n"
    "  URL, --url URL        ws://HOST:PORT[/PATH] of a node or a balancer (repeatable; path\n"
    "                        /ws by default; HOST an IPv4 address or localhost)\n"
    "  --redis URL           redis://[:password@]HOST:PORT: baseline's Redis; in the other\n"
    "                        modes only where its CPU is read from\n"
    "\n"
    "Load (relay, baseline, and conns with --relay-pairs):\n"
    "  --pairs P             pairs of peers (default 50)\n"
    "  --place same|split    both peers of a pair on one URL, or on two different ones\n"
    "                        (default: split when two or more URLs are given)\n"
    "  --window W            messages in flight per pair (default 4)\n"
    "  --rate N              open loop: N messages a second in all (k, m suffixes), each timed\n"
    "                        from when it was due, even when the window held it back\n"
    "                        (default: closed loop, a message starts when one completes)\n"
    "  --mix webrtc          a call's mix: an offer and an answer of 2-6 KB to 16 candidates\n"
    "                        of about 200 B, from both sides (the default)\n"
    "  --size BYTES          every payload this size instead (k suffix: 1024), as candidates\n"
    "  --warmup S            seconds run before measuring (default 2)\n"
    "  --duration S          seconds measured (default 10)\n"
    "  --drain S             seconds to wait for outstanding answers after (default 5)\n"
    "  --id-prefix STR       peer IDs are STR-aN and STR-bN (default bench<pid>)\n"
    "\n"
    "Connections (conns):\n"
    "  --connections N       idle connections to open (default 1000; k suffix)\n"
    "  --sources K           source addresses 127.0.0.2 to 127.0.0.(K+1), used in turn with\n"
    "                        IP_BIND_ADDRESS_NO_PORT (default 4; 0: the kernel's choice)\n"
    "  --concurrency C       handshakes in flight at once (default 128)\n"
    "  --relay-pairs P       also relay through P pairs, before and while the connections are\n"
    "                        open (with --duration, --window, --rate, --mix/--size)\n"
    "  --timeout S           seconds a connection may take to be welcomed (default 10)\n"
    "\n"
    "CPU accounting (utime+stime from /proc over the measured interval):\n"
    "  --node-pid PID        a node's process (repeatable)\n"
    "  --node-port PORT      a node found by its listening port (repeatable); without either,\n"
    "                        the URLs' ports are looked up and kept when a switchboard process\n"
    "                        listens there\n"
    "  --redis-pid PID, --redis-port PORT   Redis's process (default: --redis's port)\n"
    "\n"
    "Output:\n"
    "  --json                one JSON object with every figure on stdout (the summary for\n"
    "                        people then goes to stderr)\n"
    "  --quiet               no progress lines (printed each second when stderr is a terminal)\n"
    "  --help                this text\n"
    "\n"
    "Nodes refuse floods by default: benchmark nodes need --rate-messages 1g --rate-bytes 1g\n"
    "--source-connections 1g --source-handshakes 1g.\n"
    "\n"
    "Exit status: 0 when every message was answered (ack or error) and every ack was\n"
    "delivered, 1 otherwise (or when connections could not be opened), 2 on usage errors.\n";

/* A non-negative number with an optional k/m suffix (unit 1000 or 1024). */
static int number(const char *s, double unit, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0)
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= unit, end++;
    else if (*end == 'm' || *end == 'M')
        v *= unit * unit, end++;
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int bad(const char *opt, const char *arg, const char *want)
{
    fprintf(stderr, "switchboard-bench: %s %s: %s (see --help)\n", opt, arg, want);
    return -1;
}

enum {
    O_URL = 256,
    O_REDIS,
    O_PAIRS,
    O_PLACE,
    O_WINDOW,
    O_RATE,
    O_MIX,
    O_SIZE,
    O_WARMUP,
    O_DURATION,
    O_DRAIN,
    O_PREFIX,
    O_CONNECTIONS,
    O_SOURCES,
    O_CONCURRENCY,
    O_RELAY_PAIRS,
    O_TIMEOUT,
    O_NODE_PID,
    O_NODE_PORT,
    O_REDIS_PID,
    O_REDIS_PORT,
    O_JSON,
    O_QUIET,
    O_HELP,
};

static const struct option longopts[] = {
    {"url", required_argument, NULL, O_URL},
    {"redis", required_argument, NULL, O_REDIS},
    {"pairs", required_argument, NULL, O_PAIRS},
    {"place", required_argument, NULL, O_PLACE},
    {"window", required_argument, NULL, O_WINDOW},
    {"rate", required_argument, NULL, O_RATE},
    {"mix", required_argument, NULL, O_MIX},
    {"size", required_argument, NULL, O_SIZE},
    {"warmup", required_argument, NULL, O_WARMUP},
    {"duration", required_argument, NULL, O_DURATION},
    {"drain", required_argument, NULL, O_DRAIN},
    {"id-prefix", required_argument, NULL, O_PREFIX},
    {"connections", required_argument, NULL, O_CONNECTIONS},
    {"sources", required_argument, NULL, O_SOURCES},
    {"concurrency", required_argument, NULL, O_CONCURRENCY},
    {"relay-pairs", required_argument, NULL, O_RELAY_PAIRS},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"node-pid", required_argument, NULL, O_NODE_PID},
    {"node-port", required_argument, NULL, O_NODE_PORT},
    {"redis-pid", required_argument, NULL, O_REDIS_PID},
    {"redis-port", required_argument, NULL, O_REDIS_PORT},
    {"json", no_argument, NULL, O_JSON},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static int add_url(sb_bench_opts_t *o, const char *url)
{
    if (o->nurls >= SB_BENCH_MAX_URLS)
        return bad("URL", url, "too many URLs (at most 16)");
    const char *err;
    if (sb_wsurl_parse(url, &o->urls[o->nurls], &err) != 0)
        return bad("URL", url, err);
    o->url_text[o->nurls++] = url;
    return 0;
}

/* A whole number in [lo, hi] with k/m suffixes (unit). */
static int whole(const char *opt, const char *arg, double unit, double lo, double hi, double *out)
{
    if (number(arg, unit, out) != 0 || *out != floor(*out) || *out < lo || *out > hi) {
        char want[96];
        snprintf(want, sizeof(want), "expected a whole number from %.0f to %.0f", lo, hi);
        return bad(opt, arg, want);
    }
    return 0;
}

static int seconds(const char *opt, const char *arg, double lo, double *out)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end != '\0' || !isfinite(v) || v < lo || v > 86400)
        return bad(opt, arg, "expected seconds (a number, fractions allowed)");
    *out = v;
    return 0;
}

static int option(sb_bench_opts_t *o, int c, const char *arg)
{
    double v;
    switch (c) {
    case O_URL:
        return add_url(o, arg);
    case O_REDIS:
        o->redis_url = arg;
        return 0;
    case O_PAIRS:
        if (whole("--pairs", arg, 1000, 1, 1000000, &v))
            return -1;
        o->pairs = (size_t)v;
        return 0;
    case O_PLACE:
        if (strcmp(arg, "same") == 0)
            o->place = SB_PLACE_SAME;
        else if (strcmp(arg, "split") == 0)
            o->place = SB_PLACE_SPLIT;
        else
            return bad("--place", arg, "expected same or split");
        return 0;
    case O_WINDOW:
        if (whole("--window", arg, 1000, 1, 4096, &v))
            return -1;
        o->window = (int)v;
        return 0;
    case O_RATE:
        if (number(arg, 1000, &v) != 0 || v <= 0 || v > 1e8)
            return bad("--rate", arg, "expected messages a second (above 0; k, m suffixes)");
        o->rate = v;
        return 0;
    case O_MIX:
        if (strcmp(arg, "webrtc") != 0)
            return bad("--mix", arg, "the one mix is webrtc (or use --size)");
        o->size = 0;
        return 0;
    case O_SIZE:
        if (whole("--size", arg, 1024, 2, 60000, &v))
            return -1;
        o->size = (size_t)v;
        return 0;
    case O_WARMUP:
        return seconds("--warmup", arg, 0, &o->warmup_s);
    case O_DURATION:
        return seconds("--duration", arg, 0.1, &o->duration_s);
    case O_DRAIN:
        return seconds("--drain", arg, 0, &o->drain_s);
    case O_TIMEOUT:
        return seconds("--timeout", arg, 0.1, &o->timeout_s);
    case O_PREFIX:
        if (strlen(arg) < 1 || strlen(arg) > 40 ||
            strspn(arg, "abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789_.-") != strlen(arg))
            return bad("--id-prefix", arg, "expected 1-40 characters of [A-Za-z0-9_.-]");
        o->prefix = arg;
        return 0;
    case O_CONNECTIONS:
        if (whole("--connections", arg, 1000, 1, 10000000, &v))
            return -1;
        o->connections = (size_t)v;
        return 0;
    case O_SOURCES:
        if (whole("--sources", arg, 1000, 0, 250, &v))
            return -1;
        o->sources = (size_t)v;
        return 0;
    case O_CONCURRENCY:
        if (whole("--concurrency", arg, 1000, 1, 100000, &v))
            return -1;
        o->concurrency = (size_t)v;
        return 0;
    case O_RELAY_PAIRS:
        if (whole("--relay-pairs", arg, 1000, 0, 1000000, &v))
            return -1;
        o->relay_pairs = (size_t)v;
        return 0;
    case O_NODE_PID:
        if (o->nnode_pids >= SB_CPU_MAX_NODES)
            return bad("--node-pid", arg, "at most 16 nodes");
        if (whole("--node-pid", arg, 1, 1, 1e9, &v))
            return -1;
        o->node_pids[o->nnode_pids++] = (pid_t)v;
        return 0;
    case O_NODE_PORT:
        if (o->nnode_ports >= SB_CPU_MAX_NODES)
            return bad("--node-port", arg, "at most 16 nodes");
        if (whole("--node-port", arg, 1, 1, 65535, &v))
            return -1;
        o->node_ports[o->nnode_ports++] = (int)v;
        return 0;
    case O_REDIS_PID:
        if (whole("--redis-pid", arg, 1, 1, 1e9, &v))
            return -1;
        o->redis_pid = (pid_t)v;
        return 0;
    case O_REDIS_PORT:
        if (whole("--redis-port", arg, 1, 1, 65535, &v))
            return -1;
        o->redis_port = (int)v;
        return 0;
    case O_JSON:
        o->json = 1;
        return 0;
    case O_QUIET:
        o->quiet = 1;
        return 0;
    default:
        fprintf(stderr, "switchboard-bench: unknown option (see --help)\n");
        return -1;
    }
}

int sb_bench_options(int argc, char **argv, sb_bench_opts_t *o)
{
    static char prefix[32];
    memset(o, 0, sizeof(*o));
    o->pairs = 50;
    o->window = 4;
    o->warmup_s = 2;
    o->duration_s = 10;
    o->drain_s = 5;
    o->timeout_s = 10;
    o->connections = 1000;
    o->sources = 4;
    o->concurrency = 128;
    snprintf(prefix, sizeof(prefix), "bench%ld", (long)getpid());
    o->prefix = prefix;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
    }
    if (argc < 2 || argv[1][0] == '-') {
        fputs("switchboard-bench: expected a mode: relay, conns or baseline (see --help)\n",
              stderr);
        return -1;
    }
    if (strcmp(argv[1], "relay") == 0)
        o->mode = SB_MODE_RELAY;
    else if (strcmp(argv[1], "conns") == 0)
        o->mode = SB_MODE_CONNS;
    else if (strcmp(argv[1], "baseline") == 0)
        o->mode = SB_MODE_BASELINE;
    else
        return bad("mode", argv[1], "expected relay, conns or baseline");

    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
        if (option(o, c, optarg) != 0)
            return -1;
    for (int i = optind; i < argc; i++)
        if (add_url(o, argv[i]) != 0)
            return -1;

    if (o->mode != SB_MODE_BASELINE && o->nurls == 0) {
        fputs("switchboard-bench: expected at least one ws:// URL (see --help)\n", stderr);
        return -1;
    }
    if (o->mode == SB_MODE_BASELINE && !o->redis_url) {
        fputs("switchboard-bench: baseline needs --redis redis://HOST:PORT (see --help)\n", stderr);
        return -1;
    }
    if (o->place == SB_PLACE_SPLIT && o->nurls < 2 && o->mode == SB_MODE_RELAY) {
        fputs("switchboard-bench: --place split needs two or more URLs\n", stderr);
        return -1;
    }
    if (o->place == SB_PLACE_AUTO)
        o->place = o->nurls >= 2 ? SB_PLACE_SPLIT : SB_PLACE_SAME;
    return 0;
}
