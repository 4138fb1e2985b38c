// schema-reference: llama.cpp's JSON Schema to GBNF converter (common/json-schema-to-grammar)
// and its grammar engine (src/llama-grammar), as the references of the Swift LlamaSchema
// target; and the cases of the pinned tests/test-json-schema-to-grammar.cpp as data.
//
//   schema-reference convert [FILE|-]
//       prints the grammar of the JSON schema in FILE (or stdin); on an error, one line on
//       stderr and exit status 1.
//   schema-reference cases
//       prints one JSON line per test case: {"name","status":"success"|"failure","schema","grammar"}
//       (grammar trimmed as the test compares it).
//   schema-reference accepts GRAMMAR_FILE
//       reads JSON lines from stdin, each a JSON string, and prints one line per input:
//       "true" when the grammar (rule "root") accepts the whole string, "false" otherwise. A
//       grammar that does not parse: one line on stderr, exit status 1.

#include "json-schema-to-grammar.h"
#include "json.h"
#include "llama-grammar.h"
#include "unicode.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>

int swift_llama_dump_schema_cases();  // schema-cases-main.inc

static std::string read_all(const std::string & path) {
    if (path == "-") {
        std::ostringstream s;
        s << std::cin.rdbuf();
        return s.str();
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        throw std::runtime_error("cannot read " + path);
    }
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

static std::string one_line(std::string s) {
    for (auto & c : s) {
        if (c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    return s;
}

static int convert(int argc, char ** argv) {
    try {
        const std::string text = read_all(argc > 2 ? argv[2] : "-");
        const std::string grammar = json_schema_to_grammar(common_json::parse(text), true);
        std::fwrite(grammar.data(), 1, grammar.size(), stdout);
        return 0;
    } catch (const std::exception & e) {
        std::cerr << "error: " << one_line(e.what()) << "\n";
        return 1;
    }
}

// test-gbnf-validator's walk: every code point advances the stacks; accepted when a stack is
// empty at the end.
static bool grammar_accepts(const std::string & grammar_text, const std::string & input) {
    llama_grammar * grammar = llama_grammar_init_impl(nullptr, grammar_text.c_str(), "root", false, nullptr, 0, nullptr, 0);
    if (grammar == nullptr) {
        throw std::runtime_error("the grammar does not parse");
    }
    bool ok = true;
    const auto & stacks = llama_grammar_get_stacks(grammar);
    for (const auto cpt : unicode_cpts_from_utf8(input)) {
        llama_grammar_accept(grammar, cpt);
        if (stacks.empty()) {
            ok = false;
            break;
        }
    }
    if (ok) {
        ok = false;
        for (const auto & stack : stacks) {
            if (stack.empty()) {
                ok = true;
                break;
            }
        }
    }
    llama_grammar_free_impl(grammar);
    return ok;
}

static int accepts(int argc, char ** argv) {
    if (argc < 3) {
        std::cerr << "usage: schema-reference accepts GRAMMAR_FILE < JSON_LINES\n";
        return 2;
    }
    std::string grammar_text;
    try {
        grammar_text = read_all(argv[2]);
        llama_grammar_parser parser;
        if (!parser.parse(grammar_text.c_str()) || parser.symbol_ids.find("root") == parser.symbol_ids.end()) {
            std::cerr << "error: the grammar does not parse or has no root rule\n";
            return 1;
        }
    } catch (const std::exception & e) {
        std::cerr << "error: " << one_line(e.what()) << "\n";
        return 1;
    }
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.empty()) {
            continue;
        }
        try {
            const std::string input = common_json::parse(line).get<std::string>();
            std::cout << (grammar_accepts(grammar_text, input) ? "true" : "false") << "\n";
        } catch (const std::exception & e) {
            std::cerr << "error: " << one_line(e.what()) << "\n";
            return 1;
        }
    }
    std::cout.flush();
    return 0;
}

int main(int argc, char ** argv) {
    const std::string command = argc > 1 ? argv[1] : "";
    if (command == "convert") {
        return convert(argc, argv);
    }
    if (command == "cases") {
        return swift_llama_dump_schema_cases();
    }
    if (command == "accepts") {
        return accepts(argc, argv);
    }
    std::cerr << "usage: schema-reference convert [FILE|-] | cases | accepts GRAMMAR_FILE\n";
    return 2;
}
