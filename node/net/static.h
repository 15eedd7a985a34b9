/* Serves the files below one directory (the browser demo): GET and HEAD, never outside it. */
#ifndef SB_STATIC_H
#define SB_STATIC_H

#include <event2/buffer.h>

#include "http.h"

/* Answers req from the files below root (an absolute path with no symlinks, as realpath gives).
 * Writes a 200, 404 or 405 response to out. Returns 0 when it served the file, -1 when it
 * answered with an error. */
int sb_static_answer(const char *root, const sb_http_request_t *req, struct evbuffer *out);

#endif
