/* conns mode: many idle, welcomed connections to one node; the setup rate, the node's memory per
 * connection, and (with --relay-pairs) the CPU per relayed message before and while they are open.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "modes.h"
#include "procinfo.h"
#include "report.h"
#include "wsload.h"

/* A relay phase's result with the CPU read over it. */
typedef struct {
    int ran;
    sb_load_result_t r;
    sb_cpuacct_t cpu;
} phase_t;

static int relay_phase(sb_bench_t *b, sb_wsload_t *w, const sb_payloads_t *pl, const char *label,
                       phase_t *ph)
{
    sb_load_config_t cfg = sb_mode_load_config(b, pl, b->o->relay_pairs, label);
    if (sb_wsload_run(w, cfg, &ph->r) != 0)
        return -1;
    ph->cpu = b->cpu;
    ph->ran = 1;
    return 0;
}

static void phase_json(sb_jw_t *j, const char *key, const phase_t *ph)
{
    if (!ph->ran) {
        sb_jw_null(j, key);
        return;
    }
    sb_jw_begin(j, key);
    sb_jw_bool(j, "ok", sb_report_load_ok(&ph->r));
    sb_report_load_json(j, &ph->r, &ph->cpu);
    sb_jw_end(j);
}

static void phase_text(FILE *f, const char *title, const phase_t *ph)
{
    if (!ph->ran)
        return;
    fprintf(f, " %s\n", title);
    sb_report_load_text(f, &ph->r, &ph->cpu);
    sb_report_load_problems(stderr, &ph->r);
}

int sb_mode_conns(sb_bench_t *b)
{
    const sb_bench_opts_t *o = b->o;
    int status = 1;
    pid_t node = b->cpu.nnodes > 0 ? b->cpu.node[0] : 0;
    sb_wsload_t *w = NULL;
    sb_fleet_t *idle = NULL;
    struct in_addr *sources = NULL;
    phase_t before = {0}, during = {0};
    sb_payloads_t payloads = {0};
    if (sb_payloads_init(&payloads, o->size) != 0)
        goto oom;

    if (o->relay_pairs > 0) {
        sb_wsload_config_t wc = {
            .urls = o->urls,
            .nurls = 1,
            .pairs = o->relay_pairs,
            .prefix = NULL,
            .timeout_s = o->timeout_s,
            .concurrency = o->concurrency,
            .progress = b->progress,
        };
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "%s-r", o->prefix);
        wc.prefix = prefix;
        if (!(w = sb_wsload_new(b->base, &wc)))
            goto oom;
        if (sb_wsload_open(w) != 0) {
            sb_mode_fleet_failed(b, "conns", sb_wsload_fleet(w));
            goto out;
        }
        if (relay_phase(b, w, &payloads, "relay (before)", &before) != 0)
            goto oom;
    }

    /* the idle connections, from 127.0.0.2 onwards */
    if (o->sources > 0) {
        if (!(sources = calloc(o->sources, sizeof(*sources))))
            goto oom;
        for (size_t i = 0; i < o->sources; i++)
            sources[i].s_addr = htonl(0x7F000002u + (uint32_t)i);
    }
    sb_fleet_config_t fc = {
        .urls = o->urls,
        .nurls = 1,
        .sources = sources,
        .nsources = o->sources,
        .concurrency = o->concurrency,
        .timeout_s = o->timeout_s,
        .progress = b->progress,
    };
    if (!(idle = sb_fleet_new(b->base, &fc, o->connections)))
        goto oom;
    for (size_t i = 0; i < o->connections; i++)
        snprintf(idle->peers[i].id, sizeof(idle->peers[i].id), "%s-c%zu", o->prefix, i);
    long rss_before = node ? sb_proc_rss_kb(node) : -1;
    double cpu_before = node ? sb_proc_cpu_seconds(node) : -1;
    sb_fleet_open(idle);
    long rss_after = node ? sb_proc_rss_kb(node) : -1;
    double cpu_after = node ? sb_proc_cpu_seconds(node) : -1;
    int all_ready = idle->ready == idle->n;
    if (all_ready && w && relay_phase(b, w, &payloads, "relay (during)", &during) != 0)
        goto oom;

    int ok = all_ready && idle->lost == 0 && (!before.ran || sb_report_load_ok(&before.r)) &&
             (!during.ran || sb_report_load_ok(&during.r));
    status = ok ? 0 : 1;
    double per_s = idle->open_s > 0 ? (double)idle->ready / idle->open_s : 0;
    double rss_per = rss_before >= 0 && rss_after >= 0 && idle->ready > 0
                         ? (double)(rss_after - rss_before) * 1024.0 / (double)idle->ready
                         : -1;
    double cpu_per = cpu_before >= 0 && cpu_after >= 0 && idle->ready > 0
                         ? (cpu_after - cpu_before) * 1e6 / (double)idle->ready
                         : -1;

    FILE *h = b->human;
    if (o->sources > 0)
        fprintf(h,
                "conns: %zu connections to %s from 127.0.0.2-127.0.0.%zu, %zu handshakes at once\n",
                o->connections, o->url_text[0], o->sources + 1, o->concurrency);
    else
        fprintf(h, "conns: %zu connections to %s, %zu handshakes at once\n", o->connections,
                o->url_text[0], o->concurrency);
    fprintf(h, "  %-10s %zu ready in %.2f s (%.0f/s), %zu failed, %zu lost\n", "opened",
            idle->ready, idle->open_s, per_s, idle->failed, idle->lost);
    if (rss_per >= 0)
        fprintf(h, "  %-10s node RSS %.1f MiB -> %.1f MiB: %.0f bytes per connection\n", "memory",
                rss_before / 1024.0, rss_after / 1024.0, rss_per);
    else
        fprintf(h, "  %-10s node process unknown (give --node-pid or --node-port)\n", "memory");
    if (cpu_per >= 0)
        fprintf(h, "  %-10s node %.2f s for the handshakes: %.1f us per connection\n", "cpu",
                cpu_after - cpu_before, cpu_per);
    phase_text(h, "relay before the idle connections:", &before);
    phase_text(h, "relay while they are open:", &during);
    if (!all_ready || idle->lost > 0)
        sb_mode_fleet_failed(b, "conns", idle);

    if (o->json && all_ready) {
        sb_jw_t j;
        sb_jw_init(&j, stdout);
        sb_jw_begin(&j, NULL);
        sb_jw_str(&j, "mode", "conns");
        sb_jw_bool(&j, "ok", ok);
        sb_jw_str(&j, "url", o->url_text[0]);
        sb_jw_uint(&j, "connections", o->connections);
        sb_jw_uint(&j, "ready", idle->ready);
        sb_jw_uint(&j, "failed", idle->failed);
        sb_jw_uint(&j, "lost", idle->lost);
        sb_mode_json_causes(&j, "failures", idle);
        sb_jw_uint(&j, "sources", o->sources);
        sb_jw_uint(&j, "concurrency", o->concurrency);
        sb_jw_num(&j, "setup_s", idle->open_s);
        sb_jw_num(&j, "setup_per_s", per_s);
        if (node) {
            sb_jw_int(&j, "node_pid", node);
            sb_jw_int(&j, "node_rss_kb_before", rss_before);
            sb_jw_int(&j, "node_rss_kb_after", rss_after);
            sb_jw_num(&j, "node_rss_bytes_per_conn", rss_per);
            sb_jw_num(&j, "node_cpu_setup_s", cpu_after - cpu_before);
            sb_jw_num(&j, "node_cpu_us_per_conn", cpu_per);
        } else {
            sb_jw_null(&j, "node_pid");
        }
        sb_jw_uint(&j, "relay_pairs", o->relay_pairs);
        if (o->relay_pairs > 0)
            sb_mode_json_options(&j, o, &payloads);
        phase_json(&j, "relay_before", &before);
        phase_json(&j, "relay_during", &during);
        sb_jw_end(&j);
        fflush(stdout);
    }
    goto out;
oom:
    fputs("switchboard-bench: out of memory\n", stderr);
    status = 1;
out:
    sb_fleet_free(idle, 5.0);
    sb_wsload_free(w);
    free(sources);
    sb_payloads_free(&payloads);
    return status;
}
