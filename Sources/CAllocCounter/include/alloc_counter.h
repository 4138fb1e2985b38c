// Counts heap allocations of the process it is linked into (benchmarks only).
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
/// Allocations (malloc, calloc, realloc, memalign family) since the process started.
long long alloc_counter_total(void);
#ifdef __cplusplus
}
#endif
