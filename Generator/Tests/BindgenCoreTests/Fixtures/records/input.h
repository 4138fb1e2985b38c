// Records: nested anonymous unions and structs, arrays, bitfields, tagless typedefs.
#pragma once
#include <stdint.h>
#include <stdbool.h>
#include "../api.h"

struct fix_opaque;

struct fix_point {
    float x;
    float y;
};

typedef struct {
    uint16_t bits;
} fix_half;

struct fix_flags {
    unsigned int visible : 1;
    unsigned int kind : 3;
    int32_t after;
};

struct fix_tensor {
    int32_t type;
    int64_t ne[4];
    char name[16];
    float grid[2][3];
    struct fix_point origin;
    union {
        int32_t i;
        float f;
        struct {
            uint8_t lo;
            uint8_t hi;
        };
    };
    union {
        double d;
        int64_t n;
    } value;
    struct fix_inner {
        bool on;
    } inner;
    const char ** labels;
    struct fix_tensor * src[2];
    struct fix_opaque * owner;
    fix_half half;
};

union fix_number {
    int64_t integer;
    double real;
    uint8_t bytes[8];
};

struct fix_buffer {
    uint32_t length;
    uint8_t data[];
};

FIX_API struct fix_point fix_point_make(float x, float y);
FIX_API void fix_tensor_print(const struct fix_tensor * t);
