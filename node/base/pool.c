/* Free lists of fixed-size blocks: what is made and unmade for every message reuses memory. */
#include "base/pool.h"

#include <stdlib.h>

/* Under AddressSanitizer a kept block is poisoned past its link, so that a use after
 * sb_pool_put is caught as it would be after free. */
#if defined(__SANITIZE_ADDRESS__)
#define SB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SB_ASAN 1
#endif
#endif
#ifdef SB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(b, n) ASAN_POISON_MEMORY_REGION((char *)(b) + sizeof(void *), (n) - sizeof(void *))
#define UNPOISON(b, n)                                                                             \
    ASAN_UNPOISON_MEMORY_REGION((char *)(b) + sizeof(void *), (n) - sizeof(void *))
#else
#define POISON(b, n) ((void)(b), (void)(n))
#define UNPOISON(b, n) ((void)(b), (void)(n))
#endif

void *sb_pool_get(sb_pool_t *p)
{
    void *block = p->free;
    if (block == NULL)
        return malloc(p->size);
    p->free = *(void **)block;
    p->nfree--;
    UNPOISON(block, p->size);
    return block;
}

void sb_pool_put(sb_pool_t *p, void *block)
{
    if (block == NULL)
        return;
    if (p->nfree >= p->keep) {
        free(block);
        return;
    }
    *(void **)block = p->free;
    POISON(block, p->size);
    p->free = block;
    p->nfree++;
}

void sb_pool_drain(sb_pool_t *p)
{
    while (p->free != NULL) {
        void *block = p->free;
        p->free = *(void **)block;
        UNPOISON(block, p->size);
        free(block);
    }
    p->nfree = 0;
}
