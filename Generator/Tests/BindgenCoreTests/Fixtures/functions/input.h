// Functions: structs by value, callbacks, pointers of every kind, deprecation, and what is skipped.
#pragma once
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "../api.h"

struct fix_model;
typedef struct fix_model * fix_model_t;

struct fix_params {
    int32_t n_threads;
    float temperature;
    bool verbose;
    void (*progress)(float fraction, void * user_data);
    void * user_data;
};

typedef bool (*fix_abort_callback)(void * data);
typedef void (*fix_log_callback)(int level, const char * text, void * user_data);

FIX_API struct fix_params fix_default_params(void);
FIX_API fix_model_t fix_load(const char * path, struct fix_params params);
FIX_API int32_t fix_tokenize(fix_model_t model, const char * text, int32_t * tokens, size_t n_max, bool add_special);
FIX_API void fix_set_abort(fix_model_t model, fix_abort_callback callback, void * data);
FIX_API void fix_set_log(fix_log_callback callback, void * user_data);
FIX_API void fix_each(fix_model_t model, void (*visit)(const struct fix_params * p, int32_t index));
FIX_API size_t fix_names(const char ** names, const char * const * defaults, char ** out);
FIX_API void fix_shape(const int64_t ne[4], uint8_t * data, const void * raw, void * scratch);
FIX_API int fix_keywords(int in, int default_, int func);
FIX_API void fix_unnamed(int, float);
FIX_API FILE * fix_open_log(FILE * stream);
FIX_API bool fix_is_ready(const struct fix_model * model);
FIX_API long fix_long(unsigned long a, long long b, unsigned long long c, short d, unsigned char e, signed char f, double g);

FIX_DEPRECATED(FIX_API int32_t fix_old(fix_model_t model), "use fix_tokenize instead");
FIX_API int32_t fix_older(void) __attribute__((deprecated));

FIX_API void fix_printf(const char * format, ...);
static inline int fix_helper(int x) { return x + 1; }
void fix_internal(void);
