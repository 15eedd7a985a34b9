/* A test aid preloaded into a node: counts its heap allocations, told on SIGUSR2. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static unsigned long count;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);

/* dlsym may itself call calloc before real_calloc is known: served from here, never freed. */
static char early[4096];
static size_t early_used;

static void find_real(void)
{
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
}

void free(void *p)
{
    if ((char *)p >= early && (char *)p < early + sizeof(early))
        return;
    if (real_free == NULL)
        find_real();
    real_free(p);
}

void *malloc(size_t n)
{
    if (real_malloc == NULL)
        find_real();
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (real_calloc == NULL) {
        size_t n = a * b;
        if (early_used + n > sizeof(early))
            return NULL;
        void *p = early + early_used;
        early_used += (n + 15) & ~(size_t)15;
        memset(p, 0, n);
        return p;
    }
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if (real_realloc == NULL)
        find_real();
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return real_realloc(p, n);
}

static void report(int sig)
{
    char line[64];
    (void)sig;
    int n = snprintf(line, sizeof(line), "alloc-count %lu\n",
                     __atomic_load_n(&count, __ATOMIC_RELAXED));
    if (n > 0 && write(2, line, (size_t)n) < 0)
        return;
}

__attribute__((constructor)) static void setup(void) { signal(SIGUSR2, report); }
