import HTTPTypes
import Foundation
import Llama

/// Whether the model may, must or must not call tools (`tool_choice`).
enum RequestToolChoice: Equatable {
    case auto, none, required
    case named(String)
}

/// A chat request read and checked: messages, tools, the output format, sampling.
struct ChatRequest {
    var messages: [ChatMessage]
    var tools: [ToolDefinition]
    var toolChoice: RequestToolChoice
    var parallelToolCalls: Bool
    var responseFormat: GenerationFormat
    var stream: Bool
    var includeUsage: Bool
    var sampling: SamplerChain
    var stops: [String]
    var maxTokens: Int?
    /// `logprobs`/`top_logprobs`: the alternatives per token (nil: no log-probabilities).
    var probabilities: Int?
    var templateVariables: [String: JSONValue]

    static let known: Set<String> = SamplingRequest.samplingFields.union(SamplingRequest.ignoredHints).union([
        "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "chat_template_kwargs",
        "functions", "function_call",
    ])

    init(_ b: JSONBody, host: ModelHost) throws(APIError) {
        try SamplingRequest.rejectUnknown(b, known: Self.known)
        try SamplingRequest.rejectUnsupported(b)
        if b.has("functions") || b.has("function_call") {
            throw APIError.unsupported(b.has("functions") ? "functions" : "function_call",
                                       "`functions` and `function_call` are deprecated: use `tools` and `tool_choice`")
        }
        guard let raw = try b.array("messages") else { throw APIError.missing("messages") }
        guard !raw.isEmpty else { throw APIError.invalid("messages", "`messages` must hold at least one message") }
        var messages: [ChatMessage] = []
        for (i, m) in raw.enumerated() { messages.append(try Self.message(m, index: i)) }
        try Self.checkMedia(messages, host: host)
        self.messages = messages

        var tools: [ToolDefinition] = []
        for (i, t) in (try b.array("tools") ?? []).enumerated() { tools.append(try Self.tool(t, index: i)) }
        let names = tools.map(\.name)
        if let duplicate = names.enumerated().first(where: { names.prefix($0.offset).contains($0.element) }) {
            throw APIError.invalid("tools", "two tools are named \"\(duplicate.element)\"")
        }
        self.tools = tools
        toolChoice = try Self.toolChoice(b, tools: tools)
        parallelToolCalls = try b.bool("parallel_tool_calls") ?? true
        responseFormat = try Self.responseFormat(b)
        stream = try b.bool("stream") ?? false
        includeUsage = try b.object("stream_options")?.bool("include_usage") ?? false
        sampling = try SamplingRequest.chain(b, vocabCount: host.model.vocab.count)
        stops = try SamplingRequest.stops(b)
        maxTokens = try SamplingRequest.maxTokens(b, sequenceLength: host.sequenceLength)
        probabilities = try Logprobs.chatRequest(b)
        var variables: [String: JSONValue] = [:]
        if let kwargs = try b.object("chat_template_kwargs") {
            for key in kwargs.object.keys { variables[key] = kwargs.object[key] }
        }
        templateVariables = variables
    }

    static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool"]

    static func message(_ value: JSONValue, index i: Int) throws(APIError) -> ChatMessage {
        let path = "messages[\(i)]"
        let m = try JSONBody(value, path: path + ".")
        let role = try m.requiredString("role")
        guard roles.contains(role) else {
            throw APIError.invalid("\(path).role", "`\(path).role` must be one of system, developer, user, assistant, tool; not \"\(role)\"")
        }
        var content: ChatContent = .none
        switch m.value("content") {
        case nil: break
        case .string(let s)?: content = .text(s)
        case .array(let parts)?:
            var out: [ChatContentPart] = []
            for (j, part) in parts.enumerated() {
                let p = try JSONBody(part, path: "\(path).content[\(j)].")
                let type = try p.requiredString("type")
                switch type {
                case "text": out.append(.text(try p.requiredString("text")))
                case "image_url", "input_audio":
                    do { out.append(try ChatContentPart(json: part)) } catch {
                        throw APIError.invalid("\(path).content[\(j)]", "`\(path).content[\(j)]`: \(error.message)", code: "invalid_media")
                    }
                case "file", "image", "audio", "input_video", "video_url":
                    throw APIError.unsupported("\(path).content[\(j)]", "`\(type)` content is not supported by this server: send "
                        + "text, image_url and input_audio parts")
                default:
                    throw APIError.invalid("\(path).content[\(j)].type", "unknown content part type \"\(type)\"")
                }
            }
            content = .parts(out)
        default:
            throw m.typeError("content", "a string, an array of content parts, or null")
        }
        var calls: [ToolCall] = []
        if let raw = try m.array("tool_calls") {
            guard role == "assistant" else {
                throw APIError.invalid("\(path).tool_calls", "only assistant messages carry `tool_calls`")
            }
            for (j, c) in raw.enumerated() {
                let call = try JSONBody(c, path: "\(path).tool_calls[\(j)].")
                guard let f = try call.object("function") else { throw APIError.missing("\(path).tool_calls[\(j)].function") }
                let name = try f.requiredString("name")
                let arguments: String
                switch f.value("arguments") {
                case .string(let s)?: arguments = s
                case .object(let o)?: arguments = JSONValue.object(o).jsonText
                case nil: arguments = "{}"
                default: throw f.typeError("arguments", "a string of JSON")
                }
                calls.append(ToolCall(id: try call.string("id"), name: name, arguments: arguments))
            }
        }
        if case .none = content, !(role == "assistant" && !calls.isEmpty) {
            throw APIError.missing("\(path).content")
        }
        let toolCallID = try m.string("tool_call_id")
        if role == "tool", toolCallID == nil { throw APIError.missing("\(path).tool_call_id") }
        return ChatMessage(role: role == "developer" ? "system" : role, content: content, name: try m.string("name"),
                           toolCalls: calls, toolCallID: toolCallID, reasoning: try m.string("reasoning_content"))
    }

    static func tool(_ value: JSONValue, index i: Int) throws(APIError) -> ToolDefinition {
        let path = "tools[\(i)]"
        let t = try JSONBody(value, path: path + ".")
        let type = try t.string("type") ?? "function"
        guard type == "function" else {
            throw APIError.invalid("\(path).type", "`\(path).type` must be \"function\", not \"\(type)\"")
        }
        guard let f = try t.object("function") else { throw APIError.missing("\(path).function") }
        let name = try f.requiredString("name")
        guard !name.isEmpty, name.count <= 64,
              name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "_" || $0 == "-" }) else {
            throw APIError.invalid("\(path).function.name", "a tool name is 1 to 64 characters of a-z, A-Z, 0-9, _ and -, not \"\(name)\"")
        }
        var parameters: JSONValue = ["type": "object", "properties": [:]]
        if let p = f.value("parameters") {
            guard case .object = p else { throw f.typeError("parameters", "a JSON Schema object") }
            do { _ = try JSONSchemaGrammar(schema: p) } catch {
                throw APIError(.badRequest, "the parameters schema of tool \"\(name)\" cannot be used (\(error.code) at "
                    + "\(error.pointer)): \(error.message)", param: "\(path).function.parameters", code: "invalid_schema")
            }
            parameters = p
        }
        return ToolDefinition(name: name, description: try f.string("description"), parameters: parameters)
    }

    static func toolChoice(_ b: JSONBody, tools: [ToolDefinition]) throws(APIError) -> RequestToolChoice {
        let choice: RequestToolChoice
        switch b.value("tool_choice") {
        case nil: return tools.isEmpty ? .none : .auto
        case .string("auto")?: choice = .auto
        case .string("none")?: return .none
        case .string("required")?: choice = .required
        case .object?:
            let o = try b.object("tool_choice")!
            guard let f = try o.object("function") else { throw APIError.missing("tool_choice.function") }
            choice = .named(try f.requiredString("name"))
        default:
            throw APIError.invalid("tool_choice", "`tool_choice` must be \"none\", \"auto\", \"required\" or "
                + "{\"type\": \"function\", \"function\": {\"name\": ...}}")
        }
        if tools.isEmpty, choice != .auto {
            throw APIError.invalid("tool_choice", "`tool_choice` asks for a tool call but the request has no `tools`")
        }
        if case .named(let name) = choice, !tools.contains(where: { $0.name == name }) {
            throw APIError.invalid("tool_choice", "`tool_choice` names \"\(name)\", which is not among the tools")
        }
        return choice
    }

    static func responseFormat(_ b: JSONBody) throws(APIError) -> GenerationFormat {
        guard let f = try b.object("response_format") else { return .text }
        let type = try f.requiredString("type")
        let format: GenerationFormat
        switch type {
        case "text": return .text
        case "json_object":
            if let schema = f.value("schema") { format = .jsonSchema(schema) } else { return .json }
        case "json_schema":
            guard let js = try f.object("json_schema") else { throw APIError.missing("response_format.json_schema") }
            guard let schema = js.value("schema") else { throw APIError.missing("response_format.json_schema.schema") }
            guard case .object = schema else {
                throw js.typeError("schema", "a JSON Schema object")
            }
            format = .jsonSchema(schema)
        default:
            throw APIError.invalid("response_format.type", "`response_format.type` must be text, json_object or json_schema, not \"\(type)\"")
        }
        do { _ = try format.grammarText() } catch {
            throw APIError.from(error, param: "response_format.json_schema.schema")
        }
        return format
    }
}

/// What a chat request becomes: the prompt, how the output is constrained, how it is parsed.
struct ChatPlan {
    var prompt: String
    var parser: ChatOutputParser
    var format: GenerationFormat

    init(_ r: ChatRequest, host: ModelHost) throws(APIError) {
        let model = host.model
        let tools = r.toolChoice == .none ? [] : r.tools
        let template = (tools.isEmpty ? nil : host.toolTemplate) ?? host.chatTemplate
        let native = template.map { $0.format != .contentOnly } ?? false
        let historyHasTools = r.messages.contains { !$0.toolCalls.isEmpty || $0.role == "tool" }
        let marker = host.projector?.marker
        do {
            if native {
                guard tools.isEmpty || r.responseFormat == .text else {
                    throw APIError.unsupported("response_format", "`response_format` together with `tools` is supported for models "
                        + "whose template has no tool-call syntax of its own; this model's is \(template!.format)")
                }
                prompt = try model.formatChat(r.messages, tools: tools, variables: r.templateVariables, mediaMarker: marker)
                parser = template!.outputParser(tools: tools, variables: r.templateVariables)
                format = r.responseFormat
                if template!.format == .hermes, let grammar = try Self.hermesCallGrammar(tools: tools, choice: r.toolChoice) {
                    format = .grammar(grammar)
                }
            } else if !tools.isEmpty {
                // No tool syntax in the template: the generic format, a JSON reply constrained by a grammar.
                let messages = Self.genericMessages(r.messages, tools: tools)
                prompt = try model.formatChat(messages, variables: r.templateVariables, mediaMarker: marker)
                parser = ChatOutputParser(format: .generic, tools: tools)
                format = .jsonSchema(Self.genericSchema(tools: tools, choice: r.toolChoice, parallel: r.parallelToolCalls,
                                                        response: r.responseFormat))
            } else {
                let messages = historyHasTools ? Self.genericMessages(r.messages, tools: []) : r.messages
                prompt = try model.formatChat(messages, variables: r.templateVariables, mediaMarker: marker)
                parser = template?.outputParser(variables: r.templateVariables) ?? ChatOutputParser(format: .contentOnly)
                format = r.responseFormat
            }
        } catch let e as APIError {
            throw e
        } catch {
            throw APIError.from(error, param: "messages")
        }
    }

    /// The history as a template without tool syntax can render it: calls and results as JSON text,
    /// and the tools described in the system message.
    static func genericMessages(_ messages: [ChatMessage], tools: [ToolDefinition]) -> [ChatMessage] {
        var callNames: [String: String] = [:]
        for m in messages { for call in m.toolCalls { if let id = call.id { callNames[id] = call.name } } }
        var out: [ChatMessage] = messages.map { m in
            if !m.toolCalls.isEmpty {
                let calls: [JSONValue] = m.toolCalls.map { call in
                    ["name": .string(call.name), "arguments": (try? JSONValue(parsing: call.arguments)) ?? .string(call.arguments)]
                }
                var text = m.text
                if !text.isEmpty { text += "\n" }
                return ChatMessage(role: "assistant", content: .text(text + JSONValue.object(["tool_calls": .array(calls)]).jsonText))
            }
            if m.role == "tool" {
                let name = m.name ?? m.toolCallID.flatMap { callNames[$0] }
                let response: JSONValue = ["tool_response": ["name": name.map(JSONValue.string) ?? .null,
                                                             "content": .string(m.text)]]
                return ChatMessage(role: "user", content: .text(response.jsonText))
            }
            if case .none = m.content { return ChatMessage(role: m.role, content: .text(""), name: m.name) }
            return m
        }
        guard !tools.isEmpty else { return out }
        let described = JSONValue.array(tools.map { t in
            ["name": .string(t.name), "description": t.description.map(JSONValue.string) ?? .null, "parameters": t.parameters]
        })
        let instructions = "You can call these tools:\n\(described.jsonText)\n\nReply with one JSON object only: "
            + "{\"tool_calls\": [{\"name\": TOOL, \"arguments\": {...}}]} to call tools, or "
            + "{\"response\": YOUR_ANSWER} to answer."
        if let first = out.first, first.role == "system" {
            out[0] = .system(first.text + "\n\n" + instructions)
        } else {
            out.insert(.system(instructions), at: 0)
        }
        return out
    }

    /// The JSON Schema of a generic reply: calls of the offered tools, or (unless a call is
    /// required) a response.
    static func genericSchema(tools: [ToolDefinition], choice: RequestToolChoice, parallel: Bool,
                              response: GenerationFormat) -> JSONValue {
        let allowed: [ToolDefinition]
        if case .named(let name) = choice { allowed = tools.filter { $0.name == name } } else { allowed = tools }
        let calls: [JSONValue] = allowed.map { t in
            ["type": "object", "properties": ["name": ["const": .string(t.name)], "arguments": t.parameters],
             "required": ["name", "arguments"], "additionalProperties": false]
        }
        var array: JSONObject = ["type": "array", "items": calls.count == 1 ? calls[0] : ["anyOf": .array(calls)], "minItems": 1]
        if !parallel { array["maxItems"] = 1 }
        let callBranch: JSONValue = ["type": "object", "properties": ["tool_calls": .object(array)],
                                     "required": ["tool_calls"], "additionalProperties": false]
        if choice == .required || { if case .named = choice { return true } else { return false } }() { return callBranch }
        var answer: JSONValue = ["type": "string"]
        switch response {
        case .jsonSchema(let s): answer = s
        case .json: answer = [:]
        default: break
        }
        let responseBranch: JSONValue = ["type": "object", "properties": ["response": answer], "required": ["response"],
                                         "additionalProperties": false]
        return ["anyOf": [callBranch, responseBranch]]
    }

    /// For Hermes-style templates, a grammar that makes the reply one call when a call is required.
    static func hermesCallGrammar(tools: [ToolDefinition], choice: RequestToolChoice) throws(LlamaError) -> String? {
        let allowed: [ToolDefinition]
        switch choice {
        case .auto, .none: return nil
        case .required: allowed = tools
        case .named(let name): allowed = tools.filter { $0.name == name }
        }
        guard !allowed.isEmpty else { return nil }
        let schemas: [JSONValue] = allowed.map { t in
            ["type": "object", "properties": ["name": ["const": .string(t.name)], "arguments": t.parameters],
             "required": ["name", "arguments"], "additionalProperties": false]
        }
        let json: JSONSchemaGrammar
        do { json = try JSONSchemaGrammar(schema: schemas.count == 1 ? schemas[0] : ["anyOf": .array(schemas)]) } catch {
            throw LlamaError(.invalidSchema, "a tool's parameters cannot be compiled to a grammar (\(error.code) at \(error.pointer)): \(error.message)")
        }
        var text = "root ::= \"<tool_call>\" \"\\n\"? call-json \"\\n\"? \"</tool_call>\"\n"
        for (name, body) in json.rules.rules.sorted(by: { $0.key < $1.key }) {
            text += (name == "root" ? "call-json" : name) + " ::= " + body + "\n"
        }
        return text
    }
}
