// Qualifiers carried through: volatile members and parameters (as sqlite3.h has), restrict
// parameters, and every mix of const and volatile around pointers.
#pragma once
#include <stdint.h>
#include "../api.h"

struct fix_mutex {
    volatile int locked;
    volatile uint32_t * volatile waiters;
    const volatile int64_t generation;
    int * volatile slot;
    const char * const volatile name;
};

typedef volatile int fix_flag_t;

struct fix_signal {
    fix_flag_t raised;
    fix_flag_t * handlers[2];
};

typedef void (*fix_copier)(const float * restrict src, float * restrict dst, int64_t n);

FIX_API void fix_spin(volatile int * flag, const volatile struct fix_mutex * mutex);
FIX_API int fix_copy(const void * restrict src, void * restrict dst, volatile int64_t n);
FIX_API void fix_watch(fix_flag_t * flag, fix_copier copy);
