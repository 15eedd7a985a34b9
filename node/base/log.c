/* Levelled logging to stderr, one line per event, with a UTC timestamp. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int min_level = SB_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void sb_log_set_level(int level) { min_level = level; }

int sb_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void sb_log(int level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    struct timeval tv;
    struct tm tm;
    char line[1024];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s ", (long)tv.tv_usec / 1000,
                  names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : n + m;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2; /* truncated: still one line */
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}
