// Macros: integer, negative, unsigned, 64-bit, expression, string, float, and what is skipped.
#pragma once
#include "../api.h"

#define FIX_VERSION 3
#define FIX_NEGATIVE (-1)
#define FIX_SEED 0xFFFFFFFF
#define FIX_MAGIC 0x67676d6cu
#define FIX_BIG 0x100000000ULL
#define FIX_SHIFTED (1 << 5)
#define FIX_ALIAS FIX_VERSION
#define FIX_NAME "fixture"
#define FIX_ESCAPED "tab\there \"quoted\""
#define FIX_SCALE 0.5
#define FIX_RESTRICT restrict
#define FIX_ADD(a, b) ((a) + (b))
#define FIX_EXPORT __attribute__((visibility("default")))
#define FIX_EMPTY
