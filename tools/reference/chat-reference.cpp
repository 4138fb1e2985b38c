// chat-reference: llama.cpp's own chat-output parsing (common/chat.h), as the reference for
// the Swift parsers in Sources/LlamaChat/Parsing.
//
// Reads JSON lines on stdin, one request each, and answers each with one JSON line on stdout:
//
//   request:  {"template": PATH, "bos_token": "", "eos_token": "",
//              "messages": [OpenAI messages] (default: one user message),
//              "tools": [OpenAI tools] (optional), "reasoning_format": "auto"|"none"|"deepseek",
//              "enable_thinking": true, "parallel_tool_calls": true, "add_generation_prompt": true,
//              "chat_template_kwargs": {name: JSON value},
//              "outputs": [{"text": "...", "is_partial": false}, ...]}
//   response: {"format": "peg-native", "specialized": bool, "generation_prompt": "...",
//              "supports_thinking": bool, "thinking_start_tag": "...", "thinking_end_tags": [...],
//              "analysis": {...} (the differential analysis, when no specialized parser applies),
//              "results": [{"content","reasoning_content","tool_calls":[{"name","arguments","id"}]}
//                          or {"error": "..."}, one per output]}
//          or {"error": "..."} when the template cannot be applied.
//
// common_chat_templates_apply detects the format from the template and builds the parser;
// common_chat_peg_parse parses each output as llama.cpp's server does.

#include "chat.h"
#include "chat-auto-parser.h"
#include "json.h"
#include "log.h"

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

using json = common_json;

static std::string read_file(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        throw std::runtime_error("cannot read " + path);
    }
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

template <typename T> static std::string str(const T & v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

static json analysis_json(const autoparser::autoparser & a) {
    json out = json::object();
    out["reasoning_mode"] = str(a.reasoning.mode);
    out["reasoning_start"] = a.reasoning.start;
    out["reasoning_end"] = a.reasoning.end;
    out["content_mode"] = str(a.content.mode);
    out["content_start"] = a.content.start;
    out["content_end"] = a.content.end;
    out["tool_format"] = str(a.tools.format.mode);
    out["section_start"] = a.tools.format.section_start;
    out["section_end"] = a.tools.format.section_end;
    out["per_call_start"] = a.tools.format.per_call_start;
    out["per_call_end"] = a.tools.format.per_call_end;
    out["fun_name_is_key"] = a.tools.format.fun_name_is_key;
    out["tools_array_wrapped"] = a.tools.format.tools_array_wrapped;
    out["name_field"] = a.tools.format.name_field;
    out["args_field"] = a.tools.format.args_field;
    out["id_field"] = a.tools.format.id_field;
    out["function_name_prefix"] = a.tools.function.name_prefix;
    out["function_name_suffix"] = a.tools.function.name_suffix;
    out["function_close"] = a.tools.function.close;
    out["args_start"] = a.tools.arguments.start;
    out["args_end"] = a.tools.arguments.end;
    out["arg_name_prefix"] = a.tools.arguments.name_prefix;
    out["arg_name_suffix"] = a.tools.arguments.name_suffix;
    out["arg_value_prefix"] = a.tools.arguments.value_prefix;
    out["arg_value_suffix"] = a.tools.arguments.value_suffix;
    out["call_id_position"] = str(a.tools.call_id.pos);
    out["assistant_start"] = a.assistant_start;
    out["user_start"] = a.user_start;
    return out;
}

static json message_json(const common_chat_msg & msg) {
    json out = json::object();
    out["content"] = msg.content;
    out["reasoning_content"] = msg.reasoning_content;
    json calls = json::array();
    for (const auto & call : msg.tool_calls) {
        json c = json::object();
        c["name"] = call.name;
        c["arguments"] = call.arguments;
        c["id"] = call.id;
        calls.push_back(c);
    }
    out["tool_calls"] = calls;
    return out;
}

static json answer(const json & request) {
    const std::string path = request.at("template").get<std::string>();
    const std::string source = read_file(path);
    auto templates = common_chat_templates_init(nullptr, source, request.value("bos_token", std::string()),
                                                request.value("eos_token", std::string()));

    common_chat_templates_inputs inputs;
    json messages = request.value("messages", json());
    if (messages.is_null()) {
        messages = json::array();
        json user = json::object();
        user["role"] = "user";
        user["content"] = "Hello";
        messages.push_back(user);
    }
    inputs.messages = common_chat_msgs_parse_oaicompat(messages);
    if (request.contains("tools") && !request.at("tools").is_null()) {
        inputs.tools = common_chat_tools_parse_oaicompat(request.at("tools"));
    }
    inputs.reasoning_format = common_reasoning_format_from_name(request.value("reasoning_format", std::string("auto")));
    inputs.enable_thinking = request.value("enable_thinking", true);
    inputs.parallel_tool_calls = request.value("parallel_tool_calls", true);
    inputs.add_generation_prompt = request.value("add_generation_prompt", true);
    inputs.use_jinja = true;
    if (request.contains("chat_template_kwargs")) {
        for (const auto & item : request.at("chat_template_kwargs").items()) {
            inputs.chat_template_kwargs[item.key()] = item.value().dump();
        }
    }

    json response = json::object();
    common_chat_params params = common_chat_templates_apply(templates.get(), inputs);
    response["format"] = common_chat_format_name(params.format);
    response["generation_prompt"] = params.generation_prompt;
    response["supports_thinking"] = params.supports_thinking;
    response["thinking_start_tag"] = params.thinking_start_tag;
    json end_tags = json::array();
    for (const auto & tag : params.thinking_end_tags) {
        end_tags.push_back(tag);
    }
    response["thinking_end_tags"] = end_tags;

    // Whether one of llama.cpp's hand-written parsers applies; otherwise the differential
    // analysis describes what was detected.
    {
        common_chat_template tmpl(source, request.value("bos_token", std::string()), request.value("eos_token", std::string()));
        autoparser::generation_params probe;
        probe.messages = messages;
        probe.tools = common_chat_tools_to_json_oaicompat(inputs.tools);
        bool specialized = false;
        try {
            specialized = common_chat_try_specialized_template(tmpl, source, probe).has_value();
        } catch (const std::exception &) {
            specialized = true;  // a hand-written parser was chosen and failed on the probe
        }
        response["specialized"] = specialized;
        if (!specialized) {
            try {
                autoparser::autoparser analysis;
                analysis.analyze_template(tmpl);
                response["analysis"] = analysis_json(analysis);
            } catch (const std::exception & e) {
                response["analysis_error"] = e.what();
            }
        }
    }

    common_peg_arena arena;
    arena.load(params.parser);
    common_chat_parser_params parser_params(params);
    parser_params.reasoning_format = inputs.reasoning_format;
    json results = json::array();
    const json outputs = request.value("outputs", json::array());
    for (size_t i = 0; i < outputs.size(); i++) {
        const json & output = outputs.at(i);
        const std::string text = output.at("text").get<std::string>();
        const bool is_partial = output.value("is_partial", false);
        try {
            results.push_back(message_json(common_chat_peg_parse(arena, text, is_partial, parser_params)));
        } catch (const std::exception & e) {
            json err = json::object();
            err["error"] = e.what();
            results.push_back(err);
        }
    }
    response["results"] = results;
    return response;
}

int main() {
    common_log_set_verbosity_thold(-1);  // warnings about unparsed output go nowhere; the answer says it
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.empty()) {
            continue;
        }
        json response;
        try {
            response = answer(json::parse(line));
        } catch (const std::exception & e) {
            response = json::object();
            response["error"] = e.what();
        }
        std::cout << response.dump_safe() << std::endl;
    }
    return 0;
}
