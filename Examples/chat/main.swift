// A two-turn conversation with ChatSession: the model's chat template, the history kept in the
// KV cache (the second turn evaluates only the new messages).
import Llama

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
let chat = try ChatSession(model: model, options: ContextOptions(contextLength: 2048))

for question in ["Give me three tips for learning to swim.", "Which of them matters most?"] {
    print("> \(question)")
    var reply = ""
    for try await event in try await chat.respond(to: question, options: GenerationOptions(maxTokens: 48)) {
        switch event {
        case .token(_, let text), .text(let text): reply += text
        case .probabilities: break
        case .finished(let summary):
            print(reply)
            print("  (\(summary.promptTokens) prompt tokens, \(summary.reusedPromptTokens) reused from the cache)")
        }
    }
}
let turns = await chat.messages.count
guard turns == 4 else { fatalError("expected 2 × (user, assistant) messages, got \(turns)") }
