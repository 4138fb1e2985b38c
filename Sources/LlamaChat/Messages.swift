public import LlamaJinja

/// One message of a conversation, in the shape OpenAI-style chat APIs use: a role, content as
/// text or parts, and for assistants the tool calls they made and their reasoning; for tool
/// results, the call they answer.
public struct ChatMessage: Sendable, Equatable, Codable {
    /// `system`, `user`, `assistant`, `tool` (or any role a template knows, e.g. `developer`).
    public var role: String
    /// The message's content: text, parts, or none.
    public var content: ChatContent
    /// A participant's name (`name`), or a tool result's tool name.
    public var name: String?
    /// The calls an assistant message makes (`tool_calls`).
    public var toolCalls: [ToolCall]
    /// For a tool result: the id of the call it answers (`tool_call_id`).
    public var toolCallID: String?
    /// An assistant's thinking, apart from its answer (`reasoning_content`).
    public var reasoning: String?

    /// A message; every parameter is the property of the same name.
    public init(role: String, content: ChatContent = .text(""), name: String? = nil, toolCalls: [ToolCall] = [],
                toolCallID: String? = nil, reasoning: String? = nil) {
        self.role = role
        self.content = content
        self.name = name
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.reasoning = reasoning
    }

    /// A message of a role with text content.
    public init(role: String, content: String) { self.init(role: role, content: .text(content)) }

    /// A system message.
    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    /// A user message.
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    /// An assistant message, with the tool calls it makes and its reasoning.
    public static func assistant(_ content: String, toolCalls: [ToolCall] = [], reasoning: String? = nil) -> ChatMessage {
        ChatMessage(role: "assistant", content: .text(content), toolCalls: toolCalls, reasoning: reasoning)
    }
    /// A tool's result, answering the call `id`.
    public static func tool(_ content: String, callID: String?, name: String? = nil) -> ChatMessage {
        ChatMessage(role: "tool", content: .text(content), name: name, toolCallID: callID)
    }

    /// The text of the content: the text itself, or its text parts joined.
    public var text: String { content.text }

    enum CodingKeys: String, CodingKey {
        case role, content, name
        case toolCalls = "tool_calls"
        case toolCallID = "tool_call_id"
        case reasoning = "reasoning_content"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        content = try c.decodeIfPresent(ChatContent.self, forKey: .content) ?? .none
        name = try c.decodeIfPresent(String.self, forKey: .name)
        toolCalls = try c.decodeIfPresent([ToolCall].self, forKey: .toolCalls) ?? []
        toolCallID = try c.decodeIfPresent(String.self, forKey: .toolCallID)
        reasoning = try c.decodeIfPresent(String.self, forKey: .reasoning)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(role, forKey: .role)
        try c.encode(content, forKey: .content)
        try c.encodeIfPresent(name, forKey: .name)
        if !toolCalls.isEmpty { try c.encode(toolCalls, forKey: .toolCalls) }
        try c.encodeIfPresent(toolCallID, forKey: .toolCallID)
        try c.encodeIfPresent(reasoning, forKey: .reasoning)
    }
}

/// A message's content: text, a list of parts, or none (an assistant message that only calls tools).
public enum ChatContent: Sendable, Equatable, Codable, ExpressibleByStringLiteral {
    /// Text.
    case text(String)
    /// A list of parts (OpenAI's content array).
    case parts([ChatContentPart])
    /// No content (`null`): an assistant message that only calls tools.
    case none

    public init(stringLiteral value: String) { self = .text(value) }

    /// The text, or the text parts joined; empty for none.
    public var text: String {
        switch self {
        case .text(let s): return s
        case .parts(let parts): return parts.compactMap { if case .text(let t) = $0 { return t } else { return nil } }.joined()
        case .none: return ""
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .none } else if let s = try? c.decode(String.self) { self = .text(s) } else {
            self = .parts(try c.decode([ChatContentPart].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .text(let s): try c.encode(s)
        case .parts(let p): try c.encode(p)
        case .none: try c.encodeNil()
        }
    }
}

/// One part of a message's content. Image and audio parts come with multimodal support; until
/// then they are kept as the JSON they were given so nothing is lost.
public enum ChatContentPart: Sendable, Equatable, Codable {
    /// A text part (`{"type": "text", "text": ...}`).
    case text(String)
    /// Any other part (`image_url`, `input_audio`, ...), kept as its JSON object.
    case other(JSONValue)

    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        if value["type"]?.stringValue == "text", let t = value["text"]?.stringValue { self = .text(t) } else { self = .other(value) }
    }

    public func encode(to encoder: any Encoder) throws { try jsonValue.encode(to: encoder) }

    /// The part as OpenAI's JSON shape.
    public var jsonValue: JSONValue {
        switch self {
        case .text(let t): return ["type": "text", "text": .string(t)]
        case .other(let v): return v
        }
    }
}

/// A call an assistant makes to a tool: its id, the tool's name, and the arguments as JSON text.
public struct ToolCall: Sendable, Equatable, Codable {
    /// The call's id, when the model or format gives one (`call_...`).
    public var id: String?
    /// The tool called.
    public var name: String
    /// The arguments, a JSON object as text (what OpenAI's API carries).
    public var arguments: String

    /// A call with its arguments as JSON text, or as a JSON value written compactly.
    public init(id: String? = nil, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }

    /// A call with its arguments as JSON text, or as a JSON value written compactly.
    public init(id: String? = nil, name: String, arguments: JSONValue) {
        self.init(id: id, name: name, arguments: arguments.jsonText)
    }

    enum CodingKeys: String, CodingKey { case id, type, function }
    enum FunctionKeys: String, CodingKey { case name, arguments }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        let f = try c.nestedContainer(keyedBy: FunctionKeys.self, forKey: .function)
        name = try f.decode(String.self, forKey: .name)
        // OpenAI sends a string; some clients send the object itself.
        if let s = try? f.decode(String.self, forKey: .arguments) { arguments = s } else {
            arguments = try f.decodeIfPresent(JSONValue.self, forKey: .arguments)?.jsonText ?? "{}"
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(id, forKey: .id)
        try c.encode("function", forKey: .type)
        var f = c.nestedContainer(keyedBy: FunctionKeys.self, forKey: .function)
        try f.encode(name, forKey: .name)
        try f.encode(arguments, forKey: .arguments)
    }
}

/// A tool the model may call: a name, what it does, and a JSON Schema of its parameters.
public struct ToolDefinition: Sendable, Equatable, Codable {
    /// The tool's name, as the model calls it.
    public var name: String
    /// What the tool does, for the model.
    public var description: String?
    /// A JSON Schema of the arguments object.
    public var parameters: JSONValue

    /// A tool definition; `parameters` is the JSON Schema of its arguments (an object schema).
    public init(name: String, description: String? = nil, parameters: JSONValue = ["type": "object", "properties": [:]]) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey { case type, function }
    enum FunctionKeys: String, CodingKey { case name, description, parameters }

    /// Reads OpenAI's `{"type":"function","function":{...}}` shape, or the bare function object.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let f = c.contains(.function) ? try c.nestedContainer(keyedBy: FunctionKeys.self, forKey: .function)
            : try decoder.container(keyedBy: FunctionKeys.self)
        name = try f.decode(String.self, forKey: .name)
        description = try f.decodeIfPresent(String.self, forKey: .description)
        parameters = try f.decodeIfPresent(JSONValue.self, forKey: .parameters) ?? ["type": "object", "properties": [:]]
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("function", forKey: .type)
        var f = c.nestedContainer(keyedBy: FunctionKeys.self, forKey: .function)
        try f.encode(name, forKey: .name)
        try f.encodeIfPresent(description, forKey: .description)
        try f.encode(parameters, forKey: .parameters)
    }
}
