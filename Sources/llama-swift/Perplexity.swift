import ArgumentParser
import Foundation
import Llama

/// `llama-swift perplexity`: llama.cpp's `llama-perplexity` (its default mode) through
/// LlamaPerplexity: the same chunks, scoring and printed figures.
struct Perplexity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a model's perplexity over a text file (as llama.cpp's llama-perplexity).",
        discussion: """
            The text is cut into chunks of -c tokens; each chunk is evaluated from an empty cache and the second half \
            of it is scored. Prints the running estimate after each chunk ([1]x,[2]y,...) and the final line \
            `Final estimate: PPL = ... +/- ...`, as llama-perplexity does; the same -c, -b and -t give the same figures.
            """)

    @Option(name: [.short, .long], help: "The GGUF model (default: $LLAMA_MODEL).")
    var model: String?
    @Option(name: [.short, .long], help: "The text file to score.")
    var file: String
    @Option(name: [.short, .customLong("ctx-size")], help: "Tokens per chunk.")
    var ctxSize: Int = 512
    @Option(name: [.short, .customLong("batch-size")], help: "Tokens per decode call (a multiple of -c evaluates that many chunks at once).")
    var batchSize: Int = 2048
    @Option(name: .customLong("chunks"), help: "Score at most this many chunks (default: all).")
    var chunks: Int?
    @Option(name: [.short, .long], help: "Threads (default: llama.cpp's choice).")
    var threads: Int32?
    @Option(name: [.customLong("gpu-layers"), .customLong("ngl")], help: "Layers to offload to the GPU (-1: all).")
    var gpuLayers: Int32 = -1
    @Option(help: "The folder of an unpacked llama.cpp release to load (default: as `run`).")
    var libDir: String?
    @OptionGroup var install: InstallFlags
    @Flag(help: "Print the result (every chunk, the estimate and its error) as JSON on stdout.")
    var json = false

    func validate() throws {
        if ctxSize < 2 { throw ValidationError("--ctx-size must be at least 2") }
        if batchSize < 1 { throw ValidationError("--batch-size must be positive") }
        if let chunks, chunks < 1 { throw ValidationError("--chunks must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be positive") }
    }

    func run() async throws {
        guard let path = model ?? ProcessInfo.processInfo.environment["LLAMA_MODEL"] else {
            throw ValidationError("give the model with -m (or set LLAMA_MODEL)")
        }
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            CLI.note("error: cannot read the text \(file) as UTF-8: \(error.localizedDescription)")
            throw ExitCode(1)
        }
        let runtime = try await CLI.loadRuntime(libDir: libDir, options: install.options())
        var modelOptions = ModelOptions()
        modelOptions.gpuLayers = gpuLayers
        let options = LlamaPerplexity.Options(contextLength: ctxSize, batchSize: batchSize, chunks: chunks, threads: threads)
        let json = json
        let result = try await CLI.run { () async throws(LlamaError) in
            let loaded: LlamaModel
            do { loaded = try await LlamaModel.load(runtime: runtime, paths: [path], options: modelOptions) } catch {
                throw error as? LlamaError ?? LlamaError(.invalidModel, "\(path) could not be loaded: \(error)")
            }
            return try await LlamaPerplexity(model: loaded, options: options).evaluate(text: text) { chunk in
                // The running estimate as llama-perplexity prints it, as the chunks come.
                guard !json else { return }
                FileHandle.standardOutput.write(Data(String(format: "[%d]%.4f,", chunk.index, chunk.runningEstimate).utf8))
            }
        }
        if json {
            try CLI.printJSON(result)
            return
        }
        print("")
        print(result.summary)
        CLI.note(String(format: "perplexity: %d tokens, %d chunks of %d, %d scored, %.2f s", result.tokenCount,
                        result.chunks.count, ctxSize, result.scoredTokens, result.seconds))
    }
}
