import Foundation
import LlamaChat
import LlamaJinja
import LlamaProcess
import Testing

/// Model outputs parsed by our Swift parsers and by llama.cpp's own (`chat-reference`, built by
/// `make reference` against the pinned source), on the same template, tools and text.
@Suite(.serialized)
struct ParsingTests {
    // MARK: The samples

    static let weatherTool = ToolDefinition(name: "get_weather", description: "The weather in a city", parameters: [
        "type": "object",
        "properties": ["location": ["type": "string"], "days": ["type": "integer"]],
        "required": ["location"],
    ])
    static let timeTool = ToolDefinition(name: "get_time", description: "The time in a city", parameters: [
        "type": "object", "properties": ["city": ["type": "string"]], "required": ["city"],
    ])
    static let tools = [weatherTool, timeTool]

    /// One output for one template: a name, the text, and whether it is malformed on purpose.
    struct Sample: Sendable {
        var name: String
        var text: String
        var malformed = false
        /// Parse every prefix as a stream too.
        var streamed = false
    }

    /// A template (file of the pinned models/templates), the format we expect for it, and outputs.
    struct Group: Sendable {
        var template: String
        var format: ChatFormat
        var samples: [Sample]
        var withTools = true
        var kwargs: [String: JSONValue] = [:]
        /// llama.cpp's `reasoning_format`: `.auto`, or `.none` (reasoning stays in the content).
        var reasoning: ChatOutputParser.ReasoningMode = .auto
        /// llama.cpp's `enable_thinking` (its default, true, when nil).
        var enableThinking: Bool? = nil
    }

    static let paris = #"{"location": "Paris", "days": 3}"#

    /// DeepSeek V3.2 / V4 calls as their templates write them.
    static let weatherInvoke = "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"true\">Paris</｜DSML｜parameter>\n<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
    static let timeInvoke = "<｜DSML｜invoke name=\"get_time\">\n<｜DSML｜parameter name=\"city\" string=\"true\">Tokyo</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
    static func dsml(_ block: String, _ invokes: [String]) -> String {
        "<｜DSML｜\(block)>\n" + invokes.joined() + "</｜DSML｜\(block)>"
    }
    static let tokyo = #"{"city": "Tokyo"}"#

    static let groups: [Group] = [
        Group(template: "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", format: .hermes, samples: [
            Sample(name: "content", text: "Hello! How can I help?", streamed: true),
            Sample(name: "call", text: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \(paris)}\n</tool_call>", streamed: true),
            Sample(name: "two calls", text: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \(paris)}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": \(tokyo)}\n</tool_call>"),
            Sample(name: "unterminated", text: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Par", malformed: true),
            Sample(name: "invalid JSON", text: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {location: Paris}}\n</tool_call>", malformed: true),
        ]),
        Group(template: "Qwen-Qwen2.5-7B-Instruct.jinja", format: .hermes, samples: [
            Sample(name: "content then call", text: "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \(paris)}\n</tool_call>", streamed: true),
        ]),
        Group(template: "Qwen-Qwen3-0.6B.jinja", format: .hermes, samples: [
            Sample(name: "reasoning + content", text: "<think>\nThe user greets me.\n</think>\n\nHello!", streamed: true),
            Sample(name: "reasoning + call", text: "<think>\nI need the weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \(paris)}\n</tool_call>", streamed: true),
            Sample(name: "unterminated reasoning", text: "<think>\nI keep thinking", malformed: true),
        ]),
        Group(template: "Qwen3-Coder.jinja", format: .qwen3Coder, samples: [
            Sample(name: "call", text: "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>", streamed: true),
            Sample(name: "content", text: "Sure, here it is."),
        ]),
        Group(template: "meta-llama-Llama-3.1-8B-Instruct.jinja", format: .llama3, samples: [
            Sample(name: "content", text: "Hello there."),
            Sample(name: "json call", text: "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}", streamed: true),
        ]),
        Group(template: "meta-llama-Llama-3.2-3B-Instruct.jinja", format: .llama3, samples: [
            Sample(name: "json call", text: "{\"type\": \"function\", \"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}"),
        ]),
        Group(template: "mistralai-Mistral-Nemo-Instruct-2407.jinja", format: .mistral, samples: [
            Sample(name: "content", text: "Bonjour !"),
            Sample(name: "call", text: "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}, \"id\": \"abcDEF123\"}]", streamed: true),
        ]),
        Group(template: "unsloth-mistral-Devstral-Small-2507.jinja", format: .mistral, samples: [
            Sample(name: "call", text: "[TOOL_CALLS]get_weather[ARGS]{\"location\": \"Paris\"}", streamed: true),
        ]),
        Group(template: "mistralai-Ministral-3-14B-Reasoning-2512.jinja", format: .mistral, samples: [
            Sample(name: "reasoning + content", text: "[THINK]Simple greeting.[/THINK]Hello!", streamed: true),
            Sample(name: "call", text: "[TOOL_CALLS]get_weather[ARGS]{\"location\": \"Paris\"}"),
        ]),
        Group(template: "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", format: .deepseekR1, samples: [
            Sample(name: "reasoning + content", text: "<think>\nGreeting.\n</think>\n\nHello!", streamed: true),
            Sample(name: "call", text: "<think>\nWeather.\n</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"location\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"),
        ]),
        // Thinking on: the generation prompt ends in `<think>`, so the reply starts inside it.
        Group(template: "deepseek-ai-DeepSeek-V3.1.jinja", format: .deepseekV3, samples: [
            Sample(name: "reasoning + content", text: "Greeting.</think>Hello!", streamed: true),
            Sample(name: "reasoning + call", text: "Weather.</think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"location\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>", streamed: true),
            Sample(name: "unterminated reasoning", text: "Still thinking", malformed: true),
        ], kwargs: ["thinking": true]),
        // Thinking off: the generation prompt closes the block (`<think></think>`).
        Group(template: "deepseek-ai-DeepSeek-V3.1.jinja", format: .deepseekV3, samples: [
            Sample(name: "content", text: "Hello!"),
            Sample(name: "call", text: "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"location\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>", streamed: true),
        ], kwargs: ["thinking": false]),
        Group(template: "meetkai-functionary-medium-v3.1.jinja", format: .functionaryV31, samples: [
            Sample(name: "content", text: "Hello!"),
            Sample(name: "call", text: "<function=get_weather>{\"location\": \"Paris\"}</function>", streamed: true),
        ]),
        Group(template: "meetkai-functionary-medium-v3.2.jinja", format: .functionaryV32, samples: [
            Sample(name: "content", text: "all\nHello!"),
            Sample(name: "call", text: "get_weather\n{\"location\": \"Paris\"}", streamed: true),
        ]),
        Group(template: "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja", format: .commandR7B, samples: [
            Sample(name: "response", text: "<|START_RESPONSE|>Hello!<|END_RESPONSE|>"),
            Sample(name: "thinking + call", text: "<|START_THINKING|>I will look it up.<|END_THINKING|><|START_ACTION|>[\n    {\"tool_call_id\": \"0\", \"tool_name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}\n]<|END_ACTION|>", streamed: true),
        ]),
        // llama.cpp finds no tool-call syntax in Granite 3.3's template: its `<|tool_call|>` list stays content.
        Group(template: "ibm-granite-granite-3.3-2B-Instruct.jinja", format: .contentOnly, samples: [
            Sample(name: "content", text: "Hello!"),
            Sample(name: "call stays content", text: "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}]", streamed: true),
        ]),
        Group(template: "GLM-4.6.jinja", format: .glm45, samples: [
            Sample(name: "reasoning + content", text: "<think>Greeting.</think>\nHello!"),
            Sample(name: "call", text: "<think>Weather.</think>\n<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>", streamed: true),
        ]),
        Group(template: "GLM-4.7-Flash.jinja", format: .glm45, samples: [
            Sample(name: "call", text: "<think>Weather.</think><tool_call>get_weather<arg_key>location</arg_key><arg_value>Paris</arg_value></tool_call>"),
        ]),
        Group(template: "Kimi-K2-Instruct.jinja", format: .kimiK2, samples: [
            Sample(name: "content", text: "Hello!"),
            Sample(name: "call", text: "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"location\": \"Paris\"}<|tool_call_end|><|tool_calls_section_end|>", streamed: true),
        ]),
        Group(template: "openai-gpt-oss-120b.jinja", format: .gptOSS, samples: [
            Sample(name: "analysis + final", text: "<|channel|>analysis<|message|>Greeting.<|end|><|start|>assistant<|channel|>final<|message|>Hello!", streamed: true),
            Sample(name: "analysis + call", text: "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\": \"Paris\"}", streamed: true),
        ]),
        Group(template: "MiniMax-M2.jinja", format: .minimaxM2, samples: [
            Sample(name: "reasoning + content", text: "<think>Greeting.</think>\n\nHello!"),
            Sample(name: "call", text: "<think>Weather.</think>\n\n<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"location\">Paris</parameter>\n</invoke>\n</minimax:tool_call>", streamed: true),
        ]),
        Group(template: "Apertus-8B-Instruct.jinja", format: .apertus, samples: [
            Sample(name: "content", text: "Hello!"),
            Sample(name: "call", text: "<|tools_prefix|>[{\"get_weather\": {\"location\": \"Paris\"}}]<|tools_suffix|>", streamed: true),
        ]),
        Group(template: "Mistral-Small-3.2-24B-Instruct-2506.jinja", format: .mistral, samples: [
            Sample(name: "call with [CALL_ID]", text: "[TOOL_CALLS]get_weather[CALL_ID]abc123456[ARGS]{\"location\": \"Paris\"}", streamed: true),
        ]),
        Group(template: "Kimi-K2-Thinking.jinja", format: .kimiK2, samples: [
            Sample(name: "reasoning + call", text: "<think>Weather.</think><|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"location\": \"Paris\"}<|tool_call_end|><|tool_calls_section_end|>", streamed: true),
        ]),
        Group(template: "meta-llama-Llama-3.3-70B-Instruct.jinja", format: .llama3, samples: [
            Sample(name: "<|python_tag|> JSON call", text: "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}"),
            Sample(name: "<|python_tag|> built-in call stays content", text: "<|python_tag|>brave_search.call(query=\"weather in Paris\")"),
        ]),
        Group(template: "Qwen-Qwen3-0.6B.jinja", format: .hermes, samples: [
            Sample(name: "reasoning: none, + call", text: "<think>\nWeather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \(paris)}\n</tool_call>"),
            Sample(name: "reasoning: none, + content", text: "<think>\nGreeting.\n</think>\n\nHello!", streamed: true),
        ], reasoning: .none),
        Group(template: "MiniMax-M2.jinja", format: .minimaxM2, samples: [
            Sample(name: "after the prompt's <think>", text: "Weather.\n</think>\n\n<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"location\">Paris</parameter>\n<parameter name=\"days\">3</parameter>\n</invoke>\n</minimax:tool_call>", streamed: true),
        ]),
        Group(template: "unsloth-Apriel-1.5.jinja", format: .apriel, samples: [
            Sample(name: "content", text: "Hello! How can I help?", streamed: true),
            Sample(name: "call", text: "<tool_calls>[{\"name\": \"get_weather\", \"arguments\": \(paris)}]</tool_calls>", streamed: true),
            Sample(name: "content then two calls", text: "Let me check.\n<tool_calls>[{\"name\": \"get_weather\", \"arguments\": \(paris)}, {\"name\": \"get_time\", \"arguments\": \(tokyo)}]</tool_calls>", streamed: true),
            Sample(name: "invalid JSON", text: "<tool_calls>[{\"name\": \"get_weather\", \"arguments\": {location: Paris}}]</tool_calls>", malformed: true),
        ]),
        Group(template: "unsloth-Apriel-1.5.jinja", format: .apriel, samples: [
            Sample(name: "no tools: content", text: "Hello! <tool_calls>[]</tool_calls>", streamed: true),
        ], withTools: false),
        // Its template writes calls only for a turn whose content is none: llama.cpp finds no
        // tool-call syntax, and the reasoning is split out all the same.
        Group(template: "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", format: .contentOnly, samples: [
            Sample(name: "reasoning + content", text: "<think>\nGreeting.\n</think>\n\nHello!", streamed: true),
            Sample(name: "call stays content", text: "Weather.\n</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"location\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>", streamed: true),
        ]),
        // Thinking on: the generation prompt ends in `<think>`.
        Group(template: "deepseek-ai-DeepSeek-V3.2.jinja", format: .deepseekV32, samples: [
            Sample(name: "reasoning + content", text: "Greeting.</think>Hello!", streamed: true),
            Sample(name: "reasoning + call", text: "Weather.</think>\n\n" + dsml("function_calls", [weatherInvoke]), streamed: true),
            Sample(name: "reasoning ended by the calls", text: "Weather.\n\n" + dsml("function_calls", [weatherInvoke, timeInvoke]), streamed: true),
            Sample(name: "content + two calls", text: "Weather.</think>Let me check.\n\n" + dsml("function_calls", [weatherInvoke, timeInvoke]), streamed: true),
            Sample(name: "stopped while thinking", text: "Still thinking"),
            Sample(name: "unterminated parameter", text: "Weather.</think>" + "<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"true\">Par", malformed: true),
            Sample(name: "string flag against the schema", text: "Weather.</think>" + dsml("function_calls", ["<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"false\">\"Paris\"</｜DSML｜parameter>\n</｜DSML｜invoke>\n"]), malformed: true),
            Sample(name: "text after the block", text: "Weather.</think>" + dsml("function_calls", [weatherInvoke]) + " done", malformed: true),
        ]),
        Group(template: "deepseek-ai-DeepSeek-V3.2.jinja", format: .deepseekV32, samples: [
            Sample(name: "no tools: reasoning + content", text: "Greeting.</think>\n\nHello!", streamed: true),
        ], withTools: false),
        Group(template: "deepseek-ai-DeepSeek-V4.jinja", format: .deepseekV4, samples: [
            Sample(name: "reasoning + call", text: "Weather.</think>\n\n" + dsml("tool_calls", [weatherInvoke]), streamed: true),
            Sample(name: "reasoning ended by the calls", text: "Weather." + dsml("tool_calls", [timeInvoke])),
        ]),
        // Thinking off: the generation prompt ends in `</think>`.
        Group(template: "deepseek-ai-DeepSeek-V4.jinja", format: .deepseekV4, samples: [
            Sample(name: "content", text: "Hello!", streamed: true),
            Sample(name: "content + call", text: "Let me check." + dsml("tool_calls", [weatherInvoke, timeInvoke]), streamed: true),
        ], enableThinking: false),
        Group(template: "deepseek-ai-DeepSeek-V4-Flash-0731.jinja", format: .deepseekV4, samples: [
            Sample(name: "reasoning + call", text: "Weather.</think>\n\n" + dsml("tool_calls", [weatherInvoke]), streamed: true),
        ]),
        Group(template: "CohereForAI-c4ai-command-r-plus-tool_use.jinja", format: .commandRPlus, samples: [
            Sample(name: "wrapped content", text: "<|CHATBOT_TOKEN|>Hello!<|END_OF_TURN_TOKEN|>", streamed: true),
            Sample(name: "call", text: "Action:\n```json\n[{\"tool_name\": \"get_weather\", \"parameters\": \(paris)}]\n```", streamed: true),
            Sample(name: "content + two calls", text: "<|CHATBOT_TOKEN|>Let me check.<|END_OF_TURN_TOKEN|>Action:\n```json\n[\n    {\"tool_name\": \"get_weather\", \"parameters\": \(paris)},\n    {\"tool_name\": \"get_time\", \"parameters\": \(tokyo)}\n]\n```", streamed: true),
            Sample(name: "unwrapped text", text: "Hello!", malformed: true, streamed: true),
        ]),
        Group(template: "CohereForAI-c4ai-command-r-plus-tool_use.jinja", format: .commandRPlus, samples: [
            Sample(name: "no tools: content", text: "Hello!", streamed: true),
        ], withTools: false),
        Group(template: "google-gemma-2-2b-it.jinja", format: .contentOnly, samples: [
            Sample(name: "content", text: "Hello! <b>bold</b> {\"not\": \"a call\"}", streamed: true),
        ], withTools: false),
    ]

    // MARK: The reference

    enum ReferenceError: Error, CustomStringConvertible {
        case missing(String)
        case failed(String)
        var description: String {
            switch self {
            case .missing(let s), .failed(let s): return s
            }
        }
    }

    static func templatesDir() throws -> URL {
        guard let source = ProcessInfo.processInfo.environment["LLAMA_SOURCE"], !source.isEmpty else {
            throw ReferenceError.missing("LLAMA_SOURCE is not set: run the tests through `make test-package`, or export the paths `make paths` prints")
        }
        let dir = URL(fileURLWithPath: source).appendingPathComponent("models/templates")
        guard FileManager.default.fileExists(atPath: dir.path) else { throw ReferenceError.missing("no \(dir.path): run `make headers`") }
        return dir
    }

    static func chatReference() throws -> String {
        guard let dir = ProcessInfo.processInfo.environment["LLAMA_REFERENCE_DIR"], !dir.isEmpty else {
            throw ReferenceError.missing("LLAMA_REFERENCE_DIR is not set: run `make reference` and the tests through `make test-package` (or export the paths `make paths` prints)")
        }
        let path = dir + "/chat-reference"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ReferenceError.missing("\(path) is missing: run `make reference`")
        }
        return path
    }

    /// Runs chat-reference on JSON-line requests; one JSON answer per request. Stopped after `timeout`.
    static func runReference(_ requests: [JSONValue], timeout: TimeInterval = 300) async throws -> [JSONValue] {
        let payload = requests.map(\.jsonText).joined(separator: "\n") + "\n"
        let end = try await ChildProcess.run(try chatReference(), input: Data(payload.utf8),
                                             timeout: .milliseconds(Int64(timeout * 1000)))
        guard end.succeeded else {
            throw ReferenceError.failed("chat-reference \(end.state == .timedOut ? "ran past \(Int(timeout)) s and was stopped" : "ended: \(end)")")
        }
        let lines = end.outputText.split(separator: "\n")
        guard lines.count == requests.count else {
            throw ReferenceError.failed("chat-reference answered \(lines.count) of \(requests.count) requests")
        }
        return try lines.map { try JSONValue(parsing: String($0)) }
    }

    static func toolsJSON(_ tools: [ToolDefinition]) throws -> JSONValue {
        try JSONValue(parsing: String(decoding: JSONEncoder().encode(tools), as: UTF8.self))
    }

    static func request(template: URL, tools: [ToolDefinition], kwargs: [String: JSONValue], reasoning: ChatOutputParser.ReasoningMode = .auto,
                        enableThinking: Bool? = nil, outputs: [(String, Bool)]) throws -> JSONValue {
        var r: JSONObject = [
            "template": .string(template.path),
            "messages": [["role": "user", "content": "What is the weather in Paris?"]],
            "reasoning_format": .string(reasoning.rawValue),
            "parallel_tool_calls": true,
            "outputs": .array(outputs.map { ["text": .string($0.0), "is_partial": .bool($0.1)] }),
        ]
        if !tools.isEmpty { r["tools"] = try toolsJSON(tools) }
        if let enableThinking { r["enable_thinking"] = .bool(enableThinking) }
        if !kwargs.isEmpty { r["chat_template_kwargs"] = .object(JSONObject(kwargs.map { ($0.key, $0.value) })) }
        return .object(r)
    }

    // MARK: Comparison

    /// Every prefix of a text, by characters.
    static func prefixes(_ s: String) -> [String] {
        var out: [String] = []
        var i = s.startIndex
        while i < s.endIndex {
            i = s.index(after: i)
            out.append(String(s[..<i]))
        }
        return out
    }

    static func jsonEqual(_ a: String, _ b: String) -> Bool {
        if a == b { return true }
        guard let x = try? JSONValue(parsing: a), let y = try? JSONValue(parsing: b) else { return false }
        return unordered(x) == unordered(y)
    }

    /// Objects compared without key order.
    static func unordered(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let o):
            return .object(JSONObject(o.keys.sorted().map { ($0, unordered(o[$0]!)) }))
        case .array(let a): return .array(a.map(unordered))
        case .double(let d) where d == d.rounded() && abs(d) < 1e15: return .int(Int(d))
        default: return v
        }
    }

    /// Whether our parse says what llama.cpp's says; a reference error must meet a warning of ours.
    static func difference(ours: ParsedChatOutput, reference: JSONValue) -> String? {
        if let error = reference["error"]?.stringValue {
            return ours.warnings.isEmpty ? "reference error (\(error.prefix(80))) but no warning" : nil
        }
        let content = reference["content"]?.stringValue ?? ""
        let reasoning = reference["reasoning_content"]?.stringValue ?? ""
        if ours.content != content { return "content \(ours.content.debugDescription) ≠ \(content.debugDescription)" }
        if ours.reasoning != reasoning { return "reasoning \(ours.reasoning.debugDescription) ≠ \(reasoning.debugDescription)" }
        let calls = reference["tool_calls"]?.arrayValue ?? []
        if ours.toolCalls.count != calls.count { return "\(ours.toolCalls.count) tool calls ≠ \(calls.count): \(calls.map(\.jsonText))" }
        for (o, r) in zip(ours.toolCalls, calls) {
            if o.name != r["name"]?.stringValue { return "tool name \(o.name) ≠ \(r["name"]?.jsonText ?? "")" }
            let args = r["arguments"]?.stringValue ?? ""
            if !jsonEqual(o.arguments, args) { return "arguments \(o.arguments) ≠ \(args)" }
            // llama.cpp gives an id only where the model writes one (Mistral [CALL_ID], Kimi K2, …).
            if let id = r["id"]?.stringValue, !id.isEmpty, o.id != id { return "tool-call id \(o.id ?? "nil") ≠ \(id)" }
        }
        return nil
    }

    struct Row {
        var template: String
        var sample: String
        var agree = 0
        var differ = 0
        /// Malformed on purpose, where llama.cpp's lenient parse differs and ours keeps the text as
        /// content with a typed warning: the one deliberate difference, counted apart.
        var keptMalformed = 0
        var firstDifference: String?
    }

    // MARK: Tests

    @Test("our parsers agree with llama.cpp's on complete, streamed and malformed outputs")
    func agreesWithLlamaCpp() async throws {
        let dir = try Self.templatesDir()
        var requests: [JSONValue] = []
        var plan: [(Group, [(Sample, String, Bool)])] = []
        for group in Self.groups {
            var outputs: [(Sample, String, Bool)] = []
            for sample in group.samples {
                outputs.append((sample, sample.text, false))
                if sample.streamed { outputs += Self.prefixes(sample.text).dropLast().map { (sample, $0, true) } }
            }
            plan.append((group, outputs))
            requests.append(try Self.request(template: dir.appendingPathComponent(group.template),
                                             tools: group.withTools ? Self.tools : [], kwargs: group.kwargs, reasoning: group.reasoning,
                                             enableThinking: group.enableThinking, outputs: outputs.map { ($0.1, $0.2) }))
        }
        let answers = try await Self.runReference(requests)
        var rows: [Row] = []
        for ((group, outputs), answer) in zip(plan, answers) {
            if let error = answer["error"]?.stringValue {
                Issue.record("\(group.template): chat-reference could not apply the template: \(error)")
                continue
            }
            let template = try String(contentsOf: dir.appendingPathComponent(group.template), encoding: .utf8)
            #expect(ChatFormat.detect(template: template) == group.format, "\(group.template)")
            var parser = Self.parser(template: template, answer: answer, tools: group.withTools ? Self.tools : [])
            parser.reasoning = group.reasoning
            let results = answer["results"]?.arrayValue ?? []
            for ((sample, text, partial), reference) in zip(outputs, results) {
                let ours = parser.parse(text, isPartial: partial)
                let key = sample.name + (partial ? " (prefixes)" : "")
                if rows.last?.template != group.template || rows.last?.sample != key { rows.append(Row(template: group.template, sample: key)) }
                // Malformed on purpose: ours keeps the text as content with a typed warning
                // (llama.cpp's lenient parse may instead drop it); a warning is what we require.
                let warned = sample.malformed && !partial && !ours.warnings.isEmpty
                let diff = Self.difference(ours: ours, reference: reference)
                if warned, diff != nil {
                    rows[rows.count - 1].keptMalformed += 1
                } else if let diff {
                    rows[rows.count - 1].differ += 1
                    if rows[rows.count - 1].firstDifference == nil {
                        rows[rows.count - 1].firstDifference = "\(text.debugDescription.prefix(120)): \(diff)"
                    }
                } else {
                    rows[rows.count - 1].agree += 1
                }
                if sample.malformed && !partial {
                    #expect(!ours.warnings.isEmpty, "\(group.template) \(sample.name): malformed output without a warning")
                }
            }
        }
        var table = "template | sample | agree / differ / malformed kept as content + warning (llama.cpp b\(ProcessInfo.processInfo.environment["LLAMA_TAG"] ?? "?"))\n"
        for row in rows {
            table += "  \(row.template) | \(row.sample) | \(row.agree) / \(row.differ) / \(row.keptMalformed)"
            if let d = row.firstDifference { table += "   first: \(d)" }
            table += "\n"
        }
        let agree = rows.map(\.agree).reduce(0, +), differ = rows.map(\.differ).reduce(0, +)
        let kept = rows.map(\.keptMalformed).reduce(0, +)
        table += "  total: \(agree) agree, \(differ) differ, \(kept) malformed kept as content + warning (the one deliberate difference), over \(rows.count) samples"
        print(table)
        for row in rows where row.differ > 0 {
            Issue.record("\(row.template) \(row.sample): \(row.differ) of \(row.agree + row.differ) parses differ from llama.cpp's; first: \(row.firstDifference ?? "")")
        }
    }

    /// End-of-generation token texts of the templates' models (and the newline some write after them).
    static let endOfTurn = ["\n", "<|im_end|>", "<｜end▁of▁sentence｜>", "<|return|>", "<|call|>", "<|eot_id|>", "<|eom_id|>",
                            "<|end|>", "</s>", "<|END_OF_TURN_TOKEN|>", "<|end_of_text|>", "[e~[", "<|im_end|>", "<|endoftext|>"]

    /// Assistant turns as each template renders them (the turn's text after the prompt with the
    /// generation prompt), parsed by ours and by llama.cpp's parser.
    @Test("assistant turns rendered through each template parse as llama.cpp parses them")
    func renderedTurns() async throws {
        let dir = try Self.templatesDir()
        let user = ChatMessage.user("What is the weather in Paris?")
        let turns: [(String, ChatMessage)] = [
            ("content", .assistant("It is sunny in Paris: 22 °C ☀️, with a light wind.")),
            ("reasoning + content", .assistant("Sunny, 22 °C.", reasoning: "The user asks about Paris; the forecast says sun.")),
            ("one call", ChatMessage(role: "assistant", content: .text(""), toolCalls: [
                ToolCall(id: "call_1", name: "get_weather", arguments: #"{"location": "Paris", "days": 3}"#)])),
            ("two calls", ChatMessage(role: "assistant", content: .text(""), toolCalls: [
                ToolCall(id: "call_1", name: "get_weather", arguments: #"{"location": "Paris, France", "days": 2}"#),
                ToolCall(id: "call_2", name: "get_time", arguments: #"{"city": "Tōkyō"}"#)])),
        ]
        var requests: [JSONValue] = []
        var plan: [(String, String, [(String, String)])] = []
        var unrenderable = 0
        for name in Set(Self.groups.filter(\.withTools).map(\.template)).sorted() {
            let source = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            let template = try ChatTemplate(source)
            var outputs: [(String, String)] = []
            for (label, turn) in turns {
                // Thinking off on both sides: a template renders past turns without the reasoning a
                // reply opened by the generation prompt would have.
                let vars: [String: JSONValue] = ["enable_thinking": false]
                guard let prompt = try? template.render(messages: [user], tools: Self.tools, addGenerationPrompt: true, variables: vars),
                      let full = try? template.render(messages: [user, turn], tools: Self.tools, addGenerationPrompt: false, variables: vars),
                      full.hasPrefix(prompt) else { unrenderable += 1; continue }
                // A model stops at its end-of-turn token, so that token is not in its output.
                var output = String(full.dropFirst(prompt.count))
                while let end = Self.endOfTurn.first(where: { output.hasSuffix($0) }) { output.removeLast(end.count) }
                outputs.append((label, output))
            }
            guard !outputs.isEmpty else { continue }
            plan.append((name, source, outputs))
            requests.append(try Self.request(template: dir.appendingPathComponent(name), tools: Self.tools, kwargs: [:],
                                             enableThinking: false, outputs: outputs.map { ($0.1, false) }))
        }
        let answers = try await Self.runReference(requests)
        var agree = 0, differ = 0, referenceErrors = 0
        var report = "rendered assistant turns: template | turn | agree\n"
        for ((name, source, outputs), answer) in zip(plan, answers) {
            if let error = answer["error"]?.stringValue {
                Issue.record("\(name): chat-reference could not apply the template: \(error)")
                continue
            }
            let parser = Self.parser(template: source, answer: answer, tools: Self.tools)
            for ((label, text), reference) in zip(outputs, answer["results"]?.arrayValue ?? []) {
                let ours = parser.parse(text)
                if reference["error"] != nil { referenceErrors += 1 }
                if let d = Self.difference(ours: ours, reference: reference) {
                    differ += 1
                    report += "  \(name) | \(label) | DIFFER: \(text.debugDescription.prefix(160)): \(d)\n"
                } else {
                    agree += 1
                    report += "  \(name) | \(label) | yes\n"
                }
            }
        }
        report += "  total: \(agree) agree, \(differ) differ (\(referenceErrors) where llama.cpp reports an error and ours warns); \(unrenderable) turns a template cannot render"
        print(report)
        #expect(agree > 0)
        #expect(differ == 0, "rendered turns where our parse differs from llama.cpp's: see the table")
    }

    /// Our parser for a template, with the facts of the prompt the reference rendered: whether
    /// its generation prompt opened the reasoning block.
    static func parser(template: String, answer: JSONValue, tools: [ToolDefinition]) -> ChatOutputParser {
        ChatOutputParser(template: template, generationPrompt: answer["generation_prompt"]?.stringValue ?? "", tools: tools)
    }

    @Test("streamed deltas add up to the final parse")
    func streamingAddsUp() {
        for group in Self.groups {
            let format = group.format
            for sample in group.samples where !sample.malformed {
                let parser = ChatOutputParser(format: format, reasoningTags: Self.tags(format), tools: Self.tools)
                for chunk in [1, 3, 7] {
                    var stream = ChatOutputStream(parser: parser)
                    var deltas: [ChatOutputDelta] = []
                    var text = sample.text[...]
                    while !text.isEmpty {
                        deltas += stream.append(String(text.prefix(chunk)))
                        text = text.dropFirst(chunk)
                    }
                    deltas += stream.finish()
                    let final = parser.parse(sample.text)
                    let content = deltas.map(\.content).joined(), reasoning = deltas.map(\.reasoning).joined()
                    var calls: [Int: (name: String, args: String)] = [:]
                    for d in deltas { if let c = d.toolCall { calls[c.index, default: ("", "")].name += c.name ?? ""; calls[c.index]!.args += c.arguments } }
                    let where_ = "\(format) \(sample.name) in chunks of \(chunk)"
                    #expect(content == final.content, "\(where_)")
                    #expect(reasoning == final.reasoning, "\(where_)")
                    #expect(calls.count == final.toolCalls.count, "\(where_)")
                    for (i, call) in final.toolCalls.enumerated() {
                        #expect(calls[i]?.name == call.name, "\(where_)")
                        #expect(calls[i]?.args == call.arguments, "\(where_)")
                    }
                    let diverged = stream.diverged
                    #expect(!diverged, "\(where_)")
                }
            }
        }
    }

    static func tags(_ format: ChatFormat) -> ReasoningTags? {
        switch format {
        case .commandR7B: return ReasoningTags(start: "<|START_THINKING|>", end: "<|END_THINKING|>")
        case .mistral: return ReasoningTags(start: "[THINK]", end: "[/THINK]")
        case .apertus: return ReasoningTags(start: "<|inner_prefix|>", end: "<|inner_suffix|>")
        default: return .think
        }
    }

    @Test("malformed output gives content and a typed warning, never a crash")
    func malformedOutput() {
        let cases: [(ChatFormat, String, ChatParseWarning.Code)] = [
            (.hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Par", .unterminatedToolCall),
            (.hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {location: Paris}}\n</tool_call>", .invalidArguments),
            (.hermes, "<think>never closed", .unterminatedReasoning),
            (.kimiK2, "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"location\": <|tool_call_end|>", .invalidArguments),
            (.deepseekV3, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"location\"", .unterminatedToolCall),
            (.mistral, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": ", .unterminatedToolCall),
            (.glm45, "<tool_call>get_weather<arg_key>location</arg_key><arg_value>Paris", .unterminatedToolCall),
            (.functionaryV31, "<function=get_weather>{\"location\": Paris}</function>", .invalidArguments),
            (.granite, "<|tool_call|>[{\"name\": \"get_weather\"}]", .invalidArguments),
            (.gptOSS, "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{oops}<|call|>", .invalidArguments),
            (.deepseekV32, "<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"true\">Par", .unterminatedToolCall),
            (.deepseekV4, "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"days\" string=\"false\">{3</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>", .invalidArguments),
            (.commandRPlus, "Hello!", .unexpectedText),
            (.apriel, "<tool_calls>[{\"name\": \"get_weather\", \"arguments\": {location: Paris}}]</tool_calls>", .invalidArguments),
        ]
        for (format, text, code) in cases {
            let out = ChatOutputParser(format: format, tools: Self.tools).parse(text)
            #expect(out.warnings.contains { $0.code == code }, "\(format): \(text.debugDescription) gave \(out.warnings)")
            #expect(!out.content.isEmpty, "\(format): \(text.debugDescription) lost the text")
            // Every prefix parses without trapping.
            for p in Self.prefixes(text) { _ = ChatOutputParser(format: format).parse(p, isPartial: true) }
        }
    }

    @Test("ChatFormat.detect over every template of the pinned source, against what llama.cpp detects")
    func detectsTemplates() async throws {
        let dir = try Self.templatesDir()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jinja") }.sorted()
        #expect(files.count >= 70)
        let requests = try files.map { try Self.request(template: dir.appendingPathComponent($0), tools: Self.tools, kwargs: [:], outputs: []) }
        let answers = try await Self.runReference(requests)
        var table = "template | ours | llama.cpp (specialized parser, or the analysed tool markers) | consistent\n"
        var inconsistent: [String] = []
        for (file, answer) in zip(files, answers) {
            let template = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            let ours = ChatFormat.detect(template: template)
            let analysis = answer["analysis"]
            let markers = ["section_start", "per_call_start", "function_name_prefix"].compactMap { analysis?[$0]?.stringValue }.joined(separator: " ")
            let toolFormat = analysis?["tool_format"]?.stringValue ?? "-"
            let specialized = answer["specialized"] == .bool(true)
            let reference = answer["error"] != nil ? "error" : specialized ? "specialized" : "\(toolFormat) \(markers.debugDescription)"
            // Meaningful where llama.cpp analysed the template: our format's marker is one it found,
            // and a template where it found no tool calls is content-only for us too.
            var consistent = true
            if !specialized, let analysis, answer["error"] == nil {
                if toolFormat == "NONE" {
                    consistent = ours == .contentOnly
                } else if let marker = Self.marker(ours) {
                    consistent = markers.contains(marker)
                }
                _ = analysis
            }
            if !consistent { inconsistent.append("\(file): ours \(ours), llama.cpp \(reference)") }
            table += "  \(file) | \(ours) | \(reference) | \(consistent ? "yes" : "NO")\n"
        }
        print(table + "  \(files.count - inconsistent.count) of \(files.count) consistent")
        for line in inconsistent { Issue.record("detect: \(line)") }
    }

    /// The marker that begins a call in a format, as llama.cpp's analysis reports it.
    static func marker(_ format: ChatFormat) -> String? {
        switch format {
        case .hermes, .glm45: return "<tool_call>"
        case .mistral: return "[TOOL_CALLS]"
        case .deepseekR1, .deepseekV3: return "<｜tool▁call"
        case .commandR7B: return "<|START_ACTION|>"
        case .granite: return "<|tool_call|>"
        case .apertus: return "<|tools_prefix|>"
        case .apriel: return "<tool_calls>"
        case .commandRPlus: return "Action:"
        case .minimaxM2: return "<minimax:tool_call>"
        case .functionaryV31: return "<function="
        default: return nil
        }
    }
}

extension Substring {
    fileprivate var trimmingTrailing: Substring {
        var s = self
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return s
    }
}
