/* A string-keyed hash table with a random SipHash key, since peers choose the keys. */
#ifndef SB_MAP_H
#define SB_MAP_H

#include <stddef.h>

typedef struct sb_map sb_map_t;

/* Returns an empty map, or NULL when out of memory. */
sb_map_t *sb_map_new(void);

/* Frees the map and its copies of the keys; values belong to the caller. */
void sb_map_free(sb_map_t *m);

/* Removes every key (values belong to the caller); the map keeps its table. */
void sb_map_clear(sb_map_t *m);

void *sb_map_get(const sb_map_t *m, const char *key);

/* Sets key to value (copying the key). Returns 0, or -1 when out of memory. */
int sb_map_put(sb_map_t *m, const char *key, void *value);

/* Removes key; returns its value, or NULL when absent. */
void *sb_map_remove(sb_map_t *m, const char *key);

size_t sb_map_size(const sb_map_t *m);

/* Iterates: start with *cursor = 0; returns 0 when done. The map must not change meanwhile. */
int sb_map_next(const sb_map_t *m, size_t *cursor, const char **key, void **value);

#endif
