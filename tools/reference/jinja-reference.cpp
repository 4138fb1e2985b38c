// jinja-reference: llama.cpp's own Jinja engine (common/jinja), as a second reference for the
// Swift engine, and the cases of the pinned tests/test-jinja.cpp as data.
//
//   jinja-reference render TEMPLATE_FILE CONTEXT_JSON_FILE [--now UNIX_SECONDS]
//       prints the rendered text exactly (no newline added); on an error, one line on stderr
//       and exit status 1.
//   jinja-reference cases
//       prints one JSON line per test_template case: {"group","name","template","vars","expect"}.

#include "jinja/lexer.h"
#include "jinja/parser.h"
#include "jinja/runtime.h"
#include "json.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

int swift_llama_dump_jinja_cases();  // jinja-cases-main.inc

static std::string read_file(const char * path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        throw std::runtime_error(std::string("cannot read ") + path);
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

static int render(int argc, char ** argv) {
    if (argc < 4) {
        std::cerr << "usage: jinja-reference render TEMPLATE_FILE CONTEXT_JSON_FILE [--now UNIX_SECONDS]\n";
        return 2;
    }
    try {
        const std::string tmpl = read_file(argv[2]);
        const common_json vars = common_json::parse(read_file(argv[3]));
        jinja::lexer lexer;
        auto tokens = lexer.tokenize(tmpl);
        jinja::program program = jinja::parse_from_tokens(tokens);
        jinja::context ctx(tmpl);
        for (int i = 4; i + 1 < argc; i += 2) {
            if (std::string(argv[i]) == "--now") {
                ctx.current_time = (std::time_t) std::strtoll(argv[i + 1], nullptr, 10);
            }
        }
        jinja::global_from_json(ctx, vars, true);
        jinja::runtime runtime(ctx);
        const jinja::value result = runtime.execute(program);
        auto parts = runtime.gather_string_parts(result);
        std::string out;
        for (const auto & part : parts->as_string().parts) {
            out += part.val;
        }
        std::fwrite(out.data(), 1, out.size(), stdout);
        return 0;
    } catch (const std::exception & e) {
        std::cerr << "error: " << one_line(e.what()) << "\n";
        return 1;
    }
}

int main(int argc, char ** argv) {
    const std::string command = argc > 1 ? argv[1] : "";
    if (command == "render") {
        return render(argc, argv);
    }
    if (command == "cases") {
        return swift_llama_dump_jinja_cases();
    }
    std::cerr << "usage: jinja-reference render TEMPLATE_FILE CONTEXT_JSON_FILE [--now UNIX_SECONDS] | jinja-reference cases\n";
    return 2;
}
