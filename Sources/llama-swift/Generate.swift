import ArgumentParser
import Foundation
import Llama

/// Streams generated text to stdout; returns the summary.
func stream(_ events: AsyncThrowingStream<GenerationEvent, any Error>) async throws -> GenerationSummary? {
    var summary: GenerationSummary?
    do {
        for try await event in events {
            switch event {
            case .token(_, let text), .text(let text):
                FileHandle.standardOutput.write(Data(text.utf8))
            case .finished(let s):
                summary = s
            }
        }
    } catch let error as LlamaError {
        CLI.note("\nerror: \(error.description)")
        throw ExitCode(1)
    }
    return summary
}

/// `llama-swift run`: text from a prompt.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt.",
        discussion: """
            Only the generated text goes to stdout; logs, progress and the summary go to stderr. \
            The prompt goes through the model's chat template unless --raw. With --temp 0 the \
            output is greedy and deterministic.
            """)

    @OptionGroup var modelFlags: ModelFlags
    @OptionGroup var sampling: SamplingFlags
    @Option(name: [.short, .long], help: "The prompt (default: read from stdin).")
    var prompt: String?
    @Option(name: [.customShort("n"), .customLong("max-tokens"), .customLong("n-predict")], help: "The most tokens to generate.")
    var maxTokens = 256
    @Option(help: "Stop when this text appears (repeatable).")
    var stop: [String] = []
    @Flag(help: "Use the prompt as it is, without the chat template.")
    var raw = false
    @Flag(help: "No summary on stderr.")
    var quiet = false

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
    }

    func run() async throws {
        let text: String
        if let prompt {
            text = prompt
        } else {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ValidationError("no prompt: pass -p/--prompt or write it to stdin")
            }
        }
        let chain = try sampling.chain()
        let model = try await modelFlags.load()
        let result = try await CLI.run { () async throws(LlamaError) in
            let context = try LlamaContext(model: model, options: modelFlags.contextOptions())
            let input = raw ? text : try model.formatChat([.user(text)])
            var options = GenerationOptions(maxTokens: maxTokens, stopSequences: stop)
            options.addSpecial = raw
            return context.generate(prompt: input, sampling: chain, options: options)
        }
        let summary = try await stream(result)
        FileHandle.standardOutput.write(Data("\n".utf8))
        if let summary, !quiet {
            CLI.note(String(format: "run: %d prompt tokens, %d generated at %.1f tokens/s, stopped: %@",
                            summary.promptTokens, summary.generatedTokens.count, summary.tokensPerSecond,
                            "\(summary.stopReason)"))
        }
    }
}

/// `llama-swift chat`: a conversation in the terminal.
struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with a model in the terminal; the history stays in the KV cache.",
        discussion: "Type a message and press return. /reset forgets the conversation, /exit (or end of input) quits.")

    @OptionGroup var modelFlags: ModelFlags
    @OptionGroup var sampling: SamplingFlags
    @Option(help: "A system prompt.")
    var system: String?
    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: "The most tokens per reply.")
    var maxTokens = 512

    func run() async throws {
        let chain = try sampling.chain()
        let model = try await modelFlags.load()
        let session = try await CLI.run { () async throws(LlamaError) in
            try ChatSession(model: model, systemPrompt: system, options: modelFlags.contextOptions())
        }
        let interactive = isatty(STDIN_FILENO) == 1
        if interactive { CLI.note("chat with \(URL(fileURLWithPath: model.path).lastPathComponent): /reset, /exit") }
        while true {
            if interactive { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine() else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            if text == "/reset" {
                await session.reset()
                CLI.note("(conversation cleared)")
                continue
            }
            let events = try await CLI.run { () async throws(LlamaError) in
                try await session.respond(to: text, sampling: chain, options: GenerationOptions(maxTokens: maxTokens))
            }
            _ = try await stream(events)
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}

/// `llama-swift embed`: embeddings of lines, as JSON.
struct Embed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print sentence embeddings (mean-pooled, normalized) of each input line as JSON.",
        discussion: "Lines come from --text (repeatable) or stdin; empty lines are skipped. Output: [{\"text\": ..., \"embedding\": [...]}].")

    @OptionGroup var modelFlags: ModelFlags
    @Option(help: "A text to embed (repeatable; default: the lines of stdin).")
    var text: [String] = []

    func run() async throws {
        var texts = text
        if texts.isEmpty {
            while let line = readLine() {
                if !line.trimmingCharacters(in: .whitespaces).isEmpty { texts.append(line) }
            }
        }
        guard !texts.isEmpty else { throw ValidationError("nothing to embed: pass --text or write lines to stdin") }
        let model = try await modelFlags.load()
        let inputs = texts
        let vectors = try await CLI.run { () async throws(LlamaError) in
            let context = try LlamaContext(model: model, options: modelFlags.contextOptions(embeddings: true))
            return try await context.embeddings(for: inputs)
        }
        struct Item: Encodable { var text: String; var embedding: [Float] }
        try CLI.printJSON(zip(inputs, vectors).map { Item(text: $0, embedding: $1) })
    }
}
