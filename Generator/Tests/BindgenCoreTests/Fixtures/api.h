// Shared by the fixtures: what an API macro looks like when the library is being built.
#pragma once
#define FIX_API __attribute__((visibility("default")))
#define FIX_DEPRECATED(decl, hint) decl __attribute__((deprecated(hint)))
