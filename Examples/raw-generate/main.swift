// Greedy generation through the generated raw bindings only: the smallest complete use of
// LlamaRaw, and the Swift side of the native-vs-Swift token equality test.
//
// --lib-dir and --model default to $LLAMA_LIB_DIR and $LLAMA_MODEL. Text goes to stdout; with
// --ids, the prompt and generated token ids instead.
import ArgumentParser
import Foundation
import LlamaRaw

struct Failure: Error, CustomStringConvertible {
    var description: String
}

@main
struct RawGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "raw-generate",
                                                    abstract: "Greedy generation through the raw llama.cpp bindings.")

    @Option(help: "The folder of an unpacked llama.cpp release (default: $LLAMA_LIB_DIR).")
    var libDir: String?
    @Option(name: [.short, .long], help: "The GGUF model (default: $LLAMA_MODEL).")
    var model: String?
    @Option(name: [.short, .long], help: "The prompt.")
    var prompt = "Hello"
    @Option(name: [.customShort("n"), .long], help: "The most tokens to generate.")
    var maxTokens: Int32 = 64
    @Option(name: [.short, .long], help: "Threads.")
    var threads: Int32 = 2
    @Flag(help: "Print the prompt's and the generated token ids instead of text.")
    var ids = false

    func validate() throws {
        guard maxTokens > 0, threads > 0 else { throw ValidationError("--max-tokens and --threads must be positive") }
    }

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        guard let libDir = libDir ?? env["LLAMA_LIB_DIR"] else {
            throw ValidationError("no libraries: pass --lib-dir or set LLAMA_LIB_DIR (make llama builds them)")
        }
        guard let modelPath = model ?? env["LLAMA_MODEL"] else {
            throw ValidationError("no model: pass --model or set LLAMA_MODEL (make model fetches one)")
        }
        let libraries: LlamaLibraries
        do {
            libraries = try LlamaLibraries.load(from: URL(fileURLWithPath: libDir))
        } catch {
            throw Failure(description: error.description)
        }
        let c = libraries.symbols
        c.llama_log_set({ _, _, _ in }, nil)

        guard FileManager.default.isReadableFile(atPath: modelPath) else { throw Failure(description: "cannot read the model \(modelPath)") }
        guard let model = c.llama_model_load_from_file(modelPath, c.llama_model_default_params()) else {
            throw Failure(description: "llama.cpp could not load \(modelPath): is it a GGUF model?")
        }
        defer { c.llama_model_free(model) }
        let vocab = c.llama_model_get_vocab(model)

        let promptLength = Int32(prompt.utf8.count)
        let needed = -c.llama_tokenize(vocab, prompt, promptLength, nil, 0, true, true)
        var tokens = [llama_token](repeating: 0, count: Int(needed))
        guard c.llama_tokenize(vocab, prompt, promptLength, &tokens, needed, true, true) == needed else {
            throw Failure(description: "the prompt could not be tokenized")
        }

        var params = c.llama_context_default_params()
        params.n_ctx = 512
        params.n_batch = 512
        params.n_threads = threads
        params.n_threads_batch = threads
        guard let context = c.llama_init_from_model(model, params) else { throw Failure(description: "llama.cpp could not create a context") }
        defer { c.llama_free(context) }
        guard let sampler = c.llama_sampler_chain_init(c.llama_sampler_chain_default_params()) else {
            throw Failure(description: "llama.cpp could not create a sampler")
        }
        defer { c.llama_sampler_free(sampler) }
        c.llama_sampler_chain_add(sampler, c.llama_sampler_init_greedy())

        func printIDs(_ label: String, _ list: [llama_token]) {
            print("\(label):" + list.map { " \($0)" }.joined())
        }
        if ids { printIDs("prompt", tokens) }
        var generated: [llama_token] = []
        var piece = [CChar](repeating: 0, count: 256)
        let status = tokens.withUnsafeMutableBufferPointer { c.llama_decode(context, c.llama_batch_get_one($0.baseAddress, needed)) }
        guard status == 0 else { throw Failure(description: "llama_decode failed with status \(status)") }
        while generated.count < maxTokens {
            var token = c.llama_sampler_sample(sampler, context, -1)
            generated.append(token)
            if c.llama_vocab_is_eog(vocab, token) { break }
            if !ids {
                let n = c.llama_token_to_piece(vocab, token, &piece, Int32(piece.count), 0, false)
                if n > 0 { FileHandle.standardOutput.write(Data(piece.prefix(Int(n)).map { UInt8(bitPattern: $0) })) }
            }
            if generated.count == maxTokens { break }
            let status = c.llama_decode(context, c.llama_batch_get_one(&token, 1))
            guard status == 0 else { throw Failure(description: "llama_decode failed with status \(status)") }
        }
        if ids { printIDs("generated", generated) } else { print() }
    }
}
