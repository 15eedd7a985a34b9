/* A strict RFC 8259 JSON scanner that finds values without building a tree, and a string escaper.
 */
#include "json.h"

#include <stdint.h>
#include <string.h>

#include "str.h"
#include "utf8.h"

void sb_json_skip_ws(const char *buf, size_t len, size_t *pos)
{
    while (*pos < len &&
           (buf[*pos] == ' ' || buf[*pos] == '\t' || buf[*pos] == '\n' || buf[*pos] == '\r'))
        (*pos)++;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* A string literal: control characters must be escaped, escapes must be known, and the raw
 * bytes must be UTF-8. On failure *pos is the offending byte. */
static int skip_string(const char *buf, size_t len, size_t *pos)
{
    size_t i = *pos + 1;
    sb_utf8_t v;
    sb_utf8_reset(&v);
    for (; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if ((c == '"' || c == '\\') && !sb_utf8_complete(&v))
            break; /* a code point cut short */
        if (c == '"') {
            *pos = i + 1;
            return 0;
        }
        if (c < 0x20)
            break;
        if (c == '\\') {
            char e = i + 1 < len ? buf[i + 1] : '\0';
            if (e == 'u') {
                size_t k = 2;
                while (k < 6 && i + k < len && sb_hex_digit(buf[i + k]) >= 0)
                    k++;
                if (k < 6) {
                    i += k;
                    break;
                }
                i += 5;
            } else if (e != '\0' && strchr("\"\\/bfnrt", e) != NULL) {
                i++;
            } else {
                i++;
                break;
            }
            continue;
        }
        /* A run of plain characters, up to the next quote, backslash or control byte: checked
         * as UTF-8 in one call (ASCII a word at a time); on a bad byte, again one by one to
         * stop exactly there. */
        size_t j = i + 1;
        while (j < len && buf[j] != '"' && buf[j] != '\\' && (unsigned char)buf[j] >= 0x20)
            j++;
        sb_utf8_t before = v;
        if (sb_utf8_feed(&v, (const uint8_t *)buf + i, j - i) == 0) {
            i = j - 1;
            continue;
        }
        v = before;
        while (sb_utf8_feed(&v, (const uint8_t *)buf + i, 1) == 0)
            i++;
        break;
    }
    *pos = i < len ? i : len;
    return -1;
}

static int skip_number(const char *buf, size_t len, size_t *pos)
{
    size_t i = *pos;
    if (i < len && buf[i] == '-')
        i++;
    if (i < len && buf[i] == '0') {
        i++;
    } else if (i < len && buf[i] >= '1' && buf[i] <= '9') {
        while (i < len && is_digit(buf[i]))
            i++;
    } else {
        goto fail;
    }
    if (i < len && buf[i] == '.') {
        i++;
        if (i >= len || !is_digit(buf[i]))
            goto fail;
        while (i < len && is_digit(buf[i]))
            i++;
    }
    if (i < len && (buf[i] == 'e' || buf[i] == 'E')) {
        i++;
        if (i < len && (buf[i] == '+' || buf[i] == '-'))
            i++;
        if (i >= len || !is_digit(buf[i]))
            goto fail;
        while (i < len && is_digit(buf[i]))
            i++;
    }
    *pos = i;
    return 0;
fail:
    *pos = i;
    return -1;
}

static int skip_literal(const char *buf, size_t len, size_t *pos, const char *word)
{
    for (; *word; word++, (*pos)++)
        if (*pos >= len || buf[*pos] != *word)
            return -1; /* *pos is the first byte that differs */
    return 0;
}

static int skip(const char *buf, size_t len, size_t *pos, int depth);

/* Objects and arrays share one loop: members are "key": value in objects, value in arrays. */
static int skip_container(const char *buf, size_t len, size_t *pos, int depth)
{
    char close = buf[*pos] == '{' ? '}' : ']';
    int object = close == '}';
    if (depth >= SB_JSON_MAX_DEPTH)
        return -1;
    (*pos)++;
    sb_json_skip_ws(buf, len, pos);
    if (*pos < len && buf[*pos] == close) {
        (*pos)++;
        return 0;
    }
    for (;;) {
        if (object) {
            sb_json_skip_ws(buf, len, pos);
            if (*pos >= len || buf[*pos] != '"' || skip_string(buf, len, pos) != 0)
                return -1;
            sb_json_skip_ws(buf, len, pos);
            if (*pos >= len || buf[*pos] != ':')
                return -1;
            (*pos)++;
        }
        if (skip(buf, len, pos, depth + 1) != 0)
            return -1;
        sb_json_skip_ws(buf, len, pos);
        if (*pos >= len)
            return -1;
        if (buf[*pos] == close) {
            (*pos)++;
            return 0;
        }
        if (buf[*pos] != ',')
            return -1;
        (*pos)++;
    }
}

static int skip(const char *buf, size_t len, size_t *pos, int depth)
{
    sb_json_skip_ws(buf, len, pos);
    if (*pos >= len)
        return -1;
    switch (buf[*pos]) {
    case '{':
    case '[':
        return skip_container(buf, len, pos, depth);
    case '"':
        return skip_string(buf, len, pos);
    case 't':
        return skip_literal(buf, len, pos, "true");
    case 'f':
        return skip_literal(buf, len, pos, "false");
    case 'n':
        return skip_literal(buf, len, pos, "null");
    default:
        return skip_number(buf, len, pos);
    }
}

int sb_json_skip_value(const char *buf, size_t len, size_t *pos) { return skip(buf, len, pos, 0); }

int sb_json_skip_nested(const char *buf, size_t len, size_t *pos, int depth)
{
    return skip(buf, len, pos, depth);
}

/* Appends code point cp as UTF-8. */
static int put_utf8(char *out, size_t cap, size_t *n, uint32_t cp)
{
    char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (char)cp, k = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), k = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)), k = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), k = 4;
    }
    if (*n + k >= cap)
        return -1;
    memcpy(out + *n, b, k);
    *n += k;
    return 0;
}

static int read_hex4(const char *p, uint32_t *cp)
{
    *cp = 0;
    for (int i = 0; i < 4; i++) {
        int h = sb_hex_digit(p[i]);
        if (h < 0)
            return -1;
        *cp = *cp << 4 | (uint32_t)h;
    }
    return 0;
}

int sb_json_decode_string(const sb_str_t *lit, char *out, size_t cap)
{
    size_t pos = 0, n = 0;
    if (cap == 0 || lit->len < 2 || lit->p[0] != '"' || skip_string(lit->p, lit->len, &pos) != 0 ||
        pos != lit->len)
        return -1;
    const char *p = lit->p + 1, *end = lit->p + lit->len - 1;
    while (p < end) {
        uint32_t cp;
        if (*p != '\\') {
            if (n + 1 >= cap)
                return -1;
            out[n++] = *p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            read_hex4(p, &cp); /* validated by skip_string */
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || read_hex4(p + 2, &lo) != 0 ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return -1; /* a lone surrogate has no UTF-8 form */
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            break;
        default:
            cp = (uint32_t)(unsigned char)e;
            break; /* " \ / */
        }
        if (put_utf8(out, cap, &n, cp) != 0)
            return -1;
    }
    out[n] = '\0';
    return (int)n;
}

int sb_json_escape(const char *s, char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    size_t n = 0;
    if (cap < 3)
        return -1;
    out[n++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            esc[k++] = '\\', esc[k++] = (char)c;
        } else if (c < 0x20) {
            esc[k++] = '\\', esc[k++] = 'u', esc[k++] = '0', esc[k++] = '0';
            esc[k++] = digits[c >> 4], esc[k++] = digits[c & 0xF];
        } else {
            esc[k++] = (char)c;
        }
        if (n + k + 2 > cap)
            return -1;
        memcpy(out + n, esc, k);
        n += k;
    }
    out[n++] = '"';
    out[n] = '\0';
    return (int)n;
}
