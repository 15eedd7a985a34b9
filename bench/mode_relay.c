/* relay mode: P pairs of peers relaying through one or more nodes, measured and reported. */
#include <stdio.h>

#include "modes.h"
#include "report.h"
#include "wsload.h"

int sb_mode_relay(sb_bench_t *b)
{
    const sb_bench_opts_t *o = b->o;
    int status = 1;
    sb_payloads_t payloads;
    if (sb_payloads_init(&payloads, o->size) != 0) {
        fputs("switchboard-bench: out of memory\n", stderr);
        return 1;
    }
    sb_wsload_config_t wc = {
        .urls = o->urls,
        .nurls = o->nurls,
        .split = o->place == SB_PLACE_SPLIT,
        .pairs = o->pairs,
        .prefix = o->prefix,
        .timeout_s = o->timeout_s,
        .concurrency = o->concurrency,
        .progress = b->progress,
    };
    sb_wsload_t *w = sb_wsload_new(b->base, &wc);
    if (!w) {
        fputs("switchboard-bench: out of memory\n", stderr);
        goto out;
    }
    if (sb_wsload_open(w) != 0) {
        sb_mode_fleet_failed(b, "relay", sb_wsload_fleet(w));
        goto out;
    }
    sb_load_result_t r;
    if (sb_wsload_run(w, sb_mode_load_config(b, &payloads, o->pairs, "relay"), &r) != 0) {
        fputs("switchboard-bench: out of memory\n", stderr);
        goto out;
    }
    status = sb_report_load_ok(&r) ? 0 : 1;

    FILE *h = b->human;
    fprintf(h, "relay: %zu pairs over %zu URL%s (%s), ", o->pairs, o->nurls,
            o->nurls > 1 ? "s" : "", o->place == SB_PLACE_SPLIT ? "split" : "same");
    sb_mode_text_options(h, o, &payloads);
    sb_report_load_text(h, &r, &b->cpu);
    sb_report_load_problems(stderr, &r);

    if (o->json) {
        sb_jw_t j;
        sb_jw_init(&j, stdout);
        sb_jw_begin(&j, NULL);
        sb_jw_str(&j, "mode", "relay");
        sb_jw_bool(&j, "ok", status == 0);
        sb_jw_begin_array(&j, "urls");
        for (size_t i = 0; i < o->nurls; i++)
            sb_jw_str(&j, NULL, o->url_text[i]);
        sb_jw_end_array(&j);
        sb_jw_uint(&j, "pairs", o->pairs);
        sb_jw_str(&j, "place", o->place == SB_PLACE_SPLIT ? "split" : "same");
        sb_mode_json_options(&j, o, &payloads);
        sb_jw_num(&j, "setup_s", sb_wsload_fleet(w)->open_s);
        sb_report_load_json(&j, &r, &b->cpu);
        sb_jw_end(&j);
        fflush(stdout);
    }
out:
    sb_wsload_free(w);
    sb_payloads_free(&payloads);
    return status;
}
