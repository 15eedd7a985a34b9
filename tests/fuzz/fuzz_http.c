/* libFuzzer target for proto/http: head parsing, the Host check and the WebSocket handshake. */
#include "check.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "handshake.h"
#include "http.h"

/* RFC 7230 section 3.2.6 tchar, written out rather than shared with proto/http.c. */
static int tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (c >= 0x80 || c <= 0x20 || c == 0x7F)
        return 0;
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
        return 1;
    return memchr(extra, c, sizeof(extra) - 1) != NULL;
}

static int fold(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

static int ref_eq(const char *a, size_t alen, const char *b, size_t blen, int icase)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (icase ? fold(x) != fold(y) : x != y)
            return 0;
    }
    return 1;
}

static int ows(char c) { return c == ' ' || c == '\t'; }

/* Does the comma-separated list value hold token (after trimming white space around each)? */
static int ref_has_token(const sb_str_t *v, const char *token, int icase)
{
    size_t i = 0;
    while (i <= v->len) {
        size_t j = i;
        while (j < v->len && v->p[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && ows(v->p[a]))
            a++;
        while (b > a && ows(v->p[b - 1]))
            b--;
        if (ref_eq(v->p + a, b - a, token, strlen(token), icase))
            return 1;
        i = j + 1;
    }
    return 0;
}

/* A slice must lie inside the head; an empty one may also be NULL. */
static void check_slice(const sb_str_t *s, const char *buf, size_t head)
{
    if (s->len == 0) {
        CHECK(s->p == NULL || (s->p >= buf && s->p <= buf + head));
        return;
    }
    CHECK(s->p >= buf && s->p < buf + head);
    CHECK(s->len <= head && (size_t)(s->p - buf) <= head - s->len);
}

/* Copies a slice into a NUL-terminated string, or returns NULL when it holds a NUL. */
static char *cstr(const sb_str_t *s)
{
    if (s->len > 0 && memchr(s->p, '\0', s->len) != NULL)
        return NULL;
    char *out = malloc(s->len + 1);
    CHECK(out != NULL);
    if (s->len > 0)
        memcpy(out, s->p, s->len);
    out[s->len] = '\0';
    return out;
}

/* Everything a complete head of length head promises about req. */
static void check_request(const sb_http_request_t *req, const char *buf, size_t head)
{
    CHECK(head >= 2 && buf[head - 1] == '\n');
    CHECK(req->num_headers <= SB_HTTP_MAX_HEADERS);

    /* request line: method SP target SP "HTTP/1." DIGIT */
    const sb_str_t *m = &req->method, *t = &req->target;
    check_slice(m, buf, head);
    check_slice(t, buf, head);
    check_slice(&req->path, buf, head);
    check_slice(&req->query, buf, head);
    CHECK(m->len > 0 && t->len > 0);
    for (size_t i = 0; i < m->len; i++)
        CHECK(tchar((unsigned char)m->p[i]));
    CHECK(t->p == m->p + m->len + 1 && m->p[m->len] == ' ');
    for (size_t i = 0; i < t->len; i++)
        CHECK((unsigned char)t->p[i] > 0x20 && (unsigned char)t->p[i] != 0x7F);
    CHECK((size_t)(t->p + t->len - buf) + 10 <= head);
    CHECK(memcmp(t->p + t->len, " HTTP/1.", 8) == 0);
    CHECK(req->minor >= 0 && req->minor <= 9 && t->p[t->len + 8] == '0' + req->minor);
    CHECK(t->p[t->len + 9] == '\r' || t->p[t->len + 9] == '\n');

    /* path and query split the target at its first '?' */
    const char *q = memchr(t->p, '?', t->len);
    CHECK(req->path.p == t->p);
    if (q == NULL) {
        CHECK(req->path.len == t->len && req->query.len == 0);
    } else {
        CHECK(req->path.len == (size_t)(q - t->p));
        CHECK(req->query.len == t->len - req->path.len - 1);
        CHECK(req->query.len == 0 || req->query.p == q + 1);
    }

    /* header fields, in order, after the request line */
    const char *prev = t->p + t->len;
    for (size_t i = 0; i < req->num_headers; i++) {
        const sb_str_t *n = &req->headers[i].name, *v = &req->headers[i].value;
        check_slice(n, buf, head);
        check_slice(v, buf, head);
        CHECK(n->len > 0 && n->p > prev);
        for (size_t k = 0; k < n->len; k++)
            CHECK(tchar((unsigned char)n->p[k]));
        CHECK((size_t)(n->p + n->len - buf) < head && n->p[n->len] == ':');
        if (v->len > 0) {
            CHECK(v->p > n->p + n->len);
            CHECK(!ows(v->p[0]) && !ows(v->p[v->len - 1]));
            for (size_t k = 0; k < v->len; k++)
                CHECK(v->p[k] != '\r' && v->p[k] != '\n' && v->p[k] != '\0');
            prev = v->p + v->len;
        } else {
            prev = n->p + n->len;
        }
    }
}

/* sb_http_header, sb_http_has_token and sb_str_eq against the references. */
static void check_lookups(const sb_http_request_t *req)
{
    CHECK(sb_str_eq(&req->method, "GET", 0) == ref_eq(req->method.p, req->method.len, "GET", 3, 0));
    CHECK(sb_str_eq(&req->method, "get", 1) == ref_eq(req->method.p, req->method.len, "get", 3, 1));

    for (size_t i = 0; i < req->num_headers && i < 8; i++) {
        const sb_http_header_t *h = &req->headers[i];
        char *name = cstr(&h->name);
        if (name != NULL) {
            size_t first = 0;
            while (!ref_eq(req->headers[first].name.p, req->headers[first].name.len, name,
                           strlen(name), 1))
                first++;
            CHECK(sb_http_header(req, name) == &req->headers[first].value);
            free(name);
        }
        static const char *const tokens[] = {"upgrade",   "websocket",  "Upgrade",
                                             "WebSocket", "keep-alive", SB_WS_SUBPROTOCOL};
        for (size_t k = 0; k < sizeof(tokens) / sizeof(tokens[0]); k++)
            CHECK(sb_http_has_token(&h->value, tokens[k]) ==
                  ref_has_token(&h->value, tokens[k], 1));
        /* every element that is a token must be found */
        const char *p = h->value.p, *end = h->value.p + h->value.len;
        for (int e = 0; e < 4 && p < end; e++) {
            const char *a = p;
            while (p < end && *p != ',')
                p++;
            sb_str_t el = {a, (size_t)(p - a)};
            while (el.len > 0 && ows(*el.p))
                el.p++, el.len--;
            while (el.len > 0 && ows(el.p[el.len - 1]))
                el.len--;
            int is_token = el.len > 0;
            for (size_t k = 0; k < el.len; k++)
                is_token &= tchar((unsigned char)el.p[k]);
            char *tok = is_token ? cstr(&el) : NULL;
            if (tok != NULL) {
                CHECK(sb_http_has_token(&h->value, tok) == 1);
                CHECK(sb_str_eq(&el, tok, 0) == 1);
                free(tok);
            }
            if (p < end)
                p++;
        }
    }
    CHECK(sb_http_has_token(NULL, "upgrade") == 0);
}

/* Sec-WebSocket-Accept computed here, for comparison. */
static void ref_accept(const char *key, size_t len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char in[64 + sizeof(guid)], digest[SHA_DIGEST_LENGTH];
    CHECK(len <= 64);
    memcpy(in, key, len);
    memcpy(in + len, guid, sizeof(guid) - 1);
    SHA1(in, len + sizeof(guid) - 1, digest);
    CHECK(EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH) == 28);
}

static const sb_str_t *find(const sb_http_request_t *req, const char *name, size_t *count)
{
    const sb_str_t *first = NULL;
    *count = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const sb_str_t *n = &req->headers[i].name;
        if (ref_eq(n->p, n->len, name, strlen(name), 1)) {
            if (first == NULL)
                first = &req->headers[i].value;
            ++*count;
        }
    }
    return first;
}

static int any_has_token(const sb_http_request_t *req, const char *name, const char *token,
                         int icase)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const sb_http_header_t *h = &req->headers[i];
        if (ref_eq(h->name.p, h->name.len, name, strlen(name), 1) &&
            ref_has_token(&h->value, token, icase))
            return 1;
    }
    return 0;
}

static int b64char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* The key is 22 base64 characters and "==": 16 bytes; canonical when the last character carries
 * no stray bits. */
static int key_shape(const sb_str_t *key, int canonical)
{
    if (key == NULL || key->len != 24 || key->p[22] != '=' || key->p[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!b64char(key->p[i]))
            return 0;
    return !canonical || memchr("AQgw", key->p[21], 4) != NULL;
}

/* A Host value no reading of RFC 3986 refuses: a name of letters, digits, '.' and '-', then
 * perhaps ':' and a port. */
static int plain_host(const sb_str_t *v)
{
    size_t i = 0;
    while (i < v->len &&
           ((v->p[i] >= 'a' && v->p[i] <= 'z') || (v->p[i] >= 'A' && v->p[i] <= 'Z') ||
            (v->p[i] >= '0' && v->p[i] <= '9') || v->p[i] == '.' || v->p[i] == '-'))
        i++;
    if (i == 0)
        return 0;
    if (i < v->len && v->p[i++] != ':')
        return 0;
    for (; i < v->len; i++)
        if (v->p[i] < '0' || v->p[i] > '9')
            return 0;
    return 1;
}

/* sb_http_check_host: 0 or -1 with a reason; the count rule of RFC 9112 section 3.2; an accepted
 * value holds nothing a host[:port] cannot (white space, userinfo, path, query, fragment,
 * controls, non-ASCII); a plain host is accepted. */
static int check_host(const sb_http_request_t *req)
{
    const char *err = NULL;
    int rc = sb_http_check_host(req, &err);
    CHECK(rc == 0 || rc == -1);
    CHECK(rc == 0 || err != NULL);
    CHECK(sb_http_check_host(req, NULL) == rc);

    static const char never[] = "@/?#\\\"<>{}|^`";
    size_t n;
    const sb_str_t *host = find(req, "Host", &n);
    if (n > 1 || (req->minor >= 1 && n == 0))
        CHECK(rc == -1);
    if (rc == 0 && host != NULL)
        for (size_t i = 0; i < host->len; i++) {
            unsigned char c = (unsigned char)host->p[i];
            CHECK(c > 0x20 && c < 0x7F && memchr(never, c, sizeof(never) - 1) == NULL);
        }
    if (n == 1 && plain_host(host))
        CHECK(rc == 0);
    return rc;
}

static void check_handshake(const sb_http_request_t *req)
{
    sb_ws_handshake_t hs;
    memset(&hs, 0x5A, sizeof(hs));
    int status = sb_ws_handshake_check(req, &hs);
    CHECK(status == hs.status);
    CHECK(status == 101 || status == 400 || status == 405 || status == 426);

    int get = ref_eq(req->method.p, req->method.len, "GET", 3, 0);
    size_t nhost, nupgrade, nconn, nversion, nkey;
    const sb_str_t *host = find(req, "Host", &nhost);
    const sb_str_t *upgrade = find(req, "Upgrade", &nupgrade);
    const sb_str_t *conn = find(req, "Connection", &nconn);
    const sb_str_t *version = find(req, "Sec-WebSocket-Version", &nversion);
    const sb_str_t *key = find(req, "Sec-WebSocket-Key", &nkey);
    int v13 = version != NULL && ref_eq(version->p, version->len, "13", 2, 0);

    if (status != 101) {
        CHECK(hs.reason != NULL);
        if (status == 405)
            CHECK(!get);
        if (status == 426)
            CHECK(!v13);
    } else {
        /* accepted: every condition of RFC 6455 section 4.2.1 holds */
        CHECK(get && req->minor >= 1 && nhost == 1 && check_host(req) == 0);
        CHECK(any_has_token(req, "Upgrade", "websocket", 1));
        CHECK(any_has_token(req, "Connection", "upgrade", 1));
        CHECK(v13);
        CHECK(key_shape(key, 0));
        CHECK(memchr(hs.accept, '\0', sizeof(hs.accept)) == hs.accept + 28);
        char want[29];
        ref_accept(key->p, key->len, want);
        CHECK(memcmp(hs.accept, want, 29) == 0);
        char again[29];
        sb_ws_accept_key(key->p, key->len, again);
        CHECK(memcmp(again, want, 29) == 0);
        if (hs.subprotocol)
            CHECK(any_has_token(req, "Sec-WebSocket-Protocol", SB_WS_SUBPROTOCOL, 1));
        if (any_has_token(req, "Sec-WebSocket-Protocol", SB_WS_SUBPROTOCOL, 0))
            CHECK(hs.subprotocol == 1);
    }

    /* and a request that is plainly right is accepted */
    if (get && req->minor == 1 && nhost == 1 && plain_host(host) && nupgrade == 1 &&
        ref_eq(upgrade->p, upgrade->len, "websocket", 9, 1) && nconn == 1 &&
        ref_has_token(conn, "upgrade", 1) && nversion == 1 && v13 && nkey == 1 && key_shape(key, 1))
        CHECK(status == 101);
}

/* What any answer of sb_http_parse_request promises: a head length within the buffer, 0, -1 with
 * a reason, or SB_HTTP_TOO_LARGE with a reason after more than SB_HTTP_MAX_HEADERS lines. */
static void check_rc(int rc, const char *buf, size_t len, const char *err)
{
    CHECK(rc == -1 || rc == SB_HTTP_TOO_LARGE || rc >= 0);
    CHECK(rc <= 0 || (size_t)rc <= len);
    CHECK(rc >= 0 || err != NULL);
    if (rc == SB_HTTP_TOO_LARGE) {
        size_t lines = 0;
        for (size_t i = 0; i < len; i++)
            lines += buf[i] == '\n';
        CHECK(lines > SB_HTTP_MAX_HEADERS);
    }
}

/* Parses the first len bytes of buf from an exact-size copy, so ASan sees a read past len. */
static int parse(const char *buf, size_t len, sb_http_request_t *req)
{
    char *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    if (len > 0)
        memcpy(copy, buf, len);
    const char *err = NULL;
    int rc = sb_http_parse_request(copy, len, req, &err);
    check_rc(rc, copy, len, err);
    CHECK(len == 0 || memcmp(copy, buf, len) == 0);
    free(copy);
    return rc;
}

/* xorshift64*: which prefixes to try, drawn from the input. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    static sb_http_request_t req, again; /* 2 KiB each: off the stack */
    const char *err = NULL;

    int rc = sb_http_parse_request(buf, size, &req, &err);
    check_rc(rc, buf, size, err);
    size_t head = rc > 0 ? (size_t)rc : size;

    if (rc > 0) {
        check_request(&req, buf, head);
        check_lookups(&req);
        check_host(&req);
        check_handshake(&req);
        /* what follows the head does not change it */
        CHECK(parse(buf, head, &again) == rc);
        CHECK(again.num_headers == req.num_headers && again.minor == req.minor);
        CHECK(again.method.len == req.method.len && again.target.len == req.target.len);
        for (size_t i = 0; i < req.num_headers; i++)
            CHECK(again.headers[i].name.len == req.headers[i].name.len &&
                  again.headers[i].value.len == req.headers[i].value.len);
    } else if (rc < 0) {
        /* no ending makes a refused head acceptable */
        char *more = malloc(size + 4);
        CHECK(more != NULL);
        if (size > 0)
            memcpy(more, buf, size);
        memcpy(more + size, "\r\n\r\n", 4);
        CHECK(parse(more, size + 4, &again) < 0);
        free(more);
    }

    /* Prefixes of the head: a complete head is never found early, a prefix of a valid or an
     * incomplete head always asks for more, and once refused (-1 or SB_HTTP_TOO_LARGE), longer
     * prefixes stay refused. */
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ size;
    for (size_t i = 0; i < size && i < 16; i++)
        rng = (rng << 8 | rng >> 56) ^ data[i];
    if (rng == 0)
        rng = 1;
    size_t cuts[8] = {0, 1, head / 2, head - 1, head > 1 ? head - 2 : 0};
    for (size_t i = 5; i < 8; i++)
        cuts[i] = head > 0 ? (size_t)(next_rand(&rng) % head) : 0;
    for (size_t i = 1; i < 8; i++) /* sort, so refusal can be checked to be monotonic */
        for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            size_t x = cuts[j];
            cuts[j] = cuts[j - 1], cuts[j - 1] = x;
        }
    int refused = 0;
    for (size_t i = 0; i < 8; i++) {
        size_t n = cuts[i];
        if (n >= head)
            continue;
        int prc = parse(buf, n, &again);
        if (rc >= 0)
            CHECK(prc == 0);
        else
            CHECK(prc <= 0);
        CHECK(!refused || prc < 0);
        refused = prc < 0;
    }
    return 0;
}
