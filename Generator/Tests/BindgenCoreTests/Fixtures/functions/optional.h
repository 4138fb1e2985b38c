// A header of an optional library: its functions are optional symbols.
#pragma once
#include "input.h"

FIX_API int32_t fix_extra_feature(fix_model_t model);
