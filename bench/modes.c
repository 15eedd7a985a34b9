/* What the bench's modes share: the load settings taken from the options, and how they are said. */
#include "modes.h"

#include "fleet.h"
#include "report.h"

sb_load_config_t sb_mode_load_config(sb_bench_t *b, const sb_payloads_t *payloads, size_t pairs,
                                     const char *label)
{
    const sb_bench_opts_t *o = b->o;
    sb_load_config_t c = {
        .pairs = pairs,
        .window = o->window,
        .rate = o->rate,
        .warmup_s = o->warmup_s,
        .duration_s = o->duration_s,
        .drain_s = o->drain_s,
        .progress = b->progress,
        .label = label,
        .payloads = payloads,
        .cpu = &b->cpu,
    };
    return c;
}

void sb_mode_json_options(sb_jw_t *w, const sb_bench_opts_t *o, const sb_payloads_t *payloads)
{
    sb_jw_uint(w, "window", (uint64_t)o->window);
    if (o->rate > 0)
        sb_jw_num(w, "rate", o->rate);
    else
        sb_jw_null(w, "rate");
    sb_jw_str(w, "loop", o->rate > 0 ? "open" : "closed");
    sb_jw_str(w, "mix", o->size ? "fixed" : "webrtc");
    if (o->size)
        sb_jw_uint(w, "size", o->size);
    else
        sb_jw_null(w, "size");
    sb_jw_num(w, "mean_payload_bytes", sb_payloads_mean_size(payloads));
    sb_jw_num(w, "warmup_s", o->warmup_s);
    sb_jw_num(w, "duration_s", o->duration_s);
}

void sb_mode_text_options(FILE *f, const sb_bench_opts_t *o, const sb_payloads_t *payloads)
{
    fprintf(f, "window %d, ", o->window);
    if (o->rate > 0)
        fprintf(f, "open loop at %.0f msg/s, ", o->rate);
    else
        fputs("closed loop, ", f);
    if (o->size)
        fprintf(f, "%zu B payloads", o->size);
    else
        fprintf(f, "webrtc mix (mean payload %.0f B)", sb_payloads_mean_size(payloads));
    fprintf(f, ", %.1f s measured after %.1f s warm-up\n", o->duration_s, o->warmup_s);
}

void sb_mode_json_causes(sb_jw_t *w, const char *key, const sb_fleet_t *fleet)
{
    sb_jw_begin(w, key);
    for (int i = 0; i < fleet->ncauses; i++)
        sb_jw_uint(w, fleet->causes[i].cause, fleet->causes[i].count);
    sb_jw_end(w);
}

void sb_mode_fleet_failed(sb_bench_t *b, const char *mode, const sb_fleet_t *fleet)
{
    fprintf(stderr,
            "error: %zu of %zu connections could not be opened:", fleet->failed + fleet->lost,
            fleet->n);
    for (int i = 0; i < fleet->ncauses; i++)
        fprintf(stderr, "%s %s x%llu", i ? "," : "", fleet->causes[i].cause,
                (unsigned long long)fleet->causes[i].count);
    if (fleet->lost > 0)
        fprintf(stderr, "%s lost after the welcome x%zu", fleet->ncauses ? "," : "", fleet->lost);
    fputc('\n', stderr);
    if (fleet->saw_429)
        fputs(SB_REPORT_LIMITS_HINT, stderr);
    if (!b->o->json)
        return;
    sb_jw_t j;
    sb_jw_init(&j, stdout);
    sb_jw_begin(&j, NULL);
    sb_jw_str(&j, "mode", mode);
    sb_jw_bool(&j, "ok", 0);
    sb_jw_str(&j, "error", "connections could not be opened");
    sb_jw_uint(&j, "connections", fleet->n);
    sb_jw_uint(&j, "ready", fleet->ready);
    sb_jw_uint(&j, "failed", fleet->failed);
    sb_jw_uint(&j, "lost", fleet->lost);
    sb_mode_json_causes(&j, "failures", fleet);
    sb_jw_end(&j);
    fflush(stdout);
}
