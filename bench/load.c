/* The load engine: pairs of endpoints exchanging messages in a closed loop (a window per pair)
 * or an open loop (a target rate), with latency from the intended send time and every message's
 * outcome counted. It knows nothing of the wire: a transport sends, and reports back. */
#include "load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

enum {
    F_IN_USE = 1,
    F_MEASURED = 2, /* intended in the measured interval */
    F_ACKED = 4,
    F_REFUSED = 8,
    F_DELIVERED = 16,
};

typedef struct {
    uint64_t mid;
    int64_t intended; /* ns */
    unsigned flags;
} slot_t;

typedef struct {
    uint64_t seq; /* messages started on this pair */
    int nfree;
    int dead; /* its connection is gone: it sends no more */
} pair_t;

typedef enum { PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE } phase_t;

struct sb_load {
    struct event_base *base;
    sb_load_config_t cfg;
    sb_load_transport_t t;
    void *ctx;
    pair_t *pairs;
    slot_t *slots;          /* window per pair */
    int *free;              /* free slot indices, a stack per pair */
    struct event *phase_ev; /* at the interval's start and end, then the drain's checks */
    struct event *sched_ev; /* open loop: when the next message falls due */
    struct event *progress_ev;
    uint64_t next_n; /* open loop: message n of the run is pair n % pairs's (n / pairs)th */
    phase_t phase;
    int64_t t_begin, ws, we;            /* start; the measured interval's nominal start and end */
    int64_t measure_start, measure_end; /* the interval as its timer saw it */
    uint64_t outstanding;
    sb_hist_t second; /* latencies of the last second, for the progress line */
    uint64_t second_arrived;
    sb_load_result_t r;
};

static slot_t *slot_of(sb_load_t *l, size_t pair, int i)
{
    return &l->slots[pair * (size_t)l->cfg.window + (size_t)i];
}

/* Open loop: message k of pair p is due at t_begin + (k * pairs + p) / rate. */
static int64_t intended_of(const sb_load_t *l, size_t pair, uint64_t k)
{
    double at = ((double)k * (double)l->cfg.pairs + (double)pair) / l->cfg.rate;
    return l->t_begin + (int64_t)(at * 1e9);
}

/* How many messages of pair are due strictly before t (open loop). */
static uint64_t due_before(const sb_load_t *l, size_t pair, int64_t t)
{
    double x = ((double)(t - l->t_begin) / 1e9 * l->cfg.rate - (double)pair) / (double)l->cfg.pairs;
    if (x <= 0)
        return 0;
    uint64_t k = (uint64_t)ceil(x); /* k with k < x */
    /* rounding: make it exact against intended_of */
    while (k > 0 && intended_of(l, pair, k - 1) >= t)
        k--;
    while (intended_of(l, pair, k) < t)
        k++;
    return k;
}

static void add_code(sb_load_result_t *r, const char *code, size_t len)
{
    if (len >= sizeof(r->codes[0].code))
        len = sizeof(r->codes[0].code) - 1;
    for (int i = 0; i < r->ncodes; i++) {
        if (strlen(r->codes[i].code) == len && memcmp(r->codes[i].code, code, len) == 0) {
            r->codes[i].count++;
            return;
        }
    }
    int i = r->ncodes;
    if (i >= SB_LOAD_MAX_CODES - 1) { /* the last entry gathers every further code */
        i = SB_LOAD_MAX_CODES - 1;
        if (r->ncodes == SB_LOAD_MAX_CODES) {
            r->codes[i].count++;
            return;
        }
        code = "other";
        len = 5;
    }
    r->ncodes = i + 1;
    memcpy(r->codes[i].code, code, len);
    r->codes[i].code[len] = '\0';
    r->codes[i].count = 1;
}

static void release(sb_load_t *l, size_t pair, slot_t *s)
{
    s->flags = 0;
    pair_t *p = &l->pairs[pair];
    l->free[pair * (size_t)l->cfg.window + (size_t)p->nfree++] = (int)(s - slot_of(l, pair, 0));
    l->outstanding--;
}

/* Starts message seq of pair, intended at intended. Returns 0, or -1 when it could not be sent. */
static int start(sb_load_t *l, size_t pair, int64_t intended)
{
    pair_t *p = &l->pairs[pair];
    int i = l->free[pair * (size_t)l->cfg.window + (size_t)--p->nfree];
    slot_t *s = slot_of(l, pair, i);
    uint64_t seq = p->seq++;
    s->mid = seq * (uint64_t)l->cfg.window + (uint64_t)i;
    s->intended = intended;
    s->flags = F_IN_USE;
    if (intended >= l->ws && intended < l->we) {
        s->flags |= F_MEASURED;
        l->r.sent++;
    }
    l->outstanding++;
    l->r.total_sent++;
    sb_step_t st;
    sb_payloads_step(l->cfg.payloads, pair, seq, &st);
    if (l->t.send(l->ctx, pair, st.dir, s->mid, st.type, st.payload) == 0)
        return 0;
    if (s->flags & F_MEASURED) {
        l->r.refused++;
        add_code(&l->r, "send-failed", 11);
    }
    release(l, pair, s);
    p->dead = 1;
    return -1;
}

/* Starts what pair may start now: up to its window, and in the open loop only what is due. */
static void fill(sb_load_t *l, size_t pair)
{
    pair_t *p = &l->pairs[pair];
    if (l->phase >= PH_DRAIN)
        return;
    int64_t now = sb_now_ns();
    /* bounded by the window */
    while (!p->dead && p->nfree > 0) {
        int64_t intended = now;
        if (l->cfg.rate > 0) {
            intended = intended_of(l, pair, p->seq);
            if (intended > now || intended >= l->we)
                return;
        } else if (now >= l->we) {
            return;
        }
        if (start(l, pair, intended) != 0)
            return;
    }
}

static void complete(sb_load_t *l, size_t pair, slot_t *s)
{
    release(l, pair, s);
    fill(l, pair);
}

/* The slot of message mid of pair, or NULL (counted) when none is in flight with that mid. */
static slot_t *lookup(sb_load_t *l, size_t pair, uint64_t mid)
{
    if (pair >= l->cfg.pairs) {
        l->r.unexpected++;
        return NULL;
    }
    slot_t *s = slot_of(l, pair, (int)(mid % (uint64_t)l->cfg.window));
    if (!(s->flags & F_IN_USE) || s->mid != mid) {
        l->r.unexpected++;
        return NULL;
    }
    return s;
}

void sb_load_answer(sb_load_t *l, size_t pair, uint64_t mid, const char *code, size_t code_len)
{
    if (code && code_len == 12 && memcmp(code, "rate-limited", 12) == 0)
        l->r.rate_limited = 1;
    slot_t *s = lookup(l, pair, mid);
    if (!s)
        return;
    if (s->flags & (F_ACKED | F_REFUSED)) {
        l->r.unexpected++;
        return;
    }
    int measured = (s->flags & F_MEASURED) != 0;
    if (code) {
        s->flags |= F_REFUSED;
        if (measured) {
            l->r.refused++;
            add_code(&l->r, code, code_len);
        }
        complete(l, pair, s);
        return;
    }
    s->flags |= F_ACKED;
    if (measured) {
        l->r.acked++;
        sb_hist_record(&l->r.ack_latency, (sb_now_ns() - s->intended) / 1000);
    }
    if (s->flags & F_DELIVERED)
        complete(l, pair, s);
}

void sb_load_deliver(sb_load_t *l, size_t pair, uint64_t mid, size_t bytes)
{
    int64_t now = sb_now_ns();
    if (l->phase == PH_MEASURE) {
        l->r.arrived++;
        l->r.arrived_bytes += bytes;
    }
    slot_t *s = lookup(l, pair, mid);
    if (!s)
        return;
    if (s->flags & (F_DELIVERED | F_REFUSED)) {
        l->r.unexpected++;
        return;
    }
    s->flags |= F_DELIVERED;
    int64_t us = (now - s->intended) / 1000;
    sb_hist_record(&l->second, us);
    l->second_arrived++;
    if (s->flags & F_MEASURED) {
        l->r.delivered++;
        sb_hist_record(&l->r.latency, us);
    }
    if (s->flags & F_ACKED)
        complete(l, pair, s);
}

void sb_load_unexpected(sb_load_t *l) { l->r.unexpected++; }

void sb_load_pair_lost(sb_load_t *l, size_t pair)
{
    if (pair < l->cfg.pairs)
        l->pairs[pair].dead = 1;
}

static void progress(sb_load_t *l, int64_t now)
{
    static const char *const names[] = {"warm-up", "measure", "drain", "done"};
    double t = (double)(now - l->t_begin) / 1e9;
    fprintf(stderr,
            "%s %5.1fs %-7s %8llu msg/s  p50 %7.3f ms  p99 %7.3f ms  max %8.3f ms  in flight %llu"
            "  refused %llu\n",
            l->cfg.label ? l->cfg.label : "", t, names[l->phase],
            (unsigned long long)l->second_arrived, sb_hist_quantile(&l->second, 0.5) / 1e3,
            sb_hist_quantile(&l->second, 0.99) / 1e3, l->second.max / 1e3,
            (unsigned long long)l->outstanding, (unsigned long long)l->r.refused);
    sb_hist_reset(&l->second);
    l->second_arrived = 0;
}

static void finish_interval(sb_load_t *l, int64_t now)
{
    l->phase = PH_DRAIN;
    l->measure_end = now;
    if (l->cfg.cpu)
        sb_cpuacct_stop(l->cfg.cpu, (double)(now - l->measure_start) / 1e9);
    if (l->cfg.rate > 0) {
        uint64_t due = 0;
        for (size_t i = 0; i < l->cfg.pairs; i++)
            due += due_before(l, i, l->we) - due_before(l, i, l->ws);
        l->r.unsent = due > l->r.sent ? due - l->r.sent : 0;
    }
}

static void arm(struct event *ev, int64_t in_ns)
{
    if (in_ns < 0)
        in_ns = 0;
    struct timeval tv = {(time_t)(in_ns / SB_NS_PER_S), (suseconds_t)(in_ns % SB_NS_PER_S / 1000)};
    event_add(ev, &tv);
}

/* Open loop: starts what fell due (as far as the windows allow), then sleeps until the next. */
static void on_sched(evutil_socket_t fd, short what, void *arg)
{
    sb_load_t *l = arg;
    (void)fd, (void)what;
    if (l->phase >= PH_DRAIN)
        return;
    int64_t now = sb_now_ns();
    /* at most 65536 messages a turn, so that a loop far behind still reads its sockets */
    for (size_t i = 0; i < 65536; i++) {
        int64_t at = intended_of(l, l->next_n % l->cfg.pairs, l->next_n / l->cfg.pairs);
        if (at >= l->we)
            return;
        if (at > now) {
            arm(l->sched_ev, at - now);
            return;
        }
        fill(l, l->next_n % l->cfg.pairs);
        l->next_n++;
    }
    arm(l->sched_ev, 0);
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    progress(arg, sb_now_ns());
}

static void on_phase(evutil_socket_t fd, short what, void *arg)
{
    sb_load_t *l = arg;
    (void)fd, (void)what;
    int64_t now = sb_now_ns();
    if (l->phase == PH_WARMUP) {
        l->phase = PH_MEASURE;
        l->measure_start = now;
        if (l->cfg.cpu)
            sb_cpuacct_start(l->cfg.cpu);
        arm(l->phase_ev, l->we - now);
        return;
    }
    if (l->phase == PH_MEASURE)
        finish_interval(l, now);
    if (l->outstanding == 0 || now >= l->we + (int64_t)(l->cfg.drain_s * 1e9)) {
        l->phase = PH_DONE;
        event_del(l->sched_ev);
        event_del(l->progress_ev);
        event_base_loopexit(l->base, NULL);
        return;
    }
    arm(l->phase_ev, 10 * 1000 * 1000); /* the drain: check every 10 ms */
}

sb_load_t *sb_load_new(struct event_base *base, const sb_load_config_t *cfg,
                       const sb_load_transport_t *t, void *ctx)
{
    sb_load_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->base = base;
    l->cfg = *cfg;
    l->t = *t;
    l->ctx = ctx;
    size_t n = cfg->pairs * (size_t)cfg->window;
    l->pairs = calloc(cfg->pairs, sizeof(*l->pairs));
    l->slots = calloc(n, sizeof(*l->slots));
    l->free = calloc(n, sizeof(*l->free));
    l->phase_ev = evtimer_new(base, on_phase, l);
    l->sched_ev = evtimer_new(base, on_sched, l);
    l->progress_ev = event_new(base, -1, EV_PERSIST, on_progress, l);
    if (!l->pairs || !l->slots || !l->free || !l->phase_ev || !l->sched_ev || !l->progress_ev) {
        sb_load_free(l);
        return NULL;
    }
    for (size_t p = 0; p < cfg->pairs; p++) {
        l->pairs[p].nfree = cfg->window;
        for (int i = 0; i < cfg->window; i++)
            l->free[p * (size_t)cfg->window + (size_t)i] = cfg->window - 1 - i;
    }
    return l;
}

void sb_load_free(sb_load_t *l)
{
    if (!l)
        return;
    if (l->phase_ev)
        event_free(l->phase_ev);
    if (l->sched_ev)
        event_free(l->sched_ev);
    if (l->progress_ev)
        event_free(l->progress_ev);
    free(l->pairs);
    free(l->slots);
    free(l->free);
    free(l);
}

void sb_load_run(sb_load_t *l, sb_load_result_t *out)
{
    l->t_begin = sb_now_ns();
    l->ws = l->t_begin + (int64_t)(l->cfg.warmup_s * 1e9);
    l->we = l->ws + (int64_t)(l->cfg.duration_s * 1e9);
    l->phase = PH_WARMUP;
    if (l->cfg.warmup_s <= 0) {
        l->phase = PH_MEASURE;
        l->measure_start = l->t_begin;
        if (l->cfg.cpu)
            sb_cpuacct_start(l->cfg.cpu);
    }
    arm(l->phase_ev, (l->phase == PH_WARMUP ? l->ws : l->we) - l->t_begin);
    if (l->cfg.progress) {
        struct timeval second = {1, 0};
        event_add(l->progress_ev, &second);
    }
    if (l->cfg.rate > 0)
        arm(l->sched_ev, 0);
    else
        for (size_t i = 0; i < l->cfg.pairs; i++)
            fill(l, i);
    event_base_dispatch(l->base);

    l->r.interval_s = (double)(l->measure_end - l->measure_start) / 1e9;
    for (size_t p = 0; p < l->cfg.pairs; p++) {
        for (int i = 0; i < l->cfg.window; i++) {
            const slot_t *s = slot_of(l, p, i);
            if (!(s->flags & F_IN_USE))
                continue;
            if (!(s->flags & (F_ACKED | F_REFUSED)))
                l->r.never_answered++;
            else if ((s->flags & F_ACKED) && !(s->flags & F_DELIVERED))
                l->r.acked_undelivered++;
        }
    }
    *out = l->r;
}
