// Text generation with the Llama API: load SmolLM2 (or any GGUF), stream the reply.
//
// The libraries come from --lib-dir, else as LlamaRuntime.load finds them ($LLAMA_SWIFT_LIB_DIR, a
// bundle, the cache, or a download); the model from --model, else $LLAMA_MODEL, else the default
// model. The prompt goes through the model's chat template unless --raw. Text streams to stdout;
// the summary goes to stderr.
import ArgumentParser
import Foundation
import Llama

@main
struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stream text from a GGUF model with the Llama API.")

    @Option(help: "The folder of an unpacked llama.cpp release (default: found or installed by LlamaRuntime.load).")
    var libDir: String?
    @Option(name: [.short, .long], help: "The GGUF model (default: $LLAMA_MODEL, else SmolLM2-135M-Instruct).")
    var model: String?
    @Option(name: [.short, .long], help: "What to ask.")
    var prompt = "Write a haiku about the sea."
    @Option(name: [.customShort("n"), .long], help: "The most tokens to generate.")
    var maxTokens = 128
    @Option(help: "Sampling temperature; 0 is greedy and deterministic.")
    var temp: Float = 0
    @Option(help: "The sampling seed.")
    var seed: UInt32 = 42
    @Flag(help: "Use the prompt as it is, without the chat template.")
    var raw = false

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        guard temp >= 0 else { throw ValidationError("--temp must not be negative") }
    }

    func run() async throws {
        let runtime = try await LlamaRuntime.load(libraryDirectory: libDir.map { URL(fileURLWithPath: $0) })
        let path: String
        if let model { path = model } else { path = try await LlamaModel.defaultModelPath() }
        let llama = try await LlamaModel.load(runtime: runtime, paths: [path])
        let context = try LlamaContext(model: llama, options: ContextOptions(contextLength: 2048, threads: 2))
        let text = raw ? prompt : try llama.formatChat([.user(prompt)])
        let stream = context.generate(prompt: text, sampling: .standard(temperature: temp, seed: seed),
                                      options: GenerationOptions(maxTokens: maxTokens))
        for try await event in stream {
            switch event {
            case .token(_, let piece), .text(let piece):
                FileHandle.standardOutput.write(Data(piece.utf8))
            case .probabilities:
                break
            case .finished(let summary):
                FileHandle.standardOutput.write(Data("\n".utf8))
                let rate = String(format: "%.1f", summary.tokensPerSecond)
                FileHandle.standardError.write(Data(
                    "generate: \(summary.generatedTokens.count) tokens at \(rate) tokens/s, stopped: \(summary.stopReason)\n".utf8))
            }
        }
    }
}
