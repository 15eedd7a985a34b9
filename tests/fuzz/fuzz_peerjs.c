/* libFuzzer target for proto/peerjs: a client frame is read as cJSON reads it, or refused. */
#include "check.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "peerjs.h"

/* The last member named `name` of obj, as JavaScript's JSON.parse keeps it (cJSON keeps all). */
static cJSON *last_member(const cJSON *obj, const char *name)
{
    cJSON *found = NULL;
    for (cJSON *c = obj->child; c != NULL; c = c->next)
        if (strcmp(c->string, name) == 0)
            found = c;
    return found;
}

static int has_escape_u(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '\\' && p[i + 1] == 'u')
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    sb_pj_msg_t m;
    int rc = sb_pj_parse(in, size, &m);
    /* cJSON stops at a NUL: such an input cannot be compared (and is not JSON). */
    cJSON *j = memchr(in, '\0', size) == NULL ? cJSON_ParseWithLength(in, size) : NULL;
    if (rc != 0) {
        cJSON_Delete(j);
        return 0;
    }
    /* (1) what we accept is a JSON object with a string type; cJSON alone refuses a lone
     * surrogate escape (\udc00), which RFC 8259 allows */
    if (j == NULL) {
        CHECK(has_escape_u(in, size));
        return 0;
    }
    CHECK(cJSON_IsObject(j));
    cJSON *type = last_member(j, "type");
    CHECK(type != NULL && cJSON_IsString(type));
    const char *name = sb_pj_type_name(m.type);
    CHECK(m.type == SB_PJ_OTHER || (name != NULL && strcmp(type->valuestring, name) == 0));
    /* (2) dst: a valid ID exactly when a string member decodes to one */
    cJSON *dst = last_member(j, "dst");
    CHECK(m.has_dst == (dst != NULL && cJSON_IsString(dst)));
    if (m.dst_valid)
        CHECK(strcmp(m.dst, dst->valuestring) == 0 && sb_peer_id_valid(m.dst, strlen(m.dst)));
    /* (3) the payload slice lies in the input and is one JSON value, the one cJSON found */
    cJSON *payload = last_member(j, "payload");
    CHECK((m.payload.len > 0) == (payload != NULL));
    if (m.payload.len > 0) {
        CHECK(m.payload.p >= in && m.payload.p + m.payload.len <= in + size);
        /* compared as printed: cJSON_Compare finds members by name, so an object with a name
         * twice would not even equal itself */
        cJSON *again = cJSON_ParseWithLength(m.payload.p, m.payload.len);
        CHECK(again != NULL);
        char *a = cJSON_PrintUnformatted(again), *b = cJSON_PrintUnformatted(payload);
        CHECK(a != NULL && b != NULL && strcmp(a, b) == 0);
        cJSON_free(a);
        cJSON_free(b);
        cJSON_Delete(again);
    }
    cJSON_Delete(j);
    return 0;
}
