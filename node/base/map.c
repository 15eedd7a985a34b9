/* A string-keyed hash table with a random SipHash key, since peers choose the keys. */
#include "base/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

typedef struct entry {
    struct entry *next;
    void *value;
    char key[]; /* NUL-terminated copy */
} entry_t;

struct sb_map {
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t size;
    uint64_t k0, k1;
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                                  \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                                     \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                                     \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                                  \
    } while (0)

/* SipHash-1-3 (the variant Redis uses for its dictionaries). */
static uint64_t siphash(const uint8_t *in, size_t len, uint64_t k0, uint64_t k1)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&m, in + i, 8); /* little-endian hosts; the hash only needs to be consistent */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static size_t slot(const sb_map_t *m, const char *key)
{
    return (size_t)siphash((const uint8_t *)key, strlen(key), m->k0, m->k1) & (m->nbuckets - 1);
}

sb_map_t *sb_map_new(void)
{
    sb_map_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    uint64_t k[2];
    if (m->buckets == NULL || RAND_bytes((unsigned char *)k, sizeof(k)) != 1) {
        free(m->buckets);
        free(m);
        return NULL;
    }
    m->k0 = k[0];
    m->k1 = k[1];
    return m;
}

void sb_map_clear(sb_map_t *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (entry_t *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
        m->buckets[i] = NULL;
    }
    m->size = 0;
}

void sb_map_free(sb_map_t *m)
{
    if (m == NULL)
        return;
    sb_map_clear(m);
    free(m->buckets);
    free(m);
}

static entry_t **find(const sb_map_t *m, const char *key)
{
    entry_t **p = &m->buckets[slot(m, key)];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

void *sb_map_get(const sb_map_t *m, const char *key)
{
    entry_t *e = *find(m, key);
    return e ? e->value : NULL;
}

/* Doubles the table when it averages more than one entry a bucket. */
static void grow(sb_map_t *m)
{
    size_t n = m->nbuckets * 2;
    entry_t **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return; /* longer chains, still correct */
    entry_t **old = m->buckets;
    size_t oldn = m->nbuckets;
    m->buckets = b;
    m->nbuckets = n;
    for (size_t i = 0; i < oldn; i++)
        for (entry_t *e = old[i], *next; e; e = next) {
            next = e->next;
            size_t s = slot(m, e->key);
            e->next = b[s];
            b[s] = e;
        }
    free(old);
}

int sb_map_put(sb_map_t *m, const char *key, void *value)
{
    entry_t **p = find(m, key);
    if (*p) {
        (*p)->value = value;
        return 0;
    }
    size_t klen = strlen(key);
    entry_t *e = malloc(sizeof(*e) + klen + 1);
    if (e == NULL)
        return -1;
    memcpy(e->key, key, klen + 1);
    e->value = value;
    e->next = NULL;
    *p = e;
    if (++m->size > m->nbuckets)
        grow(m);
    return 0;
}

void *sb_map_remove(sb_map_t *m, const char *key)
{
    entry_t **p = find(m, key), *e = *p;
    if (e == NULL)
        return NULL;
    *p = e->next;
    void *value = e->value;
    free(e);
    m->size--;
    return value;
}

size_t sb_map_size(const sb_map_t *m) { return m->size; }

int sb_map_next(const sb_map_t *m, size_t *cursor, const char **key, void **value)
{
    /* The cursor packs the bucket index (high bits) and the position in its chain (low 16 bits;
     * chains stay short since the table grows at one entry per bucket). */
    size_t bucket = *cursor >> 16, depth = *cursor & 0xFFFF;
    for (; bucket < m->nbuckets; bucket++, depth = 0) {
        entry_t *e = m->buckets[bucket];
        for (size_t d = 0; e && d < depth; d++)
            e = e->next;
        if (e) {
            *key = e->key;
            *value = e->value;
            *cursor = bucket << 16 | (depth + 1);
            return 1;
        }
    }
    *cursor = bucket << 16;
    return 0;
}
