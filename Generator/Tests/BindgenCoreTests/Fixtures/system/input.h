// System types: what a header uses from the C library is included by the generated C.
#pragma once
#include <stdio.h>
#include <stdarg.h>
#include <sys/types.h>
#include <time.h>
#include "../api.h"

struct fix_stat {
    off_t size;
    ssize_t read;
    time_t modified;
    FILE * stream;
};

typedef void (*fix_vlog_fn)(const char * format, va_list args);

FIX_API off_t fix_seek(FILE * stream, off_t offset, int whence);
FIX_API int fix_stat(const char * path, struct fix_stat * out);
FIX_API void fix_set_vlog(fix_vlog_fn callback);
