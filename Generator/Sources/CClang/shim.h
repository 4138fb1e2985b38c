// libclang's C API, from Debian's libclang-dev (include path set in Package.swift).
#include <clang-c/Index.h>
