// Interposes glibc's allocator entry points to count calls, forwarding to glibc's own
// implementations. Linked only into benchmark programs: every allocation of the process,
// in Swift or in llama.cpp, passes here.
#include "alloc_counter.h"

#if defined(__linux__)
#include <features.h>
#endif

#if defined(__linux__) && defined(__GLIBC__)
#include <stdatomic.h>
#include <stddef.h>

extern void * __libc_malloc(size_t size);
extern void * __libc_calloc(size_t n, size_t size);
extern void * __libc_realloc(void * p, size_t size);
extern void * __libc_memalign(size_t alignment, size_t size);
extern void   __libc_free(void * p);

static _Atomic long long counter = 0;

void * malloc(size_t size) { atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed); return __libc_malloc(size); }
void * calloc(size_t n, size_t size) { atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed); return __libc_calloc(n, size); }
void * realloc(void * p, size_t size) { atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed); return __libc_realloc(p, size); }
void * memalign(size_t alignment, size_t size) { atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed); return __libc_memalign(alignment, size); }
void * aligned_alloc(size_t alignment, size_t size) { return memalign(alignment, size); }
int posix_memalign(void ** out, size_t alignment, size_t size) {
    void * p = memalign(alignment, size);
    if (p == NULL) return 12; /* ENOMEM */
    *out = p;
    return 0;
}
void free(void * p) { __libc_free(p); }

long long alloc_counter_total(void) { return atomic_load_explicit(&counter, memory_order_relaxed); }
#else
long long alloc_counter_total(void) { return -1; }
#endif
