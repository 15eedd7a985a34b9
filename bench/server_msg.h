/* Reads the fields the bench needs from a server message of protocol v1 (PROTOCOL.md). */
#ifndef SB_BENCH_SERVER_MSG_H
#define SB_BENCH_SERVER_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

/* Slices of the message text (valid while it is): the JSON text of each field, strings with
 * their quotes; len 0 when absent. has_mid and mid: a mid that is a plain unsigned number. */
typedef struct {
    sb_str_t type, code, mid, from, id;
    int has_mid;
    uint64_t mid_value;
} sb_server_msg_t;

/* Scans one server message: a JSON object whose top-level fields are found without building a
 * tree. Returns 0, or -1 when text is not a valid JSON object. */
int sb_server_msg_parse(const char *text, size_t len, sb_server_msg_t *m);

/* 1 when the JSON string literal lit (with quotes) equals s. */
int sb_server_msg_is(sb_str_t lit, const char *s);

/* Copies the content of the JSON string literal lit (no escapes expected) into out (cap bytes,
 * NUL-terminated, cut short when it does not fit). */
void sb_server_msg_copy(sb_str_t lit, char *out, size_t cap);

#endif
