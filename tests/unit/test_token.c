/* Unit tests for proto/token: JSON Web Tokens, against vectors made independently of it. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "helpers.h"
#include "token.h"

#define SECRET "switchboard-test-secret-0123456789"
#define NOW 1700000000

/* Keys made once for the whole suite (RSA generation is slow). */
static EVP_PKEY *rsa_key, *ec_key, *ed_key;

/* ---- vectors computed elsewhere ------------------------------------------------------------ */

/* RFC 7515 appendix A.1: HS256, its key, and a payload with exp 1300819380 and no sub. */
static const unsigned char rfc7515_key[64] = {
    0x03, 0x23, 0x35, 0x4b, 0x2b, 0x0f, 0xa5, 0xbc, 0x83, 0x7e, 0x06, 0x65, 0x77, 0x7b, 0xa6, 0x8f,
    0x5a, 0xb3, 0x28, 0xe6, 0xf0, 0x54, 0xc9, 0x28, 0xa9, 0x0f, 0x84, 0xb2, 0xd2, 0x50, 0x2e, 0xbf,
    0xd3, 0xfb, 0x5a, 0x92, 0xd2, 0x06, 0x47, 0xef, 0x96, 0x8a, 0xb4, 0xc3, 0x77, 0x62, 0x3d, 0x22,
    0x3d, 0x2e, 0x21, 0x72, 0x05, 0x2e, 0x4f, 0x08, 0xc0, 0xcd, 0x9a, 0xf5, 0x67, 0xd0, 0x80, 0xa3};
static const char rfc7515_token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                                    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leG"
                                    "FtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
                                    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/* RFC 8037 appendix A.4: EdDSA (Ed25519) over the payload "Example of Ed25519 signing", which is
 * not JSON: a token whose signature holds but whose payload is malformed. */
static const unsigned char rfc8037_public[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a};
static const char rfc8037_token[] =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/* Made with Python's hmac and the cryptography package (keys generated there), over
 * {"sub":"alice","exp":4102444800,"iss":"https://issuer.example","aud":["other","switchboard"],
 *  "rooms":["lobby","team-*"]} with the header {"alg":"...","typ":"JWT"}. */
#define KNOWN_PAYLOAD                                                                              \
    "{\"sub\":\"alice\",\"exp\":4102444800,\"iss\":\"https://issuer.example\",\"aud\":[\"other\"," \
    "\"switchboard\"],\"rooms\":[\"lobby\",\"team-*\"]}"
#define KNOWN_CLAIMS                                                                               \
    "eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMCwiaXNzIjoiaHR0cHM6Ly9pc3N1ZXIuZXhhbXBsZSIsImF1ZCI6" \
    "WyJvdGhlciIsInN3aXRjaGJvYXJkIl0sInJvb21zIjpbImxvYmJ5IiwidGVhbS0qIl19"
static const char known_hs256[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." KNOWN_CLAIMS
                                  ".mY9_eoXHOzxuDtW2AyrFb5x5qR7-zCW7etg48UexETs";
static const char known_rs256[] =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." KNOWN_CLAIMS
    ".HHkrao1KFXsP4fGzlVphgz_xOiOAq_GpibAtNovNI61Ul6Yof9RzCluPMv-2FllwGWlczQxOw0MMJNK_5vW2YWBG_"
    "bvZaq20DU7xFLU1U2MTO0-Yw1n6H0r0WgWwZR5rzwvH8dnWeraeAe7b6rk_Aj7uH3JFYJzEhVpouNXOHWyli6dmqUmTny"
    "yOzQu8a2QxVQljVoMcmykZenKv77-oyhvGVxgzpWiHSp3PUESNKEt7oqvLlfQAubcfmgIE-"
    "hd33AIccUim17ieE2TiM3BkqX9e0m6fg5480WDzYmaF7-kPGQVYosQ6oXcGnH7eVngTcpikVFpMXIBV1SQysZi1tQ";
static const char known_rs256_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtTYkZ3ESAb3GEstY7IYs\n"
    "/HFmYyKxwTczuEduiYz4Vujk+GDWYidIGAhKkGas6obsJtoPvDLOyKQqIUrO6+6z\n"
    "sUIhAT/eH7exSmPEe5qJp7jH2HdDQ6sEvlFjznZ6uxXpywRvz8+is1IlPwYO+QK5\n"
    "HRdCGgQqjGV6fB9zerS+72f7GAH3BjzuURxqvnO+64wlsRjBmbbEfjlGfHDXNXO0\n"
    "icO6jqQXVFmM9TP7mtwDLi2mxZrC9eFgJbCcSxeOTBo/wowm6I909GrdasN9bjoS\n"
    "6r6JzZHv0JZzPBgPqHZlfkNqsvMu4d/SHZ41kHn5Wnz2J53cxyM3DnDEGXWtaTdx\n"
    "7QIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
static const char known_es256[] = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9." KNOWN_CLAIMS
                                  ".maJkMaBY0oayboM9Wk9yXq2mkACqcjbpdGmU_Y7p-"
                                  "Z5Ll3FUrYaq71Eq-8IdzLCiAHQ2qdOEtz8BGmo8Qc5zBw";
static const char known_es256_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMlhT0NzULY/EgYntCiia7eI2xywE\n"
    "cHrajYLGYjCeQxANCNiP5uQSsSL4WE691AhCDS0y238IO6OAXX8dMbu6rQ==\n"
    "-----END PUBLIC KEY-----\n";
static const char known_eddsa[] =
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9." KNOWN_CLAIMS
    ".RqA-vpyDIVp6-aarAcAyZQmQTToNPGRgdHrlR63EUEY71QCTPPcZDl2tXTzhQqAS"
    "ASb1UX926n6mNU2pPkqODg";
static const char known_eddsa_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAbCBltgSA5FcJOWHSExeUN7m+r8w9s21wz/TSjcEsZo8=\n"
    "-----END PUBLIC KEY-----\n";

/* ---- helpers ------------------------------------------------------------------------------- */

/* base64url of n bytes by way of OpenSSL's base64, with the alphabet swapped and '=' dropped. */
static void b64url(const void *in, size_t n, char *out)
{
    int k = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (k > 0 && out[k - 1] == '=')
        k--;
    out[k] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
}

/* header.payload.signature, with HMAC-SHA256 under SECRET computed here rather than by
 * sb_token_sign, so that any header can be made. The result lives until the next call. */
static const char *hs(const char *header, const char *payload)
{
    static char out[16384];
    unsigned char mac[32];
    unsigned int mac_len = 0;
    size_t n;

    b64url(header, strlen(header), out);
    n = strlen(out);
    out[n++] = '.';
    b64url(payload, strlen(payload), out + n);
    n = strlen(out);
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET),
                               (const unsigned char *)out, n, mac, &mac_len));
    out[n++] = '.';
    b64url(mac, mac_len, out + n);
    return out;
}

#define HS_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const sb_token_keys_t hs_keys = {(const unsigned char *)SECRET, sizeof(SECRET) - 1, NULL};
static const sb_token_check_t base_check = {NOW, 0, NULL, NULL};

/* Verifies tok (NUL-terminated) and checks what every call must: a reason exactly on failure, a
 * zeroed claims then, and the same answer with err NULL. Releases the claims unless out. */
static int vfy(const char *tok, const sb_token_keys_t *keys, const sb_token_check_t *check,
               sb_token_claims_t *out)
{
    sb_token_claims_t claims, again;
    const char *err = NULL;
    int rc = sb_token_verify(tok, strlen(tok), keys, check, &claims, &err);

    if (rc == 0) {
        ck_assert_ptr_null(err);
    } else {
        static const sb_token_claims_t zero;
        ck_assert_msg(err != NULL && err[0] != '\0', "no reason for %d", rc);
        ck_assert_msg(memcmp(&claims, &zero, sizeof(zero)) == 0, "claims not zeroed");
        ck_assert_str_ne(sb_token_error_name(rc), "unknown");
    }
    ck_assert_int_eq(sb_token_verify(tok, strlen(tok), keys, check, &again, NULL), rc);
    sb_token_claims_free(&again);
    if (out != NULL)
        *out = claims;
    else
        sb_token_claims_free(&claims);
    return rc;
}

/* An HS256 token under SECRET of payload, verified against base_check. */
static int vfy_payload(const char *payload)
{
    return vfy(hs(HS_HEADER, payload), &hs_keys, &base_check, NULL);
}

static EVP_PKEY *public_of(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    const char *err = NULL;
    ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, key), 1);
    long n = BIO_get_mem_data(bio, &pem);
    EVP_PKEY *pub = sb_token_load_public_key(pem, (size_t)n, &err);
    ck_assert_msg(pub != NULL, "%s", err);
    BIO_free(bio);
    return pub;
}

static EVP_PKEY *load(const char *pem)
{
    const char *err = NULL;
    EVP_PKEY *key = sb_token_load_public_key(pem, strlen(pem), &err);
    ck_assert_msg(key != NULL, "%s", err);
    return key;
}

/* Replaces the character at i by another of the base64url alphabet. */
static void flip(char *tok, size_t i) { tok[i] = tok[i] == 'A' ? 'B' : 'A'; }

/* ---- tests --------------------------------------------------------------------------------- */

/* RFC 7515 A.1: the signature holds (so the token reaches its claims: no sub), until exp. */
START_TEST(test_rfc7515_hs256)
{
    sb_token_keys_t keys = {rfc7515_key, sizeof(rfc7515_key), NULL};
    sb_token_check_t check = {1300819379, 0, NULL, NULL};
    char tok[sizeof(rfc7515_token)];

    ck_assert_int_eq(vfy(rfc7515_token, &keys, &check, NULL), SB_TOKEN_ESUBJECT);
    check.issuer = "joe";
    ck_assert_int_eq(vfy(rfc7515_token, &keys, &check, NULL), SB_TOKEN_ESUBJECT);
    check.issuer = "joe2";
    ck_assert_int_eq(vfy(rfc7515_token, &keys, &check, NULL), SB_TOKEN_EISSUER);
    check.issuer = NULL;
    check.now = 1300819380;
    ck_assert_int_eq(vfy(rfc7515_token, &keys, &check, NULL), SB_TOKEN_EEXPIRED);
    check.leeway = 1;
    ck_assert_int_eq(vfy(rfc7515_token, &keys, &check, NULL), SB_TOKEN_ESUBJECT);

    memcpy(tok, rfc7515_token, sizeof(tok));
    flip(tok, sizeof(tok) - 10);
    ck_assert_int_eq(vfy(tok, &keys, &check, NULL), SB_TOKEN_ESIGNATURE);
    keys.secret_len--;
    ck_assert_int_eq(vfy(rfc7515_token, &keys, &check, NULL), SB_TOKEN_ESIGNATURE);
}
END_TEST

/* RFC 8037 A.4: the Ed25519 signature holds, so the payload is read, and it is not JSON. */
START_TEST(test_rfc8037_eddsa)
{
    EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, rfc8037_public, 32);
    sb_token_keys_t keys = {NULL, 0, pub};
    char tok[sizeof(rfc8037_token)];

    ck_assert_ptr_nonnull(pub);
    ck_assert_int_eq(sb_token_key_alg(pub), SB_TOKEN_EDDSA);
    ck_assert_int_eq(vfy(rfc8037_token, &keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    memcpy(tok, rfc8037_token, sizeof(tok));
    flip(tok, sizeof(tok) - 20);
    ck_assert_int_eq(vfy(tok, &keys, &base_check, NULL), SB_TOKEN_ESIGNATURE);
    memcpy(tok, rfc8037_token, sizeof(tok));
    flip(tok, 25); /* in the payload */
    ck_assert_int_eq(vfy(tok, &keys, &base_check, NULL), SB_TOKEN_ESIGNATURE);
    EVP_PKEY_free(pub);
}
END_TEST

static void check_known_claims(const sb_token_claims_t *c, sb_token_alg_t alg)
{
    ck_assert_str_eq(c->sub, "alice");
    ck_assert_int_eq(c->exp, 4102444800LL);
    ck_assert_int_eq(c->alg, alg);
    ck_assert_int_eq(c->has_rooms, 1);
    ck_assert_uint_eq(c->nrooms, 2);
    ck_assert_int_eq(memcmp(c->rooms, "lobby\0team-*", 13), 0);
}

/* Tokens made by Python verify, with every check configured; sb_token_sign makes the same HS256
 * token byte for byte (the same header, and HMAC is deterministic). */
START_TEST(test_known_tokens)
{
    static const struct {
        const char *token, *pem;
        sb_token_alg_t alg;
    } cases[] = {
        {known_hs256, NULL, SB_TOKEN_HS256},
        {known_rs256, known_rs256_pem, SB_TOKEN_RS256},
        {known_es256, known_es256_pem, SB_TOKEN_ES256},
        {known_eddsa, known_eddsa_pem, SB_TOKEN_EDDSA},
    };
    sb_token_check_t check = {NOW, 0, "https://issuer.example", "switchboard"};

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        sb_token_keys_t keys = hs_keys;
        sb_token_claims_t claims;
        char tok[1024];

        if (cases[i].pem != NULL) {
            keys = (sb_token_keys_t){NULL, 0, load(cases[i].pem)};
            ck_assert_int_eq(sb_token_key_alg(keys.public_key), cases[i].alg);
        }
        ck_assert_int_eq(vfy(cases[i].token, &keys, &check, &claims), 0);
        check_known_claims(&claims, cases[i].alg);
        sb_token_claims_free(&claims);
        ck_assert_ptr_null(claims.rooms);

        /* one character changed in the signature, then in the payload */
        ck_assert_uint_lt(strlen(cases[i].token), sizeof(tok));
        strcpy(tok, cases[i].token);
        flip(tok, strlen(tok) - 12);
        ck_assert_int_eq(vfy(tok, &keys, &check, NULL), SB_TOKEN_ESIGNATURE);
        strcpy(tok, cases[i].token);
        flip(tok, 60);
        ck_assert_int_eq(vfy(tok, &keys, &check, NULL), SB_TOKEN_ESIGNATURE);
        EVP_PKEY_free(keys.public_key);
    }

    char out[1024];
    const char *err = NULL;
    int n = sb_token_sign(KNOWN_PAYLOAD, (const unsigned char *)SECRET, strlen(SECRET), NULL, out,
                          sizeof(out), &err);
    ck_assert_int_eq(n, (int)strlen(known_hs256));
    ck_assert_str_eq(out, known_hs256);
}
END_TEST

/* Each key type signs with sb_token_sign and verifies through its PEM public key; a changed
 * byte anywhere, or another key of the same type, fails. */
START_TEST(test_sign_verify_asymmetric)
{
    EVP_PKEY *keys_[] = {rsa_key, ec_key, ed_key};
    const sb_token_alg_t want[] = {SB_TOKEN_RS256, SB_TOKEN_ES256, SB_TOKEN_EDDSA};
    const char *payload = "{\"sub\":\"bob\",\"exp\":1700000100,\"rooms\":[]}";

    for (size_t i = 0; i < N_ELEMS(keys_); i++) {
        char tok[2048];
        const char *err = NULL;
        sb_token_claims_t claims;
        int n = sb_token_sign(payload, NULL, 0, keys_[i], tok, sizeof(tok), &err);
        ck_assert_msg(n > 0, "%s", err);
        ck_assert_uint_eq(strlen(tok), (size_t)n);

        sb_token_keys_t keys = {(const unsigned char *)SECRET, strlen(SECRET), public_of(keys_[i])};
        ck_assert_int_eq(vfy(tok, &keys, &base_check, &claims), 0);
        ck_assert_str_eq(claims.sub, "bob");
        ck_assert_int_eq(claims.alg, want[i]);
        ck_assert_int_eq(claims.has_rooms, 1);
        ck_assert_uint_eq(claims.nrooms, 0);
        ck_assert_ptr_null(claims.rooms);
        ck_assert_int_eq(sb_token_room_allowed(&claims, "lobby", 5), 0);
        sb_token_claims_free(&claims);
        /* the private key verifies as well */
        sb_token_keys_t priv = {NULL, 0, keys_[i]};
        ck_assert_int_eq(vfy(tok, &priv, &base_check, NULL), 0);

        /* every character of the header, payload and signature matters */
        for (size_t k = 0; k < (size_t)n; k++) {
            char saved = tok[k];
            if (saved == '.')
                continue;
            flip(tok, k);
            int rc = vfy(tok, &keys, &base_check, NULL);
            ck_assert_msg(rc == SB_TOKEN_ESIGNATURE || rc == SB_TOKEN_EMALFORMED ||
                              rc == SB_TOKEN_EALG,
                          "byte %zu of %s: %d", k, tok, rc);
            tok[k] = saved;
        }
        /* a different key of the same type */
        EVP_PKEY *other = i == 0   ? NULL
                          : i == 1 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                                   : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        if (other != NULL) {
            sb_token_keys_t wrong = {NULL, 0, other};
            ck_assert_int_eq(vfy(tok, &wrong, &base_check, NULL), SB_TOKEN_ESIGNATURE);
            EVP_PKEY_free(other);
        }
        EVP_PKEY_free(keys.public_key);
    }
}
END_TEST

/* The algorithm comes from the configured keys: alg none, unknown algs, HS256 with a public
 * key's bytes as its secret, and an asymmetric alg of another key type are all refused. */
START_TEST(test_algorithm)
{
    EVP_PKEY *rsa = public_of(rsa_key), *ec = public_of(ec_key), *ed = public_of(ed_key);
    const char *payload = "{\"sub\":\"eve\",\"exp\":1700000100}";
    char none[512], tok[2048];
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;

    /* the classic confusion: HS256 keyed with the RSA public key's PEM */
    ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, rsa), 1);
    long pem_len = BIO_get_mem_data(bio, &pem);
    ck_assert_int_gt(sb_token_sign(payload, (const unsigned char *)pem, (size_t)pem_len, NULL, tok,
                                   sizeof(tok), NULL),
                     0);
    sb_token_keys_t only_rsa = {NULL, 0, rsa};
    ck_assert_int_eq(vfy(tok, &only_rsa, &base_check, NULL), SB_TOKEN_EALG);
    BIO_free(bio);

    /* HS256 needs a secret: none, or an empty one */
    ck_assert_int_gt(sb_token_sign(payload, (const unsigned char *)SECRET, strlen(SECRET), NULL,
                                   tok, sizeof(tok), NULL),
                     0);
    ck_assert_int_eq(vfy(tok, &only_rsa, &base_check, NULL), SB_TOKEN_EALG);
    sb_token_keys_t empty = {(const unsigned char *)"", 0, NULL};
    ck_assert_int_eq(vfy(tok, &empty, &base_check, NULL), SB_TOKEN_EALG);

    /* alg none, with and without a signature, whatever the keys */
    sb_token_keys_t all = {(const unsigned char *)SECRET, strlen(SECRET), ed};
    char h[64], p[128];
    b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", 26, h);
    b64url(payload, strlen(payload), p);
    snprintf(none, sizeof(none), "%s.%s.", h, p);
    ck_assert_int_eq(vfy(none, &all, &base_check, NULL), SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(none, &only_rsa, &base_check, NULL), SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(hs("{\"alg\":\"none\"}", payload), &all, &base_check, NULL),
                     SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(hs("{\"alg\":\"None\"}", payload), &all, &base_check, NULL),
                     SB_TOKEN_EALG);
    /* unknown or differently spelled algorithms */
    ck_assert_int_eq(vfy(hs("{\"alg\":\"HS512\"}", payload), &all, &base_check, NULL),
                     SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(hs("{\"alg\":\"hs256\"}", payload), &all, &base_check, NULL),
                     SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(hs("{\"alg\":\"HS256 \"}", payload), &all, &base_check, NULL),
                     SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(hs("{\"alg\":\"HS256\\u0000\"}", payload), &all, &base_check, NULL),
                     SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(hs("{\"alg\":\"HS\\u00325\\u0036\"}", payload), &all, &base_check, NULL),
                     0); /* escapes decode to HS256 */

    /* an asymmetric token meets a key of another type */
    sb_token_keys_t only_ec = {NULL, 0, ec}, only_ed = {NULL, 0, ed};
    ck_assert_int_gt(sb_token_sign(payload, NULL, 0, rsa_key, tok, sizeof(tok), NULL), 0);
    ck_assert_int_eq(vfy(tok, &only_ec, &base_check, NULL), SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(tok, &only_ed, &base_check, NULL), SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(tok, &only_rsa, &base_check, NULL), 0);
    ck_assert_int_gt(sb_token_sign(payload, NULL, 0, ec_key, tok, sizeof(tok), NULL), 0);
    ck_assert_int_eq(vfy(tok, &only_rsa, &base_check, NULL), SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(tok, &only_ed, &base_check, NULL), SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(tok, &only_ec, &base_check, NULL), 0);
    ck_assert_int_gt(sb_token_sign(payload, NULL, 0, ed_key, tok, sizeof(tok), NULL), 0);
    ck_assert_int_eq(vfy(tok, &only_ec, &base_check, NULL), SB_TOKEN_EALG);
    ck_assert_int_eq(vfy(tok, &only_ed, &base_check, NULL), 0);
    sb_token_keys_t nothing = {NULL, 0, NULL};
    ck_assert_int_eq(vfy(tok, &nothing, &base_check, NULL), SB_TOKEN_EALG);

    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
}
END_TEST

/* The header: a JSON object, alg a string, typ JWT if present, no crit, nothing twice. */
START_TEST(test_header)
{
    const char *payload = "{\"sub\":\"eve\",\"exp\":1700000100}";
    static const struct {
        const char *header;
        int rc;
    } cases[] = {
        {"{\"alg\":\"HS256\"}", 0},
        {" {\"typ\":\"jwt\", \"alg\":\"HS256\", \"kid\":\"k1\"} ", 0},
        {"{\"alg\":\"HS256\",\"typ\":\"application/JWT\"}", 0},
        {"{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", SB_TOKEN_EMALFORMED},
        {"{\"alg\":\"HS256\",\"typ\":7}", SB_TOKEN_EMALFORMED},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", SB_TOKEN_EMALFORMED},
        {"{\"alg\":\"HS256\",\"crit\":[]}", SB_TOKEN_EMALFORMED},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", SB_TOKEN_EMALFORMED},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", SB_TOKEN_EMALFORMED},
        {"{\"alg\":256}", SB_TOKEN_EMALFORMED},
        {"{\"alg\":null}", SB_TOKEN_EMALFORMED},
        {"{}", SB_TOKEN_EMALFORMED},
        {"[\"HS256\"]", SB_TOKEN_EMALFORMED},
        {"\"HS256\"", SB_TOKEN_EMALFORMED},
        {"", SB_TOKEN_EMALFORMED},
        {"{\"alg\":\"HS256\"", SB_TOKEN_EMALFORMED},
        {"{\"alg\":\"HS256\"}x", SB_TOKEN_EMALFORMED},
        {"{\"alg\":\"HS256\",}", SB_TOKEN_EMALFORMED},
        {"{\"alg\":\"HS256\"}{}", SB_TOKEN_EMALFORMED},
        {"\xEF\xBB\xBF{\"alg\":\"HS256\"}", SB_TOKEN_EMALFORMED},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        int rc = vfy(hs(cases[i].header, payload), &hs_keys, &base_check, NULL);
        ck_assert_msg(rc == cases[i].rc, "%s: %d", cases[i].header, rc);
    }
}
END_TEST

/* Unpadded base64url only, with zero trailing bits, in exactly three parts. */
START_TEST(test_base64url)
{
    char tok[512], *p;
    const char *good = hs(HS_HEADER, "{\"sub\":\"eve\",\"exp\":1700000100}");
    size_t n = strlen(good);
    const char *dot1 = strchr(good, '.'), *dot2 = strchr(dot1 + 1, '.');

    ck_assert_int_eq(vfy(good, &hs_keys, &base_check, NULL), 0);
    ck_assert_uint_eq(n - (size_t)(dot2 + 1 - good), 43); /* 32 bytes: two spare bits */

    /* '=' padding on the signature (43 characters: one '='), or before a dot */
    snprintf(tok, sizeof(tok), "%s=", good);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    snprintf(tok, sizeof(tok), "%.*s=%s", (int)(dot1 - good), good, dot1);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);

    /* characters of standard base64 and others, in each part */
    static const char bad[] = {'+', '/', ' ', '\n', '\0', '*', '=', '\x80', '\xff'};
    size_t where[] = {3, (size_t)(dot1 - good) + 4, (size_t)(dot2 - good) + 4};
    for (size_t w = 0; w < N_ELEMS(where); w++) {
        for (size_t b = 0; b < N_ELEMS(bad); b++) {
            sb_token_claims_t claims;
            const char *err = NULL;
            memcpy(tok, good, n + 1);
            tok[where[w]] = bad[b];
            ck_assert_int_eq(sb_token_verify(tok, n, &hs_keys, &base_check, &claims, &err),
                             SB_TOKEN_EMALFORMED);
            ck_assert_ptr_nonnull(err);
        }
    }

    /* the signature's last character with a spare bit set: the same bytes, a second spelling */
    memcpy(tok, good, n + 1);
    int v = (int)(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                         tok[n - 1]) -
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    ck_assert_int_eq(v & 3, 0);
    tok[n - 1] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[v | 1];
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);

    /* a length that leaves one lone character (4k + 1) */
    snprintf(tok, sizeof(tok), "%sAA", good);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    /* a longer signature that decodes fine is just wrong */
    snprintf(tok, sizeof(tok), "%sA", good);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_ESIGNATURE);
    /* a shorter one */
    snprintf(tok, sizeof(tok), "%.*s", (int)n - 3, good);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_ESIGNATURE);
    /* no signature */
    snprintf(tok, sizeof(tok), "%.*s", (int)(dot2 + 1 - good), good);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_ESIGNATURE);

    /* two parts, four parts, five (a JWE), empty parts, nothing */
    snprintf(tok, sizeof(tok), "%.*s", (int)(dot2 - good), good);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    snprintf(tok, sizeof(tok), "%s.", good);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    snprintf(tok, sizeof(tok), "%s.AAAA.AAAA", good);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    ck_assert_int_eq(vfy("..", &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    ck_assert_int_eq(vfy("", &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    ck_assert_int_eq(vfy(".", &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    /* a dot where len says the token ends is not part of it */
    sb_token_claims_t claims;
    ck_assert_int_eq(
        sb_token_verify(good, (size_t)(dot2 - good), &hs_keys, &base_check, &claims, NULL),
        SB_TOKEN_EMALFORMED);
    int rc = sb_token_verify(good, n - 1, &hs_keys, &base_check, &claims, NULL);
    ck_assert(rc == SB_TOKEN_ESIGNATURE || rc == SB_TOKEN_EMALFORMED);
    /* white space around the token is not trimmed */
    snprintf(tok, sizeof(tok), " %s", good);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
    p = tok + snprintf(tok, sizeof(tok), "%s", good);
    strcpy(p, "\r\n");
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), SB_TOKEN_EMALFORMED);
}
END_TEST

/* The claims' types and presence, once the signature holds. */
START_TEST(test_claims)
{
    static const struct {
        const char *payload;
        int rc;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":1700000001}", 0},
        {"{\"exp\":1700000001,\"sub\":\"A-z_0.9\",\"iat\":1,\"jti\":\"x\",\"x\":{\"exp\":1}}", 0},
        {"{\"\\u0073ub\":\"a\",\"e\\u0078p\":1700000001}", 0},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"sub\\u0000\":5,\"ex\":\"x\",\"expp\":null}", 0},
        {" \t\r\n{ \"sub\" : \"a\" , \"exp\" : 1700000001 } \n", 0},
        {"{\"sub\":\"a\"}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":\"1700000001\"}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":null}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":[1700000001]}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":true}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"nbf\":\"1\"}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"iss\":1}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"aud\":1}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"aud\":[\"x\",1]}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"aud\":[[\"x\"]]}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"aud\":null}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"aud\":[]}", 0},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"sub\":\"a\"}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"exp\":1700000001}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"\\u0065xp\":1}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"rooms\":[],\"rooms\":[]}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,\"x\":1,\"x\":2}", 0}, /* unread: not checked */
        {"[{\"sub\":\"a\",\"exp\":1700000001}]", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001}x", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":01700000001}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001,}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":1700000001", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\xff\",\"exp\":1700000001}", SB_TOKEN_EMALFORMED},
        {"{\"sub\":\"a\",\"exp\":+1700000001}", SB_TOKEN_EMALFORMED},
        {"", SB_TOKEN_EMALFORMED},
        /* sub: missing, of another type, or not a peer ID */
        {"{\"exp\":1700000001}", SB_TOKEN_ESUBJECT},
        {"{\"sub\":7,\"exp\":1700000001}", SB_TOKEN_ESUBJECT},
        {"{\"sub\":null,\"exp\":1700000001}", SB_TOKEN_ESUBJECT},
        {"{\"sub\":\"\",\"exp\":1700000001}", SB_TOKEN_ESUBJECT},
        {"{\"sub\":\"a b\",\"exp\":1700000001}", SB_TOKEN_ESUBJECT},
        {"{\"sub\":\"a:b\",\"exp\":1700000001}", SB_TOKEN_ESUBJECT},
        {"{\"sub\":\"a\\u0000\",\"exp\":1700000001}", SB_TOKEN_ESUBJECT},
        {"{\"sub\":\"\\ud800\",\"exp\":1700000001}", SB_TOKEN_ESUBJECT},
        {"{\"sub\":\"\\u00e9\",\"exp\":1700000001}", SB_TOKEN_ESUBJECT},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        int rc = vfy_payload(cases[i].payload);
        ck_assert_msg(rc == cases[i].rc, "%s: %d", show(cases[i].payload, strlen(cases[i].payload)),
                      rc);
    }

    /* peer IDs of 64 characters, not 65 */
    char id[66], payload[128];
    memset(id, 'i', 65);
    id[65] = '\0';
    snprintf(payload, sizeof(payload), "{\"sub\":\"%.64s\",\"exp\":1700000001}", id);
    ck_assert_int_eq(vfy_payload(payload), 0);
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"exp\":1700000001}", id);
    ck_assert_int_eq(vfy_payload(payload), SB_TOKEN_ESUBJECT);

    sb_token_claims_t claims;
    ck_assert_int_eq(vfy(hs(HS_HEADER, "{\"sub\":\"p\\u002e1\",\"exp\":1700000001}"), &hs_keys,
                         &base_check, &claims),
                     0);
    ck_assert_str_eq(claims.sub, "p.1");
    ck_assert_int_eq(claims.has_rooms, 0);
    ck_assert_ptr_null(claims.rooms);
    ck_assert_int_eq(sb_token_room_allowed(&claims, "anything", 8), 1);
    sb_token_claims_free(&claims);
    sb_token_claims_free(NULL);
}
END_TEST

static int at(int64_t now, int64_t leeway, const char *payload, int64_t *exp)
{
    sb_token_check_t check = {now, leeway, NULL, NULL};
    sb_token_claims_t claims;
    int rc = vfy(hs(HS_HEADER, payload), &hs_keys, &check, &claims);
    if (exp != NULL)
        *exp = claims.exp;
    sb_token_claims_free(&claims);
    return rc;
}

/* exp and nbf at their boundaries, with and without leeway, and numbers of every form. */
START_TEST(test_times)
{
    const char *p = "{\"sub\":\"a\",\"exp\":1000}";
    const char *q = "{\"sub\":\"a\",\"exp\":5000,\"nbf\":1000}";
    int64_t exp = 0;

    ck_assert_int_eq(at(999, 0, p, &exp), 0);
    ck_assert_int_eq(exp, 1000);
    ck_assert_int_eq(at(1000, 0, p, NULL), SB_TOKEN_EEXPIRED);
    ck_assert_int_eq(at(1009, 10, p, NULL), 0);
    ck_assert_int_eq(at(1010, 10, p, NULL), SB_TOKEN_EEXPIRED);
    ck_assert_int_eq(at(999, -100, p, NULL), 0); /* a negative leeway counts as none */
    ck_assert_int_eq(at(1000, -100, p, NULL), SB_TOKEN_EEXPIRED);
    ck_assert_int_eq(at(INT64_MAX, INT64_MAX, p, NULL), SB_TOKEN_EEXPIRED);
    ck_assert_int_eq(at(INT64_MIN, INT64_MAX, p, NULL), 0);

    ck_assert_int_eq(at(1000, 0, q, NULL), 0);
    ck_assert_int_eq(at(999, 0, q, NULL), SB_TOKEN_ENOTYET);
    ck_assert_int_eq(at(990, 10, q, NULL), 0);
    ck_assert_int_eq(at(989, 10, q, NULL), SB_TOKEN_ENOTYET);
    /* expired wins over not yet valid */
    ck_assert_int_eq(at(5000, 0, "{\"sub\":\"a\",\"exp\":1000,\"nbf\":9000}", NULL),
                     SB_TOKEN_EEXPIRED);

    /* numbers: exp rounds down, nbf up; huge ones are clamped, tiny ones are fractions */
    static const struct {
        const char *exp;
        int64_t want;
    } nums[] = {
        {"1000", 1000},
        {"1000.0", 1000},
        {"1000.5", 1000},
        {"1000.999999999999999999999", 1000},
        {"1e3", 1000},
        {"1E+3", 1000},
        {"10.005e2", 1000},
        {"100050e-2", 1000},
        {"0.1e4", 1000},
        {"0.0000000001e13", 1000},
        {"1000e0", 1000},
        {"0", 0},
        {"-0", 0},
        {"0.5", 0},
        {"5e-1", 0},
        {"1e-400", 0},
        {"0e999999999999999999999", 0},
        {"-0.5", -1},
        {"-1", -1},
        {"-1.5", -2},
        {"-1e-999", -1},
        {"4102444800", 4102444800LL},
        {"1000000000000000", 1000000000000000LL},
        {"1000000000000001", 1000000000000000LL},
        {"9223372036854775807", 1000000000000000LL},
        {"99999999999999999999999999999999", 1000000000000000LL},
        {"1e999999999999999999999", 1000000000000000LL},
        {"-1e400", -1000000000000000LL},
    };
    for (size_t i = 0; i < N_ELEMS(nums); i++) {
        char payload[128];
        snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"exp\":%s}", nums[i].exp);
        ck_assert_msg(at(INT64_MIN, 0, payload, &exp) == 0, "%s", nums[i].exp);
        ck_assert_msg(exp == nums[i].want, "%s: %lld", nums[i].exp, (long long)exp);
    }
    ck_assert_int_eq(at(1000, 0, "{\"sub\":\"a\",\"exp\":1000.5}", NULL), SB_TOKEN_EEXPIRED);
    ck_assert_int_eq(at(999, 0, "{\"sub\":\"a\",\"exp\":5000,\"nbf\":999.5}", NULL),
                     SB_TOKEN_ENOTYET);
    ck_assert_int_eq(at(1000, 0, "{\"sub\":\"a\",\"exp\":5000,\"nbf\":999.5}", NULL), 0);
    ck_assert_int_eq(at(-1, 0, "{\"sub\":\"a\",\"exp\":5000,\"nbf\":-1.5}", NULL), 0);
    ck_assert_int_eq(at(-2, 0, "{\"sub\":\"a\",\"exp\":5000,\"nbf\":-1.5}", NULL),
                     SB_TOKEN_ENOTYET);
    ck_assert_int_eq(at(INT64_MAX, 0, "{\"sub\":\"a\",\"exp\":1e999}", NULL), SB_TOKEN_EEXPIRED);
    ck_assert_int_eq(at(0, 0, "{\"sub\":\"a\",\"exp\":1e999,\"nbf\":1e999}", NULL),
                     SB_TOKEN_ENOTYET);
}
END_TEST

/* iss and aud, when configured; ignored (but type-checked) when not. */
START_TEST(test_issuer_audience)
{
    sb_token_check_t check = {NOW, 0, "https://issuer.example", "switchboard"};
    static const struct {
        const char *claims;
        int rc;
    } cases[] = {
        {"\"iss\":\"https://issuer.example\",\"aud\":\"switchboard\"", 0},
        {"\"iss\":\"https:\\/\\/issuer.example\",\"aud\":[\"x\",\"switch\\u0062oard\"]", 0},
        {"\"iss\":\"https://issuer.example\",\"aud\":[\"switchboard\"]", 0},
        {"\"aud\":\"switchboard\"", SB_TOKEN_EISSUER},
        {"\"iss\":\"https://issuer.example/\",\"aud\":\"switchboard\"", SB_TOKEN_EISSUER},
        {"\"iss\":\"HTTPS://issuer.example\",\"aud\":\"switchboard\"", SB_TOKEN_EISSUER},
        {"\"iss\":\"https://issuer.example\\u0000\",\"aud\":\"switchboard\"", SB_TOKEN_EISSUER},
        {"\"iss\":\"\",\"aud\":\"switchboard\"", SB_TOKEN_EISSUER},
        {"\"iss\":\"https://issuer.example\"", SB_TOKEN_EAUDIENCE},
        {"\"iss\":\"https://issuer.example\",\"aud\":\"switch\"", SB_TOKEN_EAUDIENCE},
        {"\"iss\":\"https://issuer.example\",\"aud\":\"switchboard2\"", SB_TOKEN_EAUDIENCE},
        {"\"iss\":\"https://issuer.example\",\"aud\":\"Switchboard\"", SB_TOKEN_EAUDIENCE},
        {"\"iss\":\"https://issuer.example\",\"aud\":[]", SB_TOKEN_EAUDIENCE},
        {"\"iss\":\"https://issuer.example\",\"aud\":[\"other\",\"switch board\"]",
         SB_TOKEN_EAUDIENCE},
        {"\"iss\":\"https://issuer.example\",\"aud\":[\"switchboard\",3]", SB_TOKEN_EMALFORMED},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char payload[256];
        snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"exp\":1700000001,%s}",
                 cases[i].claims);
        int rc = vfy(hs(HS_HEADER, payload), &hs_keys, &check, NULL);
        ck_assert_msg(rc == cases[i].rc, "%s: %d", cases[i].claims, rc);
        if (cases[i].rc != SB_TOKEN_EMALFORMED)
            ck_assert_int_eq(vfy(hs(HS_HEADER, payload), &hs_keys, &base_check, NULL), 0);
    }
    /* the order: expired before issuer before audience before subject */
    ck_assert_int_eq(
        vfy(hs(HS_HEADER, "{\"exp\":1,\"iss\":\"x\",\"aud\":\"y\"}"), &hs_keys, &check, NULL),
        SB_TOKEN_EEXPIRED);
    ck_assert_int_eq(vfy(hs(HS_HEADER, "{\"exp\":1700000001,\"iss\":\"x\",\"aud\":\"y\"}"),
                         &hs_keys, &check, NULL),
                     SB_TOKEN_EISSUER);
    ck_assert_int_eq(vfy(hs(HS_HEADER, "{\"exp\":1700000001,\"iss\":\"https://issuer.example\","
                                       "\"aud\":\"y\"}"),
                         &hs_keys, &check, NULL),
                     SB_TOKEN_EAUDIENCE);
}
END_TEST

static int rooms_of(const char *rooms, sb_token_claims_t *claims)
{
    char payload[4096];
    snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"exp\":1700000001,\"rooms\":%s}", rooms);
    return vfy(hs(HS_HEADER, payload), &hs_keys, &base_check, claims);
}

static int allowed(const sb_token_claims_t *claims, const char *room)
{
    return sb_token_room_allowed(claims, room, strlen(room));
}

/* The rooms claim: what it may hold, and which rooms it allows. */
START_TEST(test_rooms)
{
    sb_token_claims_t c;

    ck_assert_int_eq(rooms_of("[\"lobby\", \"team-*\" ,\"a:b\",\"x\\u002ey\"]", &c), 0);
    ck_assert_int_eq(c.has_rooms, 1);
    ck_assert_uint_eq(c.nrooms, 4);
    ck_assert_int_eq(memcmp(c.rooms, "lobby\0team-*\0a:b\0x.y", 21), 0);
    ck_assert_int_eq(allowed(&c, "lobby"), 1);
    ck_assert_int_eq(allowed(&c, "lobby2"), 0);
    ck_assert_int_eq(allowed(&c, "lobb"), 0);
    ck_assert_int_eq(allowed(&c, "Lobby"), 0);
    ck_assert_int_eq(allowed(&c, "team-"), 1);
    ck_assert_int_eq(allowed(&c, "team-red"), 1);
    ck_assert_int_eq(allowed(&c, "team"), 0);
    ck_assert_int_eq(allowed(&c, "team-*"), 1); /* a prefix match, if the caller allowed '*' */
    ck_assert_int_eq(allowed(&c, "a:b"), 1);
    ck_assert_int_eq(allowed(&c, "x.y"), 1);
    ck_assert_int_eq(allowed(&c, ""), 0);
    ck_assert_int_eq(sb_token_room_allowed(&c, "lobbyX", 5), 1); /* by length, not NUL */
    ck_assert_int_eq(sb_token_room_allowed(&c, "team-", 4), 0);
    sb_token_claims_free(&c);
    ck_assert_ptr_null(c.rooms);
    ck_assert_int_eq(c.has_rooms, 0);

    ck_assert_int_eq(rooms_of("[\"*\"]", &c), 0);
    ck_assert_int_eq(allowed(&c, "anything"), 1);
    ck_assert_int_eq(allowed(&c, "x"), 1);
    sb_token_claims_free(&c);

    ck_assert_int_eq(rooms_of("[]", &c), 0);
    ck_assert_int_eq(c.has_rooms, 1);
    ck_assert_uint_eq(c.nrooms, 0);
    ck_assert_ptr_null(c.rooms);
    ck_assert_int_eq(allowed(&c, "lobby"), 0);
    sb_token_claims_free(&c);

    /* 64-character names, and a 64-character prefix */
    char room64[65], json[256];
    memset(room64, 'r', 64);
    room64[64] = '\0';
    snprintf(json, sizeof(json), "[\"%s\",\"%.63s*\",\"%s*\"]", room64, room64, room64);
    ck_assert_int_eq(rooms_of(json, &c), 0);
    ck_assert_uint_eq(c.nrooms, 3);
    ck_assert_int_eq(allowed(&c, room64), 1);
    sb_token_claims_free(&c);
    snprintf(json, sizeof(json), "[\"%sr\"]", room64);
    ck_assert_int_eq(rooms_of(json, NULL), SB_TOKEN_EMALFORMED);
    snprintf(json, sizeof(json), "[\"%sr*\"]", room64);
    ck_assert_int_eq(rooms_of(json, NULL), SB_TOKEN_EMALFORMED);

    static const char *const bad[] = {"\"lobby\"",
                                      "null",
                                      "{}",
                                      "[1]",
                                      "[null]",
                                      "[[\"a\"]]",
                                      "[\"\"]",
                                      "[\"a b\"]",
                                      "[\"a**\"]",
                                      "[\"*a\"]",
                                      "[\"a*b\"]",
                                      "[\"**\"]",
                                      "[\"a/*\"]",
                                      "[\"lobby\",2]",
                                      "[\"a\\u0000\"]",
                                      "[\"\\u00e9\"]",
                                      "[\"ok\",\"ok\",\"no!\"]"};
    for (size_t i = 0; i < N_ELEMS(bad); i++)
        ck_assert_msg(rooms_of(bad[i], NULL) == SB_TOKEN_EMALFORMED, "%s", bad[i]);

    /* a bad rooms claim is malformed even when the token is otherwise refused later */
    ck_assert_int_eq(vfy_payload("{\"exp\":1,\"rooms\":[1]}"), SB_TOKEN_EMALFORMED);
    /* no leak when a later check fails with rooms read */
    ck_assert_int_eq(vfy_payload("{\"exp\":1,\"rooms\":[\"a\",\"b*\"]}"), SB_TOKEN_EEXPIRED);
    ck_assert_int_eq(vfy_payload("{\"exp\":1700000001,\"rooms\":[\"a\"]}"), SB_TOKEN_ESUBJECT);

    /* many rooms */
    char many[4096];
    size_t n = 0;
    many[n++] = '[';
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"r%d\"", i ? "," : "", i);
    many[n++] = ']';
    many[n] = '\0';
    ck_assert_int_eq(rooms_of(many, &c), 0);
    ck_assert_uint_eq(c.nrooms, 200);
    ck_assert_int_eq(allowed(&c, "r199"), 1);
    ck_assert_int_eq(allowed(&c, "r200"), 0);
    sb_token_claims_free(&c);
}
END_TEST

/* Tokens longer than SB_TOKEN_MAX are refused before anything else; at the limit they work. */
START_TEST(test_sizes)
{
    char *big = malloc(SB_TOKEN_MAX + 2), *tok = malloc(SB_TOKEN_MAX + 64);
    char payload[SB_TOKEN_MAX];
    const char *err = NULL;
    sb_token_claims_t claims;

    memset(big, 'A', SB_TOKEN_MAX + 1);
    big[SB_TOKEN_MAX + 1] = '\0';
    ck_assert_int_eq(vfy(big, &hs_keys, &base_check, NULL), SB_TOKEN_ETOOLARGE);
    ck_assert_int_eq(sb_token_verify(big, SIZE_MAX, &hs_keys, &base_check, &claims, &err),
                     SB_TOKEN_ETOOLARGE);
    ck_assert_int_eq(sb_token_verify(big, SB_TOKEN_MAX, &hs_keys, &base_check, &claims, &err),
                     SB_TOKEN_EMALFORMED);

    /* the longest payload that fits: with the HS256 header (36 characters), two dots and the
     * signature (43), 3011 bytes make 4015 characters and a token of exactly SB_TOKEN_MAX */
    size_t room = 3011;
    int head = snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"exp\":1700000001,\"x\":\"");
    memset(payload + head, 'x', room - (size_t)head - 2);
    strcpy(payload + room - 2, "\"}");
    ck_assert_uint_eq(strlen(payload), room);
    int n = sb_token_sign(payload, (const unsigned char *)SECRET, strlen(SECRET), NULL, tok,
                          SB_TOKEN_MAX + 64, &err);
    ck_assert_int_eq(n, SB_TOKEN_MAX);
    ck_assert_int_eq(vfy(tok, &hs_keys, &base_check, NULL), 0);
    ck_assert_str_eq(tok, hs(HS_HEADER, payload)); /* as computed here */
    /* a buffer one byte short */
    ck_assert_int_eq(sb_token_sign(payload, (const unsigned char *)SECRET, strlen(SECRET), NULL,
                                   tok, (size_t)n, &err),
                     SB_TOKEN_ETOOLARGE);
    ck_assert_int_eq(sb_token_sign(payload, (const unsigned char *)SECRET, strlen(SECRET), NULL,
                                   tok, (size_t)n + 1, &err),
                     n);
    /* one byte more makes a token over the limit, which sign refuses and verify too */
    memset(payload + room - 2, 'x', 1);
    strcpy(payload + room - 1, "\"}");
    ck_assert_int_eq(sb_token_sign(payload, (const unsigned char *)SECRET, strlen(SECRET), NULL,
                                   tok, SB_TOKEN_MAX + 64, &err),
                     SB_TOKEN_ETOOLARGE);
    ck_assert_int_eq(vfy(hs(HS_HEADER, payload), &hs_keys, &base_check, NULL), SB_TOKEN_ETOOLARGE);
    free(big);
    free(tok);
}
END_TEST

static char *cert_pem(EVP_PKEY *key, const EVP_MD *md)
{
    X509 *x = X509_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    ck_assert_ptr_nonnull(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"issuer.example", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    ck_assert_int_gt(X509_sign(x, key, md), 0);
    ck_assert_int_eq(PEM_write_bio_X509(bio, x), 1);
    long n = BIO_get_mem_data(bio, &data);
    out = strndup(data, (size_t)n);
    BIO_free(bio);
    X509_free(x);
    return out;
}

static char *pem_of(EVP_PKEY *key, int private)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    ck_assert_int_eq(private ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                             : PEM_write_bio_PUBKEY(bio, key),
                     1);
    long n = BIO_get_mem_data(bio, &data);
    out = strndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

static int loads(const char *pem)
{
    const char *err = NULL;
    EVP_PKEY *key = sb_token_load_public_key(pem, strlen(pem), &err);
    int alg = sb_token_key_alg(key);
    if (key == NULL)
        ck_assert_msg(err != NULL && err[0] != '\0', "no reason");
    EVP_PKEY_free(key);
    return alg;
}

/* Public keys from PEM: the supported types, from a key or a certificate; nothing else. */
START_TEST(test_load_public_key)
{
    EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    char *pem;

    ck_assert_int_eq(sb_token_key_alg(rsa_key), SB_TOKEN_RS256);
    ck_assert_int_eq(sb_token_key_alg(ec_key), SB_TOKEN_ES256);
    ck_assert_int_eq(sb_token_key_alg(ed_key), SB_TOKEN_EDDSA);
    ck_assert_int_eq(sb_token_key_alg(rsa1024), 0);
    ck_assert_int_eq(sb_token_key_alg(p384), 0);
    ck_assert_int_eq(sb_token_key_alg(x25519), 0);
    ck_assert_int_eq(sb_token_key_alg(NULL), 0);

    EVP_PKEY *good[] = {rsa_key, ec_key, ed_key};
    const int algs[] = {SB_TOKEN_RS256, SB_TOKEN_ES256, SB_TOKEN_EDDSA};
    for (size_t i = 0; i < N_ELEMS(good); i++) {
        pem = pem_of(good[i], 0);
        ck_assert_int_eq(loads(pem), algs[i]);
        free(pem);
        pem = pem_of(good[i], 1);
        ck_assert_int_eq(loads(pem), 0); /* a private key is not taken for a public one */
        free(pem);
        pem = cert_pem(good[i], i == 2 ? NULL : EVP_sha256());
        ck_assert_int_eq(loads(pem), algs[i]);
        free(pem);
    }
    /* a token signed by the certificate's key verifies with the key from the certificate */
    pem = cert_pem(ec_key, EVP_sha256());
    char tok[512];
    sb_token_keys_t keys = {NULL, 0, load(pem)};
    ck_assert_int_gt(sb_token_sign("{\"sub\":\"c\",\"exp\":1700000001}", NULL, 0, ec_key, tok,
                                   sizeof(tok), NULL),
                     0);
    ck_assert_int_eq(vfy(tok, &keys, &base_check, NULL), 0);
    EVP_PKEY_free(keys.public_key);
    free(pem);

    EVP_PKEY *bad[] = {rsa1024, p384, x25519};
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        pem = pem_of(bad[i], 0);
        ck_assert_int_eq(loads(pem), 0);
        free(pem);
        if (i < 2) {
            pem = cert_pem(bad[i], EVP_sha256());
            ck_assert_int_eq(loads(pem), 0);
            free(pem);
        }
    }
    /* a certificate then a public key: the public key */
    char *c = cert_pem(ec_key, EVP_sha256()), *k = pem_of(ed_key, 0), both[8192];
    snprintf(both, sizeof(both), "%s%s", c, k);
    ck_assert_int_eq(loads(both), SB_TOKEN_EDDSA);
    free(c);
    free(k);

    ck_assert_int_eq(loads("not PEM at all"), 0);
    ck_assert_int_eq(loads("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0);
    ck_assert_int_eq(loads(known_es256_pem + 1), 0);
    const char *err = NULL;
    ck_assert_ptr_null(sb_token_load_public_key("", 0, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(sb_token_load_public_key(NULL, 10, NULL));
    /* only len bytes are read */
    ck_assert_ptr_null(sb_token_load_public_key(known_es256_pem, 40, NULL));

    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(x25519);
}
END_TEST

/* What sb_token_sign refuses. */
START_TEST(test_sign_errors)
{
    EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *pub = public_of(ed_key);
    const unsigned char *s = (const unsigned char *)SECRET;
    char out[1024];
    const char *err = NULL;

    static const char *const not_objects[] = {
        "", "[]", "\"x\"", "{} x", "{", "{\"a\":}", "1", "{}{}", "{\"a\":\"\xff\"}"};
    for (size_t i = 0; i < N_ELEMS(not_objects); i++)
        ck_assert_int_eq(
            sb_token_sign(not_objects[i], s, strlen(SECRET), NULL, out, sizeof(out), &err),
            SB_TOKEN_EMALFORMED);
    ck_assert_int_gt(sb_token_sign(" {} ", s, strlen(SECRET), NULL, out, sizeof(out), &err), 0);
    ck_assert_int_eq(sb_token_sign("{}", NULL, 0, NULL, out, sizeof(out), &err), SB_TOKEN_EALG);
    ck_assert_int_eq(sb_token_sign("{}", s, 0, NULL, out, sizeof(out), &err), SB_TOKEN_EALG);
    ck_assert_int_eq(sb_token_sign("{}", s, 3, rsa1024, out, sizeof(out), &err), SB_TOKEN_EALG);
    ck_assert_int_eq(sb_token_sign("{}", NULL, 0, pub, out, sizeof(out), &err),
                     SB_TOKEN_ESIGNATURE); /* a public key cannot sign */
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(sb_token_sign("{}", s, 3, NULL, out, 10, &err), SB_TOKEN_ETOOLARGE);
    ck_assert_int_eq(sb_token_sign("{}", s, 3, NULL, out, 0, &err), SB_TOKEN_ETOOLARGE);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(pub);
}
END_TEST

START_TEST(test_names)
{
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {0, "ok"},
        {SB_TOKEN_EMALFORMED, "malformed"},
        {SB_TOKEN_ETOOLARGE, "too-large"},
        {SB_TOKEN_EALG, "algorithm"},
        {SB_TOKEN_ESIGNATURE, "signature"},
        {SB_TOKEN_EEXPIRED, "expired"},
        {SB_TOKEN_ENOTYET, "not-yet-valid"},
        {SB_TOKEN_EISSUER, "issuer"},
        {SB_TOKEN_EAUDIENCE, "audience"},
        {SB_TOKEN_ESUBJECT, "subject"},
        {-10, "unknown"},
        {1, "unknown"},
    };
    for (size_t i = 0; i < N_ELEMS(names); i++)
        ck_assert_str_eq(sb_token_error_name(names[i].code), names[i].name);
    ck_assert_str_eq(sb_token_alg_name(SB_TOKEN_HS256), "HS256");
    ck_assert_str_eq(sb_token_alg_name(SB_TOKEN_RS256), "RS256");
    ck_assert_str_eq(sb_token_alg_name(SB_TOKEN_ES256), "ES256");
    ck_assert_str_eq(sb_token_alg_name(SB_TOKEN_EDDSA), "EdDSA");
    ck_assert_ptr_null(sb_token_alg_name((sb_token_alg_t)3));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("verify");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rfc7515_hs256);
    tcase_add_test(tc, test_rfc8037_eddsa);
    tcase_add_test(tc, test_known_tokens);
    tcase_add_test(tc, test_sign_verify_asymmetric);
    tcase_add_test(tc, test_algorithm);
    tcase_add_test(tc, test_header);
    tcase_add_test(tc, test_base64url);
    tcase_add_test(tc, test_claims);
    tcase_add_test(tc, test_times);
    tcase_add_test(tc, test_issuer_audience);
    tcase_add_test(tc, test_rooms);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_load_public_key);
    tcase_add_test(tc, test_sign_errors);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (rsa_key == NULL || ec_key == NULL || ed_key == NULL) {
        fprintf(stderr, "key generation failed\n");
        return 1;
    }
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(ed_key);
    return failed == 0 ? 0 : 1;
}
