// Tool calling with typed Swift tools: a unit converter and a weekday calendar. The model's
// calls are constrained to each tool's JSON Schema, decoded into the tool's Arguments, run, and
// their results go back to the model, which then answers. SmolLM2's own chat template has no
// tools, so a small Hermes-style template (tools in the system turn, <tool_call> replies) is used.
import Foundation
import Llama

/// Converts a quantity between units of length, mass or temperature.
struct UnitConverter: Tool {
    struct Arguments: Generable {
        var value: Double
        var from: String
        var to: String
        static var generationSchema: JSONValue {
            let units: JSONValue = .array(UnitConverter.factors.keys.sorted().map { .string($0) } + ["celsius", "fahrenheit"])
            return ["type": "object",
                    "properties": ["value": ["type": "number"], "from": ["enum": units], "to": ["enum": units]],
                    "required": ["value", "from", "to"]]
        }
    }
    struct Output: Encodable {
        var value: Double
        var unit: String
    }

    /// Each unit in metres or kilograms.
    static let factors: [String: (dimension: String, factor: Double)] = [
        "meter": ("length", 1), "kilometer": ("length", 1000), "mile": ("length", 1609.344), "foot": ("length", 0.3048),
        "inch": ("length", 0.0254), "kilogram": ("mass", 1), "gram": ("mass", 0.001), "pound": ("mass", 0.45359237),
    ]

    let name = "convert_units"
    let description = "Converts a value from one unit to another (length, mass, or temperature)."

    struct Mismatch: Error, CustomStringConvertible { var description: String }

    func call(_ arguments: Arguments) async throws -> Output {
        let (v, from, to) = (arguments.value, arguments.from, arguments.to)
        switch (from, to) {
        case ("celsius", "fahrenheit"): return Output(value: v * 9 / 5 + 32, unit: to)
        case ("fahrenheit", "celsius"): return Output(value: (v - 32) * 5 / 9, unit: to)
        case _ where from == to: return Output(value: v, unit: to)
        default:
            guard let a = Self.factors[from], let b = Self.factors[to], a.dimension == b.dimension else {
                throw Mismatch(description: "cannot convert \(from) to \(to): not the same kind of quantity")
            }
            return Output(value: v * a.factor / b.factor, unit: to)
        }
    }
}

/// The day of the week of a date.
struct Weekday: Tool {
    struct Arguments: Generable {
        var date: String
        static var generationSchema: JSONValue {
            ["type": "object", "properties": ["date": ["type": "string", "format": "date"]], "required": ["date"]]
        }
    }
    let name = "weekday"
    let description = "The day of the week of a date (YYYY-MM-DD)."

    struct BadDate: Error, CustomStringConvertible { var description: String }

    static func weekday(of text: String) throws -> String {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard parts.count == 3, let date = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2])),
              calendar.component(.day, from: date) == parts[2] else {
            throw BadDate(description: "\(text) is not a date of the form YYYY-MM-DD")
        }
        let names = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        return names[calendar.component(.weekday, from: date) - 1]
    }

    func call(_ arguments: Arguments) async throws -> String { try Self.weekday(of: arguments.date) }
}

let template = #"""
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

struct Failed: Error, CustomStringConvertible { var description: String }

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
let tools: [any Tool] = [UnitConverter(), Weekday()]
let questions = [("How many kilometers is 26.2 miles?", "convert_units"), ("Which day of the week was 1969-07-20?", "weekday")]
for (question, tool) in questions {
    let chat = try ChatSession(model: model, template: template, options: ContextOptions(contextLength: 2048))
    print("> \(question)")
    var results: [ToolResult] = []
    var answer: ChatMessage?
    // The first reply must call this tool; the model answers after the result.
    for try await event in try await chat.respondStreaming(to: question, tools: tools, toolChoice: .tool(tool), maxToolRounds: 1,
                                                           options: GenerationOptions(maxTokens: 64)) {
        switch event {
        case .toolCall(let call): print("  calls \(call.name) \(call.arguments)")
        case .toolResult(let result):
            print("  \(result.name) gives \(result.content)")
            results.append(result)
        case .finished(let message): answer = message
        case .text, .reasoning, .generation: break
        }
    }
    print(answer?.text ?? "")
    // What this example shows: the call was made, decoded into the typed Arguments and run.
    guard let result = results.first, result.name == tool, !result.isError else {
        throw Failed(description: "expected a successful \(tool) result, got \(results)")
    }
    let call = await chat.messages.first { !$0.toolCalls.isEmpty }?.toolCalls.first
    if tool == "weekday", let call, let date = try JSONValue(parsing: call.arguments)["date"]?.stringValue {
        guard result.content == (try Weekday.weekday(of: date)) else { throw Failed(description: "wrong weekday: \(result.content)") }
    }
    guard await chat.messages.last == answer else { throw Failed(description: "the answer did not join the history") }
}
print("tools: both tools called, decoded and run")
