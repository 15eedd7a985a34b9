/* PeerJS's PeerServer dialect (proto/PEERJS.md): its client frames read, its server frames written.
 */
#include "peerjs.h"

#include <string.h>

#include "json.h"

static const char *const type_names[] = {"HEARTBEAT", "OFFER", "ANSWER",
                                         "CANDIDATE", "LEAVE", "EXPIRE"};
#define NUM_TYPES (sizeof(type_names) / sizeof(type_names[0]))

const char *sb_pj_type_name(sb_pj_type_t type)
{
    return (unsigned)type < NUM_TYPES ? type_names[type] : NULL;
}

/* Whether the string literal lit decodes to exactly name. */
static int literal_is(const sb_str_t *lit, const char *name)
{
    char buf[16];
    int n = sb_json_decode_string(lit, buf, sizeof(buf));
    return n >= 0 && (size_t)n == strlen(name) && memcmp(buf, name, (size_t)n) == 0;
}

int sb_pj_parse(const char *buf, size_t len, sb_pj_msg_t *m)
{
    sb_str_t type = {NULL, 0}, dst = {NULL, 0};
    size_t pos = 0;

    memset(m, 0, sizeof(*m));
    sb_json_skip_ws(buf, len, &pos);
    if (pos >= len || buf[pos] != '{')
        return -1;
    pos++;
    sb_json_skip_ws(buf, len, &pos);
    for (int first = 1; pos < len && buf[pos] != '}'; first = 0) {
        if (!first) {
            if (buf[pos] != ',')
                return -1;
            pos++;
            sb_json_skip_ws(buf, len, &pos);
        }
        size_t kstart = pos;
        if (pos >= len || buf[pos] != '"' || sb_json_skip_value(buf, len, &pos) != 0)
            return -1;
        sb_str_t key = {buf + kstart, pos - kstart};
        sb_json_skip_ws(buf, len, &pos);
        if (pos >= len || buf[pos] != ':')
            return -1;
        pos++;
        sb_json_skip_ws(buf, len, &pos);
        size_t vstart = pos;
        if (sb_json_skip_nested(buf, len, &pos, 1) != 0)
            return -1;
        sb_str_t value = {buf + vstart, pos - vstart};
        if (literal_is(&key, "type"))
            type = value;
        else if (literal_is(&key, "dst"))
            dst = value;
        else if (literal_is(&key, "payload"))
            m->payload = value;
        sb_json_skip_ws(buf, len, &pos);
    }
    if (pos >= len)
        return -1;
    pos++;
    sb_json_skip_ws(buf, len, &pos);
    if (pos != len || type.len == 0 || type.p[0] != '"')
        return -1;

    m->type = SB_PJ_OTHER;
    for (size_t i = 0; i < NUM_TYPES; i++)
        if (literal_is(&type, type_names[i]))
            m->type = (sb_pj_type_t)i;
    if (dst.len > 0 && dst.p[0] == '"') {
        m->has_dst = 1;
        int n = sb_json_decode_string(&dst, m->dst, sizeof(m->dst));
        m->dst_valid = n >= 0 && sb_peer_id_valid(m->dst, (size_t)n);
        if (!m->dst_valid)
            m->dst[0] = '\0';
    }
    /* JSON null is PeerServer's payload too ("payload":null is passed on); only absence is not. */
    return 0;
}

size_t sb_pj_relay_parts(sb_pj_type_t type, const char *src, const char *dst, sb_str_t payload,
                         sb_str_t parts[SB_PJ_RELAY_PARTS])
{
    size_t n = 0;
#define PART(s, l) (parts[n++] = (sb_str_t){(s), (l)})
#define LIT(s) PART(s, sizeof(s) - 1)
    LIT("{\"type\":\"");
    PART(type_names[type], strlen(type_names[type]));
    LIT("\",\"src\":\"");
    PART(src, strlen(src));
    LIT("\",\"dst\":\"");
    PART(dst, strlen(dst));
    if (payload.len > 0) {
        LIT("\",\"payload\":");
        PART(payload.p, payload.len);
        LIT("}");
    } else {
        LIT("\"}");
    }
#undef LIT
#undef PART
    return n;
}

static size_t put(char *out, const char *a, const char *b, const char *c, const char *d,
                  const char *e)
{
    const char *in[] = {a, b, c, d, e};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]) && in[i] != NULL; i++) {
        size_t l = strlen(in[i]);
        memcpy(out + n, in[i], l);
        n += l;
    }
    out[n] = '\0';
    return n;
}

size_t sb_pj_open(char *out) { return put(out, "{\"type\":\"OPEN\"}", NULL, NULL, NULL, NULL); }

size_t sb_pj_error(const char *msg, char *out)
{
    return put(out, "{\"type\":\"ERROR\",\"payload\":{\"msg\":\"", msg, "\"}}", NULL, NULL);
}

size_t sb_pj_id_taken(char *out)
{
    return put(out, "{\"type\":\"ID-TAKEN\",\"payload\":{\"msg\":\"ID is taken\"}}", NULL, NULL,
               NULL, NULL);
}

size_t sb_pj_expire(const char *gone, const char *to, char *out)
{
    return put(out, "{\"type\":\"EXPIRE\",\"src\":\"", gone, "\",\"dst\":\"", to, "\"}");
}
