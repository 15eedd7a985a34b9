/* Levelled logging to stderr, one line per event: text, or one JSON object per line. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

static int min_level = SB_LOG_INFO;
static int json = -1; /* -1: not decided yet (SB_LOG_AUTO) */
static const char *node_id;
static const char *const names[] = {"debug", "info", "warn", "error"};
static const char *const formats[] = {"auto", "text", "json"};

/* The client-line budget: tokens refill at SB_LOG_CLIENT_RATE a second. */
static double tokens = SB_LOG_CLIENT_BURST, refilled;
static unsigned long suppressed;

void sb_log_set_level(int level) { min_level = level; }

void sb_log_set_format(int format)
{
    json = format == SB_LOG_JSON ? 1 : format == SB_LOG_TEXT ? 0 : -1;
}

void sb_log_set_node(const char *node) { node_id = node; }

static int parse(const char *name, const char *const *list, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return i;
    return -1;
}

int sb_log_level_parse(const char *name) { return parse(name, names, 4); }

int sb_log_format_parse(const char *name) { return parse(name, formats, 3); }

/* Appends s as a JSON string (with quotes) at line[*n]; cut short when it does not fit. */
static void put_json(char *line, size_t cap, int *n, const char *s)
{
    if (sb_json_escape(s, line + *n, cap - (size_t)*n) >= 0) {
        *n += (int)strlen(line + *n);
    } else if (cap - (size_t)*n > 16) {
        char cut[256];
        snprintf(cut, sizeof(cut), "%.200s...", s); /* only a message of over 1 KiB */
        if (sb_json_escape(cut, line + *n, cap - (size_t)*n) >= 0)
            *n += (int)strlen(line + *n);
    }
}

static void emit(int level, uint64_t conn, const char *remote, unsigned long dropped,
                 const char *fmt, va_list ap)
{
    struct timeval tv;
    struct tm tm;
    char msg[1024], line[2048], when[40];
    int n = 0;

    if (json < 0)
        json = !isatty(STDERR_FILENO);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof(when) - w, ".%03ldZ", (long)tv.tv_usec / 1000);
    vsnprintf(msg, sizeof(msg), fmt, ap);

    if (json) {
        n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\"", when, names[level]);
        if (node_id != NULL) {
            n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"node\":");
            put_json(line, sizeof(line), &n, node_id);
        }
        if (conn != 0) {
            n += snprintf(line + n, sizeof(line) - (size_t)n,
                          ",\"conn\":%llu,\"remote\":", (unsigned long long)conn);
            put_json(line, sizeof(line), &n, remote);
        }
        if (dropped > 0)
            n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"suppressed\":%lu", dropped);
        n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"msg\":");
        put_json(line, sizeof(line), &n, msg);
        n += snprintf(line + n, sizeof(line) - (size_t)n, "}");
    } else {
        n = snprintf(line, sizeof(line), "%s %s ", when, names[level]);
        if (conn != 0)
            n += snprintf(line + n, sizeof(line) - (size_t)n,
                          "conn %llu %s: ", (unsigned long long)conn, remote);
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%s", msg);
        if (dropped > 0)
            n += snprintf(line + n, sizeof(line) - (size_t)n, " (%lu similar lines left out)",
                          dropped);
    }
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2; /* truncated: still one line */
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}

void sb_log(int level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, 0, NULL, 0, fmt, ap);
    va_end(ap);
}

void sb_log_conn(int level, uint64_t conn, const char *remote, const char *fmt, ...)
{
    if (level < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, conn, remote, 0, fmt, ap);
    va_end(ap);
}

static void flush_line(unsigned long dropped, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(SB_LOG_INFO, 0, NULL, dropped, fmt, ap);
    va_end(ap);
}

void sb_log_client_flush(void)
{
    if (suppressed > 0 && SB_LOG_INFO >= min_level)
        flush_line(suppressed, "the log left out lines about misbehaving clients");
    suppressed = 0;
}

void sb_log_client(int level, uint64_t conn, const char *remote, const char *fmt, ...)
{
    if (level < min_level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    double now = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
    tokens += (now - refilled) * SB_LOG_CLIENT_RATE;
    if (tokens > SB_LOG_CLIENT_BURST)
        tokens = SB_LOG_CLIENT_BURST;
    refilled = now;
    if (tokens < 1) {
        suppressed++;
        return;
    }
    tokens -= 1;
    va_list ap;
    va_start(ap, fmt);
    emit(level, conn, remote, suppressed, fmt, ap);
    va_end(ap);
    suppressed = 0;
}
