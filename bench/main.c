/* switchboard-bench: a load generator for Switchboard nodes (protocol v1 over ws://) and the bare
 * Redis floor under them; main parses the options, finds the processes to watch, runs a mode. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "modes.h"
#include "procinfo.h"
#include "redis_url.h"

/* Raises the open-file limit to its hard limit; returns 0 when need descriptors fit. */
static int raise_nofile(size_t need, int quiet)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && !quiet)
            fprintf(stderr, "switchboard-bench: open-file limit raised from %llu to %llu\n",
                    (unsigned long long)was, (unsigned long long)rl.rlim_cur);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        fprintf(stderr,
                "switchboard-bench: this run needs about %zu file descriptors, but the open-file "
                "limit is %llu (RLIMIT_NOFILE, raised to its hard limit): open fewer connections "
                "or raise the hard limit\n",
                need, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

static void add_node(sb_cpuacct_t *cpu, pid_t pid)
{
    for (int i = 0; i < cpu->nnodes; i++)
        if (cpu->node[i] == pid)
            return;
    if (cpu->nnodes < SB_CPU_MAX_NODES)
        cpu->node[cpu->nnodes++] = pid;
}

/* The processes whose CPU is read: as given, or found by port. */
static void find_processes(const sb_bench_opts_t *o, sb_cpuacct_t *cpu)
{
    memset(cpu, 0, sizeof(*cpu));
    for (int i = 0; i < o->nnode_pids; i++)
        add_node(cpu, o->node_pids[i]);
    for (int i = 0; i < o->nnode_ports; i++) {
        pid_t pid = sb_proc_listener(o->node_ports[i]);
        if (pid > 0)
            add_node(cpu, pid);
        else
            fprintf(stderr, "switchboard-bench: no process found listening on port %d\n",
                    o->node_ports[i]);
    }
    /* without either, the URLs' listeners, when they are switchboard nodes (not a balancer) */
    if (o->nnode_pids == 0 && o->nnode_ports == 0) {
        for (size_t i = 0; i < o->nurls; i++) {
            pid_t pid = sb_proc_listener(o->urls[i].port);
            char name[64];
            if (pid > 0 && sb_proc_name(pid, name, sizeof(name)) == 0 &&
                strcmp(name, "switchboard") == 0)
                add_node(cpu, pid);
        }
    }
    if (o->redis_pid > 0) {
        cpu->redis = o->redis_pid;
    } else {
        int port = o->redis_port;
        sb_redis_url_t u;
        const char *err;
        if (port == 0 && o->redis_url && sb_redis_url_parse(o->redis_url, &u, &err) == 0)
            port = u.port;
        if (port > 0) {
            pid_t pid = sb_proc_listener(port);
            if (pid > 0)
                cpu->redis = pid;
            else
                fprintf(stderr, "switchboard-bench: no process found listening on port %d\n", port);
        }
    }
}

int main(int argc, char **argv)
{
    sb_bench_opts_t o;
    int rc = sb_bench_options(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);

    size_t need = 64;
    if (o.mode == SB_MODE_RELAY)
        need += 2 * o.pairs;
    else if (o.mode == SB_MODE_CONNS)
        need += o.connections + 2 * o.relay_pairs;
    if (raise_nofile(need, o.quiet) != 0)
        return 2;

    sb_bench_t b = {.o = &o, .human = o.json ? stderr : stdout};
    b.progress = !o.quiet && isatty(STDERR_FILENO);
    find_processes(&o, &b.cpu);
    /* timerfd-precise timers: the open loop's schedule is in microseconds, not epoll's ms */
    struct event_config *ec = event_config_new();
    if (ec)
        event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    b.base = ec ? event_base_new_with_config(ec) : NULL;
    if (ec)
        event_config_free(ec);
    if (!b.base) {
        fputs("switchboard-bench: cannot make an event loop\n", stderr);
        return 1;
    }
    switch (o.mode) {
    case SB_MODE_RELAY:
        rc = sb_mode_relay(&b);
        break;
    case SB_MODE_CONNS:
        rc = sb_mode_conns(&b);
        break;
    case SB_MODE_BASELINE:
        rc = sb_mode_baseline(&b);
        break;
    }
    event_base_free(b.base);
    return rc;
}
