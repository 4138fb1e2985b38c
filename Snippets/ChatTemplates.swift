// The model's own chat template, tools rendered by it, and a model's output parsed back.
import Foundation
import Llama   // re-exports LlamaChat and LlamaJinja

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
let templateFile = URL(fileURLWithPath: CommandLine.arguments.dropFirst().first ?? "template.jinja")
let output = #"<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>"#

// snippet.show
let weather = ToolDefinition(name: "get_weather", description: "Weather in a city",
                             parameters: ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]])
let prompt = try model.formatChat([.system("Be brief."), .user("Weather in Paris?")], tools: [weather],
                                  variables: ["enable_thinking": false])

// Or without a model: any template, any variables, a fixed clock.
let template = try ChatTemplate(contentsOf: templateFile)
let messages: [ChatMessage] = [.user("Weather in Paris?")]
let text = try template.render(messages: messages, tools: [weather], addGenerationPrompt: true,
                               bosToken: "<s>", eosToken: "</s>", now: Date())

// A model's output → content, reasoning and tool calls, complete or streamed as deltas.
let parsed = ChatOutputParser(template: template.source).parse(output)
print(parsed.content, parsed.reasoning ?? "", parsed.toolCalls, parsed.warnings)
// snippet.end
print(prompt, text)
