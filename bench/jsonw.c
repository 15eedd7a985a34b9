/* A small streaming JSON writer for the bench's one-object report on stdout. */
#include "jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void sb_jw_init(sb_jw_t *w, FILE *f)
{
    memset(w, 0, sizeof(*w));
    w->f = f;
}

static void str(sb_jw_t *w, const char *s)
{
    size_t cap = strlen(s) * 6 + 3;
    char stack[256];
    char *out = cap <= sizeof(stack) ? stack : malloc(cap);
    if (out && sb_json_escape(s, out, cap) >= 0)
        fputs(out, w->f);
    else
        fputs("null", w->f);
    if (out != stack)
        free(out);
}

/* The comma and key before a value. */
static void key(sb_jw_t *w, const char *k)
{
    if (w->count[w->depth]++ > 0)
        fputc(',', w->f);
    if (k) {
        str(w, k);
        fputc(':', w->f);
    }
}

static void open_(sb_jw_t *w, const char *k, char c)
{
    key(w, k);
    fputc(c, w->f);
    if (w->depth < SB_JW_MAX_DEPTH - 1)
        w->count[++w->depth] = 0;
}

static void close_(sb_jw_t *w, char c)
{
    fputc(c, w->f);
    if (w->depth > 0)
        w->depth--;
    if (w->depth == 0)
        fputc('\n', w->f);
}

void sb_jw_begin(sb_jw_t *w, const char *k) { open_(w, k, '{'); }
void sb_jw_end(sb_jw_t *w) { close_(w, '}'); }
void sb_jw_begin_array(sb_jw_t *w, const char *k) { open_(w, k, '['); }
void sb_jw_end_array(sb_jw_t *w) { close_(w, ']'); }

void sb_jw_uint(sb_jw_t *w, const char *k, uint64_t v)
{
    key(w, k);
    fprintf(w->f, "%" PRIu64, v);
}

void sb_jw_int(sb_jw_t *w, const char *k, int64_t v)
{
    key(w, k);
    fprintf(w->f, "%" PRId64, v);
}

void sb_jw_num(sb_jw_t *w, const char *k, double v)
{
    key(w, k);
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e15)
        fprintf(w->f, "%.0f", v); /* whole numbers (rates, sizes) exactly */
    else if (isfinite(v))
        fprintf(w->f, "%.6g", v);
    else
        fputs("null", w->f);
}

void sb_jw_null(sb_jw_t *w, const char *k)
{
    key(w, k);
    fputs("null", w->f);
}

void sb_jw_bool(sb_jw_t *w, const char *k, int v)
{
    key(w, k);
    fputs(v ? "true" : "false", w->f);
}

void sb_jw_str(sb_jw_t *w, const char *k, const char *s)
{
    key(w, k);
    str(w, s);
}
