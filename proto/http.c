/* HTTP/1.1 request-head parser, header lookups and the Host check, no I/O. */
#include "http.h"

#include <string.h>

/* RFC 7230 tchar: the characters of a method or a header name. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte that may appear in a field value: HTAB, visible ASCII, SP, obs-text. */
static int is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7F); }

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* Finds the next line in [*p, end): sets *line to it without its LF or CRLF, advances *p past
 * it, and returns 1; returns 0 when no complete line remains. */
static int next_line(const char **p, const char *end, sb_str_t *line)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (nl == NULL)
        return 0;
    line->p = *p;
    line->len = (size_t)(nl - *p);
    if (line->len > 0 && line->p[line->len - 1] == '\r')
        line->len--;
    *p = nl + 1;
    return 1;
}

static int fail(const char **err, const char *why)
{
    if (err)
        *err = why;
    return -1;
}

/* The bytes of a line still incomplete: refuse early what no line of a head may hold, so a
 * client speaking another protocol is answered at once rather than at the size limit. */
static int check_partial(const char *p, const char *end, int first_line, const char **err)
{
    if (first_line && p < end && !is_tchar((unsigned char)*p))
        return fail(err, "not an HTTP request");
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (!is_value_char(c) && c != '\r')
            return fail(err, "control character in request head");
    }
    return 0;
}

static int parse_request_line(const sb_str_t *line, sb_http_request_t *req, const char **err)
{
    const char *p = line->p, *end = line->p + line->len;

    req->method.p = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    req->method.len = (size_t)(p - req->method.p);
    if (req->method.len == 0 || p == end || *p != ' ')
        return fail(err, "malformed request line");
    p++;

    req->target.p = p;
    while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7F)
        p++;
    req->target.len = (size_t)(p - req->target.p);
    if (req->target.len == 0 || p == end || *p != ' ')
        return fail(err, "malformed request target");
    p++;

    static const char version[] = "HTTP/1.";
    size_t vlen = sizeof(version) - 1;
    if ((size_t)(end - p) != vlen + 1 || memcmp(p, version, vlen) != 0 || p[vlen] < '0' ||
        p[vlen] > '9')
        return fail(err, "unsupported HTTP version");
    req->minor = p[vlen] - '0';

    const char *q = memchr(req->target.p, '?', req->target.len);
    req->path.p = req->target.p;
    req->path.len = q ? (size_t)(q - req->target.p) : req->target.len;
    req->query.p = q ? q + 1 : req->target.p + req->target.len;
    req->query.len = req->target.len - req->path.len - (q ? 1 : 0);
    return 0;
}

static int parse_header(const sb_str_t *line, sb_http_request_t *req, const char **err)
{
    const char *p = line->p, *end = line->p + line->len;

    if (is_ows(*p))
        return fail(err, "obsolete line folding");
    if (req->num_headers == SB_HTTP_MAX_HEADERS) {
        fail(err, "more than 64 header fields");
        return SB_HTTP_TOO_LARGE;
    }
    sb_http_header_t *h = &req->headers[req->num_headers];

    h->name.p = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    h->name.len = (size_t)(p - h->name.p);
    if (h->name.len == 0 || p == end || *p != ':')
        return fail(err, "malformed header field");
    p++;

    for (const char *c = p; c < end; c++)
        if (!is_value_char((unsigned char)*c))
            return fail(err, "control character in header value");
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    h->value.p = p;
    h->value.len = (size_t)(end - p);
    req->num_headers++;
    return 0;
}

int sb_http_parse_request(const char *buf, size_t len, sb_http_request_t *req, const char **err)
{
    const char *p = buf, *end = buf + len;
    sb_str_t line;

    req->num_headers = 0;
    if (!next_line(&p, end, &line))
        return check_partial(buf, end, 1, err);
    if (parse_request_line(&line, req, err) != 0)
        return -1;
    for (;;) {
        if (!next_line(&p, end, &line))
            return check_partial(p, end, 0, err);
        if (line.len == 0)
            return (int)(p - buf);
        int rc = parse_header(&line, req, err);
        if (rc != 0)
            return rc;
    }
}

const sb_str_t *sb_http_header(const sb_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (sb_str_eq(&req->headers[i].name, name, 1))
            return &req->headers[i].value;
    return NULL;
}

/* Walks the comma-separated elements of value, comparing each (trimmed) with token. */
static int token_in(const sb_str_t *value, const char *token, int icase)
{
    const char *p = value->p, *end = value->p + value->len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        sb_str_t t = {p, (size_t)(stop - p)};
        while (t.len > 0 && is_ows(*t.p))
            t.p++, t.len--;
        while (t.len > 0 && is_ows(t.p[t.len - 1]))
            t.len--;
        if (sb_str_eq(&t, token, icase))
            return 1;
        p = comma ? comma + 1 : end;
    }
    return 0;
}

int sb_http_has_token(const sb_str_t *value, const char *token)
{
    return value != NULL && token_in(value, token, 1);
}

int sb_http_has_exact_token(const sb_str_t *value, const char *token)
{
    return value != NULL && token_in(value, token, 0);
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* RFC 3986 unreserved and sub-delims: with pct-encoded, the characters of a reg-name. */
static int is_host_char(unsigned char c)
{
    if (is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("-._~!$&'()*+,;=", c) != NULL;
}

/* The inside of an IP-literal, loosely: an IPv6 address is hex digits, ':' and '.' with at least
 * one ':'; an IPvFuture is "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ). */
static int ip_literal_valid(const char *p, const char *end)
{
    if (p < end && (*p == 'v' || *p == 'V')) {
        const char *hex = ++p;
        while (p < end && sb_hex_digit(*p) >= 0)
            p++;
        if (p == hex || p == end || *p++ != '.' || p == end)
            return 0;
        for (; p < end; p++)
            if (!is_host_char((unsigned char)*p) && *p != ':')
                return 0;
        return 1;
    }
    int colon = 0;
    for (; p < end; p++) {
        if (*p == ':')
            colon = 1;
        else if (sb_hex_digit(*p) < 0 && *p != '.')
            return 0;
    }
    return colon;
}

/* Host = uri-host [ ":" port ], uri-host = IP-literal / IPv4address / reg-name (the second is a
 * case of the third), port = *DIGIT. */
static int host_valid(const sb_str_t *v)
{
    const char *p = v->p, *end = v->p + v->len;

    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close == NULL || !ip_literal_valid(p + 1, close))
            return 0;
        p = close + 1;
    } else {
        while (p < end && *p != ':') {
            if (*p == '%') {
                if (end - p < 3 || sb_hex_digit(p[1]) < 0 || sb_hex_digit(p[2]) < 0)
                    return 0;
                p += 3;
            } else if (is_host_char((unsigned char)*p)) {
                p++;
            } else {
                return 0;
            }
        }
    }
    if (p < end && *p++ != ':')
        return 0;
    for (; p < end; p++)
        if (!is_digit((unsigned char)*p))
            return 0;
    return 1;
}

int sb_http_check_host(const sb_http_request_t *req, const char **err)
{
    const sb_str_t *host = NULL;
    size_t hosts = 0;

    for (size_t i = 0; i < req->num_headers; i++)
        if (sb_str_eq(&req->headers[i].name, "Host", 1)) {
            host = &req->headers[i].value;
            hosts++;
        }
    /* HTTP/1.0 predates Host, so it may leave it out; two are ambiguous in any version. */
    if (req->minor >= 1 && hosts != 1)
        return fail(err, "exactly one Host header is required");
    if (hosts > 1)
        return fail(err, "at most one Host header is allowed");
    if (host != NULL && !host_valid(host))
        return fail(err, "malformed Host header");
    return 0;
}
