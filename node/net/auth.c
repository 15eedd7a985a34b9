/* Who may open a WebSocket: an allowed Origin and, with token auth on, a valid token. */
#include "net/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "origin.h"

struct sb_auth {
    const sb_config_t *cfg;
    sb_token_keys_t keys;
    int tokens; /* a secret or a public key is configured */
};

/* Reads a whole file of at most max bytes, NUL-terminated (malloc'ed), or NULL. */
static char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(max + 1) : NULL;
    if (buf != NULL) {
        *len = fread(buf, 1, max + 1, f);
        if (ferror(f) || *len > max) {
            free(buf);
            buf = NULL;
        } else {
            buf[*len] = '\0';
        }
    }
    if (f)
        fclose(f);
    return buf;
}

static int check_origins(const char *list, char *err, size_t errlen)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        const char *why;
        if (sb_origin_pattern_check(p, n, &why) != 0) {
            snprintf(err, errlen, "--allow-origin '%.*s': %s", (int)n, p, why);
            return -1;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

/* Whether a listen address (HOST:PORT) is on loopback only. */
static int loopback_only(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0 ||
           strncmp(listen, "localhost:", 10) == 0;
}

sb_auth_t *sb_auth_new(const sb_config_t *cfg, char *err, size_t errlen)
{
    sb_auth_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    if (check_origins(cfg->allow_origin, err, errlen) != 0)
        goto fail;
    if (cfg->auth_secret[0] != '\0') {
        a->keys.secret = (const unsigned char *)cfg->auth_secret;
        a->keys.secret_len = strlen(cfg->auth_secret);
        if (a->keys.secret_len < 32)
            sb_log(SB_LOG_WARN, "--auth-secret is %zu bytes: use at least 32 random bytes",
                   a->keys.secret_len);
    }
    if (cfg->auth_public_key[0] != '\0') {
        size_t len = 0;
        const char *why = "cannot read the file";
        char *pem = read_file(cfg->auth_public_key, 1 << 20, &len);
        if (pem != NULL)
            a->keys.public_key = sb_token_load_public_key(pem, len, &why);
        free(pem);
        if (a->keys.public_key == NULL) {
            snprintf(err, errlen, "--auth-public-key %s: %s", cfg->auth_public_key, why);
            goto fail;
        }
    }
    a->tokens = a->keys.secret != NULL || a->keys.public_key != NULL;
    if (cfg->allow_origin[0] == '\0' && ((cfg->listen[0] && !loopback_only(cfg->listen)) ||
                                         (cfg->tls_listen[0] && !loopback_only(cfg->tls_listen))))
        sb_log(SB_LOG_WARN, "every Origin may open WebSockets here: any web page can connect "
                            "its visitors to this node (see --allow-origin)");
    if (a->tokens)
        sb_log(SB_LOG_INFO, "token auth on: %s%s%s", a->keys.secret ? "HS256" : "",
               a->keys.secret && a->keys.public_key ? " and " : "",
               a->keys.public_key ? sb_token_alg_name(sb_token_key_alg(a->keys.public_key)) : "");
    return a;
fail:
    sb_auth_free(a);
    return NULL;
}

void sb_auth_free(sb_auth_t *a)
{
    if (a == NULL)
        return;
    EVP_PKEY_free(a->keys.public_key);
    free(a);
}

int sb_auth_tokens_on(const sb_auth_t *a) { return a->tokens; }

/* Finds NAME=VALUE in a query string; returns 1 and sets *value, else 0. */
static int query_param(const sb_str_t *query, const char *name, sb_str_t *value)
{
    size_t nlen = strlen(name);
    const char *p = query->p, *end = query->p + query->len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            *value = (sb_str_t){p + nlen + 1, (size_t)(stop - p) - nlen - 1};
            return 1;
        }
        p = stop + 1;
    }
    return 0;
}

/* Finds the token: in ?token=, or in one Sec-WebSocket-Protocol entry; two different ones, or
 * two entries, are refused. Returns 1 with *token set, 0 when there is none, -1 when refused. */
static int find_token(const sb_http_request_t *req, sb_str_t *token)
{
    static const char prefix[] = SB_AUTH_SUBPROTOCOL_PREFIX;
    sb_str_t in_query = {NULL, 0}, in_header = {NULL, 0};
    int q = query_param(&req->query, "token", &in_query), h = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const sb_http_header_t *f = &req->headers[i];
        if (!sb_str_eq(&f->name, "sec-websocket-protocol", 1))
            continue;
        for (const char *p = f->value.p, *end = p + f->value.len; p < end;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end, *s = p;
            while (s < stop && (*s == ' ' || *s == '\t'))
                s++;
            const char *e = stop;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if ((size_t)(e - s) >= sizeof(prefix) - 1 &&
                strncmp(s, prefix, sizeof(prefix) - 1) == 0) {
                if (h++)
                    return -1;
                in_header =
                    (sb_str_t){s + sizeof(prefix) - 1, (size_t)(e - s) - (sizeof(prefix) - 1)};
            }
            p = stop + 1;
        }
    }
    if (q && h &&
        !(in_query.len == in_header.len && memcmp(in_query.p, in_header.p, in_query.len) == 0))
        return -1;
    *token = q ? in_query : in_header;
    return q || h;
}

/* Refuses: counted by reason and logged; the client learns only the status. */
static int refuse(uint64_t conn, const char *remote, int status, int reason, const char *why)
{
    sb_metrics.auth_refused[reason]++;
    sb_log_client(SB_LOG_INFO, conn, remote, "handshake refused (%d): %s: %s", status,
                  sb_auth_reason_names[reason], why);
    return status;
}

int sb_auth_check(const sb_auth_t *a, const sb_http_request_t *req, uint64_t conn,
                  const char *remote, sb_token_claims_t **claims)
{
    *claims = NULL;
    const sb_str_t *origin = sb_http_header(req, "origin");
    if (a->cfg->allow_origin[0] != '\0' && origin != NULL &&
        !sb_origin_allowed(a->cfg->allow_origin, origin->p, origin->len))
        return refuse(conn, remote, 403, 0, "this Origin is not allowed");
    if (!a->tokens)
        return 0;

    sb_str_t token;
    int found = find_token(req, &token);
    if (found < 0)
        return refuse(conn, remote, 401, 2, "more than one token");
    if (found == 0)
        return refuse(conn, remote, 401, 1, "no token");
    sb_token_claims_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return refuse(conn, remote, 401, 2, "out of memory");
    sb_token_check_t check = {
        .now = sb_clock_wall_us() / 1000000,
        .leeway = (int64_t)a->cfg->auth_leeway,
        .issuer = a->cfg->auth_issuer[0] ? a->cfg->auth_issuer : NULL,
        .audience = a->cfg->auth_audience[0] ? a->cfg->auth_audience : NULL,
    };
    const char *why = NULL;
    int rc = sb_token_verify(token.p, token.len, &a->keys, &check, c, &why);
    if (rc < 0) {
        free(c);
        return refuse(conn, remote, 401, rc >= -9 ? 1 - rc : 2, why);
    }
    sb_str_t id;
    if (query_param(&req->query, "id", &id) && !sb_str_eq(&id, c->sub, 0)) {
        sb_auth_claims_free(c);
        return refuse(conn, remote, 401, SB_AUTH_REASONS - 1, "?id= is not the token's sub");
    }
    *claims = c;
    return 0;
}

void sb_auth_claims_free(sb_token_claims_t *claims)
{
    if (claims == NULL)
        return;
    sb_token_claims_free(claims);
    free(claims);
}
