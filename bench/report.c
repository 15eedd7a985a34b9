/* A load run's figures for people (text) and for scripts (JSON): messages, rate, latency, CPU. */
#include "report.h"

#include <inttypes.h>

int sb_report_load_ok(const sb_load_result_t *r)
{
    return r->never_answered == 0 && r->acked_undelivered == 0 && r->unexpected == 0;
}

static void hist_json(sb_jw_t *w, const char *key, const sb_hist_t *h)
{
    sb_jw_begin(w, key);
    sb_jw_uint(w, "count", h->total);
    sb_jw_uint(w, "min", h->total ? h->min : 0);
    sb_jw_num(w, "mean", sb_hist_mean(h));
    sb_jw_uint(w, "p50", sb_hist_quantile(h, 0.50));
    sb_jw_uint(w, "p90", sb_hist_quantile(h, 0.90));
    sb_jw_uint(w, "p99", sb_hist_quantile(h, 0.99));
    sb_jw_uint(w, "p999", sb_hist_quantile(h, 0.999));
    sb_jw_uint(w, "max", h->max);
    sb_jw_end(w);
}

/* CPU microseconds per delivered message, or -1 when unknown. */
static double per_msg(double seconds, uint64_t msgs)
{
    return seconds >= 0 && msgs > 0 ? seconds * 1e6 / (double)msgs : -1;
}

static void cpu_part_json(sb_jw_t *w, const char *key, double seconds, uint64_t msgs)
{
    if (seconds < 0) {
        sb_jw_null(w, key);
        return;
    }
    sb_jw_begin(w, key);
    sb_jw_num(w, "seconds", seconds);
    double pm = per_msg(seconds, msgs);
    if (pm >= 0)
        sb_jw_num(w, "us_per_msg", pm);
    else
        sb_jw_null(w, "us_per_msg");
    sb_jw_end(w);
}

void sb_report_load_json(sb_jw_t *w, const sb_load_result_t *r, const sb_cpuacct_t *cpu)
{
    sb_jw_begin(w, "messages");
    sb_jw_uint(w, "sent", r->sent);
    sb_jw_uint(w, "acked", r->acked);
    sb_jw_uint(w, "delivered", r->delivered);
    sb_jw_uint(w, "refused", r->refused);
    sb_jw_begin(w, "refused_by_code");
    for (int i = 0; i < r->ncodes; i++)
        sb_jw_uint(w, r->codes[i].code, r->codes[i].count);
    sb_jw_end(w);
    sb_jw_uint(w, "unsent_behind_schedule", r->unsent);
    sb_jw_uint(w, "sent_with_warmup", r->total_sent);
    sb_jw_uint(w, "never_answered", r->never_answered);
    sb_jw_uint(w, "acked_not_delivered", r->acked_undelivered);
    sb_jw_uint(w, "unexpected", r->unexpected);
    sb_jw_end(w);

    sb_jw_begin(w, "throughput");
    sb_jw_num(w, "interval_s", r->interval_s);
    sb_jw_uint(w, "delivered_in_interval", r->arrived);
    sb_jw_num(w, "delivered_per_s", r->interval_s > 0 ? (double)r->arrived / r->interval_s : 0);
    sb_jw_num(w, "received_bytes_per_s",
              r->interval_s > 0 ? (double)r->arrived_bytes / r->interval_s : 0);
    sb_jw_end(w);

    hist_json(w, "latency_us", &r->latency);
    hist_json(w, "ack_latency_us", &r->ack_latency);

    if (!cpu) {
        sb_jw_null(w, "cpu");
        return;
    }
    sb_jw_begin(w, "cpu");
    sb_jw_num(w, "interval_s", cpu->wall_s);
    sb_jw_begin_array(w, "node_pids");
    for (int i = 0; i < cpu->nnodes; i++)
        sb_jw_int(w, NULL, cpu->node[i]);
    sb_jw_end_array(w);
    if (cpu->redis > 0)
        sb_jw_int(w, "redis_pid", cpu->redis);
    else
        sb_jw_null(w, "redis_pid");
    cpu_part_json(w, "nodes", cpu->nodes_s, r->arrived);
    cpu_part_json(w, "redis", cpu->redis_s, r->arrived);
    cpu_part_json(w, "bench", cpu->self_s, r->arrived);
    if (cpu->nodes_s >= 0 && cpu->redis_s > 0)
        sb_jw_num(w, "node_over_redis", cpu->nodes_s / cpu->redis_s);
    else
        sb_jw_null(w, "node_over_redis");
    sb_jw_bool(w, "process_lost", cpu->node_lost);
    sb_jw_end(w);
}

static void hist_text(FILE *f, const char *what, const sb_hist_t *h)
{
    if (h->total == 0) {
        fprintf(f, "  %-10s none\n", what);
        return;
    }
    fprintf(f, "  %-10s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms  (mean %.3f)\n", what,
            sb_hist_quantile(h, 0.5) / 1e3, sb_hist_quantile(h, 0.9) / 1e3,
            sb_hist_quantile(h, 0.99) / 1e3, sb_hist_quantile(h, 0.999) / 1e3, h->max / 1e3,
            sb_hist_mean(h) / 1e3);
}

static void cpu_part_text(FILE *f, const char *what, double seconds, uint64_t msgs)
{
    if (seconds < 0) {
        fprintf(f, "  %s -", what);
        return;
    }
    double pm = per_msg(seconds, msgs);
    fprintf(f, "  %s %.2f s", what, seconds);
    if (pm >= 0)
        fprintf(f, " (%.2f us/msg)", pm);
}

void sb_report_load_text(FILE *f, const sb_load_result_t *r, const sb_cpuacct_t *cpu)
{
    double rate = r->interval_s > 0 ? (double)r->arrived / r->interval_s : 0;
    fprintf(f, "  %-10s %.0f msg/s  (%" PRIu64 " in %.2f s, %.2f MB/s received)\n", "delivered",
            rate, r->arrived, r->interval_s,
            r->interval_s > 0 ? (double)r->arrived_bytes / r->interval_s / 1e6 : 0);
    hist_text(f, "latency", &r->latency);
    hist_text(f, "ack", &r->ack_latency);
    fprintf(f,
            "  %-10s sent %" PRIu64 ", acked %" PRIu64 ", delivered %" PRIu64 ", refused %" PRIu64,
            "messages", r->sent, r->acked, r->delivered, r->refused);
    for (int i = 0; i < r->ncodes; i++)
        fprintf(f, "%s%s %" PRIu64, i ? ", " : " (", r->codes[i].code, r->codes[i].count);
    fprintf(f, "%s, never answered %" PRIu64 "\n", r->ncodes ? ")" : "", r->never_answered);
    if (r->unsent > 0)
        fprintf(f,
                "  %-10s %" PRIu64 " messages due in the interval were never sent: the target "
                "rate was not reached\n",
                "behind", r->unsent);
    if (cpu) {
        fprintf(f, "  %-8s", "cpu");
        cpu_part_text(f, "nodes", cpu->nodes_s, r->arrived);
        cpu_part_text(f, "redis", cpu->redis_s, r->arrived);
        cpu_part_text(f, "bench", cpu->self_s, r->arrived);
        if (cpu->nodes_s >= 0 && cpu->redis_s > 0)
            fprintf(f, "  node/redis %.2f", cpu->nodes_s / cpu->redis_s);
        fputc('\n', f);
    }
}

void sb_report_load_problems(FILE *f, const sb_load_result_t *r)
{
    if (r->never_answered > 0)
        fprintf(f, "error: %" PRIu64 " messages were never answered (no ack, no error)\n",
                r->never_answered);
    if (r->acked_undelivered > 0)
        fprintf(f, "error: %" PRIu64 " acked messages never reached their recipient\n",
                r->acked_undelivered);
    if (r->unexpected > 0)
        fprintf(f, "error: %" PRIu64 " answers or deliveries matched no message in flight\n",
                r->unexpected);
    if (r->rate_limited)
        fputs(SB_REPORT_LIMITS_HINT, f);
}
