/* A strict RFC 8259 JSON scanner that finds values without building a tree, and a string escaper.
 */
#ifndef SB_JSON_H
#define SB_JSON_H

#include <stddef.h>

#include "str.h"

/* Nesting deeper than this is refused, so a hostile message cannot exhaust the stack. */
#define SB_JSON_MAX_DEPTH 64

/* Skips white space and one JSON value starting at buf[*pos], leaving *pos just past it.
 * Returns 0, or -1 when the bytes are not a valid value (*pos then marks the offending byte). */
int sb_json_skip_value(const char *buf, size_t len, size_t *pos);

/* The same for a value that sits depth containers deep in a document the caller is walking, so
 * that the whole document stays within SB_JSON_MAX_DEPTH. */
int sb_json_skip_nested(const char *buf, size_t len, size_t *pos, int depth);

/* Skips JSON white space from *pos. */
void sb_json_skip_ws(const char *buf, size_t len, size_t *pos);

/* Decodes a JSON string literal (with its quotes, as sb_json_skip_value delimits it) into out,
 * NUL-terminated. Returns the decoded length, or -1 when it does not fit in cap-1 bytes or is not
 * a valid string literal. */
int sb_json_decode_string(const sb_str_t *lit, char *out, size_t cap);

/* Writes s as a JSON string literal with quotes into out (cap bytes, NUL-terminated), escaping
 * what RFC 8259 requires. Returns the length written, or -1 when it does not fit. */
int sb_json_escape(const char *s, char *out, size_t cap);

#endif
