/* libFuzzer target for proto/token: any input verified as a token, and signed as a payload. */
#include "check.h"
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "names.h"
#include "token.h"

/* The clock and checks every input meets; seeds/token/ holds tokens made for them. */
#define NOW 1700000000
#define LEEWAY 60
#define SECRET "fuzz-secret-0123456789abcdef"
#define ISSUER "https://issuer.example"
#define AUDIENCE "switchboard"

/* The Ed25519 key of RFC 8032 section 7.1, test 1 (RFC 8037's examples use it too). */
static const unsigned char ed_seed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
static const unsigned char ed_public[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a};

static EVP_PKEY *ed_private_key, *ed_public_key; /* made once, kept for the whole run */

static sb_token_keys_t keys(void)
{
    if (ed_public_key == NULL) {
        ed_private_key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, ed_seed, 32);
        ed_public_key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, ed_public, 32);
        CHECK(ed_private_key != NULL && ed_public_key != NULL);
    }
    return (sb_token_keys_t){(const unsigned char *)SECRET, sizeof(SECRET) - 1, ed_public_key};
}

/* ---- references ----------------------------------------------------------------------------- */

/* A rooms entry as the claim allows it: a room name, "*", or a room name and '*'. */
static int ref_entry_valid(const char *e)
{
    size_t n = strlen(e);
    if (n == 1 && e[0] == '*')
        return 1;
    if (n >= 2 && e[n - 1] == '*')
        n--;
    if (n == 0 || n > SB_ROOM_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-", e[i]) ||
            e[i] == '\0')
            return 0;
    return 1;
}

/* The matcher written another way: strncmp on NUL-terminated rooms (without NULs). */
static int ref_allowed(const sb_token_claims_t *c, const char *room)
{
    const char *e = c->rooms;
    if (!c->has_rooms)
        return 1;
    for (size_t i = 0; i < c->nrooms; i++, e += strlen(e) + 1) {
        const char *star = strchr(e, '*');
        if (star != NULL ? strncmp(room, e, (size_t)(star - e)) == 0 : strcmp(room, e) == 0)
            return 1;
    }
    return 0;
}

/* ---- properties ----------------------------------------------------------------------------- */

static void check_rooms(const sb_token_claims_t *c, const uint8_t *data, size_t size)
{
    char rooms[8][SB_ROOM_MAX + 8];
    size_t n = 0;
    const char *e = c->rooms;

    CHECK((c->nrooms == 0) == (c->rooms == NULL));
    CHECK(c->has_rooms || c->nrooms == 0);
    for (size_t i = 0; i < c->nrooms; i++, e += strlen(e) + 1) {
        size_t len = strlen(e);
        CHECK(ref_entry_valid(e));
        /* an entry allows itself without its '*', and one more character after that */
        snprintf(rooms[0], sizeof(rooms[0]), "%.*s", (int)(len - (e[len - 1] == '*')), e);
        CHECK(sb_token_room_allowed(c, rooms[0], strlen(rooms[0])));
        if (e[len - 1] == '*') {
            snprintf(rooms[0], sizeof(rooms[0]), "%.*sz", (int)(len - 1), e);
            CHECK(sb_token_room_allowed(c, rooms[0], strlen(rooms[0])));
        }
    }
    /* fixed rooms, the entries cut or lengthened, and the input's last bytes */
    strcpy(rooms[n++], "lobby");
    strcpy(rooms[n++], "a");
    if (c->nrooms > 0) {
        size_t len = strlen(c->rooms);
        snprintf(rooms[n++], sizeof(rooms[0]), "%.*s", (int)(len > 1 ? len - 1 : len), c->rooms);
        snprintf(rooms[n++], sizeof(rooms[0]), "%sx", c->rooms);
        snprintf(rooms[n++], sizeof(rooms[0]), "x%s", c->rooms);
    }
    size_t k = 0, take = size < 16 ? size : 16;
    for (size_t i = size - take; i < size; i++)
        if (data[i] != '\0')
            rooms[n][k++] = (char)data[i];
    rooms[n++][k] = '\0';
    for (size_t i = 0; i < n; i++) {
        int got = sb_token_room_allowed(c, rooms[i], strlen(rooms[i]));
        CHECK(got == ref_allowed(c, rooms[i]));
        /* only len bytes count: a longer buffer changes nothing */
        char longer[SB_ROOM_MAX + 16];
        snprintf(longer, sizeof(longer), "%s#tail", rooms[i]);
        CHECK(sb_token_room_allowed(c, longer, strlen(rooms[i])) == got);
    }
}

static void check_accepted(const sb_token_claims_t *c, const sb_token_check_t *check,
                           const uint8_t *data, size_t size)
{
    CHECK(sb_peer_id_valid(c->sub, strlen(c->sub)));
    CHECK(c->exp + check->leeway > check->now);
    CHECK(c->alg == SB_TOKEN_HS256 || c->alg == SB_TOKEN_EDDSA);
    check_rooms(c, data, size);
}

/* Verifies token under the strict check and a loose one (no iss, no aud), checking what every
 * answer must hold. Returns the strict answer; fills *out (to release) when it is 0. */
static int verify(const char *token, size_t len, const uint8_t *data, size_t size,
                  sb_token_claims_t *out)
{
    static const sb_token_claims_t zero;
    sb_token_keys_t k = keys();
    sb_token_check_t strict = {NOW, LEEWAY, ISSUER, AUDIENCE}, loose = {NOW, LEEWAY, NULL, NULL};
    sb_token_claims_t claims, claims2;
    const char *err = (const char *)1;

    int rc = sb_token_verify(token, len, &k, &strict, &claims, &err);
    CHECK(rc <= 0 && rc >= SB_TOKEN_ESUBJECT);
    CHECK(strcmp(sb_token_error_name(rc), "unknown") != 0);
    if (rc == 0) {
        CHECK(err == (const char *)1); /* untouched */
        check_accepted(&claims, &strict, data, size);
    } else {
        CHECK(err != NULL && err != (const char *)1 && err[0] != '\0' && strlen(err) < 200);
        CHECK(memcmp(&claims, &zero, sizeof(zero)) == 0);
    }
    CHECK((len > SB_TOKEN_MAX) == (rc == SB_TOKEN_ETOOLARGE));

    /* the same answer without err; with fewer checks, the same or better */
    CHECK(sb_token_verify(token, len, &k, &strict, &claims2, NULL) == rc);
    sb_token_claims_free(&claims2);
    int rc2 = sb_token_verify(token, len, &k, &loose, &claims2, NULL);
    if (rc == SB_TOKEN_EISSUER || rc == SB_TOKEN_EAUDIENCE)
        CHECK(rc2 == 0 || rc2 == SB_TOKEN_ESUBJECT);
    else
        CHECK(rc2 == rc);
    if (rc == 0) {
        CHECK(strcmp(claims.sub, claims2.sub) == 0 && claims.exp == claims2.exp);
        CHECK(claims.nrooms == claims2.nrooms && claims.has_rooms == claims2.has_rooms);
    }
    sb_token_claims_free(&claims2);

    /* an accepted token cut short by one byte is refused */
    if (rc == 0 && len > 0)
        CHECK(sb_token_verify(token, len - 1, &k, &loose, &claims2, NULL) < 0);

    if (out != NULL && rc == 0)
        *out = claims;
    else
        sb_token_claims_free(&claims);
    return rc;
}

/* The claims of an accepted payload, against cJSON's reading of it. cJSON 1.7.15 refuses some
 * valid JSON (lone surrogates, numbers over 63 characters) and cuts strings at a \u0000, so such
 * payloads are left out. */
static void check_against_cjson(const char *payload, const sb_token_claims_t *c)
{
    if (strstr(payload, "\\u0000") != NULL)
        return;
    cJSON *root = cJSON_Parse(payload);
    if (root == NULL)
        return;
    CHECK(cJSON_IsObject(root));
    cJSON *sub = cJSON_GetObjectItemCaseSensitive(root, "sub");
    cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "exp");
    cJSON *rooms = cJSON_GetObjectItemCaseSensitive(root, "rooms");
    CHECK(cJSON_IsString(sub) && strcmp(sub->valuestring, c->sub) == 0);
    CHECK(cJSON_IsNumber(exp));
    double d = exp->valuedouble;
    if (fabs(d) < 1e15 - 2)
        CHECK(fabs(floor(d) - (double)c->exp) <= 1.0); /* double rounding aside, rounded down */
    else if (fabs(d) > 1e15 + 2)
        CHECK(c->exp == (d > 0 ? 1000000000000000LL : -1000000000000000LL)); /* clamped */
    CHECK((rooms != NULL) == (c->has_rooms != 0));
    if (rooms != NULL) {
        const char *e = c->rooms;
        CHECK(cJSON_IsArray(rooms) && (size_t)cJSON_GetArraySize(rooms) == c->nrooms);
        for (cJSON *r = rooms->child; r != NULL; r = r->next, e += strlen(e) + 1)
            CHECK(cJSON_IsString(r) && strcmp(r->valuestring, e) == 0);
    }
    cJSON_Delete(root);
}

/* An input starting with '{' (never a token) is also taken as a payload, signed with the secret
 * and with the Ed25519 key: both tokens must get the same answer, past the signature. */
static void sign_and_verify(const uint8_t *data, size_t size)
{
    char *payload = malloc(size + 1), hs[SB_TOKEN_MAX + 1], ed[SB_TOKEN_MAX + 1];
    const char *err = NULL;
    sb_token_claims_t c1, c2;

    CHECK(payload != NULL);
    memcpy(payload, data, size);
    payload[size] = '\0'; /* up to the first NUL */
    int n1 = sb_token_sign(payload, (const unsigned char *)SECRET, sizeof(SECRET) - 1, NULL, hs,
                           sizeof(hs), &err);
    int n2 = sb_token_sign(payload, NULL, 0, ed_private_key, ed, sizeof(ed), &err);
    CHECK(n1 == SB_TOKEN_EMALFORMED || n1 == SB_TOKEN_ETOOLARGE || n1 > 0);
    CHECK(n2 == SB_TOKEN_EMALFORMED || n2 == SB_TOKEN_ETOOLARGE || n2 > 0);
    CHECK((n1 == SB_TOKEN_EMALFORMED) == (n2 == SB_TOKEN_EMALFORMED));
    if (n1 > 0) {
        CHECK((size_t)n1 == strlen(hs) && n1 <= SB_TOKEN_MAX);
        int rc1 = verify(hs, (size_t)n1, data, size, &c1);
        CHECK(rc1 != SB_TOKEN_ETOOLARGE && rc1 != SB_TOKEN_EALG && rc1 != SB_TOKEN_ESIGNATURE);
        if (n2 > 0) {
            int rc2 = verify(ed, (size_t)n2, data, size, &c2);
            CHECK(rc2 == rc1);
            if (rc2 == 0) {
                CHECK(c1.alg == SB_TOKEN_HS256 && c2.alg == SB_TOKEN_EDDSA);
                CHECK(strcmp(c1.sub, c2.sub) == 0 && c1.exp == c2.exp);
                CHECK(c1.nrooms == c2.nrooms && c1.has_rooms == c2.has_rooms);
                sb_token_claims_free(&c2);
            }
        }
        if (rc1 == 0) {
            check_against_cjson(payload, &c1);
            sb_token_claims_free(&c1);
        }
    }
    free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *token = (const char *)data;
    int rc = verify(token, size, data, size, NULL);

    /* not three parts: malformed, if not too large */
    size_t dots = 0;
    for (size_t i = 0; i < size; i++)
        dots += data[i] == '.';
    if (size <= SB_TOKEN_MAX && dots != 2)
        CHECK(rc == SB_TOKEN_EMALFORMED);

    if (size > 0 && data[0] == '{') {
        CHECK(rc == SB_TOKEN_EMALFORMED || rc == SB_TOKEN_ETOOLARGE);
        sign_and_verify(data, size);
    }
    return 0;
}
