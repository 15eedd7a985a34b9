/* Switchboard's entry point: configuration, the bus, the relay, the event loop, signals. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "bus.h"
#include "bus_redis.h"
#include "config.h"
#include "dir_redis.h"
#include "echo.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "redis.h"
#include "redis_url.h"
#include "relay.h"
#include "server.h"

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    sb_server_t *s = arg;
    (void)what;
    sb_log(SB_LOG_INFO, "received %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sb_server_shutdown(s);
}

/* Each connection is a descriptor: raise the soft limit as far as the hard one allows, and
 * serve no more connections than it leaves room for (a few descriptors stay for the node). */
static void fit_fd_limit(sb_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < cfg->max_connections + 64) {
        size_t fit = rl.rlim_cur > 128 ? (size_t)rl.rlim_cur - 64 : 64;
        sb_log(SB_LOG_INFO, "serving at most %zu connections: the open file limit is %llu", fit,
               (unsigned long long)rl.rlim_cur);
        cfg->max_connections = fit;
    }
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
        if (realpath(cfg->www, real) == NULL) {
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
    cJSON *root = cJSON_Parse(cfg->ice_servers), *server;
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

/* What the cluster callbacks need: filled in as the parts are created. */
typedef struct {
    sb_bus_t *bus;
    sb_dir_t *dir;
    sb_relay_t *relay;
} cluster_t;

static void on_dir_lost(void *ctx)
{
    cluster_t *c = ctx;
    if (c->relay)
        sb_relay_reassert(c->relay);
}

static int cluster_ready(void *ctx, char *why, size_t len)
{
    cluster_t *c = ctx;
    if (!sb_bus_redis_ready(c->bus))
        snprintf(why, len, "cannot publish and receive through Redis");
    else if (!sb_dir_redis_registered(c->dir))
        snprintf(why, len, "not registered in Redis yet");
    else if (sb_relay_reasserting(c->relay))
        snprintf(why, len, "recording this node's peers and rooms in Redis again");
    else
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    sb_config_t cfg;
    char err[256];
    int rc = EXIT_FAILURE;
    struct event_base *base = NULL;
    struct evdns_base *dns = NULL;
    sb_server_t *server = NULL;
    sb_bus_t *bus = NULL;
    sb_dir_t *dir = NULL;
    sb_redis_url_t redis_url;
    cluster_t cluster = {0};
    sb_relay_t *relay = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    sb_handler_t handler;

    int loaded = sb_config_load(&cfg, argc, argv, err, sizeof(err));
    if (loaded != 0) {
        if (loaded < 0)
            fprintf(stderr, "switchboard: %s\n", err);
        sb_config_free(&cfg);
        return loaded > 0 ? EXIT_SUCCESS : 2;
    }
    sb_log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    if (resolve_www(&cfg, err, sizeof(err)) != 0 || check_ice_servers(&cfg, err, sizeof(err)) ||
        name_node(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        sb_config_free(&cfg);
        return 2;
    }
    fit_fd_limit(&cfg);

    base = sb_loop_new();
    if (base == NULL) {
        sb_log(SB_LOG_ERROR, "cannot create the event loop");
        goto out;
    }
    if (cfg.echo) {
        handler = sb_echo_handler();
    } else {
        if (cfg.redis[0] != '\0') {
            /* A clear answer at start beats a node that never becomes ready. */
            if (sb_redis_url_parse(cfg.redis, &redis_url, err, sizeof(err)) != 0 ||
                sb_redis_probe(&redis_url, 3, err, sizeof(err)) != 0) {
                sb_log(SB_LOG_ERROR, "%s", err);
                goto out;
            }
            /* Host names are resolved on the loop: a slow DNS server must not stall it. */
            dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
            if (dns == NULL) {
                sb_log(SB_LOG_ERROR, "cannot set up the DNS resolver (/etc/resolv.conf)");
                goto out;
            }
            bus = cluster.bus = sb_bus_redis_new(base, dns, &redis_url, cfg.node_id, NULL, NULL);
            dir = cluster.dir = sb_dir_redis_new(base, dns, &redis_url, cfg.node_id, cfg.node_ttl,
                                                 on_dir_lost, &cluster);
        } else {
            bus = sb_bus_memory_new();
            dir = sb_dir_memory_new();
        }
        relay = bus && dir ? sb_relay_new(&cfg, bus, dir, cfg.node_id) : NULL;
        if (relay == NULL) {
            sb_log(SB_LOG_ERROR, "out of memory");
            goto out;
        }
        if (cluster.dir)
            cluster.relay = relay;
        handler = sb_relay_handler(relay);
    }
    server = sb_server_new(base, &cfg, &handler, err, sizeof(err));
    if (server == NULL) {
        sb_log(SB_LOG_ERROR, "%s", err);
        goto out;
    }
    if (cluster.relay)
        sb_server_set_ready_check(server, cluster_ready, &cluster);
    sigterm = evsignal_new(base, SIGTERM, on_signal, server);
    sigint = evsignal_new(base, SIGINT, on_signal, server);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) || evsignal_add(sigint, NULL)) {
        sb_log(SB_LOG_ERROR, "cannot install signal handlers");
        goto out;
    }
    sb_log(SB_LOG_INFO, "switchboard %s node %s listening on %s (%s)%s%s", SB_VERSION, cfg.node_id,
           sb_server_address(server),
           cfg.echo        ? "echo mode"
           : cluster.relay ? "relay, Redis bus"
                           : "relay, embedded bus",
           cfg.www[0] ? ", serving " : "", cfg.www);
    event_base_dispatch(base);
    sb_log(SB_LOG_INFO, "stopped");
    rc = EXIT_SUCCESS;
out:
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    /* The server first: closing its connections tells the relay. Then the bus, which fails the
     * publishes still pending (the relay, still alive, hears of each), then the rest. */
    sb_server_free(server);
    if (bus)
        bus->ops->free(bus);
    if (dir)
        dir->ops->free(dir);
    sb_relay_free(relay);
    if (dns)
        evdns_base_free(dns, 1);
    if (base)
        event_base_free(base);
    sb_config_free(&cfg);
    return rc;
}
