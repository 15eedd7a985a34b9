/* Levelled logging to stderr, one line per event: text, or one JSON object per line. */
#ifndef SB_LOG_H
#define SB_LOG_H

#include <stdint.h>

enum { SB_LOG_DEBUG, SB_LOG_INFO, SB_LOG_WARN, SB_LOG_ERROR };

/* Line formats. AUTO is text when stderr is a terminal and JSON otherwise (a container's or a
 * service manager's log collector). */
enum { SB_LOG_AUTO, SB_LOG_TEXT, SB_LOG_JSON };

/* Lines about clients' misbehaviour allowed a second (sb_log_client), and the burst. */
#define SB_LOG_CLIENT_RATE 10
#define SB_LOG_CLIENT_BURST 20

void sb_log_set_level(int level);
void sb_log_set_format(int format);

/* The node's ID, a field of every JSON line (the string must outlive logging). */
void sb_log_set_node(const char *node);

/* Returns the level for a name (debug, info, warn, error), or -1. */
int sb_log_level_parse(const char *name);

/* Returns the format for a name (auto, text, json), or -1. */
int sb_log_format_parse(const char *name);

void sb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line about one client connection: "conn ID ADDR: ..." in text; fields conn and remote in
 * JSON. */
void sb_log_conn(int level, uint64_t conn, const char *remote, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same, for what a client did wrong (a protocol violation, a slow reader, a timeout): at
 * most SB_LOG_CLIENT_RATE such lines a second after a burst of SB_LOG_CLIENT_BURST, so that no
 * client can flood the log (or block the node on a full stderr); the lines left out are
 * counted and the count given with the next line written. Metrics count every one. */
void sb_log_client(int level, uint64_t conn, const char *remote, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes how many client lines were left out since the last one written, if any (at exit). */
void sb_log_client_flush(void);

#endif
