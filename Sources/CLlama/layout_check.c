// Compiling the generated declarations here checks, on every build, the size, alignment and
// field offsets that libclang computed from the original headers (the header's _Static_asserts).
#include "generated/llama_cpp_types.h"
