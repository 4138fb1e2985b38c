public import LlamaJinja

/// What a model's output says: its answer, its reasoning and the tools it calls.
public struct ParsedChatOutput: Sendable, Equatable {
    /// The answer.
    public var content: String
    /// The reasoning (empty when there is none).
    public var reasoning: String
    /// The tool calls, in order.
    public var toolCalls: [ToolCall]
    /// What did not parse as the format says; the text concerned is kept in `content`.
    public var warnings: [ChatParseWarning]

    /// A parsed output; every parameter is the property of the same name.
    public init(content: String = "", reasoning: String = "", toolCalls: [ToolCall] = [], warnings: [ChatParseWarning] = []) {
        self.content = content
        self.reasoning = reasoning
        self.toolCalls = toolCalls
        self.warnings = warnings
    }

    /// The output as an assistant message.
    public var message: ChatMessage {
        ChatMessage(role: "assistant", content: .text(content), toolCalls: toolCalls,
                    reasoning: reasoning.isEmpty ? nil : reasoning)
    }
}

/// Output that does not follow its format: what, and where.
public struct ChatParseWarning: Sendable, Equatable, CustomStringConvertible {
    /// Open: new codes may be added.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A reasoning block opened and never closed (the text is kept as content).
        public static let unterminatedReasoning = Code(rawValue: "unterminatedReasoning")
        /// A tool call opened and never closed.
        public static let unterminatedToolCall = Code(rawValue: "unterminatedToolCall")
        /// A tool call whose arguments are not a JSON object.
        public static let invalidArguments = Code(rawValue: "invalidArguments")
        /// A tool call without a usable name.
        public static let missingToolName = Code(rawValue: "missingToolName")
        /// A call to a tool the request did not offer.
        public static let unknownTool = Code(rawValue: "unknownTool")
        /// Text after the tool calls, where the format allows none.
        public static let trailingText = Code(rawValue: "trailingText")
        /// Text where the format has no place for it (outside its content and call markup).
        public static let unexpectedText = Code(rawValue: "unexpectedText")
    }

    /// What kind of problem it is.
    public var code: Code
    /// What did not parse, for people.
    public var message: String
    /// The offset in the output, in UTF-8 bytes, where the problem starts.
    public var offset: Int

    /// A warning; every parameter is the property of the same name.
    public init(code: Code, message: String, offset: Int) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(code) at byte \(offset): \(message)" }
}
