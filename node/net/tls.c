/* TLS for the node's listener: the server's keys (reloadable) and a transport that uses them.
 *
 * Each connection is a bufferevent_openssl over its socket, made from the context current when
 * it was accepted. A reload makes a whole new context and swaps it in: a context is reference
 * counted, so connections already open keep theirs until they end. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/log.h"
#include "base/metrics.h"

struct sb_tls {
    sb_transport_t transport; /* its ctx is this sb_tls_t */
    const char *cert, *key;
    SSL_CTX *ctx; /* the one new connections get */
};

/* TLS 1.2: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305, nothing else (no RSA key
 * exchange, no CBC, no SHA-1 MACs). TLS 1.3's suites are all AEAD. */
static const char ciphers_12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char ciphers_13[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/* The one application protocol served: HTTP/1.1 (WebSockets start as HTTP/1.1 requests). */
static const unsigned char alpn_http11[] = "\x08http/1.1";

/* How one connection's handshake went, kept with its SSL (ex_data) for the failure count. */
enum { HS_STARTED, HS_DONE, HS_FAILED };
typedef struct {
    int state;
    char peer[INET6_ADDRSTRLEN];
} handshake_t;

static int handshake_index = -1;

/* The oldest error OpenSSL queued (the cause; later ones say where it surfaced), then empties
 * the queue so that nothing stale is read later. */
static void ssl_reason(char *out, size_t len)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r != NULL)
        snprintf(out, len, "%s", r);
    else if (e != 0)
        snprintf(out, len, "OpenSSL error %lx", e);
    else
        snprintf(out, len, "unknown error");
    ERR_clear_error();
}

static void handshake_failed(handshake_t *h, const char *why)
{
    h->state = HS_FAILED;
    sb_metrics.tls_handshake_failures++;
    /* No connection ID yet: the client's address goes in the text. */
    sb_log_client(SB_LOG_DEBUG, 0, h->peer, "TLS handshake with %s failed: %s", h->peer, why);
}

/* OpenSSL's progress report: an alert sent or received before the handshake completed ends it
 * (a protocol version, cipher or ALPN the node does not serve; a client refusing the
 * certificate). */
static void on_info(const SSL *ssl, int where, int ret)
{
    handshake_t *h = SSL_get_ex_data(ssl, handshake_index);
    if (h == NULL || h->state != HS_STARTED)
        return;
    if (where & SSL_CB_HANDSHAKE_DONE) {
        h->state = HS_DONE;
    } else if (where & SSL_CB_ALERT) {
        char why[200];
        if (where & SSL_CB_WRITE) {
            unsigned long e = ERR_peek_last_error();
            const char *r = e ? ERR_reason_error_string(e) : NULL;
            snprintf(why, sizeof(why), "sent alert %s%s%s%s", SSL_alert_desc_string_long(ret),
                     r ? " (" : "", r ? r : "", r ? ")" : "");
        } else {
            snprintf(why, sizeof(why), "the client sent alert %s", SSL_alert_desc_string_long(ret));
        }
        handshake_failed(h, why);
    }
}

/* Runs as an SSL is freed (any SSL: h is NULL for those of other contexts). A connection that
 * sent something but ended before its handshake completed, without an alert (plain HTTP to the
 * TLS port, a client that gave up), failed too; one that sent nothing is not counted. */
static void free_handshake(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    handshake_t *h = ptr;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (h == NULL)
        return;
    if (h->state == HS_STARTED) {
        BIO *rbio = SSL_get_rbio(parent);
        if (rbio != NULL && BIO_number_read(rbio) > 0)
            handshake_failed(h, "the connection ended before the handshake completed");
    }
    free(h);
}

/* ALPN: http/1.1 or nothing. A client offering only other protocols gets the
 * no_application_protocol alert; one offering none is served HTTP/1.1 as usual. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *chosen = NULL;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&chosen, outlen, alpn_http11, sizeof(alpn_http11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* The certificate's subject and notAfter, for the log; returns notAfter in Unix time (0 when
 * unknown). */
static double describe(SSL_CTX *ctx, char *subject, size_t slen, char *expiry, size_t elen)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    struct tm tm;
    snprintf(subject, slen, "?");
    snprintf(expiry, elen, "?");
    if (x == NULL)
        return 0;
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem != NULL) {
        char *p = NULL;
        X509_NAME_print_ex(mem, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
        long n = BIO_get_mem_data(mem, &p);
        if (n > 0)
            snprintf(subject, slen, "%.*s", (int)n, p);
        BIO_free(mem);
    }
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
        return 0;
    strftime(expiry, elen, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return (double)timegm(&tm);
}

/* A server context with the certificate and key of the files, or NULL with err filled. */
static SSL_CTX *load(const char *cert, const char *key, char *err, size_t errlen)
{
    char why[200];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    ERR_clear_error();
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context: out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A client that leaves without close_notify is an ordinary end, not an error. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Many idle WebSockets: give their read and write buffers back between records. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, ciphers_12) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, ciphers_13) != 1) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen, "cannot set the TLS cipher suites: %s", why);
        goto fail;
    }
    /* Resumption: session tickets (OpenSSL's default, keys made per context) and the server's
     * session cache, for clients that do not take tickets. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"switchboard", 11);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    SSL_CTX_set_info_callback(ctx, on_info);

    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen, "cannot load the TLS certificate %s: %s", cert, why);
        goto fail;
    }
    /* OpenSSL checks the pair as it loads the key already: a mismatch is told apart. */
    int mismatch = 0;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        mismatch =
            ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
        if (!mismatch) {
            ssl_reason(why, sizeof(why));
            snprintf(err, errlen, "cannot load the TLS private key %s: %s", key, why);
            goto fail;
        }
    }
    if (mismatch || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "the TLS private key %s does not match the certificate %s", key,
                 cert);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void tls_close_write(struct bufferevent *bev);

static sb_stream_t *tls_open(const sb_transport_t *tr, sb_streams_t *streams, evutil_socket_t fd)
{
    sb_tls_t *t = tr->ctx;
    int one = 1;
    /* Signaling messages are small and latency matters more than packet count. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    handshake_t *h = calloc(1, sizeof(*h));
    SSL *ssl = h ? SSL_new(t->ctx) : NULL;
    if (ssl == NULL) {
        free(h);
        ERR_clear_error();
        evutil_closesocket(fd);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    snprintf(h->peer, sizeof(h->peer), "?");
    if (getpeername(fd, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, h->peer, sizeof(h->peer));
        else if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, h->peer, sizeof(h->peer));
    }
    SSL_set_ex_data(ssl, handshake_index, h); /* freed with the SSL from here on */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        sb_streams_base(streams), fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    /* On failure libevent may already have freed the SSL and closed fd, or not: a leak on this
     * out-of-memory path beats freeing or closing twice. */
    if (bev == NULL)
        return NULL;
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return sb_stream_bev_new(bev, tls_close_write);
}

/* close_notify, then the TCP half-close: the client reads every byte, then a clean end. */
static void tls_close_write(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl != NULL && SSL_is_init_finished(ssl))
        SSL_shutdown(ssl); /* writes close_notify; the client's comes back as the end of input */
    ERR_clear_error();
    shutdown(bufferevent_getfd(bev), SHUT_WR);
}

/* A TLS client cannot read a plaintext answer: closing is all there is to say. */
static void tls_refuse(const sb_transport_t *tr, evutil_socket_t fd, const char *answer, size_t len)
{
    (void)tr;
    (void)answer;
    (void)len;
    evutil_closesocket(fd);
}

sb_tls_t *sb_tls_new(const char *cert, const char *key, char *err, size_t errlen)
{
    char subject[256], expiry[32];
    if (handshake_index < 0)
        handshake_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_handshake);
    if (handshake_index < 0) {
        snprintf(err, errlen, "cannot set up TLS: out of memory");
        return NULL;
    }
    sb_tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->cert = cert;
    t->key = key;
    t->transport = (sb_transport_t){"tls", tls_open, tls_refuse, t};
    t->ctx = load(cert, key, err, errlen);
    if (t->ctx == NULL) {
        free(t);
        return NULL;
    }
    sb_metrics.tls_cert_expiry = describe(t->ctx, subject, sizeof(subject), expiry, sizeof(expiry));
    sb_log(SB_LOG_INFO, "TLS certificate %s: subject %s, expires %s", cert, subject, expiry);
    return t;
}

int sb_tls_reload(sb_tls_t *t)
{
    char err[512], subject[256], expiry[32];
    SSL_CTX *ctx = load(t->cert, t->key, err, sizeof(err));
    if (ctx == NULL) {
        sb_log(SB_LOG_ERROR, "TLS reload failed, keeping the current certificate: %s", err);
        return -1;
    }
    SSL_CTX_free(t->ctx); /* open connections hold references of their own */
    t->ctx = ctx;
    sb_metrics.tls_cert_expiry = describe(ctx, subject, sizeof(subject), expiry, sizeof(expiry));
    sb_log(SB_LOG_INFO, "TLS certificate reloaded from %s: subject %s, expires %s", t->cert,
           subject, expiry);
    return 0;
}

const sb_transport_t *sb_tls_transport(sb_tls_t *t) { return &t->transport; }

void sb_tls_free(sb_tls_t *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}
