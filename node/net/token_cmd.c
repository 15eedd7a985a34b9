/* `switchboard token`: prints a signed token for a peer, for operators, demos and tests. */
#include "net/token_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/pem.h>

#include "names.h"
#include "token.h"

static void usage(FILE *to)
{
    fprintf(to,
            "Usage: switchboard token --sub ID [--secret SECRET | --key FILE] [OPTION]...\n"
            "Prints a token that lets a client connect as peer ID to nodes started with\n"
            "--auth-secret SECRET (HS256) or --auth-public-key (the public half of FILE).\n\n"
            "  --sub ID          the peer ID the token grants (required)\n"
            "  --secret SECRET   HS256 secret (default: $SWITCHBOARD_AUTH_SECRET)\n"
            "  --key FILE        PEM private key: RSA (RS256), P-256 (ES256) or Ed25519 (EdDSA)\n"
            "  --ttl TIME        validity from now: 3600, 90s, 30m, 1h or 7d (default 1h)\n"
            "  --rooms LIST      comma-separated rooms it may join; a trailing * allows a prefix\n"
            "  --iss ISSUER      the iss claim\n"
            "  --aud AUDIENCE    the aud claim\n");
}

/* Parses 3600, 90s, 30m, 1h, 7d (a leading '-' allowed: an expired token, for tests). */
static int parse_ttl(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    long long unit = 1;
    if (errno || end == s)
        return -1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        unit = 60, end++;
    else if (*end == 'h')
        unit = 3600, end++;
    else if (*end == 'd')
        unit = 86400, end++;
    if (*end != '\0' || v > 100LL * 365 * 86400 || v < -100LL * 365 * 86400)
        return -1;
    *out = v * unit;
    return 0;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "switchboard token: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL)
        fprintf(stderr, "switchboard token: %s: not a PEM private key\n", path);
    return key;
}

/* The claims as JSON (malloc'ed), or NULL when out of memory. */
static char *claims_json(const char *sub, long long ttl, const char *rooms, const char *iss,
                         const char *aud)
{
    long long now = (long long)time(NULL);
    cJSON *o = cJSON_CreateObject();
    char *json = NULL;
    if (o == NULL || !cJSON_AddStringToObject(o, "sub", sub) ||
        !cJSON_AddNumberToObject(o, "iat", (double)now) ||
        !cJSON_AddNumberToObject(o, "exp", (double)(now + ttl)) ||
        (iss && !cJSON_AddStringToObject(o, "iss", iss)) ||
        (aud && !cJSON_AddStringToObject(o, "aud", aud)))
        goto out;
    if (rooms != NULL) {
        cJSON *list = cJSON_AddArrayToObject(o, "rooms");
        if (list == NULL)
            goto out;
        for (const char *p = rooms; *p;) {
            size_t n = strcspn(p, ",");
            char room[SB_ROOM_MAX + 2];
            memcpy(room, p, n); /* checked by rooms_valid */
            room[n] = '\0';
            cJSON *item = cJSON_CreateString(room);
            if (item == NULL || !cJSON_AddItemToArray(list, item))
                goto out;
            p += n + (p[n] == ',');
        }
    }
    json = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return json;
}

/* Whether every entry of --rooms is a room name, "*", or a room name and '*'. */
static int rooms_valid(const char *rooms)
{
    for (const char *p = rooms; *p;) {
        size_t n = strcspn(p, ",");
        size_t base = n > 0 && p[n - 1] == '*' ? n - 1 : n;
        if (n == 0 || n > SB_ROOM_MAX + 1 || (base > 0 && !sb_room_valid(p, base))) {
            fprintf(stderr, "switchboard token: --rooms: '%.*s' is not a room name\n", (int)n, p);
            return 0;
        }
        p += n + (p[n] == ',');
    }
    return 1;
}

int sb_token_cmd(int argc, char **argv)
{
    const char *sub = NULL, *secret = getenv("SWITCHBOARD_AUTH_SECRET"), *key_file = NULL;
    const char *rooms = NULL, *iss = NULL, *aud = NULL;
    long long ttl = 3600;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (v == NULL) {
            fprintf(stderr, "switchboard token: '%s' needs a value (see --help)\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--sub") == 0)
            sub = v;
        else if (strcmp(a, "--secret") == 0)
            secret = v;
        else if (strcmp(a, "--key") == 0)
            key_file = v;
        else if (strcmp(a, "--rooms") == 0)
            rooms = v;
        else if (strcmp(a, "--iss") == 0)
            iss = v;
        else if (strcmp(a, "--aud") == 0)
            aud = v;
        else if (strcmp(a, "--ttl") == 0) {
            if (parse_ttl(v, &ttl) != 0) {
                fprintf(stderr, "switchboard token: bad --ttl '%s' (like 3600, 30m, 1h, 7d)\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "switchboard token: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (sub == NULL || !sb_peer_id_valid(sub, strlen(sub))) {
        fprintf(stderr, "switchboard token: --sub must be a peer ID: 1-64 of [A-Za-z0-9_.-]\n");
        return 2;
    }
    if (key_file == NULL && (secret == NULL || secret[0] == '\0')) {
        fprintf(stderr, "switchboard token: give --secret (or SWITCHBOARD_AUTH_SECRET) or --key\n");
        return 2;
    }
    if (rooms != NULL && !rooms_valid(rooms))
        return 2;
    EVP_PKEY *key = key_file ? read_key(key_file) : NULL;
    if (key_file != NULL && key == NULL)
        return 1;
    char *json = claims_json(sub, ttl, rooms, iss, aud);
    int rc = 1;
    if (json != NULL) {
        char token[SB_TOKEN_MAX + 1];
        const char *err = NULL;
        int n = sb_token_sign(json, key ? NULL : (const unsigned char *)secret,
                              key ? 0 : strlen(secret), key, token, sizeof(token), &err);
        if (n < 0) {
            fprintf(stderr, "switchboard token: %s\n", err);
        } else {
            printf("%s\n", token);
            rc = 0;
        }
    }
    cJSON_free(json);
    EVP_PKEY_free(key);
    return rc;
}
