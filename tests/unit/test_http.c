/* Unit tests for proto/http and proto/handshake: the request-head parser, the Host check, the
 * WebSocket handshake. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "handshake.h"
#include "http.h"

/* ---- helpers --------------------------------------------------------------------------------- */

/* A parse of a heap copy of exactly the request bytes (no NUL after them, so ASan catches a read
 * past the end); req points into buf, which lives until parsed_free. */
typedef struct {
    char *buf;
    size_t len;
    sb_http_request_t req;
    const char *err;
    int rc;
} parsed_t;

static void parse_n(parsed_t *p, const char *text, size_t len)
{
    p->buf = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(p->buf);
    memcpy(p->buf, text, len);
    p->len = len;
    p->err = NULL;
    memset(&p->req, 0, sizeof p->req);
    p->rc = sb_http_parse_request(p->buf, len, &p->req, &p->err);
}

static void parse(parsed_t *p, const char *text) { parse_n(p, text, strlen(text)); }

static void parsed_free(parsed_t *p)
{
    free(p->buf);
    p->buf = NULL;
}

/* Returns the parse result of buf[0, len) alone. */
static int parse_prefix(const char *text, size_t len)
{
    parsed_t p;
    int rc;

    parse_n(&p, text, len);
    rc = p.rc;
    parsed_free(&p);
    return rc;
}

/* Asserts that a slice holds exactly lit. */
#define ck_assert_slice(s, lit)                                                                    \
    do {                                                                                           \
        const sb_str_t s_ = (s);                                                                   \
        const char *l_ = (lit);                                                                    \
        ck_assert_msg(s_.len == strlen(l_) && (s_.len == 0 || memcmp(s_.p, l_, s_.len) == 0),      \
                      "%s is \"%.*s\", expected \"%s\"", #s, (int)s_.len, s_.p ? s_.p : "", l_);   \
    } while (0)

/* A slice over a heap copy of exactly s, not NUL-terminated. */
static sb_str_t slice(const char *s)
{
    size_t len = strlen(s);
    char *p = malloc(len ? len : 1);

    ck_assert_ptr_nonnull(p);
    memcpy(p, s, len);
    return (sb_str_t){p, len};
}

static void slice_free(sb_str_t *s) { free((void *)s->p); }

/* ---- the example request --------------------------------------------------------------------- */

static const char upgrade_request[] = "GET /room/abc?token=xyz&x=1 HTTP/1.1\r\n"
                                      "Host: example.com:8080\r\n"
                                      "Upgrade: websocket\r\n"
                                      "Connection: keep-alive, Upgrade\r\n"
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      "Sec-WebSocket-Version: 13\r\n"
                                      "Sec-WebSocket-Protocol: chat, switchboard.v1\r\n"
                                      "Origin: https://example.com\r\n"
                                      "X-Padded: \t  spaced  value \t \r\n"
                                      "X-Empty:\r\n"
                                      "\r\n";

static void assert_upgrade_request(const sb_http_request_t *req)
{
    static const char *names[] = {"Host",
                                  "Upgrade",
                                  "Connection",
                                  "Sec-WebSocket-Key",
                                  "Sec-WebSocket-Version",
                                  "Sec-WebSocket-Protocol",
                                  "Origin",
                                  "X-Padded",
                                  "X-Empty"};
    static const char *values[] = {"example.com:8080",
                                   "websocket",
                                   "keep-alive, Upgrade",
                                   "dGhlIHNhbXBsZSBub25jZQ==",
                                   "13",
                                   "chat, switchboard.v1",
                                   "https://example.com",
                                   "spaced  value",
                                   ""};

    ck_assert_slice(req->method, "GET");
    ck_assert_slice(req->target, "/room/abc?token=xyz&x=1");
    ck_assert_slice(req->path, "/room/abc");
    ck_assert_slice(req->query, "token=xyz&x=1");
    ck_assert_int_eq(req->minor, 1);
    ck_assert_uint_eq(req->num_headers, 9);
    for (size_t i = 0; i < 9; i++) {
        ck_assert_slice(req->headers[i].name, names[i]);
        ck_assert_slice(req->headers[i].value, values[i]);
    }
}

START_TEST(test_parse_upgrade_request)
{
    parsed_t p;

    parse(&p, upgrade_request);
    ck_assert_int_eq(p.rc, (int)strlen(upgrade_request));
    assert_upgrade_request(&p.req);
    parsed_free(&p);
}
END_TEST

/* The head ends at the blank line; what follows is not the parser's. */
START_TEST(test_parse_stops_at_blank_line)
{
    char buf[sizeof upgrade_request + 32];
    parsed_t p;

    snprintf(buf, sizeof buf, "%sGET /next HTTP/1.1\r\n", upgrade_request);
    parse(&p, buf);
    ck_assert_int_eq(p.rc, (int)strlen(upgrade_request));
    assert_upgrade_request(&p.req);
    parsed_free(&p);
}
END_TEST

START_TEST(test_header_lookup)
{
    parsed_t p;
    const sb_str_t *v;

    parse(&p, "GET / HTTP/1.1\r\nHost: a\r\nX-Dup: first\r\nx-dup: second\r\n"
              "Sec-WebSocket-Key: k\r\n\r\n");
    ck_assert_int_gt(p.rc, 0);

    v = sb_http_header(&p.req, "sec-websocket-key");
    ck_assert_ptr_nonnull(v);
    ck_assert_slice(*v, "k");
    ck_assert_ptr_eq(sb_http_header(&p.req, "SEC-WEBSOCKET-KEY"), v);
    ck_assert_ptr_eq(sb_http_header(&p.req, "Sec-WebSocket-Key"), v);
    v = sb_http_header(&p.req, "x-DUP");
    ck_assert_ptr_nonnull(v);
    ck_assert_slice(*v, "first");
    ck_assert_ptr_null(sb_http_header(&p.req, "Upgrade"));
    ck_assert_ptr_null(sb_http_header(&p.req, "Hos"));
    ck_assert_ptr_null(sb_http_header(&p.req, "Host2"));
    ck_assert_ptr_null(sb_http_header(&p.req, ""));
    parsed_free(&p);
}
END_TEST

START_TEST(test_query_split)
{
    static const struct {
        const char *target, *path, *query;
    } cases[] = {
        {"/", "/", ""},
        {"/ws", "/ws", ""},
        {"/ws?", "/ws", ""},
        {"/?x", "/", "x"},
        {"/a/b?c=d&e", "/a/b", "c=d&e"},
        {"/p?a=1?b", "/p", "a=1?b"},
        {"*", "*", ""},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        parsed_t p;

        snprintf(buf, sizeof buf, "OPTIONS %s HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].target);
        parse(&p, buf);
        ck_assert_msg(p.rc == (int)strlen(buf), "target %s: rc %d (%s)", cases[i].target, p.rc,
                      p.err ? p.err : "");
        ck_assert_slice(p.req.method, "OPTIONS");
        ck_assert_slice(p.req.target, cases[i].target);
        ck_assert_slice(p.req.path, cases[i].path);
        ck_assert_slice(p.req.query, cases[i].query);
        parsed_free(&p);
    }
}
END_TEST

START_TEST(test_minor_version)
{
    parsed_t p;

    parse(&p, "GET / HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(p.rc, 18);
    ck_assert_int_eq(p.req.minor, 0);
    ck_assert_uint_eq(p.req.num_headers, 0);
    parsed_free(&p);

    parse(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    ck_assert_int_eq(p.rc, 27);
    ck_assert_int_eq(p.req.minor, 1);
    parsed_free(&p);
}
END_TEST

START_TEST(test_value_trimming)
{
    parsed_t p;

    parse(&p, "GET / HTTP/1.1\r\nA:x\r\nB:   y  \r\nC:\t\tz\t\r\nD: in ner \r\nE:  \t \r\n\r\n");
    ck_assert_int_gt(p.rc, 0);
    ck_assert_uint_eq(p.req.num_headers, 5);
    ck_assert_slice(p.req.headers[0].value, "x");
    ck_assert_slice(p.req.headers[1].value, "y");
    ck_assert_slice(p.req.headers[2].value, "z");
    ck_assert_slice(p.req.headers[3].value, "in ner");
    ck_assert_slice(p.req.headers[4].value, "");
    ck_assert_slice(p.req.headers[4].name, "E");
    parsed_free(&p);
}
END_TEST

/* ---- incremental input ----------------------------------------------------------------------- */

/* Every proper prefix of a valid head needs more bytes; the whole head is then complete. */
static void assert_prefixes_need_more(const char *text)
{
    size_t len = strlen(text);

    for (size_t k = 0; k < len; k++) {
        int rc = parse_prefix(text, k);
        ck_assert_msg(rc == 0, "prefix of %zu of %zu bytes: rc %d, expected 0", k, len, rc);
    }
    ck_assert_int_eq(parse_prefix(text, len), (int)len);
}

START_TEST(test_prefixes_need_more)
{
    assert_prefixes_need_more(upgrade_request);
    assert_prefixes_need_more("GET / HTTP/1.1\n\n");
    assert_prefixes_need_more("GET /x?y HTTP/1.0\r\nA: b\r\n\r\n");
}
END_TEST

/* The examples as they would arrive one byte at a time: nothing is complete until the last byte,
 * and the result is then the same as for the whole. */
START_TEST(test_examples_byte_by_byte)
{
    static const char *examples[] = {
        upgrade_request,
        "GET /ws HTTP/1.1\nHost: h\nUpgrade: websocket\n\n",
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
    };

    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
        size_t len = strlen(examples[i]);
        size_t k;
        int rc = 0;
        parsed_t p;

        for (k = 1; k <= len; k++) {
            rc = parse_prefix(examples[i], k);
            if (rc != 0)
                break;
        }
        ck_assert_msg(rc == (int)len && k == len, "example %zu: rc %d after %zu of %zu bytes", i,
                      rc, k, len);
        if (i == 0) {
            parse_n(&p, examples[i], k);
            assert_upgrade_request(&p.req);
            parsed_free(&p);
        }
    }
}
END_TEST

START_TEST(test_bare_lf)
{
    parsed_t p;
    const char *text = "GET /ws?a HTTP/1.1\nHost: h\nUpgrade: websocket\nX:  v \n\n";

    parse(&p, text);
    ck_assert_int_eq(p.rc, (int)strlen(text));
    ck_assert_slice(p.req.path, "/ws");
    ck_assert_slice(p.req.query, "a");
    ck_assert_int_eq(p.req.minor, 1);
    ck_assert_uint_eq(p.req.num_headers, 3);
    ck_assert_slice(p.req.headers[0].name, "Host");
    ck_assert_slice(p.req.headers[0].value, "h");
    ck_assert_slice(p.req.headers[1].value, "websocket");
    ck_assert_slice(p.req.headers[2].value, "v");
    parsed_free(&p);

    /* mixed line ends */
    text = "GET / HTTP/1.1\r\nHost: h\nA: b\r\n\n";
    parse(&p, text);
    ck_assert_int_eq(p.rc, (int)strlen(text));
    ck_assert_uint_eq(p.req.num_headers, 2);
    ck_assert_slice(p.req.headers[1].value, "b");
    parsed_free(&p);
}
END_TEST

/* ---- malformed heads ------------------------------------------------------------------------- */

static void assert_rejected(const char *text, size_t len)
{
    parsed_t p;

    parse_n(&p, text, len);
    ck_assert_msg(p.rc == -1, "accepted (rc %d): \"%.*s\"", p.rc, (int)len, text);
    ck_assert_msg(p.err != NULL, "rc -1 without an error text: \"%.*s\"", (int)len, text);
    parsed_free(&p);
}

#define REJECT(lit) assert_rejected((lit), sizeof(lit) - 1)

START_TEST(test_obs_fold)
{
    REJECT("GET / HTTP/1.1\r\nHost: h\r\nX-Long: one\r\n two\r\n\r\n");
    REJECT("GET / HTTP/1.1\r\nHost: h\r\nX-Long: one\r\n\ttwo\r\n\r\n");
    REJECT("GET / HTTP/1.1\nHost: h\nX-Long: one\n two\n\n");
}
END_TEST

START_TEST(test_bad_header_names)
{
    REJECT("GET / HTTP/1.1\r\nHost : h\r\n\r\n");  /* space before the colon */
    REJECT("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n"); /* and a tab */
    REJECT("GET / HTTP/1.1\r\n: h\r\n\r\n");       /* an empty name */
    REJECT("GET / HTTP/1.1\r\nX Y: h\r\n\r\n");    /* space inside the name */
    REJECT("GET / HTTP/1.1\r\nHost h\r\n\r\n");    /* no colon */
    REJECT("GET / HTTP/1.1\r\nX(y): h\r\n\r\n");   /* not a token character */
    REJECT("GET / HTTP/1.1\r\nX\x01Y: h\r\n\r\n");
}
END_TEST

START_TEST(test_control_chars)
{
    REJECT("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n");
    REJECT("GET / HTTP/1.1\r\nX: a\x1Fz\r\n\r\n");
    REJECT("GET / HTTP/1.1\r\nX: a\x7Fz\r\n\r\n");
    REJECT("GET / HTTP/1.1\r\nX: a\0z\r\n\r\n");
    REJECT("GET / HTTP/1.1\r\nX: a\rz\r\n\r\n"); /* a bare CR */
    REJECT("GET /a\x01z HTTP/1.1\r\n\r\n");
    REJECT("GET /a\x7Fz HTTP/1.1\r\n\r\n");
    REJECT("GET /a\0z HTTP/1.1\r\n\r\n");
    REJECT("G\x01T / HTTP/1.1\r\n\r\n");
}
END_TEST

START_TEST(test_bad_version)
{
    REJECT("GET / HTTP/2.0\r\n\r\n");
    REJECT("GET / HTTP/1.x\r\n\r\n");
    REJECT("GET / HTTP/0.9\r\n\r\n");
    REJECT("GET / HTTP/1.\r\n\r\n");
    REJECT("GET / HTTP/1\r\n\r\n");
    REJECT("GET / HTTP/\r\n\r\n");
    REJECT("GET / HTTX/1.1\r\n\r\n");
    REJECT("GET / HTTP-1.1\r\n\r\n");
    REJECT("GET / HTTP/1.1x\r\n\r\n");
}
END_TEST

START_TEST(test_bad_request_line)
{
    REJECT("GET HTTP/1.1\r\nHost: h\r\n\r\n");  /* no target */
    REJECT("GET  HTTP/1.1\r\nHost: h\r\n\r\n"); /* an empty target */
    REJECT("GET /\r\nHost: h\r\n\r\n");         /* no version */
    REJECT(" / HTTP/1.1\r\nHost: h\r\n\r\n");   /* no method */
    REJECT("GET\r\n\r\n");
    REJECT("GET / HTTP/1.1 extra\r\n\r\n");
}
END_TEST

START_TEST(test_too_many_headers)
{
    char buf[4096];
    size_t n;
    parsed_t p;

    n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < SB_HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%d: %d\r\n", i, i);
    snprintf(buf + n, sizeof buf - n, "\r\n");

    /* exactly the maximum is fine */
    parse(&p, buf);
    ck_assert_int_eq(p.rc, (int)strlen(buf));
    ck_assert_uint_eq(p.req.num_headers, SB_HTTP_MAX_HEADERS);
    ck_assert_slice(p.req.headers[SB_HTTP_MAX_HEADERS - 1].name, "X-63");
    ck_assert_slice(p.req.headers[SB_HTTP_MAX_HEADERS - 1].value, "63");
    parsed_free(&p);

    /* one more is not, and says so apart from other errors (431) */
    snprintf(buf + n, sizeof buf - n, "X-last: 1\r\n\r\n");
    parse(&p, buf);
    ck_assert_int_eq(p.rc, SB_HTTP_TOO_LARGE);
    ck_assert_ptr_nonnull(p.err);
    parsed_free(&p);
}
END_TEST

/* ---- helpers on values ----------------------------------------------------------------------- */

static int has_token(const char *value, const char *token)
{
    sb_str_t s = slice(value);
    int r = sb_http_has_token(&s, token);

    slice_free(&s);
    return r;
}

START_TEST(test_has_token)
{
    ck_assert_int_eq(has_token("keep-alive, Upgrade", "upgrade"), 1);
    ck_assert_int_eq(has_token("keep-alive, Upgrade", "keep-alive"), 1);
    ck_assert_int_eq(has_token(" upgrade ", "upgrade"), 1);
    ck_assert_int_eq(has_token("Upgrade", "upgrade"), 1);
    ck_assert_int_eq(has_token("UPGRADE", "Upgrade"), 1);
    ck_assert_int_eq(has_token("Upgrade,keep-alive", "upgrade"), 1);
    ck_assert_int_eq(has_token("a , upgrade , b", "upgrade"), 1);
    ck_assert_int_eq(has_token("a,\tupgrade\t,b", "upgrade"), 1);
    ck_assert_int_eq(has_token(",,upgrade,,", "upgrade"), 1);

    ck_assert_int_eq(has_token("upgrades", "upgrade"), 0);
    ck_assert_int_eq(has_token("xupgrade", "upgrade"), 0);
    ck_assert_int_eq(has_token("keep-alive, upgrade2", "upgrade"), 0);
    ck_assert_int_eq(has_token("up grade", "upgrade"), 0);
    ck_assert_int_eq(has_token("upgrad", "upgrade"), 0);
    ck_assert_int_eq(has_token("keep-alive", "upgrade"), 0);
    ck_assert_int_eq(has_token("", "upgrade"), 0);
    ck_assert_int_eq(has_token(" , ", "upgrade"), 0);
}
END_TEST

static int str_eq(const char *s, const char *lit, int icase)
{
    sb_str_t v = slice(s);
    int r = sb_str_eq(&v, lit, icase);

    slice_free(&v);
    return r;
}

START_TEST(test_str_eq)
{
    ck_assert_int_eq(str_eq("GET", "GET", 0), 1);
    ck_assert_int_eq(str_eq("get", "GET", 0), 0);
    ck_assert_int_eq(str_eq("get", "GET", 1), 1);
    ck_assert_int_eq(str_eq("WebSocket", "websocket", 1), 1);
    ck_assert_int_eq(str_eq("GE", "GET", 1), 0);
    ck_assert_int_eq(str_eq("GETS", "GET", 1), 0);
    ck_assert_int_eq(str_eq("", "", 0), 1);
    ck_assert_int_eq(str_eq("", "x", 0), 0);
}
END_TEST

START_TEST(test_accept_key)
{
    static const char *keys[][2] = {
        {"dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}, /* RFC 6455 1.3 */
        {"x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
        {"AQIDBAUGBwgJCgsMDQ4PEA==", "C/0nmHhBztSRGR1CwL6Tf4ZjwpY="},
    };

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        sb_str_t key = slice(keys[i][0]); /* not NUL-terminated */
        char out[29];

        memset(out, 'Z', sizeof out);
        sb_ws_accept_key(key.p, key.len, out);
        ck_assert_str_eq(out, keys[i][1]);
        slice_free(&key);
    }
}
END_TEST

/* ---- Host ------------------------------------------------------------------------------------ */

/* sb_http_check_host on a request of HTTP/1.<minor> with n Host fields that all hold value (a heap
 * copy of exactly its bytes), built by hand so that bytes the parser refuses reach it too. */
static int check_host(int minor, size_t n, const char *value, const char **err)
{
    sb_http_request_t req;
    sb_str_t v = slice(value);
    int rc;

    memset(&req, 0, sizeof req);
    req.minor = minor;
    for (size_t i = 0; i < n; i++) {
        req.headers[i].name = (sb_str_t){"Host", 4};
        req.headers[i].value = v;
    }
    req.num_headers = n;
    *err = NULL;
    rc = sb_http_check_host(&req, err);
    slice_free(&v);
    return rc;
}

/* sb_http_check_host on the whole request text, parsed first. */
static int check_host_request(const char *text, const char **err)
{
    parsed_t p;
    int rc;

    parse(&p, text);
    ck_assert_msg(p.rc == (int)strlen(text), "not parsed (rc %d, %s): %s", p.rc, p.err ? p.err : "",
                  show(text, strlen(text)));
    *err = NULL;
    rc = sb_http_check_host(&p.req, err);
    parsed_free(&p);
    return rc;
}

START_TEST(test_host_valid)
{
    static const char *hosts[] = {
        "example.com", "example.com:8080", "127.0.0.1",        "127.0.0.1:80", "[::1]",
        "[::1]:8080",  "[2001:db8::7]",    "[::ffff:1.2.3.4]", "[v1.fe:x]",    "a%20b",
        "EXAMPLE.COM", "a-b_c~d",          "!$&'()*+,;=",      "host:",        "",
    };
    const char *err;

    for (size_t i = 0; i < N_ELEMS(hosts); i++) {
        int rc = check_host(1, 1, hosts[i], &err);
        ck_assert_msg(rc == 0, "Host \"%s\" refused: %s", hosts[i], err ? err : "no reason");
        rc = check_host(0, 1, hosts[i], &err);
        ck_assert_msg(rc == 0, "Host \"%s\" refused on HTTP/1.0", hosts[i]);
    }
}
END_TEST

START_TEST(test_host_invalid)
{
    static const char *hosts[] = {
        "exa mple.com",
        "exa\tmple.com",
        "a@b",
        "user@example.com",
        "a/b",
        "a?b",
        "a#b",
        "[::1",
        "::1]",
        "[::1]x",
        "[]",
        "[1]",
        "[::g]",
        "[v1]",
        "[v.x]",
        "[vx.y]",
        "host:80x",
        "host:-1",
        "a:b:c",
        "a%2",
        "a%zz",
        "%",
        "\x7f",
        "a\x01b",
        "caf\xc3\xa9.com",
        "\xff",
        "a\"b",
        "a<b>",
    };
    const char *err;

    for (size_t i = 0; i < N_ELEMS(hosts); i++) {
        const char *h = hosts[i];
        int rc = check_host(1, 1, h, &err);
        ck_assert_msg(rc == -1, "Host \"%s\" accepted", show(h, strlen(h)));
        ck_assert_msg(err != NULL, "Host \"%s\" refused without a reason", show(h, strlen(h)));
        ck_assert_int_eq(check_host(0, 1, h, &err), -1);
    }
}
END_TEST

START_TEST(test_host_count)
{
    const char *err;

    /* HTTP/1.1 needs exactly one; HTTP/1.0 may leave it out but not repeat it */
    ck_assert_int_eq(check_host(1, 0, "", &err), -1);
    ck_assert_str_eq(err, "exactly one Host header is required");
    ck_assert_int_eq(check_host(1, 2, "example.com", &err), -1);
    ck_assert_str_eq(err, "exactly one Host header is required");
    ck_assert_int_eq(check_host(0, 0, "", &err), 0);
    ck_assert_int_eq(check_host(0, 2, "example.com", &err), -1);
    ck_assert_str_eq(err, "at most one Host header is allowed");
    ck_assert_int_eq(check_host(1, 1, "a b", &err), -1);
    ck_assert_str_eq(err, "malformed Host header");
}
END_TEST

/* The same rules on whole requests: names are case-insensitive, other fields do not count. */
START_TEST(test_host_requests)
{
    const char *err;

    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", &err), 0);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nhOST: [::1]:8080\r\n\r\n", &err), 0);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nHost:\r\n\r\n", &err), 0);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nHost:  a%20b \r\n\r\n", &err), 0);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.0\r\n\r\n", &err), 0);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.0\r\nHost: h\r\n\r\n", &err), 0);

    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\n\r\n", &err), -1);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nX-Host: h\r\nHosts: h\r\n\r\n", &err),
                     -1);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", &err), -1);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &err), -1);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nHost: a\r\nHost:\r\n\r\n", &err), -1);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", &err), -1);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", &err), -1);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.1\r\nHost: h\xc3\xa9\r\n\r\n", &err), -1);
    ck_assert_int_eq(check_host_request("GET / HTTP/1.0\r\nHost: a/b\r\n\r\n", &err), -1);
}
END_TEST

/* ---- the handshake --------------------------------------------------------------------------- */

/* The parts of an upgrade request; a NULL header is left out. */
typedef struct {
    const char *method;
    const char *version;
    const char *host;
    const char *upgrade;
    const char *connection;
    const char *key;
    const char *ws_version;
    const char *protocol;
} upgrade_t;

static const upgrade_t valid = {
    .method = "GET",
    .version = "HTTP/1.1",
    .host = "example.com",
    .upgrade = "websocket",
    .connection = "Upgrade",
    .key = "dGhlIHNhbXBsZSBub25jZQ==",
    .ws_version = "13",
    .protocol = NULL,
};

static void add_header(char *buf, size_t size, const char *name, const char *value)
{
    size_t n = strlen(buf);

    if (value)
        snprintf(buf + n, size - n, "%s: %s\r\n", name, value);
}

/* Builds, parses and checks the request; returns the status and fills *hs. */
static int handshake(const upgrade_t *u, sb_ws_handshake_t *hs)
{
    char buf[1024];
    parsed_t p;
    int status;

    snprintf(buf, sizeof buf, "%s /ws HTTP/%s\r\n", u->method, u->version + 5);
    add_header(buf, sizeof buf, "Host", u->host);
    add_header(buf, sizeof buf, "Upgrade", u->upgrade);
    add_header(buf, sizeof buf, "Connection", u->connection);
    add_header(buf, sizeof buf, "Sec-WebSocket-Key", u->key);
    add_header(buf, sizeof buf, "Sec-WebSocket-Version", u->ws_version);
    add_header(buf, sizeof buf, "Sec-WebSocket-Protocol", u->protocol);
    strcat(buf, "\r\n");

    parse(&p, buf);
    ck_assert_msg(p.rc == (int)strlen(buf), "request not parsed (rc %d, %s):\n%s", p.rc,
                  p.err ? p.err : "", buf);
    memset(hs, 0, sizeof *hs);
    hs->reason = NULL;
    status = sb_ws_handshake_check(&p.req, hs);
    ck_assert_int_eq(status, hs->status);
    parsed_free(&p);
    return status;
}

static void expect_status(const upgrade_t *u, int want)
{
    sb_ws_handshake_t hs;
    int status = handshake(u, &hs);

    ck_assert_msg(status == want, "status %d (%s), expected %d", status,
                  hs.reason ? hs.reason : "no reason", want);
    if (want != 101)
        ck_assert_msg(hs.reason != NULL, "status %d without a reason", status);
}

START_TEST(test_handshake_valid)
{
    sb_ws_handshake_t hs;

    ck_assert_int_eq(handshake(&valid, &hs), 101);
    ck_assert_str_eq(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert_int_eq(hs.subprotocol, 0);
}
END_TEST

START_TEST(test_handshake_subprotocol)
{
    upgrade_t u = valid;
    sb_ws_handshake_t hs;

    u.protocol = "chat, switchboard.v1";
    ck_assert_int_eq(handshake(&u, &hs), 101);
    ck_assert_int_eq(hs.subprotocol, 1);
    ck_assert_str_eq(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    u.protocol = "switchboard.v1";
    ck_assert_int_eq(handshake(&u, &hs), 101);
    ck_assert_int_eq(hs.subprotocol, 1);

    u.protocol = "chat";
    ck_assert_int_eq(handshake(&u, &hs), 101);
    ck_assert_int_eq(hs.subprotocol, 0);

    u.protocol = "switchboard.v10, chat";
    ck_assert_int_eq(handshake(&u, &hs), 101);
    ck_assert_int_eq(hs.subprotocol, 0);
}
END_TEST

START_TEST(test_handshake_method)
{
    upgrade_t u = valid;

    u.method = "POST";
    expect_status(&u, 405);
    u.method = "HEAD";
    expect_status(&u, 405);
    u.method = "get"; /* methods are case-sensitive */
    expect_status(&u, 405);
}
END_TEST

START_TEST(test_handshake_http_version)
{
    upgrade_t u = valid;

    u.version = "HTTP/1.0";
    expect_status(&u, 400);
}
END_TEST

START_TEST(test_handshake_host)
{
    upgrade_t u = valid;
    sb_ws_handshake_t hs;

    u.host = NULL;
    expect_status(&u, 400);
    u.host = "exa mple.com";
    expect_status(&u, 400);
    u.host = "user@example.com";
    expect_status(&u, 400);
    u.host = "[::1";
    expect_status(&u, 400);
    u.host = "[::1]:8080";
    ck_assert_int_eq(handshake(&u, &hs), 101);
}
END_TEST

START_TEST(test_handshake_upgrade)
{
    upgrade_t u = valid;
    sb_ws_handshake_t hs;

    u.upgrade = NULL;
    expect_status(&u, 400);
    u.upgrade = "h2c";
    expect_status(&u, 400);
    u.upgrade = "websockets";
    expect_status(&u, 400);
    u.upgrade = "WebSocket"; /* case-insensitive */
    ck_assert_int_eq(handshake(&u, &hs), 101);
}
END_TEST

START_TEST(test_handshake_connection)
{
    upgrade_t u = valid;
    sb_ws_handshake_t hs;

    u.connection = NULL;
    expect_status(&u, 400);
    u.connection = "keep-alive";
    expect_status(&u, 400);
    u.connection = "upgrades";
    expect_status(&u, 400);
    u.connection = "keep-alive, Upgrade";
    ck_assert_int_eq(handshake(&u, &hs), 101);
    ck_assert_str_eq(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    u.connection = "upgrade";
    ck_assert_int_eq(handshake(&u, &hs), 101);
}
END_TEST

START_TEST(test_handshake_ws_version)
{
    upgrade_t u = valid;

    u.ws_version = "8";
    expect_status(&u, 426);
    u.ws_version = NULL;
    expect_status(&u, 426);
    u.ws_version = "14";
    expect_status(&u, 426);
    u.ws_version = "130";
    expect_status(&u, 426);
}
END_TEST

START_TEST(test_handshake_key)
{
    upgrade_t u = valid;
    sb_ws_handshake_t hs;

    u.key = "AAAAAAAAAAAAAAAAAAAA"; /* 15 bytes */
    expect_status(&u, 400);
    u.key = "AAAAAAAAAAAAAAAAAAAAAAA="; /* 17 bytes */
    expect_status(&u, 400);
    u.key = "!!!!!!!!!!!!!!!!!!!!!!=="; /* not base64 */
    expect_status(&u, 400);
    u.key = "AAAAAAAAAAAAAAAAAAAA AA=="; /* not base64 either */
    expect_status(&u, 400);
    u.key = "AAAAAAAAAAAAAAAAAAAAAA=A"; /* padding out of place */
    expect_status(&u, 400);
    u.key = "AAAAAAAAAAAAAAAAAAAAAA==AAAA"; /* data after the padding */
    expect_status(&u, 400);
    u.key = "";
    expect_status(&u, 400);
    u.key = NULL;
    expect_status(&u, 400);

    u.key = "AAAAAAAAAAAAAAAAAAAAAA=="; /* 16 bytes */
    ck_assert_int_eq(handshake(&u, &hs), 101);
    ck_assert_str_eq(hs.accept, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc;

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_upgrade_request);
    tcase_add_test(tc, test_parse_stops_at_blank_line);
    tcase_add_test(tc, test_header_lookup);
    tcase_add_test(tc, test_query_split);
    tcase_add_test(tc, test_minor_version);
    tcase_add_test(tc, test_value_trimming);
    suite_add_tcase(s, tc);

    tc = tcase_create("incremental");
    tcase_add_test(tc, test_prefixes_need_more);
    tcase_add_test(tc, test_examples_byte_by_byte);
    tcase_add_test(tc, test_bare_lf);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_add_test(tc, test_obs_fold);
    tcase_add_test(tc, test_bad_header_names);
    tcase_add_test(tc, test_control_chars);
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_bad_request_line);
    tcase_add_test(tc, test_too_many_headers);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, test_has_token);
    tcase_add_test(tc, test_str_eq);
    tcase_add_test(tc, test_accept_key);
    suite_add_tcase(s, tc);

    tc = tcase_create("host");
    tcase_add_test(tc, test_host_valid);
    tcase_add_test(tc, test_host_invalid);
    tcase_add_test(tc, test_host_count);
    tcase_add_test(tc, test_host_requests);
    suite_add_tcase(s, tc);

    tc = tcase_create("handshake");
    tcase_add_test(tc, test_handshake_valid);
    tcase_add_test(tc, test_handshake_subprotocol);
    tcase_add_test(tc, test_handshake_method);
    tcase_add_test(tc, test_handshake_http_version);
    tcase_add_test(tc, test_handshake_host);
    tcase_add_test(tc, test_handshake_upgrade);
    tcase_add_test(tc, test_handshake_connection);
    tcase_add_test(tc, test_handshake_ws_version);
    tcase_add_test(tc, test_handshake_key);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
