/* The node's metrics: plain counters on the event loop, rendered for Prometheus at /metrics. */
#include "base/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const char *const sb_auth_reason_names[SB_AUTH_REASONS] = {
    "origin",  "missing",       "malformed", "too-large", "algorithm", "signature",
    "expired", "not-yet-valid", "issuer",    "audience",  "subject",   "id-mismatch"};

sb_metrics_t sb_metrics = {.selfcheck_seconds = -1};

/* Upper bounds, seconds: from 100 us (a relay within one node) to 2.5 s (a stalled cluster). */
static const double bounds[SB_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

static const char *const closed_names[SB_CLOSED_REASONS] = {
    "normal", "gone", "protocol_error", "ping_timeout", "slow_reader", "refused", "shutdown"};
static const char *const relay_types[SB_RELAY_TYPES] = {"offer", "answer", "candidate", "bye"};
static const char *const relay_outcomes[SB_RELAY_OUTCOMES] = {
    "delivered", "peer_unavailable", "unavailable", "queued", "mailbox_full"};
const char *sb_metrics_relay_outcome_name(sb_relay_outcome_t outcome)
{
    return outcome < SB_RELAY_OUTCOMES ? relay_outcomes[outcome] : "?";
}

static const struct {
    const char *type, *outcome;
} room_outcomes[SB_ROOM_OUTCOMES] = {
    {"join", "joined"},         {"leave", "left"},       {"join", "room_full"},
    {"join", "too_many_rooms"}, {"leave", "not_joined"}, {"join", "unavailable"},
    {"join", "forbidden"},
};
static const unsigned protocol_codes[5] = {1002, 1003, 1007, 1009, 1011};
#define HTTP_STATUSES 10
static const int http_statuses[HTTP_STATUSES] = {400, 401, 403, 404, 405, 408, 426, 429, 431, 503};

void sb_histogram_observe(sb_histogram_t *h, double seconds)
{
    size_t i = 0;
    if (seconds < 0)
        seconds = 0; /* another node's clock a little ahead */
    while (i < SB_LATENCY_BUCKETS && seconds > bounds[i])
        i++;
    h->counts[i]++;
    h->sum += seconds;
    h->count++;
}

sb_metrics_redis_t *sb_metrics_redis(const char *name)
{
    for (size_t i = 0; i < SB_REDIS_SLOTS; i++) {
        sb_metrics_redis_t *r = &sb_metrics.redis[i];
        if (r->name == NULL)
            r->name = name;
        if (strcmp(r->name, name) == 0)
            return r;
    }
    return NULL;
}

void sb_metrics_protocol_error(unsigned code)
{
    for (size_t i = 0; i < 5; i++)
        if (protocol_codes[i] == code)
            sb_metrics.protocol_errors[i]++;
}

void sb_metrics_http_error(int status)
{
    size_t i = 0;
    while (i < HTTP_STATUSES && http_statuses[i] != status)
        i++;
    sb_metrics.http_errors[i]++; /* HTTP_STATUSES: any other status */
}

static void head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct evbuffer *out, const char *name, const char *type, const char *help,
                double value)
{
    head(out, name, type, help);
    evbuffer_add_printf(out, "%s %.17g\n", name, value);
}

static void histogram(struct evbuffer *out, const char *name, const char *label,
                      const sb_histogram_t *h)
{
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= SB_LATENCY_BUCKETS; i++) {
        cumulative += h->counts[i];
        if (i < SB_LATENCY_BUCKETS)
            evbuffer_add_printf(out, "%s_bucket{%s,le=\"%g\"} %llu\n", name, label, bounds[i],
                                (unsigned long long)cumulative);
        else
            evbuffer_add_printf(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, label,
                                (unsigned long long)cumulative);
    }
    evbuffer_add_printf(out, "%s_sum{%s} %.17g\n%s_count{%s} %llu\n", name, label, h->sum, name,
                        label, (unsigned long long)h->count);
}

/* The standard process_* metrics, from /proc and getrusage. */
static void process_metrics(struct evbuffer *out)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        one(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent.",
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    unsigned long long pages_virt = 0, pages_res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &pages_virt, &pages_res) == 2) {
            double page = (double)sysconf(_SC_PAGESIZE);
            one(out, "process_resident_memory_bytes", "gauge", "Resident memory size.",
                (double)pages_res * page);
            one(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size.",
                (double)pages_virt * page);
        }
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        one(out, "process_open_fds", "gauge", "Open file descriptors.", (double)(n - 1));
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        one(out, "process_max_fds", "gauge", "The open file descriptor limit.",
            (double)rl.rlim_cur);
    one(out, "process_start_time_seconds", "gauge", "Start time since the Unix epoch, seconds.",
        sb_metrics.start_time);
}

void sb_metrics_render(struct evbuffer *out, int ready)
{
    const sb_metrics_t *m = &sb_metrics;

    head(out, "switchboard_info", "gauge", "This node: its ID and version (always 1).");
    evbuffer_add_printf(out, "switchboard_info{node=\"%s\",version=\"%s\"} 1\n",
                        m->node_id ? m->node_id : "", SB_VERSION);
    one(out, "switchboard_ready", "gauge", "1 while /readyz answers 200.", ready);
    one(out, "switchboard_draining", "gauge", "1 while the node drains before it stops.",
        m->draining);

    one(out, "switchboard_connections_accepted_total", "counter", "TCP connections accepted.",
        (double)m->accepted);
    one(out, "switchboard_connections_refused_total", "counter",
        "Connections answered 503 for being over --max-connections.", (double)m->refused);
    head(out, "switchboard_source_refused_total", "counter",
         "Connections answered 429 for one client address being over a limit, by limit.");
    evbuffer_add_printf(out, "switchboard_source_refused_total{limit=\"connections\"} %llu\n",
                        (unsigned long long)m->source_refused[0]);
    evbuffer_add_printf(out, "switchboard_source_refused_total{limit=\"handshakes\"} %llu\n",
                        (unsigned long long)m->source_refused[1]);
    one(out, "switchboard_sources", "gauge",
        "Client addresses (IPv6: /64 prefixes) tracked by the per-source limits now.",
        (double)m->sources);
    one(out, "switchboard_proxy_protocol_errors_total", "counter",
        "Connections from a trusted proxy closed for a missing, malformed or late PROXY header.",
        (double)m->proxy_protocol_errors);
    one(out, "switchboard_connections", "gauge", "Connections served now (HTTP and WebSocket).",
        (double)m->connections);
    one(out, "switchboard_websockets", "gauge", "WebSocket connections open now.",
        (double)m->websockets);
    head(out, "switchboard_websockets_closed_total", "counter",
         "WebSocket connections that ended, by why.");
    for (size_t i = 0; i < SB_CLOSED_REASONS; i++)
        evbuffer_add_printf(out, "switchboard_websockets_closed_total{reason=\"%s\"} %llu\n",
                            closed_names[i], (unsigned long long)m->closed[i]);
    head(out, "switchboard_protocol_errors_total", "counter",
         "Connections failed for breaking RFC 6455, by the close code sent.");
    for (size_t i = 0; i < 5; i++)
        evbuffer_add_printf(out, "switchboard_protocol_errors_total{code=\"%u\"} %llu\n",
                            protocol_codes[i], (unsigned long long)m->protocol_errors[i]);
    head(out, "switchboard_http_errors_total", "counter",
         "HTTP requests and WebSocket handshakes refused, by status.");
    for (size_t i = 0; i <= HTTP_STATUSES; i++) {
        char status[8];
        snprintf(status, sizeof(status), i < HTTP_STATUSES ? "%d" : "other",
                 i < HTTP_STATUSES ? http_statuses[i] : 0);
        evbuffer_add_printf(out, "switchboard_http_errors_total{status=\"%s\"} %llu\n", status,
                            (unsigned long long)m->http_errors[i]);
    }
    one(out, "switchboard_messages_received_total", "counter", "WebSocket messages received.",
        (double)m->messages_in);
    one(out, "switchboard_messages_sent_total", "counter", "WebSocket messages sent.",
        (double)m->messages_out);
    one(out, "switchboard_received_bytes_total", "counter", "Bytes of WebSocket messages received.",
        (double)m->bytes_in);
    one(out, "switchboard_sent_bytes_total", "counter", "Bytes of WebSocket messages sent.",
        (double)m->bytes_out);
    one(out, "switchboard_tls_handshake_failures_total", "counter",
        "TLS connections that sent something but ended before their handshake completed.",
        (double)m->tls_handshake_failures);
    if (m->tls_cert_expiry > 0)
        one(out, "switchboard_tls_certificate_expiry_seconds", "gauge",
            "When the TLS certificate in use expires (its notAfter), Unix time.",
            m->tls_cert_expiry);

    one(out, "switchboard_peers", "gauge", "Peers connected to this node.", (double)m->peers);
    one(out, "switchboard_peerjs_connections", "gauge",
        "PeerJS connections of this node (its peers among them once open).",
        (double)m->peerjs_peers);
    one(out, "switchboard_rooms", "gauge", "Rooms with members on this node.", (double)m->rooms);
    head(out, "switchboard_relays_total", "counter",
         "Offers, answers, candidates and byes sent by this node's peers, by outcome.");
    for (size_t t = 0; t < SB_RELAY_TYPES; t++)
        for (size_t o = 0; o < SB_RELAY_OUTCOMES; o++)
            evbuffer_add_printf(out, "switchboard_relays_total{type=\"%s\",outcome=\"%s\"} %llu\n",
                                relay_types[t], relay_outcomes[o],
                                (unsigned long long)m->relays[t][o]);
    head(out, "switchboard_auth_refused_total", "counter",
         "WebSocket handshakes refused by token authentication (401) or origin (403), by reason.");
    for (size_t i = 0; i < SB_AUTH_REASONS; i++)
        evbuffer_add_printf(out, "switchboard_auth_refused_total{reason=\"%s\"} %llu\n",
                            sb_auth_reason_names[i], (unsigned long long)m->auth_refused[i]);
    head(out, "switchboard_room_requests_total", "counter", "Joins and leaves, by answer.");
    for (size_t o = 0; o < SB_ROOM_OUTCOMES; o++)
        evbuffer_add_printf(out,
                            "switchboard_room_requests_total{type=\"%s\",outcome=\"%s\"} %llu\n",
                            room_outcomes[o].type, room_outcomes[o].outcome,
                            (unsigned long long)m->room_requests[o]);
    one(out, "switchboard_bad_requests_total", "counter", "Messages answered bad-request.",
        (double)m->bad_requests);
    head(out, "switchboard_rate_limited_total", "counter",
         "Messages answered rate-limited (not relayed), by the limit they were over.");
    evbuffer_add_printf(out, "switchboard_rate_limited_total{limit=\"messages\"} %llu\n",
                        (unsigned long long)m->rate_limited[0]);
    evbuffer_add_printf(out, "switchboard_rate_limited_total{limit=\"bytes\"} %llu\n",
                        (unsigned long long)m->rate_limited[1]);
    one(out, "switchboard_rate_limit_closes_total", "counter",
        "Connections closed with 1008 for sending on while rate-limited.",
        (double)m->rate_limit_closes);
    one(out, "switchboard_ids_taken_total", "counter", "Connections refused id-taken.",
        (double)m->ids_taken);
    one(out, "switchboard_bus_dropped_total", "counter",
        "Messages from the bus that were not envelopes this node reads.", (double)m->bus_dropped);
    head(out, "switchboard_relay_latency_seconds", "histogram",
         "From a relayed message's arrival to its queueing on the recipient's connection "
         "(across nodes, measured with the two nodes' clocks).");
    histogram(out, "switchboard_relay_latency_seconds", "path=\"local\"", &m->latency_local);
    histogram(out, "switchboard_relay_latency_seconds", "path=\"cluster\"", &m->latency_cluster);

    head(out, "switchboard_redis_connected", "gauge", "1 while a Redis connection is ready.");
    for (size_t i = 0; i < SB_REDIS_SLOTS && m->redis[i].name; i++)
        evbuffer_add_printf(out, "switchboard_redis_connected{connection=\"%s\"} %d\n",
                            m->redis[i].name, m->redis[i].connected);
    head(out, "switchboard_redis_reconnects_total", "counter",
         "Redis connections lost and made again.");
    for (size_t i = 0; i < SB_REDIS_SLOTS && m->redis[i].name; i++)
        evbuffer_add_printf(out, "switchboard_redis_reconnects_total{connection=\"%s\"} %llu\n",
                            m->redis[i].name, (unsigned long long)m->redis[i].reconnects);
    head(out, "switchboard_redis_commands_in_flight", "gauge",
         "Commands sent to Redis and not answered yet.");
    for (size_t i = 0; i < SB_REDIS_SLOTS && m->redis[i].name; i++)
        evbuffer_add_printf(out, "switchboard_redis_commands_in_flight{connection=\"%s\"} %llu\n",
                            m->redis[i].name, (unsigned long long)m->redis[i].in_flight);
    one(out, "switchboard_redis_publish_failures_total", "counter",
        "Publishes Redis did not take (not connected, or the connection lost).",
        (double)m->publish_failures);
    one(out, "switchboard_redis_selfcheck_seconds", "gauge",
        "The last round trip of the node's own check message through Redis pub/sub (-1: none "
        "yet).",
        m->selfcheck_seconds);
    one(out, "switchboard_sweeps_total", "counter",
        "Dead-node sweeps this node ran (one a second; only the lease holder scans).",
        (double)m->sweeps);
    one(out, "switchboard_dead_nodes_removed_total", "counter",
        "Nodes this node's sweeps found dead and removed.", (double)m->dead_nodes_removed);
    one(out, "switchboard_sessions_detached_total", "counter",
        "Connections that ended by accident, their session kept for a resume.",
        (double)m->sessions_detached);
    one(out, "switchboard_sessions_resumed_total", "counter",
        "Sessions taken back by a new connection to this node.", (double)m->sessions_resumed);
    one(out, "switchboard_sessions_replaced_total", "counter",
        "Connections of this node closed 4004 because their session was resumed elsewhere.",
        (double)m->sessions_replaced);
    one(out, "switchboard_sessions_ended_total", "counter",
        "Sessions ended because their resume window passed (by this node's sweeps).",
        (double)m->sessions_ended);
    one(out, "switchboard_held_relays", "gauge",
        "Relays waiting for the cluster's bus to come back (--bus-hold-ms).",
        (double)m->held_relays);
    one(out, "switchboard_held_bytes", "gauge", "Bytes of the relays waiting for the bus.",
        (double)m->held_bytes);
    one(out, "switchboard_held_relays_total", "counter",
        "Relays that had to wait for the bus or a resuming peer.", (double)m->held_relays_total);
    one(out, "switchboard_kept_relays", "gauge",
        "Acked relays kept to be sent again if a node or Redis loses them.",
        (double)m->kept_relays);
    one(out, "switchboard_kept_bytes", "gauge",
        "Memory the kept relays hold (their buffers, within --bus-hold-bytes).",
        (double)m->kept_bytes);
    one(out, "switchboard_kept_evicted_total", "counter",
        "Kept relays dropped before their time because --bus-hold-bytes was reached.",
        (double)m->kept_evicted);
    one(out, "switchboard_resent_total", "counter",
        "Kept relays sent again because their recipient's node or Redis may have lost them.",
        (double)m->resent);
    one(out, "switchboard_resend_failed_total", "counter",
        "Relays sent again that could not be delivered (recipient gone, mailbox full, or a "
        "later message already delivered).",
        (double)m->resend_failed);
    one(out, "switchboard_resent_dropped_total", "counter",
        "Relays sent again that a resumed peer's node dropped: the same message was there.",
        (double)m->resent_dropped);

    process_metrics(out);
}
