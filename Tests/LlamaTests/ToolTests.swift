import Foundation
import Llama
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

    @Test("a required calculator call decodes, runs, and a final answer follows")
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
        let arguments = try #require(JSONValue(parsing: call.arguments).objectValue)
        #expect(number(arguments["a"]) != nil && number(arguments["b"]) != nil)
        #expect(["add", "subtract", "multiply", "divide"].contains(arguments["operation"]?.stringValue ?? ""))
        let result = try #require(messages.first { $0.role == "tool" })
        #expect(result.toolCallID == call.id)
        #expect(reply.role == "assistant" && reply.toolCalls.isEmpty)
        #expect(messages.last == reply)
    }

    @Test("an error a tool throws reaches the model as its result")
    func throwingTool() async throws {
        let session = try Self.session()
        do {
            _ = try await session.respond(to: "What is the weather in Paris?", tools: [BrokenWeather()],
                                          toolChoice: .required, maxToolRounds: 1,
                                          options: GenerationOptions(maxTokens: 64))
        } catch let error as LlamaError where error.code == .toolRoundsExceeded {
            // The model may ask again; the result still reached it.
        }
        let messages = await session.messages
        let result = try #require(messages.first { $0.role == "tool" })
        #expect(result.text.contains("the weather service is down"))
        let prompt = try Fixture.model.get().formatChat(messages, template: Self.hermesTemplate,
                                                        tools: [BrokenWeather().definition])
        #expect(prompt.contains("<tool_response>\nerror: the weather service is down"))
    }
}

/// Adds, subtracts, multiplies or divides two numbers.
final class Calculator: Tool {
    let calls = Mutex<[JSONValue]>([])
    let name = "calculator"
    let description = "Computes a arithmetic operation on two numbers."
    let parameters: JSONValue = [
        "type": "object",
        "properties": [
            "a": ["type": "number"],
            "b": ["type": "number"],
            "operation": ["type": "string", "enum": ["add", "subtract", "multiply", "divide"]],
        ],
        "required": ["a", "b", "operation"],
    ]

    func call(arguments: JSONValue) async throws -> String {
        calls.withLock { $0.append(arguments) }
        guard let a = number(arguments["a"]), let b = number(arguments["b"]),
              let op = arguments["operation"]?.stringValue else { throw ToolFailure("missing arguments") }
        switch op {
        case "add": return "\(a + b)"
        case "subtract": return "\(a - b)"
        case "multiply": return "\(a * b)"
        default: return b == 0 ? "division by zero" : "\(a / b)"
        }
    }
}

/// A weather tool whose service is down.
struct BrokenWeather: Tool {
    let name = "get_weather"
    let description = "The current weather in a city."
    let parameters: JSONValue = [
        "type": "object", "properties": ["city": ["type": "string"]], "required": ["city"],
    ]
    func call(arguments: JSONValue) async throws -> String { throw ToolFailure("the weather service is down") }
}

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A JSON number as a Double.
func number(_ value: JSONValue?) -> Double? {
    switch value {
    case .int(let i)?: return Double(i)
    case .double(let d)?: return d
    default: return nil
    }
}
