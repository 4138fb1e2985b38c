import Foundation
@testable import Llama
import LlamaRaw
import LlamaTestSupport
import Synchronization
import Testing

/// Structured output (`GenerationOptions.format`) and the tool-calling loop of `ChatSession`,
/// with SmolLM2 under a small Hermes-style template (SmolLM2's own template has no tools).
@Suite("Tools and structured output", .serialized)
struct ToolTests {
    /// ChatML with Hermes-style tools: `<tools>` in the system turn, `<tool_call>{json}</tool_call>`
    /// replies, results in `<tool_response>`.
    static let hermesTemplate = #"""
        {%- if tools %}<|im_start|>system
        You can call functions. The functions, as JSON:
        <tools>
        {% for tool in tools %}{{ tool | tojson }}
        {% endfor %}</tools>
        To call one, reply with <tool_call>{"name": <function-name>, "arguments": <args-json-object>}</tool_call><|im_end|>
        {% endif %}
        {%- for message in messages %}
        {%- if message.role == 'tool' %}<|im_start|>user
        <tool_response>
        {{ message.content }}
        </tool_response><|im_end|>
        {% elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant
        {% for tc in message.tool_calls %}<tool_call>
        {"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments | tojson }}}
        </tool_call>{% endfor %}<|im_end|>
        {% else %}<|im_start|>{{ message.role }}
        {{ message.content }}<|im_end|>
        {% endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}<|im_start|>assistant
        {% endif %}
        """#

    static func session() throws -> ChatSession {
        try ChatSession(model: try Fixture.model.get(), template: hermesTemplate,
                        options: ContextOptions(contextLength: 2048, batchSize: 512, threads: 2))
    }

    @Test(".jsonSchema constrains generation to JSON that follows the schema")
    func jsonSchema() async throws {
        let schema: JSONValue = [
            "type": "object",
            "properties": [
                "name": ["type": "string", "maxLength": 16],
                "age": ["type": "integer", "minimum": 0, "maximum": 120],
                "pet": ["enum": ["cat", "dog", "none"]],
            ],
            "required": ["name", "age", "pet"],
        ]
        var options = GenerationOptions(maxTokens: 80)
        options.format = .jsonSchema(schema)
        let context = try Fixture.context()
        let prompt = "<|im_start|>user\nDescribe a person as JSON.<|im_end|>\n<|im_start|>assistant\n"
        let summary = try await context.generate(prompt: prompt, options: options).summary()
        #expect(summary.stopReason != .maxTokens, "the document did not end: \(summary.text)")
        let value = try JSONValue(parsing: summary.text)
        let object = try #require(value.objectValue, "not an object: \(summary.text)")
        #expect(Array(object.keys) == ["name", "age", "pet"])
        let name = try #require(object["name"]?.stringValue)
        #expect(name.count <= 16)
        guard case .int(let age)? = object["age"] else {
            Issue.record("age is not an integer: \(summary.text)")
            return
        }
        #expect((0...120).contains(age))
        #expect(["cat", "dog", "none"].contains(object["pet"]?.stringValue ?? ""))

        // Any JSON.
        options.format = .json
        options.maxTokens = 40
        let any = try await context.generate(prompt: prompt, options: options).summary()
        if any.stopReason != .maxTokens { #expect((try? JSONValue(parsing: any.text)) != nil, "\(any.text)") }
    }

    @Test("a schema that cannot be compiled is an .invalidSchema error")
    func invalidSchema() async throws {
        var options = GenerationOptions(maxTokens: 4)
        options.format = .jsonSchema(["$ref": "#/$defs/missing"])
        let context = try Fixture.context()
        let error = await expectLlamaError(.invalidSchema) {
            try await context.generate(prompt: Fixture.chatPrompt, options: options).summary()
        }
        #expect(error != nil)
    }

    @Test("a required calculator call validates (jsonschema), decodes into the typed Arguments, runs, and a final answer follows")
    func calculator() async throws {
        let calculator = Calculator()
        let session = try Self.session()
        let reply = try await session.respond(to: "What is 12 times 7? Use the calculator.", tools: [calculator],
                                              toolChoice: .required, maxToolRounds: 3,
                                              options: GenerationOptions(maxTokens: 96))
        let calls = calculator.calls.withLock { $0 }
        #expect(!calls.isEmpty, "the tool did not run")
        let messages = await session.messages
        let assistant = try #require(messages.first { !$0.toolCalls.isEmpty })
        #expect(assistant.toolCalls.count == 1)
        #expect(!assistant.text.contains("<tool_call>"), "the call was not parsed out: \(assistant.text)")
        let call = try #require(assistant.toolCalls.first)
        #expect(call.name == "calculator")
        try await expectValid(call.arguments, against: calculator.parameters)
        let decoded = try JSONDecoder().decode(Calculator.Arguments.self, from: Data(call.arguments.utf8))
        #expect(calls.first == decoded, "the tool got other arguments than the call's")
        let result = try #require(messages.first { $0.role == "tool" })
        #expect(result.toolCallID == call.id)
        #expect(result.text == (try Calculator.text(of: decoded.value)), "the result is the tool's output as JSON text")
        #expect(reply.role == "assistant" && reply.toolCalls.isEmpty)
        #expect(messages.last == reply)
    }

    @Test("an error a tool throws reaches the model as its result")
    func throwingTool() async throws {
        let session = try Self.session()
        var results: [ToolResult] = []
        do {
            for try await event in try await session.respondStreaming(to: "What is the weather in Paris?", tools: [BrokenWeather()],
                                                                      toolChoice: .required, maxToolRounds: 1,
                                                                      options: GenerationOptions(maxTokens: 64)) {
                if case .toolResult(let r) = event { results.append(r) }
            }
        } catch let error as LlamaError where error.code == .toolRoundsExceeded {
            // The model may ask again; the result still reached it.
        }
        let first = try #require(results.first)
        #expect(first.error == ToolError(.failed, "the weather service is down"))
        let messages = await session.messages
        let result = try #require(messages.first { $0.role == "tool" })
        #expect(result.text == "error: the weather service is down")
        let prompt = try Fixture.model.get().formatChat(messages, template: Self.hermesTemplate,
                                                        tools: [BrokenWeather().definition])
        #expect(prompt.contains("<tool_response>\nerror: the weather service is down"))
    }

    @Test(".auto: a call the model begins is constrained by the lazy grammar (its arguments validate), and the loop answers")
    func autoCall() async throws {
        let calculator = Calculator()
        // SmolLM2 calls on its own when the system prompt names the tag.
        let session = try ChatSession(model: try Fixture.model.get(),
                                      systemPrompt: "Answer arithmetic questions with a <tool_call> to the calculator.",
                                      template: Self.hermesTemplate,
                                      options: ContextOptions(contextLength: 2048, batchSize: 512, threads: 2))
        var events: [ChatEvent] = []
        for try await event in try await session.respondStreaming(to: "What is 12 times 7?", tools: [calculator],
                                                                  toolChoice: .auto, maxToolRounds: 2,
                                                                  options: GenerationOptions(maxTokens: 160)) {
            events.append(event)
        }
        let calls = events.compactMap { if case .toolCall(let c) = $0 { return c } else { return nil } }
        let call = try #require(calls.first, "the model made no call under .auto: \(events)")
        try await expectValid(call.arguments, against: calculator.parameters)
        #expect(calculator.calls.withLock { $0.count } == calls.count)
        // Events: the call, then its result, then the final answer, last.
        let callIndex = try #require(events.firstIndex { if case .toolCall = $0 { return true } else { return false } })
        let resultIndex = try #require(events.firstIndex { if case .toolResult = $0 { return true } else { return false } })
        #expect(callIndex < resultIndex)
        guard case .finished(let reply)? = events.last else {
            Issue.record("the stream did not end with .finished: \(events)")
            return
        }
        // The text deltas after the last result are the final answer's content.
        let finalText = events[resultIndex...].compactMap { if case .text(let t) = $0 { return t } else { return nil } }.joined()
        #expect(finalText == reply.text)
        #expect(await session.messages.last == reply)
    }

    @Test(".auto without a call: greedy text with the lazy grammar is the text without it")
    func autoText() async throws {
        let model = try Fixture.model.get()
        let tools: [any Tool] = [Calculator()]
        let prompt = try model.formatChat([.user("Write a haiku about the sea.")], template: Self.hermesTemplate,
                                          tools: tools.map(\.definition))
        let syntax = try #require(ToolCallSyntax(format: .hermes))
        let lazy = try #require(try syntax.lazyStage(tools: tools))
        let context = try Fixture.context(ContextOptions(contextLength: 1024, batchSize: 512, threads: 2))
        let free = try await context.generate(prompt: prompt, options: GenerationOptions(maxTokens: 48)).summary()
        let constrained = try await context.generate(prompt: prompt, sampling: SamplerChain([lazy, .greedy]),
                                                     options: GenerationOptions(maxTokens: 48)).summary()
        #expect(!free.text.contains("<tool_call>"), "the model called: pick another prompt: \(free.text)")
        #expect(free.generatedTokens.count > 8)
        #expect(constrained.text == free.text)
        #expect(constrained.generatedTokens == free.generatedTokens)
    }

    @Test("a lazy grammar whose trigger token carries text the grammar rejects: another token, no crash")
    func lazyTriggerGuard() async throws {
        let context = try Fixture.context()
        let free = try await context.generate(prompt: Fixture.chatPrompt, options: GenerationOptions(maxTokens: 12)).summary()
        let model = try Fixture.model.get()
        let first = String(decoding: try model.vocab.piece(free.generatedTokens[0]), as: UTF8.self)
        let word = first.trimmingCharacters(in: .whitespaces)
        try #require(word.count >= 2, "the first token is too short to split: \(first.debugDescription)")
        // The trigger is the word's first character; the grammar wants a digit after it, which the
        // greedy first token (the whole word) does not have: llama.cpp would abort replaying it.
        let head = String(word.prefix(1))
        let grammar = "root ::= \(GBNF.literal(head)) [0-9] [0-9]*"
        let stage = SamplerStage.lazyGrammar(grammar, triggerPatterns: [ToolCallSyntax.regexLiteral(head)])
        let summary = try await context.generate(prompt: Fixture.chatPrompt, sampling: SamplerChain([stage, .greedy]),
                                                 options: GenerationOptions(maxTokens: 12)).summary()
        #expect(summary.generatedTokens.first != free.generatedTokens.first)
        // Wherever the trigger appears (the sampler may as well avoid it), what follows it is what the grammar allows.
        let afterTriggers = summary.text.ranges(of: head).map { summary.text[$0.upperBound...].prefix(1) }
        #expect(afterTriggers.allSatisfy { $0.isEmpty || $0.allSatisfy(\.isNumber) }, "after the trigger: \(summary.text.debugDescription)")
    }

    @Test("parallel calls in one reply are parsed, run concurrently, and their results kept in the calls' order")
    func parallelCalls() async throws {
        let reply = """
            <tool_call>
            {"name": "rendezvous", "arguments": {"side": "left"}}
            </tool_call>
            <tool_call>
            {"name": "rendezvous", "arguments": {"side": "right"}}
            </tool_call>
            """
        let tool = Rendezvous()
        let parser = ChatOutputParser(template: Self.hermesTemplate, tools: [tool.definition])
        let parsed = parser.parse(reply)
        #expect(parsed.warnings.isEmpty, "\(parsed.warnings)")
        try #require(parsed.toolCalls.count == 2)
        var calls = parsed.toolCalls
        for i in calls.indices { calls[i].id = "call_\(i)" }
        // Each call waits for the other to start: run one after the other, they would time out.
        let results = await ChatSession.run(calls, tools: [tool])
        #expect(results.map(\.content) == ["left met right", "right met left"])
        #expect(results.map(\.callID) == ["call_0", "call_1"])
        #expect(results.allSatisfy { !$0.isError }, "\(results)")
    }

    @Test("a model out of tokens inside a required call: .toolCallIncomplete, the history without the broken call")
    func callBudget() async throws {
        let session = try Self.session()
        _ = try await session.respond(to: "Hello!", options: GenerationOptions(maxTokens: 8)).summary()
        let before = await session.messages
        let error = await expectLlamaError(.toolCallIncomplete) {
            try await session.respond(to: "What is 12 times 7?", tools: [Calculator()], toolChoice: .required,
                                      options: GenerationOptions(maxTokens: 4))
        }
        #expect(error != nil)
        let after = await session.messages
        #expect(after == before + [.user("What is 12 times 7?")])
        // Still a conversation the template renders, and one the session can go on with.
        _ = try Fixture.model.get().formatChat(after, template: Self.hermesTemplate, tools: [Calculator().definition])
        let next = try await session.respond(to: "Thanks.", tools: [Calculator()], toolChoice: .none,
                                             options: GenerationOptions(maxTokens: 8))
        #expect(await session.messages.last == next)
        // Text cut by maxTokens under .auto is an answer, not an incomplete call.
        let cut = try await session.respond(to: "Write a long poem about the sea.", tools: [Calculator()], toolChoice: .auto,
                                            options: GenerationOptions(maxTokens: 6))
        #expect(!cut.text.isEmpty && cut.toolCalls.isEmpty)
    }

    @Test("arguments that do not decode into the tool's Arguments: an .invalidArguments result the model reads")
    func argumentDecoding() async throws {
        // Direct: wrong type, missing key, not JSON.
        let calculator = Calculator()
        let wrongType = await calculator.invoke(ToolCall(id: "1", name: "calculator", arguments: #"{"a": "x", "b": 1, "operation": "add"}"#))
        #expect(wrongType.error?.code == .invalidArguments)
        #expect(wrongType.content.hasPrefix("error: the arguments of calculator do not fit its parameters (a: expected"),
                "\(wrongType.content)")
        let missing = await calculator.invoke(ToolCall(name: "calculator", arguments: #"{"a": 1, "operation": "add"}"#))
        #expect(missing.error?.code == .invalidArguments)
        #expect(missing.content.contains("b is missing"), "\(missing.content)")
        let notJSON = await calculator.invoke(ToolCall(name: "calculator", arguments: "{a: 1"))
        #expect(notJSON.error?.code == .invalidArguments)
        #expect(calculator.calls.withLock { $0.isEmpty }, "the tool ran with arguments that do not decode")
        let unknown = await ChatSession.run([ToolCall(name: "nope", arguments: "{}")], tools: [calculator])
        #expect(unknown.first?.error?.code == .unknownTool)

        // Through the loop: a tool whose schema shows the model less than its Arguments need.
        let strict = StrictTool()
        let session = try Self.session()
        var results: [ToolResult] = []
        do {
            for try await event in try await session.respondStreaming(to: "Look up the city Paris.", tools: [strict],
                                                                      toolChoice: .required, maxToolRounds: 1,
                                                                      options: GenerationOptions(maxTokens: 64)) {
                if case .toolResult(let r) = event { results.append(r) }
            }
        } catch let error as LlamaError where error.code == .toolRoundsExceeded {}
        let first = try #require(results.first, "no tool result")
        #expect(first.error?.code == .invalidArguments, "\(first)")
        let messages = await session.messages
        let message = try #require(messages.first { $0.role == "tool" })
        #expect(message.text == first.content && message.text.hasPrefix("error: the arguments of lookup do not fit"))
        #expect(strict.ran.withLock { $0 } == false)
    }

    @Test("outputs reach the model as JSON text, a String as itself; DynamicTool takes and gives JSON")
    func outputsAndDynamicTools() async throws {
        let echo = DynamicTool(name: "echo", description: "Returns its arguments.") { $0 }
        let r = await echo.invoke(ToolCall(name: "echo", arguments: #"{"b": [1, 2.5, "x"], "a": null}"#))
        #expect(r.content == #"{"b":[1,2.5,"x"],"a":null}"#)
        let text = DynamicTool(name: "text", description: "") { _ in .string("plain \"text\"") }
        #expect(await text.invoke(ToolCall(name: "text", arguments: "")).content == "plain \"text\"")
        #expect(try Calculator.text(of: 84) == "84")
        #expect(try BrokenWeather.text(of: "as is") == "as is")
        #expect(try PointTool.text(of: PointTool.Output()) == #"{"url":"a/b","x":1,"y":2}"#)
        #expect(Calculator().parameters == Calculator.Arguments.generationSchema)
        #expect(ToolChoice("required") == .required && ToolChoice("calc") == .tool("calc"))
    }

    @Test("bad requests: duplicate names, an unknown named tool, a format with tools, negative rounds")
    func badRequests() async throws {
        let session = try Self.session()
        for (tools, choice, rounds, format) in [
            ([Calculator(), Calculator()] as [any Tool], ToolChoice.auto, 1, GenerationFormat.text),
            ([Calculator()], .tool("weather"), 1, .text),
            ([Calculator()], .auto, 1, .json),
            ([Calculator()], .auto, -1, .text),
        ] {
            var options = GenerationOptions(maxTokens: 4)
            options.format = format
            let error = await expectLlamaError(.invalidArgument) {
                try await session.respondStreaming(to: "hi", tools: tools, toolChoice: choice, maxToolRounds: rounds, options: options)
            }
            #expect(error != nil, "\(choice) \(rounds) \(format)")
        }
        #expect(await session.messages.isEmpty, "a refused request left something in the history")
    }

    @Test("grammars of the known call syntaxes: each accepts its format's call, which the parser reads back")
    func callSyntaxes() async throws {
        let model = try Fixture.model.get()
        let calculator = Calculator()
        let arguments = #"{"a": 12, "b": 7, "operation": "multiply"}"#
        let cases: [(ChatFormat, String)] = [
            (.hermes, "<tool_call>\n{\"name\": \"calculator\", \"arguments\": \(arguments)}\n</tool_call>"),
            (.functionaryV31, "<function=calculator>\(arguments)</function>"),
            (.apriel, "<tool_calls>[{\"name\": \"calculator\", \"arguments\": \(arguments)}]</tool_calls>"),
        ]
        for (format, text) in cases {
            let syntax = try #require(ToolCallSyntax(format: format))
            let grammar = try syntax.grammar(tools: [calculator, BrokenWeather()], several: true)
            #expect(try accepts(grammar, text, model: model), "\(format): \(grammar)")
            #expect(try !accepts(grammar, text.replacingOccurrences(of: "multiply", with: "power"), model: model), "\(format)")
            let parsed = ChatOutputParser(format: format, tools: [calculator.definition]).parse(text)
            #expect(parsed.toolCalls.map(\.name) == ["calculator"], "\(format): \(parsed)")
        }
        #expect(ToolCallSyntax(format: .contentOnly) == nil)
    }

    /// Whether a grammar accepts the whole text (checked token by token, then that it may end).
    func accepts(_ grammar: String, _ text: String, model: LlamaModel) throws -> Bool {
        let instance = try SamplerChain([.grammar(grammar), .greedy]).make(for: model)
        let c = model.runtime.raw
        let g = instance.grammars[0]
        for t in try model.vocab.tokenize(text, addSpecial: false, parseSpecial: false) + [model.vocab.eos ?? 0] {
            var one = llama_token_data(id: t, logit: 0, p: 0)
            let ok = withUnsafeMutablePointer(to: &one) { p in
                var single = llama_token_data_array(data: p, size: 1, selected: -1, sorted: false)
                c.llama_sampler_apply(g, &single)
                return p.pointee.logit != -.infinity
            }
            guard ok else { return false }
            if t != model.vocab.eos { c.llama_sampler_accept(g, t) }
        }
        return true
    }
}

/// Checks JSON text against a schema with Python's jsonschema (the reference validator).
func expectValid(_ json: String, against schema: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let record: JSONValue = ["name": "document", "schema": schema, "valid": [.string(json)]]
    let r = try await jsonSchemaCheck(records: JSONValue.array([record]).jsonText)
    #expect(r.status == 0, "\(json) does not validate: \(r.stdout)\(r.stderr)", sourceLocation: sourceLocation)
}

/// Adds, subtracts, multiplies or divides two numbers; typed arguments, a number out.
final class Calculator: Tool {
    struct Arguments: Generable, Equatable {
        enum Operation: String, Decodable, Sendable { case add, subtract, multiply, divide }
        var a: Double
        var b: Double
        var operation: Operation
        static var generationSchema: JSONValue {
            [
                "type": "object",
                "properties": [
                    "a": ["type": "number"],
                    "b": ["type": "number"],
                    "operation": ["type": "string", "enum": ["add", "subtract", "multiply", "divide"]],
                ],
                "required": ["a", "b", "operation"],
            ]
        }
        /// The result the tool gives for these arguments.
        var value: Double {
            switch operation {
            case .add: a + b
            case .subtract: a - b
            case .multiply: a * b
            case .divide: a / b
            }
        }
    }

    let calls = Mutex<[Arguments]>([])
    let name = "calculator"
    let description = "Computes an arithmetic operation on two numbers."

    func call(_ arguments: Arguments) async throws -> Double {
        calls.withLock { $0.append(arguments) }
        guard arguments.operation != .divide || arguments.b != 0 else { throw ToolFailure("division by zero") }
        return arguments.value
    }
}

/// A weather tool whose service is down.
struct BrokenWeather: Tool {
    struct Arguments: Generable {
        var city: String
        static var generationSchema: JSONValue { ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]] }
    }
    let name = "get_weather"
    let description = "The current weather in a city."
    func call(_ arguments: Arguments) async throws -> String { throw ToolFailure("the weather service is down") }
}

/// Shows the model `{"city": string}` but needs a `population` too: the model's arguments never decode.
final class StrictTool: Tool {
    struct Arguments: Generable {
        var city: String
        var population: Int
        static var generationSchema: JSONValue { ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]] }
    }
    let ran = Mutex(false)
    let name = "lookup"
    let description = "Looks up a city."
    func call(_ arguments: Arguments) async throws -> String {
        ran.withLock { $0 = true }
        return "found"
    }
}

/// An Encodable output with keys out of order and a slash.
struct PointTool: Tool {
    struct Output: Encodable { var y = 2; var x = 1; var url = "a/b" }
    typealias Arguments = JSONArguments
    let name = "point"
    let description = ""
    func call(_ arguments: JSONArguments) async throws -> Output { Output() }
}

/// Two calls that each wait for the other to have started: they finish only when run
/// concurrently (one run after the other, the first gives up after 60 s).
final class Rendezvous: Tool {
    struct Arguments: Generable {
        var side: String
        static var generationSchema: JSONValue { ["type": "object", "properties": ["side": ["type": "string"]], "required": ["side"]] }
    }
    /// The sides that arrived, and the one waiting for the other.
    let state = Mutex<(arrived: Set<String>, waiting: [String: CheckedContinuation<Bool, Never>])>(([], [:]))
    let name = "rendezvous"
    let description = "Meets the other side."

    func call(_ arguments: Arguments) async throws -> String {
        let side = arguments.side, other = side == "left" ? "right" : "left"
        let met = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                    let (waiter, go): (CheckedContinuation<Bool, Never>?, Bool) = self.state.withLock { s in
                        s.arrived.insert(side)
                        if s.arrived.contains(other) { return (s.waiting.removeValue(forKey: other), true) }
                        s.waiting[side] = c
                        return (nil, false)
                    }
                    // The second to arrive releases the first, and goes on.
                    if go {
                        waiter?.resume(returning: true)
                        c.resume(returning: true)
                    }
                }
            }
            group.addTask {
                // A bound, not a wait for an event: the other side never came.
                try? await Task.sleep(for: .seconds(60))
                if let c = self.state.withLock({ $0.waiting.removeValue(forKey: side) }) { c.resume(returning: false) }
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard met else { throw ToolFailure("\(other) never came: the calls did not run concurrently") }
        return "\(side) met \(other)"
    }
}

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
