// Handwritten, not generated. The by-value argument of llama.cpp's extended batch API
// (`struct llama_embd` in include/llama.h of b11434: a row pointer, a row count, a row width),
// which is newer than the oldest header these sources must still build against (b11003). The
// MTP drafting code resolves those functions by name at run time and passes this mirror, so
// that the C compiler, not Swift, lays the argument out by the platform's calling convention.
#ifndef LLAMA_SWIFT_EMBD_H
#define LLAMA_SWIFT_EMBD_H

#include <stddef.h>

typedef struct llama_swift_embd_view {
    const float * data;
    size_t n_rows;
    size_t n_embd;
} llama_swift_embd_view;

#endif
