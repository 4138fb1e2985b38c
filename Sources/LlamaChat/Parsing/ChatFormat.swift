import Foundation
import LlamaJinja

/// How a model writes reasoning and tool calls in its output: one of the formats of the chat
/// templates llama.cpp knows, recognised from the template text.
///
/// Open: a format added later is a new static member, not a breaking change.
public struct ChatFormat: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// Plain text: the whole output is content (reasoning tags aside).
    public static let contentOnly = ChatFormat(rawValue: "content-only")
    /// A JSON object for the whole reply: `{"tool_calls": [...]}` or `{"response": "..."}`, for
    /// templates that know no tool-call syntax of their own.
    public static let generic = ChatFormat(rawValue: "generic")
    /// Hermes 2 Pro, Qwen 2.5, Qwen 3: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.
    public static let hermes = ChatFormat(rawValue: "hermes")
    /// Qwen3-Coder, Qwen 3.5, Nemotron Nano 3: `<tool_call><function=NAME><parameter=KEY>VALUE</parameter></function></tool_call>`.
    public static let qwen3Coder = ChatFormat(rawValue: "qwen3-coder")
    /// Llama 3.x: a bare JSON call `{"name": ..., "parameters": {...}}`, or `<|python_tag|>` calls.
    public static let llama3 = ChatFormat(rawValue: "llama3")
    /// Mistral, Devstral, Ministral: `[TOOL_CALLS]` followed by a JSON array, or by `NAME[ARGS]{...}`.
    public static let mistral = ChatFormat(rawValue: "mistral")
    /// DeepSeek R1: `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME` and a fenced JSON block.
    public static let deepseekR1 = ChatFormat(rawValue: "deepseek-r1")
    /// DeepSeek V3.1: `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>`.
    public static let deepseekV3 = ChatFormat(rawValue: "deepseek-v3")
    /// Functionary v3.1 (Llama 3.1): `<function=NAME>{...}</function>`, `<|python_tag|>` code.
    public static let functionaryV31 = ChatFormat(rawValue: "functionary-v3.1")
    /// Functionary v3.2: `>>>all` for text, `>>>NAME` followed by the arguments.
    public static let functionaryV32 = ChatFormat(rawValue: "functionary-v3.2")
    /// Command R7B: `<|START_THINKING|>`, `<|START_RESPONSE|>`, `<|START_ACTION|>[...]<|END_ACTION|>`.
    public static let commandR7B = ChatFormat(rawValue: "command-r7b")
    /// IBM Granite 3.x: `<|tool_call|>[{"name": ..., "arguments": {...}}]`.
    public static let granite = ChatFormat(rawValue: "granite")
    /// GLM 4.5, 4.6, 4.7: `<tool_call>NAME<arg_key>KEY</arg_key><arg_value>VALUE</arg_value></tool_call>`.
    public static let glm45 = ChatFormat(rawValue: "glm-4.5")
    /// Kimi K2: `<|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:0<|tool_call_argument_begin|>{...}<|tool_call_end|>`.
    public static let kimiK2 = ChatFormat(rawValue: "kimi-k2")
    /// gpt-oss (harmony): channels `analysis`, `final`, `commentary to=functions.NAME`.
    public static let gptOSS = ChatFormat(rawValue: "gpt-oss")
    /// MiniMax M2: `<minimax:tool_call><invoke name="NAME"><parameter name="KEY">VALUE</parameter></invoke></minimax:tool_call>`.
    public static let minimaxM2 = ChatFormat(rawValue: "minimax-m2")
    /// Apertus: `<|inner_prefix|>` reasoning, `<|tools_prefix|>[{"NAME": {...}}]<|tools_suffix|>`.
    public static let apertus = ChatFormat(rawValue: "apertus")
    /// DeepSeek V3.2: a `<｜DSML｜function_calls>` block of `<｜DSML｜invoke name="NAME">` calls, each with
    /// `<｜DSML｜parameter name="KEY" string="true|false">VALUE</｜DSML｜parameter>`; reasoning in `<think>`.
    public static let deepseekV32 = ChatFormat(rawValue: "deepseek-v3.2")
    /// DeepSeek V4: as V3.2, with the block named `<｜DSML｜tool_calls>`.
    public static let deepseekV4 = ChatFormat(rawValue: "deepseek-v4")
    /// Command R+: `Action:\n```json\n[{"tool_name": ..., "parameters": {...}}]\n```` for calls, and
    /// text between `<|CHATBOT_TOKEN|>` and `<|END_OF_TURN_TOKEN|>` when tools are offered.
    public static let commandRPlus = ChatFormat(rawValue: "command-r-plus")
    /// Apriel: `<tool_calls>[{"name": ..., "arguments": {...}}]</tool_calls>`.
    public static let apriel = ChatFormat(rawValue: "apriel")

    /// The formats this library parses.
    public static let allKnown: [ChatFormat] = [
        .contentOnly, .generic, .hermes, .qwen3Coder, .llama3, .mistral, .deepseekR1, .deepseekV3,
        .functionaryV31, .functionaryV32, .commandR7B, .granite, .glm45, .kimiK2, .gptOSS, .minimaxM2, .apertus,
        .deepseekV32, .deepseekV4, .commandRPlus, .apriel,
    ]

    /// The format a chat template makes its model write, from markers in the template's text
    /// (the facts llama.cpp's detection relies on). A template with no known tool-call markup
    /// is `.contentOnly`.
    public static func detect(template: String) -> ChatFormat {
        func has(_ s: String) -> Bool { template.contains(s) }
        if has("<|channel|>") { return .gptOSS }
        if has(">>>all") { return .functionaryV32 }
        // DeepSeek V3.2 and V4 spell their markup through a `dsml_token` variable.
        if has("dsml_token") && has("DSML") && (has("function_calls") || has("tool_calls")) {
            return has("function_calls") ? .deepseekV32 : .deepseekV4
        }
        if has("<|tool_calls_section_begin|>") && has("<|tool_call_begin|>") { return .kimiK2 }
        if has("<minimax:tool_call>") || (has("<invoke name=") && has("<tool_call>") && has("minimax")) { return .minimaxM2 }
        if has("[TOOL_CALLS]") { return .mistral }
        if has("<|START_ACTION|>") { return .commandR7B }
        if has("<|CHATBOT_TOKEN|>") && has("<|END_OF_TURN_TOKEN|>") && has("Action:") && has("```json") { return .commandRPlus }
        // Apriel 1.6 (`<|begin_assistant|>`) reasons up to `[BEGIN FINAL RESPONSE]`, which this
        // format does not read: left content-only.
        if has("<tool_calls>[") && !has("<|begin_assistant|>") { return .apriel }
        if has("<|tools_prefix|>") { return .apertus }
        // Granite 3.x's `<|tool_call|>` lists: llama.cpp finds no tool-call syntax in that
        // template (its parse keeps them as content), and we follow it. `.granite` stays
        // available to choose by hand.
        if has("<|tool_call|>") { return .contentOnly }
        if has("<arg_key>") && has("<tool_call>") { return .glm45 }
        if has("<｜tool▁call▁begin｜>") || has("<｜tool▁calls▁begin｜>") {
            // A template that renders no calls for an assistant turn with (empty) content and
            // tool calls teaches none: llama.cpp's analysis then finds no tool-call syntax.
            guard rendersToolCall(template, marker: "<｜tool▁call▁begin｜>") else { return .contentOnly }
            // R1 writes the call's type before the separator and fences the arguments.
            return has("```json") ? .deepseekR1 : .deepseekV3
        }
        if has("<tool_call>") && has("<function=") && has("<parameter=") { return .qwen3Coder }
        if has("<function=") { return .functionaryV31 }
        if has("<tool_call>") { return .hermes }
        if has("<|python_tag|>") || (has("<|start_header_id|>") && has("ipython")) { return .llama3 }
        return .contentOnly
    }
}

extension ChatFormat {
    /// Whether the template writes `marker` for an assistant turn with empty content and one
    /// tool call (the turn llama.cpp's analysis renders to find the tool-call syntax).
    static func rendersToolCall(_ template: String, marker: String) -> Bool {
        let call: JSONValue = ["id": "call_0", "type": "function",
                               "function": ["name": "probe_tool", "arguments": ["arg": "value"]]]
        let messages: JSONValue = [
            ["role": "user", "content": "USER"],
            ["role": "assistant", "content": "", "tool_calls": [call]],
        ]
        guard let jinja = try? JinjaTemplate(template),
              let text = try? jinja.render(["messages": messages, "add_generation_prompt": false, "bos_token": "", "eos_token": ""])
        else { return false }
        return text.contains(marker)
    }
}

/// The tags around a model's reasoning, e.g. `<think>` and `</think>`.
public struct ReasoningTags: Hashable, Sendable {
    /// The tag that opens reasoning (`<think>`).
    public var start: String
    /// The tag that closes it (`</think>`).
    public var end: String
    /// Reasoning tags.
    public init(start: String, end: String) {
        self.start = start
        self.end = end
    }

    /// `<think>` … `</think>`, the most common pair.
    public static let think = ReasoningTags(start: "<think>", end: "</think>")

    /// The reasoning tags a template's model writes, when the template mentions any, with the
    /// whitespace the template writes after each (found by rendering an assistant turn with
    /// reasoning, as llama.cpp's analysis does).
    public static func detect(template: String, format: ChatFormat) -> ReasoningTags? {
        let tags: ReasoningTags
        switch format {
        case .gptOSS: return nil  // channels, not tags
        case .deepseekV32, .deepseekV4: return .think
        case .commandRPlus, .apriel: return nil
        case .commandR7B: tags = ReasoningTags(start: "<|START_THINKING|>", end: "<|END_THINKING|>")
        case .apertus: tags = ReasoningTags(start: "<|inner_prefix|>", end: "<|inner_suffix|>")
        case .mistral where template.contains("[THINK]"): tags = ReasoningTags(start: "[THINK]", end: "[/THINK]")
        default:
            guard template.contains("</think>") else { return nil }
            tags = .think
        }
        return tags.withWhitespace(of: template)
    }

    /// The tags with the whitespace that follows each where the template renders a reasoning
    /// turn: `<think>\nR\n</think>\n\nC` gives `<think>\n` and `</think>\n\n`. Unchanged when
    /// the template does not render reasoning.
    func withWhitespace(of template: String) -> ReasoningTags {
        let reasoningMark = "REASONING_9f2c", contentMark = "CONTENT_9f2c"
        let messages: JSONValue = [
            ["role": "user", "content": "USER_9f2c"],
            ["role": "assistant", "content": .string(contentMark), "reasoning_content": .string(reasoningMark)],
        ]
        guard let jinja = try? JinjaTemplate(template),
              let text = try? jinja.render(["messages": messages, "add_generation_prompt": false, "bos_token": "", "eos_token": ""]),
              let r = text.range(of: reasoningMark), let c = text.range(of: contentMark, range: r.upperBound..<text.endIndex)
        else { return self }
        var out = self
        if let s = text.range(of: start, options: .backwards, range: text.startIndex..<r.lowerBound),
           text[s.upperBound..<r.lowerBound].allSatisfy(\.isWhitespace) {
            out.start = start + text[s.upperBound..<r.lowerBound]
        }
        if let e = text.range(of: end, range: r.upperBound..<c.lowerBound),
           text[r.upperBound..<e.lowerBound].allSatisfy(\.isWhitespace), text[e.upperBound..<c.lowerBound].allSatisfy(\.isWhitespace) {
            out.end = text[r.upperBound..<e.lowerBound] + end + text[e.upperBound..<c.lowerBound]
        }
        return out
    }
}
