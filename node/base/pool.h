/* Free lists of fixed-size blocks: what is made and unmade for every message reuses memory. */
#ifndef SB_POOL_H
#define SB_POOL_H

#include <stddef.h>

/* A pool of blocks of one size. The node runs one loop on one thread: no locking. */
typedef struct {
    size_t size;  /* bytes of every block */
    size_t keep;  /* free blocks kept at most; more go back to malloc */
    size_t nfree; /* free blocks kept now */
    void *free;   /* the free blocks, linked through their first bytes */
} sb_pool_t;

/* A pool of size-byte blocks (size at least a pointer's) keeping at most keep free ones. */
#define SB_POOL_INIT(size, keep)                                                                   \
    {                                                                                              \
        (size), (keep), 0, NULL                                                                    \
    }

/* A block, uninitialised: a kept one, or a new one from malloc. NULL when out of memory. */
void *sb_pool_get(sb_pool_t *p);

/* Gives a block of p back (NULL does nothing). */
void sb_pool_put(sb_pool_t *p, void *block);

/* Frees the blocks kept. */
void sb_pool_drain(sb_pool_t *p);

#endif
