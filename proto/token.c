/* JSON Web Tokens (RFC 7519) that authenticate peers: verification, claims and signing, no I/O. */
#include "token.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "json.h"
#include "str.h"

/* Times are clamped to +-1e15 s (some 31 million years), so that exp + leeway cannot overflow. */
#define TIME_LIMIT 1000000000000000LL
/* PEM text longer than this is refused before OpenSSL reads it. */
#define PEM_MAX (1 << 20)

static int fail(const char **err, int code, const char *why)
{
    if (err != NULL)
        *err = why;
    return code;
}

const char *sb_token_error_name(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case SB_TOKEN_EMALFORMED:
        return "malformed";
    case SB_TOKEN_ETOOLARGE:
        return "too-large";
    case SB_TOKEN_EALG:
        return "algorithm";
    case SB_TOKEN_ESIGNATURE:
        return "signature";
    case SB_TOKEN_EEXPIRED:
        return "expired";
    case SB_TOKEN_ENOTYET:
        return "not-yet-valid";
    case SB_TOKEN_EISSUER:
        return "issuer";
    case SB_TOKEN_EAUDIENCE:
        return "audience";
    case SB_TOKEN_ESUBJECT:
        return "subject";
    default:
        return "unknown";
    }
}

static const struct {
    sb_token_alg_t alg;
    const char *name;
} algs[] = {
    {SB_TOKEN_HS256, "HS256"},
    {SB_TOKEN_RS256, "RS256"},
    {SB_TOKEN_ES256, "ES256"},
    {SB_TOKEN_EDDSA, "EdDSA"},
};
#define NUM_ALGS (sizeof(algs) / sizeof(algs[0]))

const char *sb_token_alg_name(sb_token_alg_t alg)
{
    for (size_t i = 0; i < NUM_ALGS; i++)
        if (algs[i].alg == alg)
            return algs[i].name;
    return NULL;
}

int sb_token_key_alg(const EVP_PKEY *key)
{
    char group[64];
    size_t n = 0;

    if (key == NULL)
        return 0;
    if (EVP_PKEY_is_a(key, "RSA")) /* not RSA-PSS, whose keys are another type */
        return EVP_PKEY_get_bits(key) >= 2048 ? SB_TOKEN_RS256 : 0;
    if (EVP_PKEY_is_a(key, "ED25519"))
        return SB_TOKEN_EDDSA;
    if (EVP_PKEY_is_a(key, "EC")) {
        int ok;
        /* A key with explicit curve parameters has no group name, and is refused. */
        ERR_set_mark();
        ok = EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                            &n) == 1 &&
             (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0);
        ERR_pop_to_mark();
        return ok ? SB_TOKEN_ES256 : 0;
    }
    return 0;
}

static int has_secret(const sb_token_keys_t *keys)
{
    return keys->secret != NULL && keys->secret_len > 0 && keys->secret_len <= INT_MAX;
}

/* ---- base64url without padding (RFC 7515 section 2) ----------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes n characters into out (room for n / 4 * 3 + 2 bytes). Returns the decoded length, or
 * -1 for a character outside the alphabet ('=' included), a length that leaves one lone
 * character, or unused trailing bits that are not zero (so that each byte string has exactly one
 * encoding, and a token cannot be altered without changing its bytes' meaning). */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
    unsigned int acc = 0, bits = 0;
    size_t o = 0;

    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned int)v) & 0x3FFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

static size_t b64url_len(size_t n) { return n / 3 * 4 + (n % 3 != 0 ? n % 3 + 1 : 0); }

/* Writes b64url_len(n) characters, no NUL. */
static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    unsigned int acc = 0, bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8 | in[i]) & 0xFFFF;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = b64_alphabet[(acc >> bits) & 0x3F];
        }
    }
    if (bits > 0)
        *out++ = b64_alphabet[(acc << (6 - bits)) & 0x3F];
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static int is_string(const sb_str_t *v) { return v->len > 0 && v->p[0] == '"'; }
static int is_array(const sb_str_t *v) { return v->len > 0 && v->p[0] == '['; }
static int is_number(const sb_str_t *v)
{
    return v->len > 0 && (v->p[0] == '-' || (v->p[0] >= '0' && v->p[0] <= '9'));
}

/* Reads the text [buf, buf+len) as one JSON object and points values[i] at the value of its
 * member names[i] ({NULL, 0} when absent). Returns 0; -1 when the text is not one JSON object;
 * -2 when one of the named members appears twice (two values could be read two ways). */
static int read_object(const char *buf, size_t len, const char *const *names, size_t n,
                       sb_str_t *values)
{
    size_t pos = 0;

    memset(values, 0, n * sizeof(*values));
    sb_json_skip_ws(buf, len, &pos);
    if (pos >= len || buf[pos] != '{')
        return -1;
    pos++;
    sb_json_skip_ws(buf, len, &pos);
    if (pos < len && buf[pos] == '}') {
        pos++;
        goto end;
    }
    for (;;) {
        size_t kstart = pos, vstart;
        char key[8];
        if (pos >= len || buf[pos] != '"' || sb_json_skip_value(buf, len, &pos) != 0)
            return -1;
        sb_str_t klit = {buf + kstart, pos - kstart};
        /* -1 for longer keys, none of which is named; compared with its length below, so that a
         * decoded \u0000 cannot cut a key short */
        int klen = sb_json_decode_string(&klit, key, sizeof(key));
        sb_json_skip_ws(buf, len, &pos);
        if (pos >= len || buf[pos] != ':')
            return -1;
        pos++;
        sb_json_skip_ws(buf, len, &pos);
        vstart = pos;
        if (sb_json_skip_nested(buf, len, &pos, 1) != 0)
            return -1;
        for (size_t i = 0; klen >= 0 && i < n; i++) {
            if ((size_t)klen != strlen(names[i]) || memcmp(key, names[i], (size_t)klen) != 0)
                continue;
            if (values[i].p != NULL)
                return -2;
            values[i] = (sb_str_t){buf + vstart, pos - vstart};
        }
        sb_json_skip_ws(buf, len, &pos);
        if (pos >= len)
            return -1;
        if (buf[pos] == '}') {
            pos++;
            break;
        }
        if (buf[pos] != ',')
            return -1;
        pos++;
        sb_json_skip_ws(buf, len, &pos);
    }
end:
    sb_json_skip_ws(buf, len, &pos);
    return pos == len ? 0 : -1;
}

/* Steps through the elements of arr, a JSON array already checked whole: *pos starts at 0.
 * Returns 1 with *el set to the next element, or 0 past the last. */
static int next_element(const sb_str_t *arr, size_t *pos, sb_str_t *el)
{
    size_t p = *pos;
    if (p == 0) {
        p = 1; /* past '[' */
    } else {
        sb_json_skip_ws(arr->p, arr->len, &p);
        if (p < arr->len && arr->p[p] == ',')
            p++;
    }
    sb_json_skip_ws(arr->p, arr->len, &p);
    if (p >= arr->len || arr->p[p] == ']') {
        *pos = arr->len;
        return 0;
    }
    size_t start = p;
    if (sb_json_skip_nested(arr->p, arr->len, &p, 2) != 0) {
        *pos = arr->len; /* cannot happen: the array was checked */
        return 0;
    }
    *el = (sb_str_t){arr->p + start, p - start};
    *pos = p;
    return 1;
}

/* 1 when the JSON string literal v decodes to exactly want (case-insensitively if icase). */
static int string_is(const sb_str_t *v, const char *want, int icase)
{
    char buf[SB_TOKEN_MAX]; /* more than any string of a token decodes to */
    int n;
    if (!is_string(v))
        return 0;
    n = sb_json_decode_string(v, buf, sizeof(buf));
    sb_str_t s = {buf, n < 0 ? 0 : (size_t)n};
    return n >= 0 && sb_str_eq(&s, want, icase);
}

/* The JSON number literal v (already checked) in whole seconds, rounded down or up (so that a
 * fractional exp ends no later, and a fractional nbf starts no earlier, than it says), clamped to
 * +-TIME_LIMIT. Read digit by digit: no locale, no floating point, bounded by the literal. */
static int64_t read_time(const sb_str_t *v, int round_up)
{
    const char *p = v->p;
    size_t n = v->len, i = 0, int_start, int_len, frac_start, frac_len = 0;
    long exp10 = 0, point;
    int neg = 0, exp_neg = 0, frac = 0, big = 0;
    int64_t whole = 0;

    if (i < n && p[i] == '-')
        neg = 1, i++;
    int_start = i;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    int_len = i - int_start;
    frac_start = i;
    if (i < n && p[i] == '.') {
        frac_start = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        frac_len = i - frac_start;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            exp_neg = p[i++] == '-';
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
            if (exp10 < 100000)
                exp10 = exp10 * 10 + (p[i] - '0');
    }
    /* The digits, integer part then fraction, with the decimal point moved by the exponent. */
    size_t ndigits = int_len + frac_len;
    point = (long)int_len + (exp_neg ? -exp10 : exp10);
    for (long k = 0;; k++) {
        char d;
        if ((size_t)k < ndigits)
            d = (size_t)k < int_len ? p[int_start + (size_t)k]
                                    : p[frac_start + (size_t)k - int_len];
        else if (k < point && whole != 0 && !big)
            d = '0'; /* zeros the exponent adds */
        else
            break;
        if (k < point) {
            if (!big) {
                whole = whole * 10 + (d - '0');
                big = whole > TIME_LIMIT;
            }
        } else if (d != '0') {
            frac = 1;
        }
    }
    if (big)
        return neg ? -TIME_LIMIT : TIME_LIMIT;
    if (neg)
        return -whole - (frac && !round_up ? 1 : 0);
    return whole + (frac && round_up ? 1 : 0);
}

/* ---- signatures ----------------------------------------------------------------------------- */

static int verify_hmac(const sb_token_keys_t *keys, const char *msg, size_t n,
                       const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int ok;

    if (HMAC(EVP_sha256(), keys->secret, (int)keys->secret_len, (const unsigned char *)msg, n, mac,
             &mac_len) == NULL ||
        mac_len != 32)
        return -1;
    ok = siglen == 32 && CRYPTO_memcmp(mac, sig, 32) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok ? 0 : -1;
}

/* Verifies sig over msg with key for alg (RS256, ES256 or EdDSA). Returns 0 or -1. */
static int verify_pkey(EVP_PKEY *key, int alg, const char *msg, size_t n, const unsigned char *sig,
                       size_t siglen)
{
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char der[80], *dp = der;
    int rc = -1;

    if (alg == SB_TOKEN_ES256) {
        /* JWS carries r || s, 32 bytes each (RFC 7518 section 3.4); OpenSSL wants DER. */
        int dlen;
        if (siglen != 64)
            return -1;
        es = ECDSA_SIG_new();
        r = BN_bin2bn(sig, 32, NULL);
        s = BN_bin2bn(sig + 32, 32, NULL);
        if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
            goto done;
        r = s = NULL; /* es owns them now */
        dlen = i2d_ECDSA_SIG(es, NULL);
        if (dlen <= 0 || (size_t)dlen > sizeof(der) || i2d_ECDSA_SIG(es, &dp) != dlen)
            goto done;
        sig = der;
        siglen = (size_t)dlen;
    } else if (alg == SB_TOKEN_EDDSA) {
        if (siglen != 64)
            return -1;
    } else if (EVP_PKEY_get_size(key) <= 0 || siglen != (size_t)EVP_PKEY_get_size(key)) {
        return -1;
    }
    ctx = EVP_MD_CTX_new();
    /* Ed25519 hashes inside the algorithm: no digest, and one shot. */
    if (ctx == NULL || EVP_DigestVerifyInit(ctx, &pctx, alg == SB_TOKEN_EDDSA ? NULL : EVP_sha256(),
                                            NULL, key) != 1)
        goto done;
    if (alg == SB_TOKEN_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
        goto done;
    if (EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg, n) == 1)
        rc = 0;
done:
    EVP_MD_CTX_free(ctx);
    ECDSA_SIG_free(es);
    BN_free(r);
    BN_free(s);
    return rc;
}

/* ---- verification --------------------------------------------------------------------------- */

enum { H_ALG, H_TYP, H_CRIT, NUM_HEADER };
static const char *const header_names[NUM_HEADER] = {"alg", "typ", "crit"};

enum { C_EXP, C_NBF, C_SUB, C_ISS, C_AUD, C_ROOMS, NUM_CLAIMS };
static const char *const claim_names[NUM_CLAIMS] = {"exp", "nbf", "sub", "iss", "aud", "rooms"};

/* Reads the header and finds an algorithm that keys allow. */
static int read_header(const char *h, size_t n, const sb_token_keys_t *keys, sb_token_alg_t *alg,
                       const char **err)
{
    sb_str_t v[NUM_HEADER];
    char name[8];
    int rc = read_object(h, n, header_names, NUM_HEADER, v), k;

    if (rc == -2)
        return fail(err, SB_TOKEN_EMALFORMED, "a header parameter appears twice");
    if (rc != 0)
        return fail(err, SB_TOKEN_EMALFORMED, "the header is not a JSON object");
    /* Extensions we do not implement could change what the signature means (RFC 7515 4.1.11). */
    if (v[H_CRIT].p != NULL)
        return fail(err, SB_TOKEN_EMALFORMED,
                    "critical header parameters (crit) are not supported");
    if (v[H_TYP].p != NULL && !string_is(&v[H_TYP], "JWT", 1) &&
        !string_is(&v[H_TYP], "application/jwt", 1))
        return fail(err, SB_TOKEN_EMALFORMED, "the header's typ is not JWT");
    if (!is_string(&v[H_ALG]))
        return fail(err, SB_TOKEN_EMALFORMED, "the header has no alg string");
    k = sb_json_decode_string(&v[H_ALG], name, sizeof(name));
    *alg = 0;
    for (size_t i = 0; k >= 0 && i < NUM_ALGS; i++)
        if ((size_t)k == strlen(algs[i].name) && memcmp(name, algs[i].name, (size_t)k) == 0)
            *alg = algs[i].alg;
    if (k == 4 && memcmp(name, "none", 4) == 0)
        return fail(err, SB_TOKEN_EALG, "unsigned tokens (alg none) are refused");
    if (*alg == 0)
        return fail(err, SB_TOKEN_EALG, "unknown alg");
    /* The key decides the algorithm, never the token: an HS256 token is never checked with a
     * public key as its secret. */
    if (*alg == SB_TOKEN_HS256 ? !has_secret(keys)
                               : sb_token_key_alg(keys->public_key) != (int)*alg)
        return fail(err, SB_TOKEN_EALG, "no configured key is for this alg");
    return 0;
}

static int room_pattern_valid(const char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '*')
        return n == 1 || sb_room_valid(s, n - 1);
    return sb_room_valid(s, n);
}

/* Copies the entries of the rooms claim v into claims. */
static int read_rooms(const sb_str_t *v, sb_token_claims_t *claims, const char **err)
{
    static const char *const why = "rooms must be an array of room names, each optionally "
                                   "followed by '*'";
    size_t pos = 0, used = 0;
    sb_str_t el;

    if (!is_array(v))
        return fail(err, SB_TOKEN_EMALFORMED, why);
    claims->has_rooms = 1;
    /* Each entry decodes to no more bytes than its literal, whose quotes make room for its NUL. */
    claims->rooms = malloc(v->len);
    if (claims->rooms == NULL)
        return fail(err, SB_TOKEN_EMALFORMED, "out of memory");
    while (next_element(v, &pos, &el)) {
        char room[SB_ROOM_MAX + 2];
        int n = is_string(&el) ? sb_json_decode_string(&el, room, sizeof(room)) : -1;
        if (n < 0 || !room_pattern_valid(room, (size_t)n))
            return fail(err, SB_TOKEN_EMALFORMED, why);
        memcpy(claims->rooms + used, room, (size_t)n + 1);
        used += (size_t)n + 1;
        claims->nrooms++;
    }
    if (claims->nrooms == 0) {
        free(claims->rooms);
        claims->rooms = NULL;
    }
    return 0;
}

/* Checks the claims' types and reads rooms; then exp, nbf, iss, aud and sub, in that order. */
static int read_claims(const char *json, size_t n, const sb_token_check_t *check,
                       sb_token_claims_t *claims, const char **err)
{
    sb_str_t c[NUM_CLAIMS];
    int64_t leeway = check->leeway < 0            ? 0
                     : check->leeway > TIME_LIMIT ? TIME_LIMIT
                                                  : check->leeway;
    int rc = read_object(json, n, claim_names, NUM_CLAIMS, c);

    if (rc == -2)
        return fail(err, SB_TOKEN_EMALFORMED, "a claim appears twice");
    if (rc != 0)
        return fail(err, SB_TOKEN_EMALFORMED, "the payload is not a JSON object");
    if (c[C_EXP].p == NULL)
        return fail(err, SB_TOKEN_EMALFORMED, "the token has no exp claim");
    if (!is_number(&c[C_EXP]))
        return fail(err, SB_TOKEN_EMALFORMED, "exp must be a number");
    if (c[C_NBF].p != NULL && !is_number(&c[C_NBF]))
        return fail(err, SB_TOKEN_EMALFORMED, "nbf must be a number");
    if (c[C_ISS].p != NULL && !is_string(&c[C_ISS]))
        return fail(err, SB_TOKEN_EMALFORMED, "iss must be a string");
    if (c[C_AUD].p != NULL && !is_string(&c[C_AUD])) {
        size_t pos = 0;
        sb_str_t el;
        if (!is_array(&c[C_AUD]))
            return fail(err, SB_TOKEN_EMALFORMED, "aud must be a string or an array of strings");
        while (next_element(&c[C_AUD], &pos, &el))
            if (!is_string(&el))
                return fail(err, SB_TOKEN_EMALFORMED,
                            "aud must be a string or an array of strings");
    }
    if (c[C_ROOMS].p != NULL && (rc = read_rooms(&c[C_ROOMS], claims, err)) != 0)
        return rc;

    claims->exp = read_time(&c[C_EXP], 0);
    if (check->now >= claims->exp + leeway)
        return fail(err, SB_TOKEN_EEXPIRED, "the token has expired");
    if (c[C_NBF].p != NULL && check->now < read_time(&c[C_NBF], 1) - leeway)
        return fail(err, SB_TOKEN_ENOTYET, "the token is not valid yet (nbf)");
    if (check->issuer != NULL && !string_is(&c[C_ISS], check->issuer, 0))
        return fail(err, SB_TOKEN_EISSUER, "the token is not from the expected issuer (iss)");
    if (check->audience != NULL) {
        int found = string_is(&c[C_AUD], check->audience, 0);
        size_t pos = 0;
        sb_str_t el;
        if (is_array(&c[C_AUD]))
            while (!found && next_element(&c[C_AUD], &pos, &el))
                found = string_is(&el, check->audience, 0);
        if (!found)
            return fail(err, SB_TOKEN_EAUDIENCE, "the token is not for this audience (aud)");
    }
    if (c[C_SUB].p == NULL)
        return fail(err, SB_TOKEN_ESUBJECT, "the token has no subject (sub)");
    rc = is_string(&c[C_SUB]) ? sb_json_decode_string(&c[C_SUB], claims->sub, sizeof(claims->sub))
                              : -1;
    if (rc < 0 || !sb_peer_id_valid(claims->sub, (size_t)rc))
        return fail(err, SB_TOKEN_ESUBJECT,
                    "sub must be a peer ID: 1-64 characters of [A-Za-z0-9_.-]");
    return 0;
}
_Static_assert(SB_ID_MAX == 64, "the reason above says 64");

int sb_token_verify(const char *token, size_t len, const sb_token_keys_t *keys,
                    const sb_token_check_t *check, sb_token_claims_t *claims, const char **err)
{
    /* The three parts decoded one after another: together less than the token's length. */
    unsigned char buf[SB_TOKEN_MAX];
    const char *dot1, *dot2;
    long hn, pn, sn;
    sb_token_alg_t alg;
    int rc, ossl;

    memset(claims, 0, sizeof(*claims));
    if (len > SB_TOKEN_MAX)
        return fail(err, SB_TOKEN_ETOOLARGE, "the token is longer than 4096 bytes");
    if (keys == NULL || check == NULL)
        return fail(err, SB_TOKEN_EALG, "no keys to verify with");
    dot1 = len > 0 ? memchr(token, '.', len) : NULL;
    dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return fail(err, SB_TOKEN_EMALFORMED, "a token is three base64url parts joined by dots");
    hn = b64url_decode(token, (size_t)(dot1 - token), buf);
    pn = hn < 0 ? -1 : b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf + hn);
    sn = pn < 0 ? -1 : b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), buf + hn + pn);
    if (sn < 0)
        return fail(err, SB_TOKEN_EMALFORMED, "a part of the token is not unpadded base64url");

    rc = read_header((const char *)buf, (size_t)hn, keys, &alg, err);
    if (rc != 0)
        return rc;
    /* The signature covers the header and payload as sent, in base64url. */
    ERR_set_mark();
    ossl = alg == SB_TOKEN_HS256
               ? verify_hmac(keys, token, (size_t)(dot2 - token), buf + hn + pn, (size_t)sn)
               : verify_pkey(keys->public_key, alg, token, (size_t)(dot2 - token), buf + hn + pn,
                             (size_t)sn);
    ERR_pop_to_mark();
    if (ossl != 0)
        return fail(err, SB_TOKEN_ESIGNATURE, "the signature does not verify");

    /* Only now is the payload worth reading. */
    rc = read_claims((const char *)buf + hn, (size_t)pn, check, claims, err);
    if (rc != 0) {
        sb_token_claims_free(claims);
        return rc;
    }
    claims->alg = alg;
    return 0;
}

void sb_token_claims_free(sb_token_claims_t *claims)
{
    if (claims == NULL)
        return;
    free(claims->rooms);
    memset(claims, 0, sizeof(*claims));
}

int sb_token_room_allowed(const sb_token_claims_t *claims, const char *room, size_t len)
{
    const char *e = claims->rooms;

    if (!claims->has_rooms)
        return 1;
    for (size_t i = 0; i < claims->nrooms; i++) {
        size_t n = strlen(e);
        if (n > 0 && e[n - 1] == '*') {
            if (n == 1 || (len >= n - 1 && memcmp(room, e, n - 1) == 0))
                return 1;
        } else if (len == n && memcmp(room, e, n) == 0) {
            return 1;
        }
        e += n + 1;
    }
    return 0;
}

/* ---- keys and signing ----------------------------------------------------------------------- */

/* Encrypted PEM would otherwise make OpenSSL ask for a password on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

EVP_PKEY *sb_token_load_public_key(const char *pem, size_t len, const char **err)
{
    BIO *bio = NULL;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    const char *why = "no PEM public key (PUBLIC KEY) or certificate (CERTIFICATE) found";

    if (pem == NULL || len == 0 || len > PEM_MAX) {
        if (err != NULL)
            *err = "the PEM text is empty or longer than 1 MiB";
        return NULL;
    }
    ERR_set_mark();
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio != NULL)
        key = PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL);
    if (key == NULL) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem, (int)len);
        if (bio != NULL)
            cert = PEM_read_bio_X509(bio, NULL, no_password, NULL);
        if (cert != NULL)
            key = X509_get_pubkey(cert);
    }
    if (key != NULL && sb_token_key_alg(key) == 0) {
        why = "unsupported key: it must be RSA of at least 2048 bits, EC on P-256 or Ed25519";
        EVP_PKEY_free(key);
        key = NULL;
    }
    X509_free(cert);
    BIO_free(bio);
    ERR_pop_to_mark();
    if (key == NULL && err != NULL)
        *err = why;
    return key;
}

/* Signs msg with key for alg into sig (cap bytes), in JWS form. Returns its length or -1. */
static long sign_pkey(EVP_PKEY *key, int alg, const char *msg, size_t n, unsigned char *sig,
                      size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    ECDSA_SIG *es = NULL;
    unsigned char der[80];
    const unsigned char *dp = der;
    size_t len = alg == SB_TOKEN_ES256 ? sizeof(der) : cap;
    long rc = -1;

    if (ctx == NULL ||
        EVP_DigestSignInit(ctx, &pctx, alg == SB_TOKEN_EDDSA ? NULL : EVP_sha256(), NULL, key) != 1)
        goto done;
    if (alg == SB_TOKEN_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
        goto done;
    if (EVP_DigestSign(ctx, alg == SB_TOKEN_ES256 ? der : sig, &len, (const unsigned char *)msg,
                       n) != 1)
        goto done;
    if (alg == SB_TOKEN_ES256) {
        const BIGNUM *r, *s;
        es = d2i_ECDSA_SIG(NULL, &dp, (long)len);
        if (es == NULL || cap < 64)
            goto done;
        ECDSA_SIG_get0(es, &r, &s);
        if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
            goto done;
        len = 64;
    }
    rc = (long)len;
done:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(ctx);
    return rc;
}

int sb_token_sign(const char *payload_json, const unsigned char *secret, size_t secret_len,
                  EVP_PKEY *private_key, char *out, size_t cap, const char **err)
{
    unsigned char sig[SB_TOKEN_MAX];
    char header[48];
    size_t plen = strlen(payload_json), pos = 0, hlen, ilen, siglen, total;
    sb_token_keys_t keys = {secret, secret_len, NULL};
    int alg, hn;
    long sn;

    sb_json_skip_ws(payload_json, plen, &pos);
    if (pos >= plen || payload_json[pos] != '{' ||
        sb_json_skip_value(payload_json, plen, &pos) != 0)
        return fail(err, SB_TOKEN_EMALFORMED, "the payload is not a JSON object");
    sb_json_skip_ws(payload_json, plen, &pos);
    if (pos != plen)
        return fail(err, SB_TOKEN_EMALFORMED, "the payload is not a JSON object");
    alg = private_key != NULL ? sb_token_key_alg(private_key)
          : has_secret(&keys) ? SB_TOKEN_HS256
                              : 0;
    if (alg == 0)
        return fail(err, SB_TOKEN_EALG,
                    "signing needs a secret, or an RSA (2048+ bits), P-256 or Ed25519 key");
    hn = snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
                  sb_token_alg_name((sb_token_alg_t)alg));
    if (hn < 0 || (size_t)hn >= sizeof(header))
        return fail(err, SB_TOKEN_EALG, "unknown alg");
    hlen = (size_t)hn;
    siglen = alg == SB_TOKEN_HS256 ? 32
             : alg == SB_TOKEN_RS256 && EVP_PKEY_get_size(private_key) > 0
                 ? (size_t)EVP_PKEY_get_size(private_key)
                 : 64;
    if (plen > SB_TOKEN_MAX || siglen > sizeof(sig))
        return fail(err, SB_TOKEN_ETOOLARGE, "the token would be longer than 4096 bytes");
    ilen = b64url_len(hlen) + 1 + b64url_len(plen);
    total = ilen + 1 + b64url_len(siglen);
    if (total > SB_TOKEN_MAX)
        return fail(err, SB_TOKEN_ETOOLARGE, "the token would be longer than 4096 bytes");
    if (total >= cap)
        return fail(err, SB_TOKEN_ETOOLARGE, "the token does not fit the buffer");

    b64url_encode((const unsigned char *)header, hlen, out);
    out[b64url_len(hlen)] = '.';
    b64url_encode((const unsigned char *)payload_json, plen, out + b64url_len(hlen) + 1);
    ERR_set_mark();
    if (alg == SB_TOKEN_HS256) {
        unsigned int mac_len = 0;
        sn = HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)out, ilen, sig,
                  &mac_len) != NULL &&
                     mac_len == 32
                 ? 32
                 : -1;
    } else {
        sn = sign_pkey(private_key, alg, out, ilen, sig, sizeof(sig));
    }
    ERR_pop_to_mark();
    if (sn < 0 || (size_t)sn != siglen) {
        OPENSSL_cleanse(sig, sizeof(sig));
        out[0] = '\0';
        return fail(err, SB_TOKEN_ESIGNATURE, "signing failed");
    }
    out[ilen] = '.';
    b64url_encode(sig, siglen, out + ilen + 1);
    out[total] = '\0';
    return (int)total;
}
