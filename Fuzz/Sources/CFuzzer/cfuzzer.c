// The declarations of include/cfuzzer.h are defined by libFuzzer's runtime; nothing here.
#include "cfuzzer.h"
