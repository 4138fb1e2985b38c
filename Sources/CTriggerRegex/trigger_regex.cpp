// std::regex as llama.cpp uses it for lazy-grammar trigger patterns, behind C functions that
// never let an exception out: llama.cpp compiles the patterns outside any try block, so an
// invalid one ends the process (std::terminate); Swift checks them here first, and follows the
// trigger with the same search so it can tell which token would fire it.
#include "trigger_regex.h"
#include <regex>
#include <string>
#include <cstring>

extern "C" int llama_swift_trigger_regex_check(const char *pattern, char *message, size_t capacity) {
    try {
        std::regex regex(pattern);
        (void)regex;
        return 1;
    } catch (const std::exception &error) {
        if (message && capacity > 0) {
            std::strncpy(message, error.what(), capacity - 1);
            message[capacity - 1] = 0;
        }
        return 0;
    } catch (...) {
        if (message && capacity > 0) {
            std::strncpy(message, "unknown error", capacity - 1);
            message[capacity - 1] = 0;
        }
        return 0;
    }
}

extern "C" long long llama_swift_trigger_regex_find(const char *pattern, const char *input, size_t length) {
    try {
        std::string p(pattern);
        std::regex regex(p);
        std::string text(input, length);
        auto start_of = [](const std::smatch &match) -> long long {
            for (size_t i = 1; i < match.size(); i++) {
                if (match.length(i) > 0) return (long long)match.position(i);
            }
            return (long long)match.position(0);
        };
        if (!p.empty() && p.front() == '^' && p.back() == '$') {
            std::smatch match;
            if (std::regex_match(text, match, regex)) return start_of(match);
        }
        std::smatch match;
        if (std::regex_search(text, match, regex)) return start_of(match);
        return -1;
    } catch (...) {
        return -2;
    }
}
