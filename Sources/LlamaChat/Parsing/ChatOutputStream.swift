/// A piece of a streamed reply: new content, new reasoning, or a piece of one tool call.
public struct ChatOutputDelta: Sendable, Equatable {
    /// New answer text.
    public var content: String
    /// New reasoning text.
    public var reasoning: String
    /// A piece of a tool call, if this delta carries one.
    public var toolCall: ToolCallDelta?

    /// A delta; every parameter is the property of the same name.
    public init(content: String = "", reasoning: String = "", toolCall: ToolCallDelta? = nil) {
        self.content = content
        self.reasoning = reasoning
        self.toolCall = toolCall
    }
}

/// A piece of a tool call: the first piece of a call carries its name (and id, when the model
/// wrote one); later pieces add to its arguments text. As in OpenAI's streaming chunks.
public struct ToolCallDelta: Sendable, Equatable {
    /// The call's position among the reply's calls.
    public var index: Int
    /// The call's id (first piece only, when the model wrote one).
    public var id: String?
    /// The tool's name (first piece only).
    public var name: String?
    /// More of the arguments' JSON text.
    public var arguments: String

    /// A piece of a call; every parameter is the property of the same name.
    public init(index: Int, id: String? = nil, name: String? = nil, arguments: String = "") {
        self.index = index
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// Parses a reply as it streams: each `append` re-reads the text so far as partial output and
/// returns what is new since the last call (as llama.cpp's server diffs successive partial
/// parses); `finish` reads it as complete. The parser holds back text that may be the start of a
/// tag, so what is sent is not taken back later when the output follows its format.
public struct ChatOutputStream: Sendable {
    /// The parser the stream applies to the text so far.
    public let parser: ChatOutputParser
    /// The text so far.
    public private(set) var text = ""
    /// The latest parse.
    public private(set) var current = ParsedChatOutput()
    /// Set when a parse did not extend the one before (malformed output seen at the end):
    /// the deltas then describe only what was added after the common part.
    public private(set) var diverged = false

    /// A stream that parses with this parser.
    public init(parser: ChatOutputParser) { self.parser = parser }

    /// Adds generated text; returns the new pieces.
    public mutating func append(_ delta: String) -> [ChatOutputDelta] {
        text += delta
        return update(parser.parse(text, isPartial: true))
    }

    /// The output is complete: returns the last pieces. `current` is then the final parse.
    public mutating func finish() -> [ChatOutputDelta] {
        update(parser.parse(text, isPartial: false))
    }

    private mutating func update(_ next: ParsedChatOutput) -> [ChatOutputDelta] {
        var deltas: [ChatOutputDelta] = []
        let reasoning = suffix(of: next.reasoning, after: current.reasoning)
        if !reasoning.isEmpty { deltas.append(ChatOutputDelta(reasoning: reasoning)) }
        let content = suffix(of: next.content, after: current.content)
        if !content.isEmpty { deltas.append(ChatOutputDelta(content: content)) }
        for (i, call) in next.toolCalls.enumerated() {
            if i < current.toolCalls.count {
                let previous = current.toolCalls[i]
                if previous.name != call.name { diverged = true }
                let args = suffix(of: call.arguments, after: previous.arguments)
                if !args.isEmpty { deltas.append(ChatOutputDelta(toolCall: ToolCallDelta(index: i, arguments: args))) }
            } else {
                deltas.append(ChatOutputDelta(toolCall: ToolCallDelta(index: i, id: call.id, name: call.name, arguments: call.arguments)))
            }
        }
        if next.toolCalls.count < current.toolCalls.count { diverged = true }
        current = next
        return deltas
    }

    /// What `new` adds to `old`; when `new` does not extend `old`, what follows their common part.
    private mutating func suffix(of new: String, after old: String) -> String {
        if new.hasPrefix(old) { return String(new.dropFirst(old.count)) }
        diverged = true
        let common = zip(new, old).prefix { $0 == $1 }.count
        return String(new.dropFirst(common))
    }
}
