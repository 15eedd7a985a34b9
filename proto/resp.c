/* Redis replies (RESP2) read from the bytes a connection received, into caller-provided nodes. */
#include "resp.h"

#include <limits.h>
#include <string.h>

static int fail(const char **err, const char *reason, int code)
{
    if (err != NULL)
        *err = reason;
    return code;
}

/* What the line and number readers below answer, besides 1 (read) and 0 (need more bytes). */
enum { BAD = -1, OVER = -2, NOCRLF = -3 };

/* Steps over the CRLF at buf[i] (the CR already seen there) into *pos: 1, 0 or NOCRLF. */
static int crlf(const char *buf, size_t len, size_t i, size_t *pos)
{
    if (i + 1 == len)
        return 0;
    if (buf[i + 1] != '\n')
        return NOCRLF;
    *pos = i + 2;
    return 1;
}

/* Reads the text of a simple string or error line at *pos, up to its CRLF: 1 with *out and *pos
 * past the CRLF, 0, NOCRLF (a bare CR or LF) or OVER (longer than SB_RESP_LINE_MAX). Decides
 * at the first byte that settles it. */
static int line(const char *buf, size_t len, size_t *pos, sb_str_t *out)
{
    size_t start = *pos, i;

    for (i = start; i < len && buf[i] != '\r' && buf[i] != '\n'; i++)
        if (i - start == SB_RESP_LINE_MAX)
            return OVER;
    if (i == len)
        return 0;
    if (buf[i] == '\n')
        return NOCRLF;
    *out = (sb_str_t){buf + start, i - start};
    return crlf(buf, len, i, pos);
}

/* Reads "[-]digits" CRLF at *pos: digits without a leading zero (but "0"), no "-0", a magnitude
 * at most max_pos (max_neg when negative). Answers 1 with *neg, *mag and *pos past the CRLF, 0,
 * BAD, OVER (*neg set) or NOCRLF, at the first byte that settles it. */
static int decimal(const char *buf, size_t len, size_t *pos, uint64_t max_pos, uint64_t max_neg,
                   int *neg, uint64_t *mag)
{
    size_t i = *pos, ndigits = 0;
    uint64_t v = 0, max;

    *neg = i < len && buf[i] == '-';
    i += (size_t)*neg;
    max = *neg ? max_neg : max_pos;
    for (; i < len; i++) {
        char c = buf[i];
        if (c < '0' || c > '9')
            break;
        if (ndigits == 1 && v == 0)
            return BAD; /* a leading zero */
        unsigned d = (unsigned)(c - '0');
        if (v > max / 10 || (v == max / 10 && d > max % 10))
            return OVER;
        v = v * 10 + d;
        ndigits++;
    }
    if (i == len)
        return 0;
    if (buf[i] == '\n')
        return NOCRLF;
    if (buf[i] != '\r' || ndigits == 0 || (*neg && v == 0))
        return BAD;
    *mag = v;
    return crlf(buf, len, i, pos);
}

static const char e_crlf[] = "a line of the reply has a CR or LF that does not end it";
static const char e_len[] = "a bulk length or array count is not a decimal, or is below -1";
static const char e_big[] = "a bulk string or array is over 512 MiB";

int sb_resp_parse(const char *buf, size_t len, sb_resp_t *nodes, size_t max_nodes,
                  size_t *used_nodes, const char **err)
{
    struct {
        size_t node; /* the array's index in nodes */
        size_t left; /* elements still to read */
    } open[SB_RESP_DEPTH_MAX];
    size_t depth = 0, pos = 0, n = 0;
    size_t need = 1; /* nodes used, and one for each element announced but not begun */
    int rc, neg;
    uint64_t v;

    if (used_nodes != NULL)
        *used_nodes = 0;
    for (;;) {
        if (pos == len)
            return 0;
        char type = buf[pos++];
        if (type == '\0' || strchr("+-:$*>", type) == NULL)
            return fail(err, "a reply starts with an unknown type byte", SB_RESP_ETYPE);
        if ((type == '*' || type == '>') && depth == SB_RESP_DEPTH_MAX)
            return fail(err, "arrays nested deeper than 16", SB_RESP_EDEPTH);
        if (n == max_nodes)
            return fail(err, "the reply has more parts than nodes to hold them", SB_RESP_ENODES);

        sb_resp_t *node = &nodes[n];
        memset(node, 0, sizeof(*node));
        node->next = n + 1;
        switch (type) {
        case '+':
        case '-':
            node->type = type == '+' ? SB_RESP_STATUS : SB_RESP_ERROR;
            rc = line(buf, len, &pos, &node->str);
            if (rc == OVER)
                return fail(err, "a simple string or error is over 64 KiB", SB_RESP_EBIG);
            break;
        case ':':
            node->type = SB_RESP_INTEGER;
            rc = decimal(buf, len, &pos, INT64_MAX, (uint64_t)INT64_MAX + 1, &neg, &v);
            if (rc == BAD || rc == OVER)
                return fail(err, "an integer is not a decimal that fits 64 bits", SB_RESP_EINT);
            if (rc == 1)
                node->integer = neg ? -(int64_t)(v - 1) - 1 : (int64_t)v;
            break;
        case '$':
            rc = decimal(buf, len, &pos, SB_RESP_BULK_MAX, 1, &neg, &v);
            if (rc == BAD || (rc == OVER && neg))
                return fail(err, e_len, SB_RESP_ELEN);
            if (rc == OVER)
                return fail(err, e_big, SB_RESP_EBIG);
            if (rc != 1)
                break;
            if (neg) {
                node->type = SB_RESP_NIL;
                break;
            }
            node->type = SB_RESP_BULK;
            if (pos > (size_t)INT_MAX || v + 2 > (size_t)INT_MAX - pos)
                return fail(err, "the reply is over 2 GiB", SB_RESP_EBIG);
            if (len - pos <= v)
                return 0;
            if (buf[pos + v] != '\r')
                return fail(err, "a bulk string is not followed by CRLF", SB_RESP_ECRLF);
            node->str = (sb_str_t){buf + pos, (size_t)v};
            rc = crlf(buf, len, pos + v, &pos);
            if (rc == NOCRLF)
                return fail(err, "a bulk string is not followed by CRLF", SB_RESP_ECRLF);
            break;
        default: /* '*' and '>' */
            rc = decimal(buf, len, &pos, SB_RESP_BULK_MAX, 1, &neg, &v);
            if (rc == BAD || (rc == OVER && neg) || (rc == 1 && neg && type == '>'))
                return fail(err, e_len, SB_RESP_ELEN);
            if (rc == OVER)
                return fail(err, e_big, SB_RESP_EBIG);
            if (rc != 1)
                break;
            if (neg) {
                node->type = SB_RESP_NIL_ARRAY;
                break;
            }
            node->type = type == '*' ? SB_RESP_ARRAY : SB_RESP_PUSH;
            node->count = (size_t)v;
            /* each element takes a node at least */
            if (node->count > max_nodes - need)
                return fail(err, "the reply has more parts than nodes to hold them",
                            SB_RESP_ENODES);
            need += node->count;
            break;
        }
        if (rc == NOCRLF)
            return fail(err, e_crlf, SB_RESP_ECRLF);
        if (rc == 0)
            return 0;
        if (pos > (size_t)INT_MAX)
            return fail(err, "the reply is over 2 GiB", SB_RESP_EBIG);

        n++;
        if (node->count > 0) {
            open[depth].node = n - 1;
            open[depth].left = node->count;
            depth++;
            continue;
        }
        /* a whole element: it may end its array, and that array its own */
        while (depth > 0 && --open[depth - 1].left == 0) {
            nodes[open[depth - 1].node].next = n;
            depth--;
        }
        if (depth == 0) {
            if (used_nodes != NULL)
                *used_nodes = n;
            return (int)pos;
        }
    }
}

int sb_resp_str_is(const sb_resp_t *node, const char *lit)
{
    size_t n = strlen(lit);
    return (node->type == SB_RESP_BULK || node->type == SB_RESP_STATUS) && node->str.len == n &&
           (n == 0 || memcmp(node->str.p, lit, n) == 0);
}

int sb_resp_pubsub_message(const sb_resp_t *nodes, size_t used, sb_resp_msg_t *msg)
{
    const sb_resp_t *r = nodes;

    memset(msg, 0, sizeof(*msg));
    if (used < 4 || (r->type != SB_RESP_ARRAY && r->type != SB_RESP_PUSH) || r->count < 3 ||
        r->count > 4 || r->next != r->count + 1 || used < r->next)
        return 0;
    for (size_t i = 1; i <= r->count; i++)
        if (nodes[i].type != SB_RESP_BULK)
            return 0;
    if (r->count == 3 && sb_resp_str_is(&nodes[1], "message"))
        msg->kind = SB_RESP_MESSAGE;
    else if (r->count == 3 && sb_resp_str_is(&nodes[1], "smessage"))
        msg->kind = SB_RESP_SMESSAGE;
    else if (r->count == 4 && sb_resp_str_is(&nodes[1], "pmessage"))
        msg->kind = SB_RESP_PMESSAGE;
    else
        return 0;
    if (msg->kind == SB_RESP_PMESSAGE)
        msg->pattern = nodes[2].str;
    msg->channel = nodes[r->count - 1].str;
    msg->payload = nodes[r->count].str;
    return (int)msg->kind;
}
