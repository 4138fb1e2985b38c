// libFuzzer's driver, for targets that have their own main (Fuzz.run): the runtime is linked by
// `-sanitize=fuzzer`. Declared in compiler-rt's FuzzerInterface.h / FuzzerDriver.cpp.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
