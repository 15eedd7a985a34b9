/* Switchboard's entry point: configuration, logging, the event loop, signals. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "config.h"
#include "echo.h"
#include "log.h"
#include "server.h"

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    sb_server_t *s = arg;
    (void)what;
    sb_log(SB_LOG_INFO, "received %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sb_server_shutdown(s);
}

/* Each connection is a descriptor: raise the soft limit as far as the hard one allows, and
 * serve no more connections than it leaves room for (a few descriptors stay for the node). */
static void fit_fd_limit(sb_config_t *cfg) {
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

int main(int argc, char **argv) {
    sb_config_t cfg;
    char err[256];
    int rc = EXIT_FAILURE;
    struct event_base *base = NULL;
    sb_server_t *server = NULL;
    struct event *sigterm = NULL, *sigint = NULL;

    int loaded = sb_config_load(&cfg, argc, argv, err, sizeof(err));
    if (loaded != 0) {
        if (loaded < 0)
            fprintf(stderr, "switchboard: %s\n", err);
        sb_config_free(&cfg);
        return loaded > 0 ? EXIT_SUCCESS : 2;
    }
    sb_log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    fit_fd_limit(&cfg);

    base = event_base_new();
    if (base == NULL) {
        sb_log(SB_LOG_ERROR, "cannot create the event loop");
        goto out;
    }
    sb_handler_t handler = sb_echo_handler();
    server = sb_server_new(base, &cfg, &handler, err, sizeof(err));
    if (server == NULL) {
        sb_log(SB_LOG_ERROR, "%s", err);
        goto out;
    }
    sigterm = evsignal_new(base, SIGTERM, on_signal, server);
    sigint = evsignal_new(base, SIGINT, on_signal, server);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) || evsignal_add(sigint, NULL)) {
        sb_log(SB_LOG_ERROR, "cannot install signal handlers");
        goto out;
    }
    sb_log(SB_LOG_INFO, "switchboard %s listening on %s, echoing text messages", SB_VERSION,
           sb_server_address(server));
    event_base_dispatch(base);
    sb_log(SB_LOG_INFO, "stopped");
    rc = EXIT_SUCCESS;
out:
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    sb_server_free(server);
    if (base)
        event_base_free(base);
    sb_config_free(&cfg);
    return rc;
}
