public import Foundation
public import LlamaJinja

/// A model's chat template: Jinja source rendered with jinja2's semantics, as Hugging Face
/// transformers and llama.cpp's server render it, into the prompt text the model was trained on.
public struct ChatTemplate: Sendable {
    /// The Jinja source.
    public var source: String { template.source }
    /// The output format the template's model writes (tool calls, reasoning), detected from the source.
    public let format: ChatFormat
    let template: JinjaTemplate

    /// Parses a template; a syntax error is a `JinjaError` with its line and column.
    public init(_ source: String, options: JinjaTemplate.Options = JinjaTemplate.Options()) throws(JinjaError) {
        template = try JinjaTemplate(source, options: options)
        format = ChatFormat.detect(template: source)
    }

    /// Reads a template from a file (a `.jinja` file, or a JSON `tokenizer_config.json`-style
    /// object with a `chat_template` string).
    public init(contentsOf url: URL, options: JinjaTemplate.Options = JinjaTemplate.Options()) throws {
        let text = try String(contentsOf: url, encoding: .utf8)
        if url.pathExtension == "json", let value = try? JSONValue(parsing: text), let s = value["chat_template"]?.stringValue {
            try self.init(s, options: options)
        } else {
            try self.init(text, options: options)
        }
    }

    /// Renders a conversation.
    ///
    /// - Parameters:
    ///   - messages: the conversation, passed to the template as `messages`.
    ///   - tools: tools the model may call, passed to the template as `tools` (OpenAI's shape).
    ///   - addGenerationPrompt: end with the start of an assistant turn.
    ///   - bosToken: the model's beginning-of-sequence text (`bos_token`).
    ///   - eosToken: the model's end-of-sequence text (`eos_token`).
    ///   - variables: more variables: `enable_thinking`, `reasoning_effort`, `documents`, ...
    ///   - now: the time `strftime_now` reads (the template's options' clock when nil).
    ///   - mediaMarker: the text that stands for each image or audio clip (see
    ///     ``ChatMessage/templateValue(mediaMarker:)``): the projector's marker.
    public func render(messages: [ChatMessage], tools: [ToolDefinition] = [], addGenerationPrompt: Bool = true,
                       bosToken: String = "", eosToken: String = "", variables: [String: JSONValue] = [:],
                       now: Date? = nil, mediaMarker: String = ChatMedia.defaultMarker) throws(JinjaError) -> String {
        var context = variables
        context["messages"] = .array(messages.map { $0.templateValue(mediaMarker: mediaMarker) })
        if !tools.isEmpty { context["tools"] = .array(tools.map(\.templateValue)) }
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        context["bos_token"] = .string(bosToken)
        context["eos_token"] = .string(eosToken)
        return try template.render(context, now: now)
    }

    /// What the template writes to open the reply: the render of `messages` with
    /// `add_generation_prompt` less the render without it (as llama.cpp computes it), nil when
    /// the one is not an extension of the other.
    public func generationPrompt(messages: [ChatMessage] = [.user("x")], tools: [ToolDefinition] = [],
                                 bosToken: String = "", eosToken: String = "",
                                 variables: [String: JSONValue] = [:]) throws(JinjaError) -> String? {
        let with = try render(messages: messages, tools: tools, addGenerationPrompt: true, bosToken: bosToken,
                              eosToken: eosToken, variables: variables)
        let without = try render(messages: messages, tools: tools, addGenerationPrompt: false, bosToken: bosToken,
                                 eosToken: eosToken, variables: variables)
        guard with.hasPrefix(without) else { return nil }
        return String(with.dropFirst(without.count))
    }

    /// The parser of this template's model output; the generation prompt tells whether the
    /// reply starts inside a reasoning block.
    public func outputParser(tools: [ToolDefinition] = [], variables: [String: JSONValue] = [:]) -> ChatOutputParser {
        let prompt = try? generationPrompt(tools: tools, variables: variables)
        return ChatOutputParser(template: source, generationPrompt: prompt ?? nil, tools: tools)
    }
}

extension ChatMessage {
    /// The message as chat templates read it: OpenAI's JSON shape, with tool-call arguments as
    /// objects (what templates index and `tojson`; text that is not a JSON object stays text).
    /// Content with images or audio becomes text with ``ChatMedia/defaultMarker`` where each goes
    /// (see ``templateValue(mediaMarker:)``).
    public var templateValue: JSONValue { templateValue(mediaMarker: ChatMedia.defaultMarker) }

    /// The message as chat templates read it, content with images or audio rendered as llama.cpp's
    /// server renders it: text, the parts joined with a line break between text parts and
    /// `mediaMarker` where each image or audio clip goes (no line break next to a marker).
    public func templateValue(mediaMarker: String) -> JSONValue {
        value(content: content.hasMedia ? .string(content.text(mediaMarker: mediaMarker)) : content.jsonValue,
              toolCalls: toolCalls.map(\.templateValue))
    }

    /// The message in OpenAI's JSON shape, tool-call arguments as JSON text, media as parts.
    public var openAIValue: JSONValue {
        value(content: content.jsonValue, toolCalls: toolCalls.map { call in
            var f = JSONObject()
            f["name"] = .string(call.name)
            f["arguments"] = .string(call.arguments)
            var c = JSONObject()
            if let id = call.id { c["id"] = .string(id) }
            c["type"] = "function"
            c["function"] = .object(f)
            return .object(c)
        })
    }

    private func value(content: JSONValue, toolCalls calls: [JSONValue]) -> JSONValue {
        var o = JSONObject()
        o["role"] = .string(role)
        o["content"] = content
        if let name { o["name"] = .string(name) }
        if !calls.isEmpty { o["tool_calls"] = .array(calls) }
        if let toolCallID { o["tool_call_id"] = .string(toolCallID) }
        if let reasoning { o["reasoning_content"] = .string(reasoning) }
        return .object(o)
    }

    /// Reads a message in OpenAI's JSON shape, keeping the order of keys in tool arguments.
    public init(json: JSONValue) throws(ChatFormatError) {
        guard let o = json.objectValue else { throw ChatFormatError(.invalidMessage, "a message must be a JSON object") }
        guard let role = o["role"]?.stringValue else { throw ChatFormatError(.invalidMessage, "a message needs a string \"role\"") }
        var content = ChatContent.none
        switch o["content"] {
        case .string(let s)?: content = .text(s)
        case .array(let parts)?:
            var list: [ChatContentPart] = []
            for p in parts { list.append(try ChatContentPart(json: p)) }
            content = .parts(list)
        case .null?, nil: content = .none
        case let other?: throw ChatFormatError(.invalidMessage, "\"content\" must be a string, an array of parts or null, not \(other.jsonText)")
        }
        var calls: [ToolCall] = []
        if let raw = o["tool_calls"] {
            guard let list = raw.arrayValue else { throw ChatFormatError(.invalidMessage, "\"tool_calls\" must be an array") }
            for c in list { calls.append(try ToolCall(json: c)) }
        }
        self.init(role: role, content: content, name: o["name"]?.stringValue, toolCalls: calls,
                  toolCallID: o["tool_call_id"]?.stringValue,
                  reasoning: o["reasoning_content"]?.stringValue ?? o["reasoning"]?.stringValue)
    }

    /// Reads a JSON array of messages.
    public static func conversation(json text: String) throws(ChatFormatError) -> [ChatMessage] {
        let value: JSONValue
        do { value = try JSONValue(parsing: text) } catch {
            throw ChatFormatError(.invalidMessage, "the messages are not valid JSON: \(error.description)")
        }
        let list = value.arrayValue ?? value["messages"]?.arrayValue
        guard let list else { throw ChatFormatError(.invalidMessage, "expected a JSON array of messages (or an object with \"messages\")") }
        var out: [ChatMessage] = []
        for m in list { out.append(try ChatMessage(json: m)) }
        return out
    }
}

extension ToolCall {
    var templateValue: JSONValue {
        var f = JSONObject()
        f["name"] = .string(name)
        if let parsed = try? JSONValue(parsing: arguments), parsed.objectValue != nil { f["arguments"] = parsed } else {
            f["arguments"] = .string(arguments)
        }
        var o = JSONObject()
        if let id { o["id"] = .string(id) }
        o["type"] = "function"
        o["function"] = .object(f)
        return .object(o)
    }

    /// Reads `{"id","type":"function","function":{"name","arguments"}}`; arguments as text or an object.
    public init(json: JSONValue) throws(ChatFormatError) {
        guard let f = json["function"]?.objectValue ?? json.objectValue, let name = f["name"]?.stringValue else {
            throw ChatFormatError(.invalidMessage, "a tool call needs \"function\": {\"name\", \"arguments\"}")
        }
        let arguments: String
        switch f["arguments"] {
        case .string(let s)?: arguments = s
        case let v?: arguments = v.jsonText
        case nil: arguments = "{}"
        }
        self.init(id: json["id"]?.stringValue, name: name, arguments: arguments)
    }
}

extension ToolDefinition {
    /// OpenAI's `{"type":"function","function":{"name","description","parameters"}}`.
    public var templateValue: JSONValue {
        var f = JSONObject()
        f["name"] = .string(name)
        if let description { f["description"] = .string(description) }
        f["parameters"] = parameters
        return ["type": "function", "function": .object(f)]
    }

    /// Reads OpenAI's shape or the bare function object, keeping the schema's key order.
    public init(json: JSONValue) throws(ChatFormatError) {
        guard let f = json["function"]?.objectValue ?? json.objectValue, let name = f["name"]?.stringValue else {
            throw ChatFormatError(.invalidTool, "a tool needs a \"name\" (OpenAI's shape: {\"type\":\"function\",\"function\":{...}})")
        }
        let parameters = f["parameters"] ?? ["type": "object", "properties": [:]]
        guard parameters.objectValue != nil else { throw ChatFormatError(.invalidTool, "tool '\(name)': \"parameters\" must be a JSON Schema object") }
        self.init(name: name, description: f["description"]?.stringValue, parameters: parameters)
    }

    /// Reads a JSON array of tools.
    public static func list(json text: String) throws(ChatFormatError) -> [ToolDefinition] {
        let value: JSONValue
        do { value = try JSONValue(parsing: text) } catch {
            throw ChatFormatError(.invalidTool, "the tools are not valid JSON: \(error.description)")
        }
        guard let list = value.arrayValue ?? value["tools"]?.arrayValue else { throw ChatFormatError(.invalidTool, "expected a JSON array of tools") }
        var out: [ToolDefinition] = []
        for t in list { out.append(try ToolDefinition(json: t)) }
        return out
    }
}

/// A message, tool or conversation that does not have the expected shape.
public struct ChatFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem it is; open: new codes may be added.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        /// A message is not in OpenAI's shape.
        public static let invalidMessage = Code(rawValue: "invalidMessage")
        /// A tool definition is not in OpenAI's shape.
        public static let invalidTool = Code(rawValue: "invalidTool")
        /// An image or audio part whose data cannot be read (not base64, a `data:` URL of another kind).
        public static let invalidMedia = Code(rawValue: "invalidMedia")
    }
    /// What went wrong, to switch on.
    public let code: Code
    /// What went wrong, for people.
    public let message: String
    /// An error with its code and message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}
