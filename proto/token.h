/* JSON Web Tokens (RFC 7519) that authenticate peers: verification, claims and signing, no I/O. */
#ifndef SB_TOKEN_H
#define SB_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "names.h"

/* The longest token accepted, in bytes. */
#define SB_TOKEN_MAX 4096

/* The signature algorithms (RFC 7518, RFC 8037), as bits so that sets of them fit an int. */
typedef enum {
    SB_TOKEN_HS256 = 1, /* HMAC-SHA256 with a shared secret */
    SB_TOKEN_RS256 = 2, /* RSASSA-PKCS1-v1_5 with SHA-256, RSA keys of 2048 bits or more */
    SB_TOKEN_ES256 = 4, /* ECDSA on P-256 with SHA-256 */
    SB_TOKEN_EDDSA = 8  /* Ed25519 */
} sb_token_alg_t;

/* Error codes: what sb_token_verify and sb_token_sign return; *err says more. */
enum {
    SB_TOKEN_EMALFORMED = -1, /* not three base64url parts, bad base64url, bad JSON, a bad header,
                                 missing or ill-typed claims */
    SB_TOKEN_ETOOLARGE = -2,  /* longer than SB_TOKEN_MAX (signing: or than the buffer) */
    SB_TOKEN_EALG = -3,       /* alg "none", an unknown alg, or one no configured key allows */
    SB_TOKEN_ESIGNATURE = -4, /* the signature does not verify (signing: OpenSSL failed) */
    SB_TOKEN_EEXPIRED = -5,   /* exp has passed, beyond the leeway */
    SB_TOKEN_ENOTYET = -6,    /* nbf is in the future, beyond the leeway */
    SB_TOKEN_EISSUER = -7,    /* iss is not the configured issuer */
    SB_TOKEN_EAUDIENCE = -8,  /* aud does not hold the configured audience */
    SB_TOKEN_ESUBJECT = -9,   /* sub missing, not a string, or not a valid peer ID */
};

/* A short stable label for code, for metrics and logs: "malformed", "too-large", "algorithm",
 * "signature", "expired", "not-yet-valid", "issuer", "audience", "subject"; "ok" for 0 and
 * "unknown" for anything else. */
const char *sb_token_error_name(int code);

/* The alg header value of alg ("HS256", "RS256", "ES256", "EdDSA"), or NULL if unknown. */
const char *sb_token_alg_name(sb_token_alg_t alg);

/* The algorithm a key (public or private) signs with: SB_TOKEN_RS256 for RSA of at least 2048
 * bits, SB_TOKEN_ES256 for EC on the named curve P-256, SB_TOKEN_EDDSA for Ed25519; 0 for any
 * other key (RSA-PSS, smaller RSA, other curves, NULL). */
int sb_token_key_alg(const EVP_PKEY *key);

/* The keys tokens are verified with; the caller owns them and keeps them while verifying. */
typedef struct {
    const unsigned char *secret; /* HS256 secret; NULL or secret_len 0: HS256 is refused */
    size_t secret_len;
    EVP_PKEY *public_key; /* NULL for none; its type (sb_token_key_alg) is the one asymmetric
                             alg accepted */
} sb_token_keys_t;

/* Loads a public key from PEM text (len bytes): the first "PUBLIC KEY" (SubjectPublicKeyInfo)
 * block, or failing that the first "CERTIFICATE" block, whose key is used as is (the
 * certificate's dates and issuer are not checked). The key must be one sb_token_key_alg accepts.
 * Returns the key, which the caller frees with EVP_PKEY_free, or NULL with *err set. */
EVP_PKEY *sb_token_load_public_key(const char *pem, size_t len, const char **err);

/* What the claims are checked against. */
typedef struct {
    int64_t now;          /* unix seconds */
    int64_t leeway;       /* seconds of clock skew tolerated for exp and nbf (negative: 0) */
    const char *issuer;   /* iss must equal this; NULL: not checked */
    const char *audience; /* aud (a string or an array of strings) must hold this; NULL: not
                             checked */
} sb_token_check_t;

/* What a verified token says. */
typedef struct {
    char sub[SB_ID_MAX + 1]; /* the peer ID, NUL-terminated */
    int64_t exp;             /* unix seconds, rounded down (and clamped to +-1e15) */
    sb_token_alg_t alg;      /* the algorithm that verified it */
    int has_rooms; /* the token had a "rooms" claim: only the rooms it allows may be joined */
    char *rooms;   /* its entries, each NUL-terminated, one after another (malloc'ed; NULL when
                      there are none) */
    size_t nrooms;
} sb_token_claims_t;

/* Verifies a compact JWS (header.payload.signature, len bytes) and then its claims:
 *  - the header is a JSON object whose "alg" is a string naming an algorithm a key in keys
 *    allows ("none" never); "typ", if present, is "JWT" or "application/jwt" in any case
 *    (RFC 7515 4.1.9); "crit" is refused; each of these appears at most once;
 *  - only then is the payload read: a JSON object where "exp" (required) and "nbf" (optional)
 *    are numbers, "iss" a string, "aud" a string or an array of strings, "sub" a valid peer ID,
 *    "rooms" (optional) an array of strings each a room name, "*" or a room name followed by
 *    "*". These members may appear once each; others are ignored, and so is "iat";
 *  - the token has expired when now >= exp + leeway (exp rounded down), and is not yet valid
 *    when now < nbf - leeway (nbf rounded up).
 * Returns 0 and fills claims (not NULL), which the caller releases with sb_token_claims_free; or
 * a negative SB_TOKEN_E* code, with claims zeroed (nothing to release) and *err (when err is not
 * NULL) set to a static reason. keys or check NULL: SB_TOKEN_EALG.
 * Checks are made in the order of the codes after the signature: expired, not yet valid,
 * issuer, audience, subject. */
int sb_token_verify(const char *token, size_t len, const sb_token_keys_t *keys,
                    const sb_token_check_t *check, sb_token_claims_t *claims, const char **err);

/* Frees what claims holds and zeroes it; claims may be NULL. */
void sb_token_claims_free(sb_token_claims_t *claims);

/* 1 when room (len bytes) may be joined under claims: always when !has_rooms; otherwise when an
 * entry equals it, or an entry ends in '*' and room starts with what comes before it ("*" alone
 * allows every room). 0 otherwise. */
int sb_token_room_allowed(const sb_token_claims_t *claims, const char *room, size_t len);

/* Signs payload_json (NUL-terminated text of one JSON object; its claims are not checked) as a
 * compact JWS with the header {"alg":...,"typ":"JWT"}: with private_key when it is not NULL
 * (RS256, ES256 or EdDSA by sb_token_key_alg), else with HMAC-SHA256 and secret (secret_len > 0).
 * Writes the token, NUL-terminated, into out (cap bytes). Returns its length, or
 * SB_TOKEN_EMALFORMED (payload not one JSON object), SB_TOKEN_EALG (no usable key),
 * SB_TOKEN_ETOOLARGE (longer than SB_TOKEN_MAX or cap - 1) or SB_TOKEN_ESIGNATURE (signing
 * failed), with *err set. For the operators' token helper and for tests. */
int sb_token_sign(const char *payload_json, const unsigned char *secret, size_t secret_len,
                  EVP_PKEY *private_key, char *out, size_t cap, const char **err);

#endif
