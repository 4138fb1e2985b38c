// Saving and restoring a context: evaluate a prompt once, save the state to a file, restore it
// into a fresh context and continue — the continuation is the same as without the detour.
import Foundation
import Llama

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
let options = ContextOptions(contextLength: 512)
let prompt = try model.formatChat([.user("Tell me a fact about octopuses.")])
let tokens = try model.vocab.tokenize(prompt, addSpecial: true, parseSpecial: true)
let generation = GenerationOptions(maxTokens: 24)

// The reference: straight through.
let reference = try await LlamaContext(model: model, options: options).generate(tokens: tokens, options: generation).summary()

// Evaluate the prompt, save, restore elsewhere, continue.
let first = try LlamaContext(model: model, options: options)
var batch = LlamaBatch()
batch.add(prompt: tokens)
try await first.decode(batch)
let file = FileManager.default.temporaryDirectory.appendingPathComponent("octopus-\(UUID().uuidString).state")
defer { try? FileManager.default.removeItem(at: file) }
try await first.saveState(to: file, tokens: tokens)
let size = (try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0
print("saved \(tokens.count) prompt tokens of state: \(size) bytes")

let second = try LlamaContext(model: model, options: options)
let restored = try await second.loadState(from: file)
let continued = try await second.generate(tokens: restored, options: generation).summary()
print(continued.text)
print("reused \(continued.reusedPromptTokens) of \(restored.count) prompt tokens from the restored state")
guard continued.generatedTokens == reference.generatedTokens else { fatalError("the restored context continued differently") }
