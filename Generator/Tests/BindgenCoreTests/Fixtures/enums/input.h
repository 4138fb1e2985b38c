// Enums: negative, large and 64-bit values, tagless enums, typedef'd enums.
#pragma once
#include <stdint.h>
#include "../api.h"

enum fix_level {
    FIX_LEVEL_NONE = -1,
    FIX_LEVEL_LOW,
    FIX_LEVEL_HIGH = 10,
    FIX_LEVEL_ALIAS = FIX_LEVEL_HIGH,
};

enum fix_mask {
    FIX_MASK_NONE = 0,
    FIX_MASK_ALL = 0xFFFFFFFFu,
};

enum fix_wide {
    FIX_WIDE_BIG = 1ull << 40,
};

enum {
    FIX_ANONYMOUS_A = 3,
    FIX_ANONYMOUS_B = -7,
};

typedef enum {
    FIX_MODE_FAST,
    FIX_MODE_SLOW,
} fix_mode;

struct fix_settings {
    enum fix_level level;
    fix_mode mode;
};

FIX_API enum fix_level fix_level_next(enum fix_level level);
FIX_API fix_mode fix_mode_default(void);
