/* The WebSocket opening handshake, server side (RFC 6455 section 4.2), no I/O. */
#include "handshake.h"

#include <string.h>

#include <openssl/evp.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* A Sec-WebSocket-Key must be the base64 encoding of 16 bytes: 22 characters, then "==". */
static int key_valid(const sb_str_t *key)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (key->len != 24 || key->p[22] != '=' || key->p[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (key->p[i] == '\0' || strchr(alphabet, key->p[i]) == NULL)
            return 0;
    return 1;
}

static int reject(sb_ws_handshake_t *hs, int status, const char *reason)
{
    hs->status = status;
    hs->reason = reason;
    return status;
}

int sb_ws_handshake_check(const sb_http_request_t *req, sb_ws_handshake_t *hs)
{
    memset(hs, 0, sizeof(*hs));
    if (!sb_str_eq(&req->method, "GET", 0))
        return reject(hs, 405, "a WebSocket upgrade must use GET");
    if (req->minor < 1)
        return reject(hs, 400, "a WebSocket upgrade needs HTTP/1.1");

    const char *why;
    if (sb_http_check_host(req, &why) != 0)
        return reject(hs, 400, why);

    int offered = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const sb_http_header_t *h = &req->headers[i];
        if (sb_str_eq(&h->name, "Sec-WebSocket-Protocol", 1) &&
            sb_http_has_exact_token(&h->value, SB_WS_SUBPROTOCOL))
            offered = 1;
    }
    if (!sb_http_has_token(sb_http_header(req, "Upgrade"), "websocket"))
        return reject(hs, 400, "missing Upgrade: websocket");
    if (!sb_http_has_token(sb_http_header(req, "Connection"), "upgrade"))
        return reject(hs, 400, "missing Connection: upgrade");

    const sb_str_t *version = sb_http_header(req, "Sec-WebSocket-Version");
    if (version == NULL || !sb_str_eq(version, "13", 0))
        return reject(hs, 426, "only WebSocket version 13 is supported");

    const sb_str_t *key = sb_http_header(req, "Sec-WebSocket-Key");
    if (key == NULL || !key_valid(key))
        return reject(hs, 400, "Sec-WebSocket-Key must be 16 bytes in base64");

    sb_ws_accept_key(key->p, key->len, hs->accept);
    hs->subprotocol = offered;
    hs->status = 101;
    return 101;
}

void sb_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    /* Only an allocation failure can make these fail; the key then matches nothing. */
    out[0] = '\0';
    if (ctx == NULL)
        return;
    if (EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 && EVP_DigestUpdate(ctx, key, key_len) == 1 &&
        EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) == 1 &&
        EVP_DigestFinal_ex(ctx, digest, &dlen) == 1 && dlen == 20)
        EVP_EncodeBlock((unsigned char *)out, digest, 20);
    EVP_MD_CTX_free(ctx);
}
