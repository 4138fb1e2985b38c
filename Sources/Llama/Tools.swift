public import LlamaChat
public import LlamaJinja
import LlamaSchema

/// A tool the model may call in a ``ChatSession``: a name, what it does, a JSON Schema of its
/// arguments, and the work itself.
///
/// What `call` returns is the tool's result as the model reads it; an error it throws reaches
/// the model as the result too (its description), so that the model can recover.
public protocol Tool: Sendable {
    var name: String { get }
    var description: String { get }
    /// A JSON Schema of the arguments (an object schema).
    var parameters: JSONValue { get }
    func call(arguments: JSONValue) async throws -> String
}

extension Tool {
    /// The tool as chat templates and output parsers read it.
    public var definition: ToolDefinition {
        ToolDefinition(name: name, description: description, parameters: parameters)
    }
}

/// Whether the model may, must or must not call tools (OpenAI's `tool_choice`).
public enum ToolChoice: Sendable, Equatable {
    /// The model decides.
    case auto
    /// Tools are shown but no call is run: the reply is taken as text.
    case none
    /// The first reply must call a tool (later replies decide, so that the conversation can end).
    case required
    /// The first reply must call this tool.
    case tool(String)
}

extension ChatSession {
    /// Adds the user's message and runs a tool-calling conversation to its final answer.
    ///
    /// Each round renders the history and the tools through the chat template, generates a
    /// reply, and parses it with the template's output parser. When the reply calls tools, the
    /// assistant turn (with its calls) joins the history, the tools run (concurrently when there
    /// are several), each result joins as a `tool` message (an error a tool throws, unknown tools
    /// and arguments that are not JSON become the result text), and the next round begins. The
    /// first reply without calls is the final answer: it joins the history and is returned.
    ///
    /// With `.required` or `.tool(name)`, the first reply is constrained by a grammar of the
    /// format's call syntax, where the format has one here: Hermes-style
    /// `<tool_call>{"name": ..., "arguments": ...}</tool_call>`: exactly one call, its arguments
    /// following the tool's schema (several calls in one reply are parsed and run concurrently
    /// when the model makes them unconstrained). Other formats are not constrained.
    ///
    /// - Throws: `LlamaError` `.toolRoundsExceeded` when the model still calls tools after
    ///   `maxToolRounds` rounds of them (the calls are recorded with a "not run" result, so the
    ///   history stays a valid conversation); `.invalidSchema` when a tool's parameters cannot be
    ///   compiled for a constrained reply; generation and template errors.
    @discardableResult
    public func respond(to text: String, tools: [any Tool], toolChoice: ToolChoice = .auto, maxToolRounds: Int = 4,
                        sampling: SamplerChain = .greedy,
                        options: GenerationOptions = GenerationOptions()) async throws -> ChatMessage {
        guard maxToolRounds >= 0 else {
            throw LlamaError(.invalidArgument, "maxToolRounds must not be negative, not \(maxToolRounds)")
        }
        if case .tool(let name) = toolChoice, !tools.contains(where: { $0.name == name }) {
            throw LlamaError(.invalidArgument, "toolChoice names the tool \"\(name)\", which is not among the tools "
                + "(\(tools.map(\.name).joined(separator: ", ")))")
        }
        let definitions = tools.map(\.definition)
        let parser = try outputParser(tools: definitions)
        messages.append(.user(text))
        var rounds = 0
        while true {
            var roundOptions = options
            if rounds == 0, let grammar = try Self.callGrammar(format: parser.format, tools: tools, choice: toolChoice) {
                roundOptions.format = .grammar(grammar)
            }
            let prompt = try context.model.formatChat(messages, addAssistantPrompt: true, template: template,
                                                      tools: definitions)
            let summary = try await context.generate(prompt: prompt, sampling: sampling, options: roundOptions).summary()
            let parsed = parser.parse(summary.text)
            if toolChoice == .none || parsed.toolCalls.isEmpty {
                let reply: ChatMessage = toolChoice == .none && !parsed.toolCalls.isEmpty
                    ? .assistant(summary.text)
                    : .assistant(parsed.content, reasoning: parsed.reasoning.isEmpty ? nil : parsed.reasoning)
                messages.append(reply)
                return reply
            }
            var calls = parsed.toolCalls
            for i in calls.indices where calls[i].id == nil { calls[i].id = "call_\(messages.count)_\(i)" }
            messages.append(.assistant(parsed.content, toolCalls: calls,
                                       reasoning: parsed.reasoning.isEmpty ? nil : parsed.reasoning))
            guard rounds < maxToolRounds else {
                for call in calls {
                    messages.append(.tool("not run: the limit of \(maxToolRounds) tool rounds was reached",
                                          callID: call.id, name: call.name))
                }
                throw LlamaError(.toolRoundsExceeded, "the model still called tools (\(calls.map(\.name).joined(separator: ", "))) "
                    + "after \(maxToolRounds) rounds of them: raise maxToolRounds, or answer with toolChoice .none")
            }
            rounds += 1
            let results = await Self.run(calls, tools: tools)
            for (call, result) in zip(calls, results) {
                messages.append(.tool(result, callID: call.id, name: call.name))
            }
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

    /// Runs the calls concurrently; the results in the calls' order.
    static func run(_ calls: [ToolCall], tools: [any Tool]) async -> [String] {
        await withTaskGroup(of: (Int, String).self) { group in
            for (index, call) in calls.enumerated() {
                let tool = tools.first { $0.name == call.name }
                group.addTask {
                    guard let tool else {
                        return (index, "error: there is no tool named \"\(call.name)\" (tools: "
                            + "\(tools.map(\.name).joined(separator: ", ")))")
                    }
                    let arguments: JSONValue
                    do { arguments = try JSONValue(parsing: call.arguments.isEmpty ? "{}" : call.arguments) } catch {
                        return (index, "error: the arguments are not JSON (\(error)): \(call.arguments)")
                    }
                    do { return (index, try await tool.call(arguments: arguments)) } catch {
                        return (index, "error: \(error)")
                    }
                }
            }
            var results = [String](repeating: "", count: calls.count)
            for await (index, result) in group { results[index] = result }
            return results
        }
    }

    /// A grammar that makes the reply a call, for formats whose call syntax is known here;
    /// nil when the choice does not require a call or the format is not one of those.
    static func callGrammar(format: ChatFormat, tools: [any Tool], choice: ToolChoice) throws(LlamaError) -> String? {
        let allowed: [any Tool]
        switch choice {
        case .auto, .none: return nil
        case .required: allowed = tools
        case .tool(let name): allowed = tools.filter { $0.name == name }
        }
        guard format == .hermes, !allowed.isEmpty else { return nil }
        let schemas: [JSONValue] = allowed.map { tool in
            ["type": "object",
             "properties": ["name": ["const": .string(tool.name)], "arguments": tool.parameters],
             "required": ["name", "arguments"], "additionalProperties": false]
        }
        let schema: JSONValue = schemas.count == 1 ? schemas[0] : ["anyOf": .array(schemas)]
        let json: JSONSchemaGrammar
        do { json = try JSONSchemaGrammar(schema: schema) } catch {
            throw LlamaError(.invalidSchema, "a tool's parameters cannot be compiled to a grammar "
                + "(\(error.code) at \(error.pointer)): \(error.message)")
        }
        // The schema's start rule `root` becomes `call-json` (names of the converter's rules
        // never hold "call-json" or a bare `root` reference, outside recursive `$ref: "#"`,
        // which tool parameters do not use); the calls are the grammar's start.
        // One call: a grammar that allows more lets a small model repeat its call until
        // maxTokens, since after `</tool_call>` the end and "another" are both open to it.
        var text = "root ::= \"<tool_call>\" \"\\n\"? call-json \"\\n\"? \"</tool_call>\"\n"
        for (name, body) in json.rules.rules.sorted(by: { $0.key < $1.key }) {
            text += (name == "root" ? "call-json" : name) + " ::= " + body + "\n"
        }
        return text
    }
}
