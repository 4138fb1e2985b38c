#ifndef LLAMA_SWIFT_TRIGGER_REGEX_H
#define LLAMA_SWIFT_TRIGGER_REGEX_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
/// Compiles `pattern` with std::regex (ECMAScript, as llama.cpp compiles a lazy grammar's trigger
/// pattern). Returns 1 when it compiles; otherwise 0, with the library's message in `message`.
int llama_swift_trigger_regex_check(const char *pattern, char *message, size_t capacity);
/// llama.cpp's trigger search (llama_grammar_trigger_pattern::find): a pattern `^...$` must match
/// the whole input, else it is searched; the result is the offset of the first non-empty
/// capture group, else of the match; -1 when nothing matches, -2 when the regex fails.
long long llama_swift_trigger_regex_find(const char *pattern, const char *input, size_t length);
#ifdef __cplusplus
}
#endif
#endif
