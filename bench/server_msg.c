/* Reads the fields the bench needs from a server message of protocol v1 (PROTOCOL.md). */
#include "server_msg.h"

#include <string.h>

#include "json.h"

int sb_server_msg_is(sb_str_t lit, const char *s)
{
    size_t n = strlen(s);
    return lit.len == n + 2 && lit.p[0] == '"' && memcmp(lit.p + 1, s, n) == 0;
}

void sb_server_msg_copy(sb_str_t lit, char *out, size_t cap)
{
    size_t n = lit.len >= 2 ? lit.len - 2 : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, lit.p + 1, n);
    out[n] = '\0';
}

/* The value of a key (a literal with quotes) if it is one the bench reads, else NULL. */
static sb_str_t *slot_for(sb_server_msg_t *m, const char *key, size_t len)
{
#define KEY(name, field)                                                                           \
    if (len == sizeof(name) + 1 && memcmp(key + 1, name, sizeof(name) - 1) == 0)                   \
        return &m->field;
    KEY("type", type)
    KEY("code", code)
    KEY("mid", mid)
    KEY("from", from)
    KEY("id", id)
#undef KEY
    return NULL;
}

int sb_server_msg_parse(const char *text, size_t len, sb_server_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    size_t pos = 0;
    sb_json_skip_ws(text, len, &pos);
    if (pos >= len || text[pos] != '{')
        return -1;
    pos++;
    sb_json_skip_ws(text, len, &pos);
    if (pos < len && text[pos] == '}')
        return 0;
    /* each field consumes at least one byte: bounded by len */
    int closed = 0;
    while (!closed && pos < len) {
        size_t k = pos;
        if (text[pos] != '"' || sb_json_skip_value(text, len, &pos) != 0)
            return -1;
        size_t klen = pos - k;
        sb_json_skip_ws(text, len, &pos);
        if (pos >= len || text[pos] != ':')
            return -1;
        pos++;
        sb_json_skip_ws(text, len, &pos);
        size_t v = pos;
        if (sb_json_skip_nested(text, len, &pos, 1) != 0)
            return -1;
        sb_str_t *slot = slot_for(m, text + k, klen);
        if (slot)
            *slot = (sb_str_t){text + v, pos - v};
        sb_json_skip_ws(text, len, &pos);
        if (pos < len && text[pos] == '}') {
            closed = 1;
        } else {
            if (pos >= len || text[pos] != ',')
                return -1;
            pos++;
            sb_json_skip_ws(text, len, &pos);
        }
    }
    if (!closed)
        return -1;
    if (m->mid.len > 0 && m->mid.len <= 19 && m->mid.p[0] >= '0' && m->mid.p[0] <= '9') {
        uint64_t v = 0;
        size_t i = 0;
        while (i < m->mid.len && m->mid.p[i] >= '0' && m->mid.p[i] <= '9')
            v = v * 10 + (uint64_t)(m->mid.p[i++] - '0');
        if (i == m->mid.len) {
            m->has_mid = 1;
            m->mid_value = v;
        }
    }
    return 0;
}
