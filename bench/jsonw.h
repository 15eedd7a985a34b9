/* A small streaming JSON writer for the bench's one-object report on stdout. */
#ifndef SB_BENCH_JSONW_H
#define SB_BENCH_JSONW_H

#include <stdint.h>
#include <stdio.h>

#define SB_JW_MAX_DEPTH 16

/* Writes to f; key is NULL inside arrays (and for the outermost value). Numbers that are not
 * finite are written as null. */
typedef struct {
    FILE *f;
    int depth;
    int count[SB_JW_MAX_DEPTH]; /* values written at each depth, for the commas */
} sb_jw_t;

void sb_jw_init(sb_jw_t *w, FILE *f);
void sb_jw_begin(sb_jw_t *w, const char *key);       /* { */
void sb_jw_end(sb_jw_t *w);                          /* } */
void sb_jw_begin_array(sb_jw_t *w, const char *key); /* [ */
void sb_jw_end_array(sb_jw_t *w);                    /* ] */
void sb_jw_uint(sb_jw_t *w, const char *key, uint64_t v);
void sb_jw_int(sb_jw_t *w, const char *key, int64_t v);
void sb_jw_num(sb_jw_t *w, const char *key, double v);
void sb_jw_null(sb_jw_t *w, const char *key);
void sb_jw_bool(sb_jw_t *w, const char *key, int v);
void sb_jw_str(sb_jw_t *w, const char *key, const char *s);

#endif
