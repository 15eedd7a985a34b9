/* Switchboard's entry point: wires the configuration, the bus and directory, the relay and the
 * server to one event loop, reloads the TLS certificate on SIGHUP, and stops on SIGTERM or
 * SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "app/echo.h"
#include "app/relay.h"
#include "base/config.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "cluster/bus.h"
#include "cluster/bus_rcluster.h"
#include "cluster/bus_redis.h"
#include "cluster/dir.h"
#include "cluster/dir_rcluster.h"
#include "cluster/dir_redis.h"
#include "cluster/redis.h"
#include "net/healthcheck.h"
#include "net/server.h"
#include "net/token_cmd.h"
#include "redis_url.h"

/* What the signal handlers and the end of a stop need. */
typedef struct {
    struct event_base *base;
    const sb_config_t *cfg;
    sb_server_t *server;
    sb_relay_t *relay; /* NULL in echo mode */
    int stopping;
    struct event *settle;
    double settle_until;
} node_t;

/* SIGTERM drains (the orchestrator's way to stop a node); SIGINT (Ctrl-C) closes every
 * connection at once. A second signal of either kind stops the node at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    node_t *n = arg;
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    (void)what;
    if (n->stopping) {
        sb_log(SB_LOG_INFO, "received %s again: stopping now", name);
        event_base_loopbreak(n->base);
        return;
    }
    n->stopping = 1;
    sb_log(SB_LOG_INFO, "received %s", name);
    if (sig == SIGTERM)
        sb_server_drain(n->server, n->cfg->drain_delay, n->cfg->drain_seconds);
    else
        sb_server_shutdown(n->server);
}

/* After the last connection: stop once the directory has recorded what the connections left
 * (their IDs released, their rooms left), so that other nodes' members hear peer-left now
 * rather than from the dead-node sweep; 2 s at most. */
static void on_settle(evutil_socket_t fd, short what, void *arg)
{
    node_t *n = arg;
    (void)fd;
    (void)what;
    if (n->relay == NULL || sb_relay_idle(n->relay) || sb_loop_now(n->base) >= n->settle_until) {
        event_base_loopexit(n->base, NULL);
        return;
    }
    struct timeval tv = sb_loop_tv(0.01);
    evtimer_add(n->settle, &tv);
}

/* SIGHUP: the TLS certificate and key are read again (a renewed certificate), for new
 * connections; a refused pair leaves the current one in use. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    node_t *n = arg;
    (void)sig;
    (void)what;
    if (sb_server_reload_tls(n->server) == 1)
        sb_log(SB_LOG_INFO, "received SIGHUP: no TLS listener, nothing to reload");
}

static void on_stopped(void *ctx)
{
    node_t *n = ctx;
    n->settle_until = sb_loop_now(n->base) + 2;
    on_settle(-1, 0, n);
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

/* A clear answer at start beats a node that never becomes ready: one Redis must answer PING; of
 * a cluster, one of the seeds (the others are found from its slot map). */
static int probe_redis(const sb_redis_url_t *url, char *err, size_t errlen)
{
    if (!url->cluster)
        return sb_redis_probe(url, 3, err, errlen);
    static sb_redis_url_t seed;
    seed = *url;
    char last[512] = "";
    for (int i = 0; i < url->nseeds; i++) {
        snprintf(seed.host, sizeof(seed.host), "%s", url->seeds[i].host);
        seed.port = url->seeds[i].port;
        if (sb_redis_probe(&seed, 3, last, sizeof(last)) == 0)
            return 0;
    }
    snprintf(err, errlen, "no seed of the Redis Cluster answers (%d tried); the last: %s",
             url->nseeds, last);
    return -1;
}

int main(int argc, char **argv)
{
    sb_config_t cfg;
    char err[256];
    int rc = EXIT_FAILURE;
    struct event_base *base = NULL;
    sb_server_t *server = NULL;
    sb_bus_t *bus = NULL;
    sb_dir_t *dir = NULL;
    sb_redis_url_t redis_url;
    sb_relay_t *relay = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    node_t node = {0};
    sb_handler_t handler;

    /* `switchboard token ...`: prints a token for a peer, and exits. */
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return sb_token_cmd(argc - 1, argv + 1);
    /* `switchboard healthcheck [options]`: asks the node these options describe, and exits. */
    int healthcheck = argc > 1 && strcmp(argv[1], "healthcheck") == 0;
    if (healthcheck) {
        argv[1] = argv[0];
        argc--, argv++;
    }
    int loaded = sb_config_load(&cfg, argc, argv, err, sizeof(err));
    if (loaded != 0) {
        if (loaded < 0)
            fprintf(stderr, "switchboard: %s\n", err);
        sb_config_free(&cfg);
        return loaded > 0 ? EXIT_SUCCESS : 2;
    }
    if (healthcheck) {
        /* The plain listener when there is one; otherwise the TLS one. */
        int tls = cfg.listen[0] == '\0';
        rc = sb_healthcheck(tls ? cfg.tls_listen : cfg.listen, tls,
                            cfg.proxy_protocol ? cfg.trust_proxy : NULL, 2, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "switchboard healthcheck: %s\n", err);
        sb_config_free(&cfg);
        return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    sb_log_set_level(cfg.log_level);
    sb_log_set_format(cfg.log_format);
    sb_log_set_node(cfg.node_id);
    sb_metrics.start_time = (double)sb_clock_wall_us() / 1e6;
    sb_metrics.node_id = cfg.node_id;
    signal(SIGPIPE, SIG_IGN);
    fit_fd_limit(&cfg);

    base = sb_loop_new();
    if (base == NULL) {
        sb_log(SB_LOG_ERROR, "cannot create the event loop");
        goto out;
    }
    if (cfg.echo) {
        handler = sb_echo_handler();
    } else {
        sb_dir_sessions_t sessions = {cfg.resume_seconds, cfg.mailbox_messages, cfg.mailbox_bytes};
        if (cfg.redis[0] != '\0') {
            /* A clear answer at start beats a node that never becomes ready. */
            const char *why;
            if (sb_redis_url_parse(cfg.redis, &redis_url, &why) != 0) {
                sb_log(SB_LOG_ERROR, "bad Redis URL: %s (want " SB_REDIS_URL_FORM ")", why);
                goto out;
            }
            if (redis_url.tls && sb_redis_tls_init(cfg.redis_ca, err, sizeof(err)) != 0) {
                sb_log(SB_LOG_ERROR, "%s", err);
                goto out;
            }
            if (probe_redis(&redis_url, err, sizeof(err)) != 0) {
                sb_log(SB_LOG_ERROR, "%s", err);
                goto out;
            }
            if (redis_url.cluster) {
                bus = sb_bus_rcluster_new(base, &redis_url, cfg.node_id);
                dir = sb_dir_rcluster_new(base, &redis_url, cfg.node_id, cfg.node_ttl, &sessions);
            } else {
                bus = sb_bus_redis_new(base, &redis_url, cfg.node_id);
                dir = sb_dir_redis_new(base, &redis_url, cfg.node_id, cfg.node_ttl, &sessions);
            }
        } else {
            bus = sb_bus_memory_new();
            dir = sb_dir_memory_new(base, &sessions);
        }
        relay = bus && dir ? sb_relay_new(base, &cfg, bus, dir, cfg.node_id) : NULL;
        if (relay == NULL) {
            sb_log(SB_LOG_ERROR, "out of memory");
            goto out;
        }
        handler = sb_relay_handler(relay);
    }
    server = sb_server_new(base, &cfg, &handler, err, sizeof(err));
    if (server == NULL) {
        sb_log(SB_LOG_ERROR, "%s", err);
        goto out;
    }
    if (relay)
        sb_server_set_ready_check(server, sb_relay_ready, relay);
    node = (node_t){.base = base, .cfg = &cfg, .server = server, .relay = relay};
    node.settle = evtimer_new(base, on_settle, &node);
    sb_server_set_done(server, on_stopped, &node);
    sigterm = evsignal_new(base, SIGTERM, on_signal, &node);
    sigint = evsignal_new(base, SIGINT, on_signal, &node);
    sighup = evsignal_new(base, SIGHUP, on_sighup, &node);
    if (!node.settle || !sigterm || !sigint || !sighup || evsignal_add(sigterm, NULL) ||
        evsignal_add(sigint, NULL) || evsignal_add(sighup, NULL)) {
        sb_log(SB_LOG_ERROR, "cannot install signal handlers");
        goto out;
    }
    /* "listening on HOST:PORT" names the plain listener when there is one, else the TLS one:
     * scripts and tests find the port there; a TLS one follows as "on HOST:PORT (TLS)", and an
     * admin one as "on HOST:PORT (admin)". */
    const char *plain = sb_server_address(server), *tls = sb_server_tls_address(server);
    const char *admin = sb_server_admin_address(server);
    char where[300];
    if (plain[0] && tls[0])
        snprintf(where, sizeof(where), "%s and on %s (TLS)", plain, tls);
    else
        snprintf(where, sizeof(where), "%s%s", plain[0] ? plain : tls, plain[0] ? "" : " (TLS)");
    if (admin[0]) {
        size_t n = strlen(where);
        snprintf(where + n, sizeof(where) - n, " and on %s (admin)", admin);
    }
    sb_log(SB_LOG_INFO, "switchboard %s node %s listening on %s (%s)%s%s", SB_VERSION, cfg.node_id,
           where,
           cfg.echo       ? "echo mode"
           : cfg.redis[0] ? "relay, Redis bus"
                          : "relay, embedded bus",
           cfg.www[0] ? ", serving " : "", cfg.www);
    event_base_dispatch(base);
    sb_log_client_flush();
    sb_log(SB_LOG_INFO, "stopped");
    rc = EXIT_SUCCESS;
out:
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    if (node.settle)
        event_free(node.settle);
    /* The server first: closing its connections tells the relay. Then the bus and directory,
     * which fail their pending requests (the relay, still alive, hears of each), then the rest. */
    sb_server_free(server);
    sb_relay_stop(relay);
    if (bus)
        bus->ops->free(bus);
    if (dir)
        dir->ops->free(dir);
    sb_relay_free(relay);
    sb_redis_tls_free();
    if (base) {
        /* A bufferevent freed with a callback still deferred lives until that callback has run. */
        event_base_loop(base, EVLOOP_NONBLOCK);
        event_base_free(base);
    }
    sb_config_free(&cfg);
    return rc;
}
