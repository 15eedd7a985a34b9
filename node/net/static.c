/* Serves the files below one directory (the browser demo): GET and HEAD, never outside it. */
#include "net/static.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/metrics.h"
#include "net/http_response.h"

/* What the demo needs; anything else is served as bytes the browser will not interpret. */
static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".md", "text/markdown; charset=utf-8"},
};

/* The pages may load only what the node itself serves, and talk only to it. */
#define SECURITY_HEADERS                                                                           \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "           \
    "connect-src 'self' ws: wss:; img-src 'self' data:; media-src 'self' blob: mediastream:; "     \
    "frame-ancestors 'none'\r\n"                                                                   \
    "Referrer-Policy: no-referrer\r\n"

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Percent-decodes the path and checks every segment: no "." or "..", no hidden files, no NUL
 * or backslash. Returns 0 with the decoded path in out, -1 when it is not a servable path. */
static int clean_path(const sb_str_t *path, char *out, size_t cap)
{
    if (path->len == 0 || path->p[0] != '/' ||
        sb_percent_decode(path->p, path->len, out, cap) < 0 || strchr(out, '\\') != NULL)
        return -1;
    /* A segment may not start with '.': this refuses ".", "..", and files like .git. */
    for (const char *p = out; (p = strchr(p, '/')) != NULL; p++)
        if (p[1] == '.')
            return -1;
    return 0;
}

int sb_static_answer(const char *root, const sb_http_request_t *req, struct evbuffer *out)
{
    int get = sb_str_eq(&req->method, "GET", 0), head = sb_str_eq(&req->method, "HEAD", 0);
    char rel[1024], full[PATH_MAX], real[PATH_MAX];
    struct stat st;

    if (!get && !head) {
        sb_metrics_http_error(405);
        sb_http_error(out, 405, "use GET or HEAD", "Allow: GET, HEAD\r\n", 0);
        return -1;
    }
    if (clean_path(&req->path, rel, sizeof(rel)) != 0)
        goto missing;
    if (snprintf(full, sizeof(full), "%s%s%s", root, rel,
                 rel[strlen(rel) - 1] == '/' ? "index.html" : "") >= (int)sizeof(full))
        goto missing;
    /* Symlinks could lead out of root: resolve and check what is really opened. */
    if (realpath(full, real) == NULL || strncmp(real, root, strlen(root)) != 0 ||
        real[strlen(root)] != '/')
        goto missing;
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto missing;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        goto missing;
    }
    evbuffer_add_printf(out,
                        "HTTP/1.1 200 OK\r\n"
                        "Server: switchboard\r\n"
                        "Content-Type: %s\r\n"
                        "Content-Length: %lld\r\n"
                        "Cache-Control: no-cache\r\n"
                        "X-Content-Type-Options: nosniff\r\n" SECURITY_HEADERS
                        "Connection: close\r\n\r\n",
                        content_type(real), (long long)st.st_size);
    /* Read here rather than sent from the file: the connection's stream writes from memory. */
    off_t left = head ? 0 : st.st_size;
    while (left > 0) {
        char chunk[16384];
        ssize_t n = read(fd, chunk, left < (off_t)sizeof(chunk) ? (size_t)left : sizeof(chunk));
        if (n <= 0 || evbuffer_add(out, chunk, (size_t)n) != 0)
            break; /* the headers went out: the short body tells the client */
        left -= n;
    }
    close(fd);
    return left == 0 ? 0 : -1;
missing:
    sb_metrics_http_error(404);
    sb_http_error(out, 404, "no such file", NULL, head);
    return -1;
}
