import Foundation
public import LlamaJinja

/// Turns a model's generated text into content, reasoning and tool calls, for one chat format.
///
/// Parsing never fails: text that does not follow the format stays in `content`, with a
/// warning that says what was wrong. Partial text (a stream so far) is parsed without
/// warnings for what is merely unfinished, and holds back a trailing piece that may be the
/// start of a tag.
public struct ChatOutputParser: Sendable {
    /// Whether reasoning is split out of the content.
    public struct ReasoningMode: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// Reasoning goes to `reasoning` (llama.cpp's `--reasoning-format auto`).
        public static let auto = ReasoningMode(rawValue: "auto")
        /// Reasoning stays in the content, tags and all.
        public static let none = ReasoningMode(rawValue: "none")
    }

    /// The output format the parser reads.
    public var format: ChatFormat
    /// Whether reasoning is extracted apart from the content.
    public var reasoning: ReasoningMode
    /// The tags around reasoning, with the whitespace the template writes around them
    /// (`<think>\n` … `\n</think>\n\n`): that whitespace is optional in the output and not
    /// part of the reasoning or the content. Nil when the model does not reason in tags.
    public var reasoningTags: ReasoningTags?
    /// What the prompt already wrote of the reply, from the reasoning start tag on (a
    /// generation prompt ending in `<think>\n` gives `<think>\n`): parsed as if the model had
    /// written it, as llama.cpp does. Empty when the generation prompt opens no reasoning.
    public var replyPrefix: String
    /// The tools offered: their schemas type tagged argument values (a string parameter keeps
    /// `42` as text), and a call to another name gets a warning.
    public var tools: [ToolDefinition]

    /// The prompt already opened the reasoning block (a generation prompt ending in `<think>`),
    /// so the output starts inside it. Setting it sets `replyPrefix` to the start tag (or clears it).
    public var thinkingForcedOpen: Bool {
        get {
            guard let tags = reasoningTags else { return false }
            let start = tags.start[...].trimmed
            return !start.isEmpty && replyPrefix.contains(start) && !replyPrefix.contains(tags.end[...].trimmed)
        }
        set { replyPrefix = newValue ? (reasoningTags?.start ?? "") : "" }
    }

    /// A parser of a known format; every parameter is the property of the same name.
    public init(format: ChatFormat, reasoning: ReasoningMode = .auto, reasoningTags: ReasoningTags? = .think,
                thinkingForcedOpen: Bool = false, tools: [ToolDefinition] = []) {
        self.format = format
        self.reasoning = reasoning
        self.reasoningTags = format == .gptOSS ? nil : reasoningTags
        self.replyPrefix = ""
        self.tools = tools
        self.thinkingForcedOpen = thinkingForcedOpen
    }

    /// The parser for a chat template's model: its format and reasoning tags detected from the
    /// template. `generationPrompt` is what the template adds for the reply (the render with
    /// `add_generation_prompt` less the one without): where it opens the reasoning block, the
    /// output starts inside it.
    public init(template: String, reasoning: ReasoningMode = .auto, thinkingForcedOpen: Bool = false,
                generationPrompt: String? = nil, tools: [ToolDefinition] = []) {
        let format = ChatFormat.detect(template: template)
        self.init(format: format, reasoning: reasoning,
                  reasoningTags: ReasoningTags.detect(template: template, format: format),
                  thinkingForcedOpen: thinkingForcedOpen, tools: tools)
        compactGLM = format == .glm45 && template.contains("</arg_key><arg_value>")
        if let generationPrompt { replyPrefix = Self.replyPrefix(generationPrompt: generationPrompt, tags: reasoningTags) }
    }

    /// The part of a generation prompt that belongs to the reply: from the first reasoning start tag on.
    public static func replyPrefix(generationPrompt: String, tags: ReasoningTags?) -> String {
        guard let tags else { return "" }
        let start = tags.start[...].trimmed
        guard !start.isEmpty, let r = generationPrompt.range(of: start) else { return "" }
        return String(generationPrompt[r.lowerBound...])
    }

    /// Parses the whole output, or the output so far when `isPartial`.
    public func parse(_ text: String, isPartial: Bool = false) -> ParsedChatOutput {
        if format == .gptOSS {
            var state = ParseState(text: text, isPartial: isPartial, parser: self)
            state.parseHarmony(text[...])
            return state.output
        }
        let full = reasoningTags == nil ? text : replyPrefix + text
        var state = ParseState(text: full, isPartial: isPartial, parser: self)
        state.outputStart = full.index(full.startIndex, offsetBy: full.count - text.count)
        if format == .deepseekV32 || format == .deepseekV4 {
            state.parseDSML(full[...], block: format == .deepseekV4 ? "tool_calls" : "function_calls")
            return state.finished
        }
        var rest = full[...]
        // Whitespace before the reply is not content once the format has reasoning or tool calls.
        if reasoningTags != nil || (!tools.isEmpty && format != .contentOnly) { rest = rest.trimmingLeadingWhitespace }
        if let tags = reasoningTags {
            guard let after = state.splitReasoning(rest, tags: tags, extract: reasoning == .auto) else { return state.finished }
            rest = after
        }
        state.parseBody(rest)
        return state.finished
    }

    /// GLM 4.7 writes its tool calls without newlines between the tags.
    var compactGLM: Bool = false

    func parameterNames(tool: String) -> [String] {
        guard let definition = tools.first(where: { $0.name == tool }) else { return [] }
        return definition.parameters["properties"]?.objectValue.map { Array($0.keys) } ?? []
    }

    func schemaType(tool: String, parameter: String) -> String? {
        guard let definition = tools.first(where: { $0.name == tool }) else { return nil }
        return definition.parameters["properties"]?[parameter]?["type"]?.stringValue
    }
}

/// The parse in progress: what has been found, and the helpers each format's syntax uses.
struct ParseState {
    let text: String
    let isPartial: Bool
    let parser: ChatOutputParser
    var output = ParsedChatOutput()
    /// Where the model's own text starts (after the reply prefix the prompt wrote).
    var outputStart: String.Index

    init(text: String, isPartial: Bool, parser: ChatOutputParser) {
        self.text = text
        self.isPartial = isPartial
        self.parser = parser
        self.outputStart = text.startIndex
    }

    /// The output, with warning offsets counted from the model's own text.
    var finished: ParsedChatOutput {
        var out = output
        let shift = text.utf8Offset(of: outputStart)
        for i in out.warnings.indices { out.warnings[i].offset = max(0, out.warnings[i].offset - shift) }
        if out.reasoning.allSatisfy(\.isWhitespace) { out.reasoning = "" }
        return out
    }

    mutating func warn(_ code: ChatParseWarning.Code, _ message: String, at index: Substring.Index) {
        output.warnings.append(ChatParseWarning(code: code, message: message, offset: text.utf8Offset(of: index)))
    }

    mutating func addContent(_ s: Substring) { output.content += s }

    /// Adds a finished call; arguments must be a JSON object (or a string holding one).
    mutating func addCall(name: String, arguments: JSONValue?, argumentsText: Substring? = nil, id: String? = nil,
                          at index: Substring.Index) -> Bool {
        let name = String(name[...].trimmed)
        guard !name.isEmpty else {
            warn(.missingToolName, "a tool call without a name", at: index)
            return false
        }
        var args = arguments
        if case .string(let s)? = args, let parsed = try? JSONValue(parsing: s) { args = parsed }
        guard case .object? = args else {
            warn(.invalidArguments, "the arguments of \(name) are not a JSON object", at: index)
            return false
        }
        if !parser.tools.isEmpty, !parser.tools.contains(where: { $0.name == name }) {
            warn(.unknownTool, "a call to \(name), which is not among the tools offered", at: index)
        }
        let text = argumentsText.map { String($0.trimmed) } ?? args!.jsonText
        output.toolCalls.append(ToolCall(id: id, name: name, arguments: text))
        return true
    }

    /// A call still being written: its name, and its arguments as far as they go.
    mutating func addPartialCall(name: String, argumentsSoFar: Substring, id: String? = nil) {
        let name = String(name[...].trimmed)
        guard !name.isEmpty else { return }
        // A call whose arguments have not started yet reads as `{` (as llama.cpp streams it).
        let args = argumentsSoFar.trimmed
        output.toolCalls.append(ToolCall(id: id, name: name, arguments: args.isEmpty ? "{" : String(args)))
    }

    /// Splits off leading reasoning: the start tag (its trailing whitespace optional), the
    /// reasoning up to the end tag, the end tag (its trailing whitespace optional). Returns the
    /// text after it, or nil when nothing follows. Without `extract`, the reasoning and its tags
    /// are left in the content.
    mutating func splitReasoning(_ s: Substring, tags: ReasoningTags, extract: Bool) -> Substring? {
        guard extract else { return s }
        let start = tags.start[...].trimmed, end = tags.end[...].trimmed
        guard !start.isEmpty, !end.isEmpty else { return s }
        guard s.hasPrefix(start) else {
            if isPartial, s.isPrefix(of: String(start)) { return nil }
            return s
        }
        let body = Self.optionalWhitespace(s.dropFirst(start.count), tags.start[...].trimmingLeadingWhitespace.dropFirst(start.count))
        guard let close = body.find(String(end)) else {
            if isPartial {
                output.reasoning = String(body.holdingBackPartial([String(end)]))
                return nil
            }
            // Malformed: kept as content (the model's own text), with a warning.
            warn(.unterminatedReasoning, "\(start) is never closed by \(end)", at: max(s.startIndex, outputStart))
            return s[max(s.startIndex, outputStart)...]
        }
        output.reasoning = String(body[body.startIndex..<close.lowerBound])
        return Self.optionalWhitespace(body[close.upperBound...], tags.end[...].trimmingLeadingWhitespace.dropFirst(end.count))
    }

    /// `s` without the characters of `whitespace` it starts with, each one optional, in order.
    static func optionalWhitespace(_ s: Substring, _ whitespace: Substring) -> Substring {
        var s = s
        for c in whitespace where s.first == c { s = s.dropFirst() }
        return s
    }

    /// The content up to the first of `markers`; returns the rest from that marker, or nil when
    /// there is none (then everything left was content).
    mutating func contentUntil(_ s: Substring, markers: [String]) -> Substring? {
        var first: Range<Substring.Index>?
        for m in markers {
            if let r = s.find(m), first.map({ r.lowerBound < $0.lowerBound }) ?? true { first = r }
        }
        guard let first else {
            addContent(isPartial ? s.holdingBackPartial(markers) : s)
            return nil
        }
        addContent(s[s.startIndex..<first.lowerBound])
        return s[first.lowerBound...]
    }

    /// Text left after the calls: whitespace is dropped, anything else is kept as content with a warning.
    mutating func trailing(_ s: Substring) {
        let rest = s.trimmingLeadingWhitespace
        guard !rest.isEmpty else { return }
        if isPartial { return }
        warn(.trailingText, "text after the tool calls", at: rest.startIndex)
        addContent(rest)
    }

    /// The malformed remainder, kept as content.
    mutating func keep(_ s: Substring, _ code: ChatParseWarning.Code, _ message: String) {
        if isPartial { return }
        warn(code, message, at: s.startIndex)
        addContent(s)
    }
}
