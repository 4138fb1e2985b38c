public import Foundation
public import LlamaChat
public import LlamaJinja
public import LlamaSchema

/// A tool the model may call in a ``ChatSession``: a name, what it does, typed arguments
/// (whose JSON Schema the model is shown and, where the chat format's call syntax is known,
/// constrained to), and the work itself.
///
/// The model's arguments are decoded into `Arguments` with `JSONDecoder`; arguments that do not
/// decode never reach `call`: the model gets an error result instead (``ToolError/Code/invalidArguments``).
/// What `call` returns reaches the model as JSON text (a `String` as the string itself); an
/// error it throws reaches the model as the result too, so that the model can recover.
///
/// ```swift
/// struct Weather: Tool {
///     struct Arguments: Generable { var city: String; static var generationSchema: JSONValue { ... } }
///     let name = "get_weather"
///     let description = "The current weather in a city."
///     func call(_ arguments: Arguments) async throws -> String { "sunny in \(arguments.city)" }
/// }
/// ```
public protocol Tool: Sendable {
    /// The type the model's arguments decode into.
    associatedtype Arguments: Generable
    /// What the tool returns; encoded as JSON for the model.
    associatedtype Output: Encodable
    /// The name the model calls the tool by.
    var name: String { get }
    /// What the tool does, for the model.
    var description: String { get }
    /// The JSON Schema of the arguments (an object schema); by default `Arguments.generationSchema`.
    var parameters: JSONValue { get }
    /// Runs the tool with the model's arguments; an error it throws reaches the model as the result, so that the model can recover.
    func call(_ arguments: Arguments) async throws -> Output
}

extension Tool {
    public var parameters: JSONValue { Arguments.generationSchema }

    /// The tool as chat templates and output parsers read it.
    public var definition: ToolDefinition {
        ToolDefinition(name: name, description: description, parameters: parameters)
    }

    /// Runs the tool for a call the model made: decodes the arguments, calls, and encodes the
    /// output. Never throws: every failure is a result with a ``ToolError``, whose text is what
    /// the model reads.
    public func invoke(_ call: ToolCall) async -> ToolResult {
        let text = call.arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        let arguments: Arguments
        do {
            let json = text.isEmpty ? "{}" : text
            if Arguments.self == JSONArguments.self {
                // Parsed here rather than decoded, to keep the keys in the order the model wrote them.
                arguments = JSONArguments(try JSONValue(parsing: json)) as! Arguments
            } else {
                arguments = try JSONDecoder().decode(Arguments.self, from: Data(json.utf8))
            }
        } catch {
            return ToolResult(call: call, error: ToolError(.invalidArguments, "the arguments of \(name) do not fit its "
                + "parameters (\(Self.describe(error))): \(call.arguments)"))
        }
        let output: Output
        do { output = try await self.call(arguments) } catch {
            if error is CancellationError { return ToolResult(call: call, error: ToolError(.cancelled, "\(name) was cancelled")) }
            return ToolResult(call: call, error: ToolError(.failed, String(describing: error)))
        }
        do { return ToolResult(call: call, content: try Self.text(of: output)) } catch {
            return ToolResult(call: call, error: ToolError(.invalidOutput, "the result of \(name) cannot be written as JSON "
                + "(\(Self.describe(error)))"))
        }
    }

    /// The output as the model reads it: a string as itself, anything else as JSON text.
    static func text(of output: Output) throws -> String {
        if let s = output as? String { return s }
        if let json = output as? JSONValue {
            if case .string(let s) = json { return s }
            return json.jsonText
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(output), as: UTF8.self)
    }

    /// A decoding or encoding error in a sentence: where, and what.
    static func describe(_ error: any Error) -> String {
        func path(_ context: [any CodingKey]) -> String {
            context.isEmpty ? "the arguments" : context.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])) is missing"
        case DecodingError.typeMismatch(let type, let context):
            return "\(path(context.codingPath)): expected \(type): \(context.debugDescription)"
        case DecodingError.valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(type), found null"
        case DecodingError.dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        case EncodingError.invalidValue(_, let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        default:
            return String(describing: error)
        }
    }
}

/// Arguments as JSON, not decoded into a type: for tools whose parameters are data (``DynamicTool``).
public struct JSONArguments: Generable, Equatable {
    /// The arguments as the model wrote them.
    public var value: JSONValue
    /// Arguments holding a JSON value.
    public init(_ value: JSONValue) { self.value = value }
    public init(from decoder: any Decoder) throws { value = try JSONValue(from: decoder) }
    /// Any object.
    public static var generationSchema: JSONValue { ["type": "object"] }
    /// The value of one argument, or nil.
    public subscript(key: String) -> JSONValue? { value[key] }
}

/// A tool whose parameters are a JSON Schema given as data and whose work takes and returns
/// JSON: tools read from a file (`llama-swift chat --tools`), or built at run time.
public struct DynamicTool: Tool {
    public let name: String
    public let description: String
    public let parameters: JSONValue
    let body: @Sendable (JSONValue) async throws -> JSONValue

    /// A tool from its name, description, JSON Schema of its arguments, and a closure from JSON to JSON.
    public init(name: String, description: String, parameters: JSONValue = ["type": "object", "properties": [:]],
                call: @escaping @Sendable (JSONValue) async throws -> JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.body = call
    }

    /// The tool a definition describes, doing `call`.
    public init(_ definition: ToolDefinition, call: @escaping @Sendable (JSONValue) async throws -> JSONValue) {
        self.init(name: definition.name, description: definition.description ?? "", parameters: definition.parameters, call: call)
    }

    public func call(_ arguments: JSONArguments) async throws -> JSONValue { try await body(arguments.value) }
}

/// Why a tool call produced no result of the tool's own: the model reads ``message`` (after
/// "error: "), the caller switches on ``code``.
public struct ToolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Open: new codes may be added.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The model called a tool that is not among the session's tools.
        public static let unknownTool = Code(rawValue: "unknownTool")
        /// The arguments are not JSON, or do not decode into the tool's `Arguments`.
        public static let invalidArguments = Code(rawValue: "invalidArguments")
        /// The tool threw an error (its description is the message).
        public static let failed = Code(rawValue: "failed")
        /// The tool's output could not be encoded as JSON.
        public static let invalidOutput = Code(rawValue: "invalidOutput")
        /// The call was not run: the limit of tool rounds was reached.
        public static let notRun = Code(rawValue: "notRun")
        /// The tool was cancelled with the conversation.
        public static let cancelled = Code(rawValue: "cancelled")
    }

    /// What went wrong.
    public var code: Code
    /// The message the model sees.
    public var message: String

    /// A tool error with its code and message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// What a tool call gave the model: the text it reads, and the typed error when the tool did
/// not produce a result of its own.
public struct ToolResult: Sendable, Equatable {
    /// The id of the call it answers (nil when the format has no ids).
    public var callID: String?
    /// The tool that ran.
    public var name: String
    /// The text of the `tool` message: the tool's output, or `error: <message>`.
    public var content: String
    /// The error, when the call failed.
    public var error: ToolError?
    /// Whether the call failed.
    public var isError: Bool { error != nil }

    /// A result; every parameter is the property of the same name.
    public init(callID: String?, name: String, content: String, error: ToolError? = nil) {
        self.callID = callID
        self.name = name
        self.content = content
        self.error = error
    }

    init(call: ToolCall, content: String) {
        self.init(callID: call.id, name: call.name, content: content)
    }

    init(call: ToolCall, error: ToolError) {
        self.init(callID: call.id, name: call.name, content: "error: \(error.message)", error: error)
    }

    /// The result as a `tool` message of the history.
    public var message: ChatMessage { .tool(content, callID: callID, name: name) }
}

/// Whether the model may, must or must not call tools (OpenAI's `tool_choice`).
public enum ToolChoice: Sendable, Equatable {
    /// The model decides. Where the format's call syntax is known, a call the model begins is
    /// constrained (a lazy grammar, triggered by the call's opening tag); text stays free.
    case auto
    /// Tools are shown but no call is run: the reply is taken as text.
    case none
    /// The first reply must call a tool (later replies decide, so that the conversation can end).
    case required
    /// The first reply must call this tool.
    case tool(String)

    /// Parses `auto`, `none`, `required`, or a tool's name (the CLI's `--tool-choice`).
    public init(_ text: String) {
        switch text {
        case "auto": self = .auto
        case "none": self = .none
        case "required": self = .required
        default: self = .tool(text)
        }
    }
}

/// An element of a tool-calling conversation's stream (``ChatSession``'s `respondStreaming(to:tools:toolChoice:maxToolRounds:sampling:options:)`).
public enum ChatEvent: Sendable {
    /// Content of the reply being generated (call markup is not content).
    case text(String)
    /// Reasoning of the reply being generated, where the template's model writes it apart.
    case reasoning(String)
    /// A call the reply made, parsed once the reply ended, with its id.
    case toolCall(ToolCall)
    /// A tool ran (or could not): what the model reads, and the typed error if any.
    case toolResult(ToolResult)
    /// One reply of the model ended (there is one per round).
    case generation(GenerationSummary)
    /// The final answer, which has joined the history.
    case finished(ChatMessage)
}

extension LlamaError.Code {
    /// A reply ran out of tokens (or context) in the middle of a tool call.
    public static let toolCallIncomplete = LlamaError.Code(rawValue: "toolCallIncomplete")
}

extension ChatSession {
    /// Adds the user's message and runs a tool-calling conversation to its final answer, as a
    /// stream of events: reply text and reasoning as they are generated, each call once its
    /// reply ended, each result as its tool finishes, the summary of each reply, and the final
    /// answer.
    ///
    /// Each round renders the history and the tools through the chat template, generates a
    /// reply, and parses it with the template's output parser. When the reply calls tools, the
    /// assistant turn (with its calls) joins the history, the tools run concurrently, each
    /// result joins as a `tool` message in the calls' order (an error a tool throws, unknown
    /// tools and arguments that do not decode become `error: ...` results), and the next round
    /// begins. The first reply without calls is the final answer.
    ///
    /// Calls are constrained where the format's call syntax is known here (Hermes
    /// `<tool_call>{"name": ..., "arguments": ...}</tool_call>`, Functionary v3.1
    /// `<function=NAME>{...}</function>`, Apriel `<tool_calls>[...]</tool_calls>`): with
    /// `.required` or `.tool(name)` the first reply is exactly one call; with `.auto` (and later
    /// rounds) a lazy grammar applies from the format's opening tag on, so that text stays free
    /// and a call that begins is valid JSON for one of the tools. Other formats are not constrained.
    ///
    /// The stream fails with `LlamaError`: `.toolRoundsExceeded` when the model still calls tools
    /// after `maxToolRounds` rounds of them (the calls are recorded with a "not run" result);
    /// `.toolCallIncomplete` when a reply ran out of `maxTokens` (or context) in a call (the
    /// unfinished call is not recorded: the history ends with the last complete message);
    /// generation and template errors. Cancelling it stops generation and the tools.
    ///
    /// - Throws: `.invalidArgument` for a negative `maxToolRounds`, a `.tool(name)` not among the
    ///   tools, tools sharing a name, or a `format` in `options` (constrain tools with `toolChoice`);
    ///   `.invalidSchema` when a tool's parameters cannot be compiled to a grammar; `.template`.
    public func respondStreaming(to text: String, tools: [any Tool], toolChoice: ToolChoice = .auto,
                                 maxToolRounds: Int = 4, sampling: SamplerChain = .greedy,
                                 options: GenerationOptions = GenerationOptions()) throws(LlamaError)
        -> AsyncThrowingStream<ChatEvent, any Error> {
        try respondStreaming(to: .user(text), tools: tools, toolChoice: toolChoice, maxToolRounds: maxToolRounds,
                             sampling: sampling, options: options)
    }

    /// Adds a message (the user's, with images or audio as parts when the session has a
    /// projector) and runs a tool-calling conversation to its final answer, as
    /// `respondStreaming(to:tools:toolChoice:maxToolRounds:sampling:options:)` does for text.
    public func respondStreaming(to message: ChatMessage, tools: [any Tool], toolChoice: ToolChoice = .auto,
                                 maxToolRounds: Int = 4, sampling: SamplerChain = .greedy,
                                 options: GenerationOptions = GenerationOptions()) throws(LlamaError)
        -> AsyncThrowingStream<ChatEvent, any Error> {
        let plan = try ToolPlan(tools: tools, choice: toolChoice, maxToolRounds: maxToolRounds, options: options) {
            (definitions) throws(LlamaError) in try outputParser(tools: definitions)
        }
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await self.runTools(message, plan: plan, sampling: sampling, options: options) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Adds the user's message and runs a tool-calling conversation to its final answer, which
    /// is returned (it has joined the history). See
    /// `respondStreaming(to:tools:toolChoice:maxToolRounds:sampling:options:)`, which this
    /// runs to its end; the tool results, errors included, are the history's `tool` messages.
    @discardableResult
    public func respond(to text: String, tools: [any Tool], toolChoice: ToolChoice = .auto, maxToolRounds: Int = 4,
                        sampling: SamplerChain = .greedy,
                        options: GenerationOptions = GenerationOptions()) async throws -> ChatMessage {
        let events = try respondStreaming(to: text, tools: tools, toolChoice: toolChoice, maxToolRounds: maxToolRounds,
                                          sampling: sampling, options: options)
        for try await event in events {
            if case .finished(let message) = event { return message }
        }
        throw LlamaError(.cancelled, "the conversation ended without a final answer")
    }

    /// The one loop of tool calling.
    func runTools(_ message: ChatMessage, plan: ToolPlan, sampling: SamplerChain, options: GenerationOptions,
                  emit: @Sendable (ChatEvent) -> Void) async throws {
        if message.content.hasMedia, projector == nil { throw LlamaError.projectorRequired() }
        messages.append(message)
        var rounds = 0
        while true {
            let first = rounds == 0
            var chain = sampling
            if let stage = first ? plan.firstStage : plan.laterStage { chain.stages.insert(stage, at: 0) }
            let parser = plan.choice == .none ? plan.textParser : plan.parser
            var output = ChatOutputStream(parser: parser)
            var summary: GenerationSummary?
            func send(_ deltas: [ChatOutputDelta]) {
                for d in deltas {
                    if !d.reasoning.isEmpty { emit(.reasoning(d.reasoning)) }
                    if !d.content.isEmpty { emit(.text(d.content)) }
                }
            }
            for try await event in try generate(messages, tools: plan.definitions, sampling: chain, options: options) {
                switch event {
                case .token(_, let piece), .text(let piece): if !piece.isEmpty { send(output.append(piece)) }
                case .probabilities: break
                case .finished(let s): summary = s
                }
            }
            let last = output.finish()
            guard let summary else { throw LlamaError(.cancelled, "the generation ended without a summary") }
            let parsed = output.current
            let reasoning = parsed.reasoning.isEmpty ? nil : parsed.reasoning

            if summary.stopReason == .cancelled {
                if !parsed.content.isEmpty || reasoning != nil { messages.append(.assistant(parsed.content, reasoning: reasoning)) }
                throw LlamaError(.cancelled, "the conversation was cancelled")
            }
            let outOfRoom = summary.stopReason == .maxTokens || summary.stopReason == .contextFull
            let unfinished = parsed.warnings.contains { $0.code == .unterminatedToolCall }
                || (first && plan.firstMustCall && parsed.toolCalls.isEmpty)
            // The text of an unfinished call is not content: it is not sent.
            if !(plan.choice != .none && outOfRoom && unfinished) { send(last) }
            emit(.generation(summary))
            if plan.choice != .none, outOfRoom, unfinished {
                throw LlamaError(.toolCallIncomplete, "the reply ran out of "
                    + (summary.stopReason == .contextFull ? "context" : "tokens (maxTokens \(options.maxTokens))")
                    + " in the middle of a tool call, which was not recorded: raise maxTokens"
                    + (summary.stopReason == .contextFull ? " or the context length" : "") + " and ask again")
            }
            if plan.choice == .none || parsed.toolCalls.isEmpty {
                let reply = ChatMessage.assistant(parsed.content, reasoning: reasoning)
                messages.append(reply)
                emit(.finished(reply))
                return
            }
            var calls = parsed.toolCalls
            for i in calls.indices where calls[i].id == nil { calls[i].id = "call_\(messages.count)_\(i)" }
            messages.append(.assistant(parsed.content, toolCalls: calls, reasoning: reasoning))
            for call in calls { emit(.toolCall(call)) }
            guard rounds < plan.maxToolRounds else {
                for call in calls {
                    let result = ToolResult(call: call, error: ToolError(.notRun, "not run: the limit of "
                        + "\(plan.maxToolRounds) tool rounds was reached"))
                    messages.append(result.message)
                    emit(.toolResult(result))
                }
                throw LlamaError(.toolRoundsExceeded, "the model still called tools (\(calls.map(\.name).joined(separator: ", "))) "
                    + "after \(plan.maxToolRounds) rounds of them: raise maxToolRounds, or answer with toolChoice .none")
            }
            rounds += 1
            let results = await Self.run(calls, tools: plan.tools, emit: emit)
            for result in results { messages.append(result.message) }
            if Task.isCancelled { throw LlamaError(.cancelled, "the conversation was cancelled") }
        }
    }

    /// The parser of the session's chat template, for these tools.
    func outputParser(tools: [ToolDefinition]) throws(LlamaError) -> ChatOutputParser {
        let model = context.model
        if let template, !model.runtime.builtinChatTemplates.contains(template) {
            do { return try ChatTemplate(template).outputParser(tools: tools) } catch {
                throw LlamaError(.template, "the chat template does not parse: \(error.description)")
            }
        }
        if template == nil {
            if let t = try model.jinjaChatTemplate(named: "tool_use") { return t.outputParser(tools: tools) }
            if let t = try model.jinjaChatTemplate() { return t.outputParser(tools: tools) }
        }
        return ChatOutputParser(format: .contentOnly, tools: tools)
    }

    /// Runs the calls concurrently; the results in the calls' order, each also emitted as it comes.
    static func run(_ calls: [ToolCall], tools: [any Tool], emit: @Sendable (ChatEvent) -> Void = { _ in }) async -> [ToolResult] {
        await withTaskGroup(of: (Int, ToolResult).self) { group in
            for (index, call) in calls.enumerated() {
                let tool = tools.first { $0.name == call.name }
                group.addTask {
                    guard let tool else {
                        return (index, ToolResult(call: call, error: ToolError(.unknownTool, "there is no tool named "
                            + "\"\(call.name)\" (tools: \(tools.map(\.name).joined(separator: ", ")))")))
                    }
                    return (index, await tool.invoke(call))
                }
            }
            var results = [ToolResult?](repeating: nil, count: calls.count)
            for await (index, result) in group {
                emit(.toolResult(result))
                results[index] = result
            }
            return results.map { $0! }
        }
    }
}

/// What a tool conversation needs, checked and compiled before it starts.
struct ToolPlan: Sendable {
    let tools: [any Tool]
    let definitions: [ToolDefinition]
    let choice: ToolChoice
    let maxToolRounds: Int
    let parser: ChatOutputParser
    /// The parser for `.none`: reasoning apart, everything else content.
    let textParser: ChatOutputParser
    /// The grammar stage of the first reply, and of the later ones (nil: unconstrained).
    let firstStage: SamplerStage?
    let laterStage: SamplerStage?
    /// The first reply is constrained to be a call (`.required` or `.tool`, in a known syntax).
    var firstMustCall: Bool {
        switch choice {
        case .required, .tool: return firstStage != nil
        case .auto, .none: return false
        }
    }

    init(tools: [any Tool], choice: ToolChoice, maxToolRounds: Int, options: GenerationOptions,
         parser makeParser: ([ToolDefinition]) throws(LlamaError) -> ChatOutputParser) throws(LlamaError) {
        guard maxToolRounds >= 0 else {
            throw LlamaError(.invalidArgument, "maxToolRounds must not be negative, not \(maxToolRounds)")
        }
        let names = tools.map(\.name)
        if case .tool(let name) = choice, !names.contains(name) {
            throw LlamaError(.invalidArgument, "toolChoice names the tool \"\(name)\", which is not among the tools "
                + "(\(names.joined(separator: ", ")))")
        }
        if let duplicate = names.first(where: { n in names.filter { $0 == n }.count > 1 }) {
            throw LlamaError(.invalidArgument, "two tools are named \"\(duplicate)\": each tool needs its own name")
        }
        guard options.format == .text else {
            throw LlamaError(.invalidArgument, "options.format constrains the whole reply, which leaves no room for tool "
                + "calls: leave it .text with tools (toolChoice constrains the calls), or respond without tools")
        }
        self.tools = tools
        self.choice = choice
        self.maxToolRounds = maxToolRounds
        definitions = tools.map(\.definition)
        parser = try makeParser(definitions)
        var text = parser
        text.format = .contentOnly
        text.tools = []
        textParser = text
        let syntax = ToolCallSyntax(format: parser.format)
        switch choice {
        case .none:
            firstStage = nil
            laterStage = nil
        case .auto:
            firstStage = try syntax?.lazyStage(tools: tools)
            laterStage = firstStage
        case .required:
            firstStage = try syntax?.eagerStage(tools: tools)
            laterStage = try syntax?.lazyStage(tools: tools)
        case .tool(let name):
            firstStage = try syntax?.eagerStage(tools: tools.filter { $0.name == name })
            laterStage = try syntax?.lazyStage(tools: tools)
        }
    }
}

/// The call syntax of a chat format, as grammars: for formats whose calls open with a fixed
/// text and carry JSON arguments.
struct ToolCallSyntax: Sendable {
    let format: ChatFormat
    /// The text a call (or the calls' section) opens with: the lazy grammar's trigger.
    let opening: String

    init?(format: ChatFormat) {
        switch format {
        case .hermes: opening = "<tool_call>"
        case .functionaryV31: opening = "<function="
        case .apriel: opening = "<tool_calls>"
        default: return nil
        }
        self.format = format
    }

    /// The reply is exactly one call (a grammar that allows more lets a small model repeat its
    /// call until maxTokens, since after a call the end and "another" are both open to it).
    func eagerStage(tools: [any Tool]) throws(LlamaError) -> SamplerStage? {
        guard !tools.isEmpty else { return nil }
        return .grammar(try grammar(tools: tools, several: false))
    }

    /// Text is free until the opening appears; from there on, one or more calls and the end.
    func lazyStage(tools: [any Tool]) throws(LlamaError) -> SamplerStage? {
        guard !tools.isEmpty else { return nil }
        return .lazyGrammar(try grammar(tools: tools, several: true), triggerPatterns: [Self.regexLiteral(opening)])
    }

    /// A regular expression matching `text` literally.
    static func regexLiteral(_ text: String) -> String {
        var out = ""
        for c in text {
            if "\\^$.|?*+()[]{}/".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// GBNF of the calls: each tool's JSON compiled by ``JSONSchemaGrammar`` under its own rule
    /// prefix (`t0-`, `t1-`, ...), inside the format's markup.
    func grammar(tools: [any Tool], several: Bool) throws(LlamaError) -> String {
        var lines: [String] = []
        var alternatives: [String] = []
        for (i, tool) in tools.enumerated() {
            let schema: JSONValue
            switch format {
            case .functionaryV31: schema = tool.parameters
            default:
                schema = ["type": "object",
                          "properties": ["name": ["const": .string(tool.name)], "arguments": tool.parameters],
                          "required": ["name", "arguments"], "additionalProperties": false]
            }
            let json: JSONSchemaGrammar
            do { json = try JSONSchemaGrammar(schema: schema) } catch {
                throw LlamaError(.invalidSchema, "the parameters of the tool \(tool.name) cannot be compiled to a grammar "
                    + "(\(error.code) at \(error.pointer)): \(error.message)")
            }
            let prefix = "t\(i)-"
            let names = Set(json.rules.rules.keys)
            for name in json.rules.names {
                lines.append(prefix + name + " ::= " + Self.renaming(json.rules.rules[name]!, names: names, prefix: prefix))
            }
            switch format {
            case .functionaryV31: alternatives.append(GBNF.literal(tool.name + ">") + " " + prefix + "root")
            default: alternatives.append(prefix + "root")
            }
        }
        let body = "(" + alternatives.joined(separator: " | ") + ")"
        var head: [String]
        switch format {
        case .functionaryV31:
            head = ["call ::= \"<function=\" \(body) \"</function>\""]
            head.append(several ? "root ::= call (call-ws call)*" : "root ::= call")
        case .apriel:
            head = ["call ::= \(body)"]
            head.append("root ::= \"<tool_calls>\" call-ws \"[\" call-ws call " + (several ? "(call-ws \",\" call-ws call)* " : "")
                        + "call-ws \"]\" call-ws \"</tool_calls>\"")
        default:
            // Whitespace is free after the opening tag: the tokens that complete the trigger are
            // replayed into the grammar with whatever follows the tag in them.
            head = ["call ::= \"<tool_call>\" call-ws \(body) call-ws \"</tool_call>\""]
            head.append(several ? "root ::= call (call-ws call)*" : "root ::= call")
        }
        head.append("call-ws ::= [ \\t\\n]*")
        return (head + lines).joined(separator: "\n") + "\n"
    }

    /// A rule body with each reference to one of `names` prefixed (string literals and
    /// character classes left as they are).
    static func renaming(_ body: String, names: Set<String>, prefix: String) -> String {
        var out = ""
        var i = body.startIndex
        func isNameChar(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_") }
        while i < body.endIndex {
            let c = body[i]
            if c == "\"" || c == "[" {
                let close: Character = c == "\"" ? "\"" : "]"
                var j = body.index(after: i)
                while j < body.endIndex, body[j] != close {
                    if body[j] == "\\" { j = body.index(after: j) }
                    if j < body.endIndex { j = body.index(after: j) }
                }
                if j < body.endIndex { j = body.index(after: j) }
                out += body[i..<j]
                i = j
            } else if isNameChar(c) {
                var j = i
                while j < body.endIndex, isNameChar(body[j]) { j = body.index(after: j) }
                let word = String(body[i..<j])
                out += names.contains(word) ? prefix + word : word
                i = j
            } else {
                out.append(c)
                i = body.index(after: i)
            }
        }
        return out
    }
}
