/* The node's configuration: one table of options, each with a flag, an environment variable and a
 * default. */
#include "base/config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <limits.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include "base/log.h"
#include "names.h"

typedef enum {
    OPT_STRING,
    OPT_BYTES,
    OPT_COUNT,
    OPT_LIMIT,   /* a count that may be 0: no limit */
    OPT_SECONDS, /* a positive time */
    OPT_DELAY,   /* a time that may be 0 */
    OPT_FLAG,
    OPT_LEVEL,
    OPT_FORMAT,
    OPT_LIST /* a string; a flag given again adds to it (comma-separated) */
} opt_type_t;

typedef struct {
    const char *flag; /* without the leading -- */
    const char *env;
    opt_type_t type;
    size_t offset;
    const char *def;
    const char *help;
} option_t;

#define OFF(field) offsetof(sb_config_t, field)

static const option_t options[] = {
    {"listen", "SWITCHBOARD_LISTEN", OPT_STRING, OFF(listen), "0.0.0.0:8080",
     "address to serve HTTP and WebSockets on, HOST:PORT or [HOST]:PORT (port 0: any free port; "
     "\"\": none)"},
    {"tls-listen", "SWITCHBOARD_TLS_LISTEN", OPT_STRING, OFF(tls_listen), "",
     "address to serve HTTPS and secure WebSockets (wss://) on, with --tls-cert and --tls-key"},
    {"admin-listen", "SWITCHBOARD_ADMIN_LISTEN", OPT_STRING, OFF(admin_listen), "",
     "address serving /metrics, /healthz and /readyz alone (plain HTTP, for a private network); "
     "/metrics then leaves the other listeners"},
    {"tls-cert", "SWITCHBOARD_TLS_CERT", OPT_STRING, OFF(tls_cert), "",
     "PEM file of the certificate and its chain for --tls-listen (SIGHUP reloads it)"},
    {"tls-key", "SWITCHBOARD_TLS_KEY", OPT_STRING, OFF(tls_key), "",
     "PEM file of the certificate's private key (SIGHUP reloads it)"},
    {"redis", "SWITCHBOARD_REDIS_URL", OPT_STRING, OFF(redis), "",
     "redis[s]://[[user]:password@]host[:port][/db]: join the cluster on this Redis (rediss: over "
     "TLS), or redis[s]+cluster://[[user]:password@]host[:port][,host[:port]...]: on this Redis "
     "Cluster, found from these seeds (default: run alone on the embedded bus)"},
    {"redis-ca", "SWITCHBOARD_REDIS_CA", OPT_STRING, OFF(redis_ca), "",
     "PEM file of the CAs that sign a rediss:// server's certificate (default: the system's)"},
    {"auth-secret", "SWITCHBOARD_AUTH_SECRET", OPT_STRING, OFF(auth_secret), "",
     "require a token signed with this HS256 secret (with --auth-public-key: either)"},
    {"auth-public-key", "SWITCHBOARD_AUTH_PUBLIC_KEY", OPT_STRING, OFF(auth_public_key), "",
     "require a token signed by this PEM public key's owner (RS256, ES256 or EdDSA)"},
    {"auth-issuer", "SWITCHBOARD_AUTH_ISSUER", OPT_STRING, OFF(auth_issuer), "",
     "the iss a token must have (default: any)"},
    {"auth-audience", "SWITCHBOARD_AUTH_AUDIENCE", OPT_STRING, OFF(auth_audience), "",
     "the aud a token must have (default: any)"},
    {"auth-leeway", "SWITCHBOARD_AUTH_LEEWAY", OPT_DELAY, OFF(auth_leeway), "30",
     "seconds of clock skew allowed when checking a token's exp and nbf"},
    {"allow-origin", "SWITCHBOARD_ALLOW_ORIGIN", OPT_LIST, OFF(allow_origin), "",
     "an Origin allowed to open WebSockets, like https://app.example.com or "
     "https://*.example.com (repeatable; default: every origin)"},
    {"trust-proxy", "SWITCHBOARD_TRUST_PROXY", OPT_LIST, OFF(trust_proxy), "",
     "address or CIDR of a proxy that names the client, in X-Forwarded-For or with "
     "--proxy-protocol (repeatable)"},
    {"proxy-protocol", "SWITCHBOARD_PROXY_PROTOCOL", OPT_FLAG, OFF(proxy_protocol), "0",
     "connections from --trust-proxy addresses begin with a PROXY protocol header (v1 or v2) "
     "naming the client"},
    {"rate-messages", "SWITCHBOARD_RATE_MESSAGES", OPT_COUNT, OFF(rate_messages), "100",
     "messages per second one connection may send, in bursts of up to 2 s worth"},
    {"rate-bytes", "SWITCHBOARD_RATE_BYTES", OPT_BYTES, OFF(rate_bytes), "256k",
     "message bytes per second one connection may send, in bursts of up to 2 s worth (at least "
     "one --max-message)"},
    {"source-connections", "SWITCHBOARD_SOURCE_CONNECTIONS", OPT_COUNT, OFF(source_connections),
     "256", "connections one client address may hold open at once; more get 429"},
    {"source-handshakes", "SWITCHBOARD_SOURCE_HANDSHAKES", OPT_COUNT, OFF(source_handshakes), "32",
     "connections per second one client address may open, in bursts of 2 s worth"},
    {"node-ttl", "SWITCHBOARD_NODE_TTL", OPT_SECONDS, OFF(node_ttl), "3",
     "seconds without a liveness refresh after which other nodes remove this node's peers"},
    {"resume-seconds", "SWITCHBOARD_RESUME_SECONDS", OPT_DELAY, OFF(resume_seconds), "30",
     "seconds a session (ID, rooms, messages held) waits for its client to resume it after its "
     "connection drops; 0: no sessions, a connection's end is final"},
    {"mailbox-messages", "SWITCHBOARD_MAILBOX_MESSAGES", OPT_COUNT, OFF(mailbox_messages), "64",
     "messages held for a peer between connections; more are refused mailbox-full"},
    {"mailbox-bytes", "SWITCHBOARD_MAILBOX_BYTES", OPT_BYTES, OFF(mailbox_bytes), "256k",
     "bytes of messages held for a peer between connections"},
    {"bus-hold-ms", "SWITCHBOARD_BUS_HOLD_MS", OPT_DELAY, OFF(bus_hold_ms), "3000",
     "milliseconds relays, joins and new connections wait for the cluster's Redis to be back "
     "before they are refused unavailable; 0: refused at once"},
    {"bus-hold-bytes", "SWITCHBOARD_BUS_HOLD_BYTES", OPT_BYTES, OFF(bus_hold_bytes), "16m",
     "bytes of relays one node holds while they wait for Redis; past it they are refused"},
    {"resend-seconds", "SWITCHBOARD_RESEND_SECONDS", OPT_DELAY, OFF(resend_seconds), "10",
     "seconds a node keeps a copy of each message with a mid acked to a peer on another node, to "
     "send it again if a node or Redis lost it on the way; 0: no copies"},
    {"peerjs-path", "SWITCHBOARD_PEERJS_PATH", OPT_STRING, OFF(peerjs_path), "",
     "serve PeerJS clients as PeerServer does at this path (its --path, e.g. / or /myapp): the "
     "WebSocket at <path>peerjs and the HTTP API; \"\": none"},
    {"peerjs-key", "SWITCHBOARD_PEERJS_KEY", OPT_STRING, OFF(peerjs_key), "peerjs",
     "the key PeerJS clients must give (PeerServer's --key)"},
    {"peerjs-alive-ms", "SWITCHBOARD_PEERJS_ALIVE_MS", OPT_SECONDS, OFF(peerjs_alive_ms), "60000",
     "milliseconds a PeerJS connection may go without a HEARTBEAT before it is closed "
     "(PeerServer's --alive_timeout)"},
    {"peerjs-concurrent-limit", "SWITCHBOARD_PEERJS_CONCURRENT_LIMIT", OPT_LIMIT, OFF(peerjs_limit),
     "0",
     "PeerJS connections one node serves at once; past it they are refused as PeerServer refuses "
     "(its --concurrent_limit); 0: only --max-connections"},
    {"peerjs-expire-ms", "SWITCHBOARD_PEERJS_EXPIRE_MS", OPT_DELAY, OFF(peerjs_expire_ms), "5000",
     "milliseconds a PeerJS client's message waits for a recipient that is not connected, before "
     "its sender is told EXPIRE (PeerServer's --expire_timeout)"},
    {"www", "SWITCHBOARD_WWW", OPT_STRING, OFF(www), "auto",
     "directory served at / (the demo and client); auto: the installed share/switchboard/www, else "
     "the source tree's www/; \"\": none"},
    {"node-id", "SWITCHBOARD_NODE_ID", OPT_STRING, OFF(node_id), "",
     "this node's name in welcome messages, 1-64 of [A-Za-z0-9_.-] (default: host name and a "
     "random suffix)"},
    {"ice-servers", "SWITCHBOARD_ICE_SERVERS", OPT_STRING, OFF(ice_servers),
     "[{\"urls\":\"stun:stun.l.google.com:19302\"}]",
     "JSON array of RTCIceServer objects sent to clients in welcome"},
    {"turn-uris", "SWITCHBOARD_TURN_URIS", OPT_STRING, OFF(turn_uris), "",
     "comma-separated turn:/turns: URIs given in welcome with time-limited credentials"},
    {"turn-secret", "SWITCHBOARD_TURN_SECRET", OPT_STRING, OFF(turn_secret), "",
     "the TURN servers' shared secret (coturn: use-auth-secret, static-auth-secret)"},
    {"turn-ttl", "SWITCHBOARD_TURN_TTL", OPT_SECONDS, OFF(turn_ttl), "3600",
     "seconds a TURN credential stays valid"},
    {"max-rooms-per-peer", "SWITCHBOARD_MAX_ROOMS_PER_PEER", OPT_COUNT, OFF(max_rooms_per_peer),
     "16", "rooms one peer may be in at once"},
    {"max-room-peers", "SWITCHBOARD_MAX_ROOM_PEERS", OPT_COUNT, OFF(max_room_peers), "64",
     "peers one room may hold"},
    {"echo", "SWITCHBOARD_ECHO", OPT_FLAG, OFF(echo), "0",
     "echo each text message back to its sender instead of relaying (a test mode)"},
    {"max-message", "SWITCHBOARD_MAX_MESSAGE", OPT_BYTES, OFF(max_message), "65536",
     "largest WebSocket message accepted, in bytes; larger ones close with 1009"},
    {"max-output", "SWITCHBOARD_MAX_OUTPUT", OPT_BYTES, OFF(max_output), "1048576",
     "bytes queued for a client that does not read before it is disconnected"},
    {"max-connections", "SWITCHBOARD_MAX_CONNECTIONS", OPT_COUNT, OFF(max_connections), "100000",
     "connections served at once; more are answered 503"},
    {"ping-interval", "SWITCHBOARD_PING_INTERVAL", OPT_SECONDS, OFF(ping_interval), "25",
     "seconds a connection may be idle before it is pinged"},
    {"pong-timeout", "SWITCHBOARD_PONG_TIMEOUT", OPT_SECONDS, OFF(pong_timeout), "10",
     "seconds a pinged client has to answer before it is dropped"},
    {"handshake-timeout", "SWITCHBOARD_HANDSHAKE_TIMEOUT", OPT_SECONDS, OFF(handshake_timeout),
     "10", "seconds a client has to send its whole HTTP request head"},
    {"close-timeout", "SWITCHBOARD_CLOSE_TIMEOUT", OPT_SECONDS, OFF(close_timeout), "2",
     "seconds to wait for the peer's close frame before dropping the connection"},
    {"log-level", "SWITCHBOARD_LOG_LEVEL", OPT_LEVEL, OFF(log_level), "info",
     "debug, info, warn or error"},
    {"log-format", "SWITCHBOARD_LOG_FORMAT", OPT_FORMAT, OFF(log_format), "auto",
     "text, json (one object per line), or auto: text on a terminal, json otherwise"},
    {"drain-delay", "SWITCHBOARD_DRAIN_DELAY", OPT_DELAY, OFF(drain_delay), "2",
     "on SIGTERM: seconds to keep accepting while /readyz says 503 (the load balancer notices)"},
    {"drain-seconds", "SWITCHBOARD_DRAIN_SECONDS", OPT_DELAY, OFF(drain_seconds), "20",
     "then: seconds over which connected clients are closed with 1001, spread evenly"},
};

#define NUM_OPTIONS (sizeof(options) / sizeof(options[0]))

static void usage(void)
{
    printf("Usage: switchboard [OPTION]...\n"
           "       switchboard healthcheck [OPTION]...\n"
           "       switchboard token --sub ID [--secret SECRET | --key FILE] [OPTION]...\n"
           "A WebRTC signaling node: relays offers, answers and ICE candidates between peers\n"
           "connected over WebSockets at /ws; serves the demo at / and liveness at /healthz.\n"
           "'healthcheck' asks the node the same options describe (--listen, or --tls-listen\n"
           "when there is no plain listener) for /healthz and exits 0 when it answers 200\n"
           "within 2 s, 1 otherwise (for container health checks). 'token' prints a signed\n"
           "token for a peer (see 'switchboard token --help').\n\n"
           "Every option can also be set with its environment variable; a flag wins.\n\n");
    for (size_t i = 0; i < NUM_OPTIONS; i++) {
        const option_t *o = &options[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s", o->flag, o->type == OPT_FLAG ? "" : " VALUE");
        if (o->def[0] == '\0' && o->type != OPT_FLAG) {
            printf("  %-28s %s\n  %-28s [env %s]\n", left, o->help, "", o->env);
            continue;
        }
        printf("  %-28s %s\n  %-28s [env %s, default %s]\n", left, o->help, "", o->env,
               o->type == OPT_FLAG ? (strcmp(o->def, "1") == 0 ? "on" : "off") : o->def);
    }
    printf("  %-28s %s\n  %-28s %s\n", "--help", "print this help and exit", "--version",
           "print the version and exit");
}

/* Parses "64k", "1m", "1048576": bytes with an optional binary suffix. */
static int parse_bytes(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -1;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10, end++;
    else if (*end == 'm' || *end == 'M')
        shift = 20, end++;
    else if (*end == 'g' || *end == 'G')
        shift = 30, end++;
    if (*end != '\0' || v > (1ULL << 40) >> shift)
        return -1;
    *out = v << shift;
    return 0;
}

/* Sets an option from value; append: a repeatable option keeps what it had and adds value. */
static int set_option(sb_config_t *cfg, const option_t *o, const char *value, int append,
                      const char *from, char *err, size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    unsigned long long n;
    char *end;

    switch (o->type) {
    case OPT_LIST:
        if (append && **(char **)field != '\0') {
            size_t a = strlen(*(char **)field), b = strlen(value);
            char *joined = realloc(*(char **)field, a + b + 2);
            if (joined == NULL)
                goto bad;
            joined[a] = ',';
            memcpy(joined + a + 1, value, b + 1);
            *(char **)field = joined;
            return 0;
        }
        /* fall through */
    case OPT_STRING:
        free(*(char **)field);
        *(char **)field = strdup(value);
        if (*(char **)field == NULL)
            goto bad;
        return 0;
    case OPT_LIMIT:
        if (parse_bytes(value, &n) != 0 || n > (1ULL << 30))
            goto bad;
        *(size_t *)field = (size_t)n;
        return 0;
    case OPT_BYTES:
    case OPT_COUNT:
        /* A message larger than 1 GiB is never a signaling message. */
        if (parse_bytes(value, &n) != 0 || n == 0 || n > (1ULL << 30))
            goto bad;
        *(size_t *)field = (size_t)n;
        return 0;
    case OPT_SECONDS:
    case OPT_DELAY: {
        errno = 0;
        double d = strtod(value, &end);
        if (errno || end == value || *end != '\0' || !isfinite(d) || d < 0 ||
            (d == 0 && o->type == OPT_SECONDS) || d > 86400)
            goto bad;
        *(double *)field = d;
        return 0;
    }
    case OPT_FLAG:
        if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
            *(int *)field = 1;
        else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
            *(int *)field = 0;
        else
            goto bad;
        return 0;
    case OPT_LEVEL: {
        int level = sb_log_level_parse(value);
        if (level < 0)
            goto bad;
        *(int *)field = level;
        return 0;
    }
    case OPT_FORMAT: {
        int format = sb_log_format_parse(value);
        if (format < 0)
            goto bad;
        *(int *)field = format;
        return 0;
    }
    }
bad:
    snprintf(err, errlen, "invalid value '%s' for %s", value, from);
    return -1;
}

static const option_t *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < NUM_OPTIONS; i++)
        if (strlen(options[i].flag) == len && strncmp(options[i].flag, name, len) == 0)
            return &options[i];
    return NULL;
}

/* Replaces a string option with a new value. */
static int replace(char **field, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

/* Makes --www an absolute, resolved path ("" for none). "auto" looks beside the binary for an
 * installed share/switchboard/www, then in the source tree. */
static int resolve_www(sb_config_t *cfg, char *err, size_t errlen)
{
    char real[PATH_MAX], exe[PATH_MAX], candidate[PATH_MAX + 64];

    if (cfg->www[0] == '\0')
        return 0;
    if (strcmp(cfg->www, "auto") != 0) {
        struct stat st;
        if (realpath(cfg->www, real) == NULL || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "--www %s: no such directory", cfg->www);
            return -1;
        }
        return replace(&cfg->www, real);
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(candidate, sizeof(candidate), "%s/../share/switchboard/www", exe);
        if (realpath(candidate, real) != NULL)
            return replace(&cfg->www, real);
    }
    if (realpath(SB_SOURCE_WWW, real) != NULL)
        return replace(&cfg->www, real);
    sb_log(SB_LOG_WARN, "no www directory found: the demo is not served (see --www)");
    return replace(&cfg->www, "");
}

/* Checks --ice-servers is a JSON array of objects with urls, and stores it compactly. */
static int check_ice_servers(sb_config_t *cfg, char *err, size_t errlen)
{
    /* Nothing may follow the array: cJSON_Parse alone would drop it without a word. */
    cJSON *root = cJSON_ParseWithOpts(cfg->ice_servers, NULL, 1), *server;
    int rc = -1;
    if (root == NULL || !cJSON_IsArray(root))
        goto out;
    cJSON_ArrayForEach(server, root)
    {
        cJSON *urls = cJSON_GetObjectItemCaseSensitive(server, "urls");
        if (!cJSON_IsObject(server) || urls == NULL ||
            !(cJSON_IsString(urls) || cJSON_IsArray(urls)))
            goto out;
    }
    char *compact = cJSON_PrintUnformatted(root);
    if (compact != NULL) {
        rc = replace(&cfg->ice_servers, compact);
        cJSON_free(compact);
    }
out:
    if (rc != 0)
        snprintf(err, errlen,
                 "--ice-servers must be a JSON array of objects with \"urls\", "
                 "for example [{\"urls\":\"stun:stun.l.google.com:19302\"}]");
    cJSON_Delete(root);
    return rc;
}

/* Checks --turn-uris and --turn-secret go together and the URIs are turn: or turns: URIs, and
 * writes them as the JSON array welcome gives (cfg->turn_urls). */
static int check_turn(sb_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->turn_uris[0] == '\0' && cfg->turn_secret[0] == '\0')
        return 0;
    if (cfg->turn_uris[0] == '\0' || cfg->turn_secret[0] == '\0') {
        snprintf(err, errlen, "--turn-uris and --turn-secret go together");
        return -1;
    }
    size_t cap = strlen(cfg->turn_uris) * 3 + 3, n = 0;
    char *json = malloc(cap);
    if (json == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json[n++] = '[';
    for (const char *p = cfg->turn_uris; *p;) {
        size_t len = strcspn(p, ",");
        int ok =
            (len > 5 && strncmp(p, "turn:", 5) == 0) || (len > 6 && strncmp(p, "turns:", 6) == 0);
        /* A URI needs no escaping in JSON: none of these may be in one. */
        for (size_t i = 0; ok && i < len; i++)
            ok = (unsigned char)p[i] > 0x20 && p[i] != '"' && p[i] != '\\' && p[i] != 0x7f;
        if (!ok) {
            snprintf(err, errlen, "--turn-uris: '%.*s' is not a turn: or turns: URI", (int)len, p);
            free(json);
            return -1;
        }
        n += (size_t)snprintf(json + n, cap - n, "%s\"%.*s\"", n > 1 ? "," : "", (int)len, p);
        p += len + (p[len] == ',');
    }
    json[n++] = ']';
    json[n] = '\0';
    free(cfg->turn_urls);
    cfg->turn_urls = json;
    return 0;
}

/* Checks the options that go together: the listeners, the PROXY protocol and its proxies. */
/* --peerjs-path as PeerServer takes it ("app", "/app" and "/app/" are one path), made to start
 * and end with '/'; --peerjs-key non-empty. */
static int check_peerjs(sb_config_t *cfg, char *err, size_t errlen)
{
    const char *p = cfg->peerjs_path;
    size_t len = strlen(p);
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] <= ' ' || p[i] >= 0x7f || p[i] == '?' || p[i] == '#' || p[i] == '%' ||
            (p[i] == '/' && i + 1 < len && p[i + 1] == '/')) {
            snprintf(err, errlen, "--peerjs-path %s: expected a plain path such as /myapp", p);
            return -1;
        }
    if (cfg->peerjs_key[0] == '\0') {
        snprintf(err, errlen, "--peerjs-key must not be empty");
        return -1;
    }
    char *norm = malloc(len + 3);
    if (norm == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(norm, len + 3, "%s%s%s", p[0] == '/' ? "" : "/", p, p[len - 1] == '/' ? "" : "/");
    free(cfg->peerjs_path);
    cfg->peerjs_path = norm;
    return 0;
}

static int check_consistency(const sb_config_t *cfg, char *err, size_t errlen)
{
    int tls = cfg->tls_listen[0] != '\0', cert = cfg->tls_cert[0] != '\0',
        key = cfg->tls_key[0] != '\0';
    if (cfg->listen[0] == '\0' && !tls)
        snprintf(err, errlen, "nothing to listen on: give --listen or --tls-listen");
    else if (tls && (!cert || !key))
        snprintf(err, errlen, "--tls-listen needs --tls-cert and --tls-key");
    else if (!tls && (cert || key))
        snprintf(err, errlen, "--tls-cert and --tls-key go with --tls-listen");
    else if (cfg->proxy_protocol && cfg->trust_proxy[0] == '\0')
        snprintf(err, errlen,
                 "--proxy-protocol needs --trust-proxy: only the proxies named there may send a "
                 "PROXY header");
    else
        return 0;
    return -1;
}

/* Names this node: --node-id, or the host name (cut to the ID alphabet) and a random suffix, so
 * that a restarted node is told from its former self. */
static int name_node(sb_config_t *cfg, char *err, size_t errlen)
{
    char host[64] = "node", id[SB_ID_MAX + 1];
    unsigned char rnd[3];

    if (cfg->node_id[0] != '\0') {
        if (!sb_peer_id_valid(cfg->node_id, strlen(cfg->node_id))) {
            snprintf(err, errlen, "--node-id must be 1-64 characters of [A-Za-z0-9_.-]");
            return -1;
        }
        return 0;
    }
    if (gethostname(host, sizeof(host)) != 0)
        strcpy(host, "node");
    host[sizeof(host) - 1] = '\0';
    host[48] = '\0';
    for (char *p = host; *p; p++)
        if (!sb_peer_id_valid(p, 1))
            *p = '-';
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(err, errlen, "no randomness for the node ID");
        return -1;
    }
    snprintf(id, sizeof(id), "%s-%02x%02x%02x", host[0] ? host : "node", rnd[0], rnd[1], rnd[2]);
    return replace(&cfg->node_id, id);
}

int sb_config_load(sb_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    unsigned char seen[NUM_OPTIONS] = {0};
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NUM_OPTIONS; i++) {
        char from[80];
        snprintf(from, sizeof(from), "the default of --%s", options[i].flag);
        if (set_option(cfg, &options[i], options[i].def, 0, from, err, errlen) != 0)
            return -1;
    }
    for (size_t i = 0; i < NUM_OPTIONS; i++) {
        const char *v = getenv(options[i].env);
        if (v != NULL && set_option(cfg, &options[i], v, 0, options[i].env, err, errlen) != 0)
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage();
            return 1;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("switchboard %s\n", SB_VERSION);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const option_t *o = find_flag(name, len);
        if (o == NULL) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", arg);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL && o->type == OPT_FLAG)
            value = "1";
        if (value == NULL) {
            if (i + 1 == argc) {
                snprintf(err, errlen, "option --%s needs a value", o->flag);
                return -1;
            }
            value = argv[++i];
        }
        char from[80];
        snprintf(from, sizeof(from), "--%s", o->flag);
        /* A repeatable option given as a flag replaces its variable, then adds to itself. */
        if (set_option(cfg, o, value, seen[o - options], from, err, errlen) != 0)
            return -1;
        seen[o - options] = 1;
    }
    /* What the values mean, checked once: a directory that exists, ICE servers that parse. */
    if (resolve_www(cfg, err, errlen) != 0 || check_peerjs(cfg, err, errlen) != 0 ||
        check_ice_servers(cfg, err, errlen) != 0 || check_turn(cfg, err, errlen) != 0 ||
        check_consistency(cfg, err, errlen) != 0 || name_node(cfg, err, errlen) != 0)
        return -1;
    return 0;
}

void sb_config_free(sb_config_t *cfg)
{
    for (size_t i = 0; i < NUM_OPTIONS; i++)
        if (options[i].type == OPT_STRING || options[i].type == OPT_LIST) {
            char **p = (char **)((char *)cfg + options[i].offset);
            free(*p);
            *p = NULL;
        }
    free(cfg->turn_urls);
    cfg->turn_urls = NULL;
}
