/* Levelled logging to stderr, one line per event, with a UTC timestamp. */
#ifndef SB_LOG_H
#define SB_LOG_H

enum { SB_LOG_DEBUG, SB_LOG_INFO, SB_LOG_WARN, SB_LOG_ERROR };

void sb_log_set_level(int level);

/* Returns the level for a name (debug, info, warn, error), or -1. */
int sb_log_level_parse(const char *name);

void sb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
