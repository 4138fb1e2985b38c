// A typed tool in a chat session's tool loop.
import Llama

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
// A Hermes-style template: tools in the system turn, <tool_call> replies (Examples/tools has a full one).
let hermesStyleTemplate = """
{%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}
"""

// snippet.show
struct Add: Tool {
    struct Arguments: Generable {   // or @Generable (product LlamaGenerable)
        var a: Double, b: Double
        static var generationSchema: JSONValue {
            ["type": "object", "properties": ["a": ["type": "number"], "b": ["type": "number"]], "required": ["a", "b"]]
        }
    }
    let name = "add"
    let description = "Adds two numbers"
    func call(_ arguments: Arguments) async throws -> Double { arguments.a + arguments.b }
}
let session = try ChatSession(model: model, template: hermesStyleTemplate)
let answer = try await session.respond(to: "What is 40 + 2?", tools: [Add()], toolChoice: .required)
// snippet.end
print(answer.content)
