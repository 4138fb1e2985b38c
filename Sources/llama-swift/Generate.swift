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
            case .probabilities:
                break
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
    @OptionGroup(title: "Speculative decoding") var speculation: SpeculationFlags
    @OptionGroup(title: "Images and audio") var projectorFlags: ProjectorFlags
    @OptionGroup(title: "Images and audio") var media: MediaFlags
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
    @Flag(help: "With --rpc, compute in this process (by default the llama-helper process does, so that a server stopping mid-computation is an error, not the end of this process).")
    var inProcess = false
    @Option(help: "With --rpc, the longest wait in seconds for the next token before giving up.")
    var rpcTimeout: Double = 30

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        if projectorFlags.mmproj == nil && !media.isEmpty { throw ValidationError("--image and --audio need --mmproj") }
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
        if modelFlags.rpc != nil && !inProcess {
            guard !speculation.isEnabled else { throw ValidationError("speculative decoding with --rpc needs --in-process") }
            // What the llama-helper process does not take: refused rather than dropped.
            let local = [("--device", !modelFlags.devices.isEmpty), ("--split-mode", modelFlags.splitMode != nil),
                         ("--tensor-split", modelFlags.tensorSplit != nil), ("--memory-limit", modelFlags.memoryLimit != nil),
                         ("--verbose", modelFlags.verbose), ("--mmproj", projectorFlags.mmproj != nil)]
            if let flag = local.first(where: \.1)?.0 {
                throw ValidationError("\(flag) with --rpc needs --in-process (by default a llama-helper process computes, "
                    + "and it does not take \(flag))")
            }
            try await runIsolated(prompt: text)
            return
        }
        let chain = try sampling.chain()
        let model = try await modelFlags.load(loadMTP: speculation.loadsMTP)
        if let projector = try await projectorFlags.load(for: model, flags: modelFlags) {
            return try await runMultimodal(prompt: text, projector: projector, model: model)
        }
        let guesses = try await speculation.speculation(target: model, gpuLayers: modelFlags.gpuLayers)
        let result = try await CLI.run { () async throws(LlamaError) in
            let context = try LlamaContext(model: model, options: modelFlags.contextOptions())
            // A model without any chat template (a base model) does plain completion.
            let plain = raw || model.chatTemplate() == nil
            if plain && !raw { CLI.note("run: the model has no chat template: plain completion of the prompt") }
            let input = plain ? text : try model.formatChat([.user(text)])
            var options = GenerationOptions(maxTokens: maxTokens, stopSequences: stop)
            options.addSpecial = plain
            options.contextShift = modelFlags.contextShiftSetting
            options.speculation = guesses
            return context.generate(prompt: input, sampling: chain, options: options)
        }
        let summary = try await stream(result)
        FileHandle.standardOutput.write(Data("\n".utf8))
        report(summary)
    }

    func report(_ summary: GenerationSummary?) {
        if let summary, !quiet {
            CLI.note(String(format: "run: %d prompt tokens, %d generated at %.1f tokens/s, stopped: %@",
                            summary.promptTokens, summary.generatedTokens.count, summary.tokensPerSecond,
                            "\(summary.stopReason)"))
            if let s = summary.speculation {
                CLI.note(String(format: "run: speculation: %d drafted, %d accepted (%.1f%%), %d decodes for %d tokens",
                                s.draftedTokens, s.acceptedTokens, s.acceptanceRate * 100, s.decodes, summary.generatedTokens.count))
            }
        }
    }

    /// Generates in the llama-helper process (the library's isolated generation) and relays its events.
    func runIsolated(prompt text: String) async throws {
        let path = try await modelFlags.modelPath()
        let runtime = try await modelFlags.runtime()
        let constraint = try sampling.chain().stages.first.flatMap { stage -> String? in
            if case .grammar(let grammar, _) = stage { return grammar }
            return nil
        }
        let request = HelperRequest.Generate(
            directory: runtime.libraryDirectory.path, model: path, prompt: text, raw: raw, maxTokens: maxTokens,
            stopSequences: stop,
            sampling: .init(temperature: sampling.temp, topK: sampling.topK, topP: sampling.topP, minP: sampling.minP,
                            repeatPenalty: sampling.repeatPenalty, seed: sampling.seed, grammar: constraint),
            rpcServers: modelFlags.rpcServers, contextLength: modelFlags.ctxSize,
            threads: modelFlags.threads, gpuLayers: modelFlags.gpuLayers, parameters: try modelFlags.parameterRequest(),
            contextShiftKeep: modelFlags.contextShift ? modelFlags.keep : nil)
        let generation = LlamaIsolatedGeneration(request, helper: modelFlags.install.options().helper,
                                                 idleTimeout: .milliseconds(Int64(rpcTimeout * 1000)))
        let summary = try await stream(generation.stream())
        FileHandle.standardOutput.write(Data("\n".utf8))
        report(summary)
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
    @Flag(help: "With --rpc, compute in this process (by default a child process does, so that a server stopping mid-computation is an error, not the end of this process).")
    var inProcess = false
    @Option(help: "A JSON file of tools in OpenAI's shape ([{\"type\": \"function\", \"function\": {\"name\", \"description\", \"parameters\"}}]). The built-ins echo (returns its arguments) and calculator ({\"expression\": \"(2 + 3) * 4\"}) run; other tools get a \"no implementation\" result. Calls and results are printed on stderr.")
    var tools: String?
    @Option(help: "With --tools: auto, none, required, or a tool's name (the first reply must call it).")
    var toolChoice = "auto"
    @Option(help: "With --tools: the most rounds of tool calls per message.")
    var maxToolRounds = 4
    @Option(help: "A Jinja chat template file to use instead of the model's own.")
    var chatTemplateFile: String?
    @OptionGroup(title: "Images and audio") var projectorFlags: ProjectorFlags

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        guard maxToolRounds >= 0 else { throw ValidationError("--max-tool-rounds must not be negative") }
        if tools == nil && toolChoice != "auto" { throw ValidationError("--tool-choice needs --tools") }
    }

    func run() async throws {
        if modelFlags.rpc != nil && !inProcess { return try await CLI.rerunIsolated() }
        let chain = try sampling.chain()
        let toolList = try tools.map { ChatTools.tools(try ChatTools.definitions(file: $0)) } ?? []
        let choice = ToolChoice(toolChoice)
        if tools != nil {
            if case .tool(let name) = choice, !toolList.contains(where: { $0.name == name }) {
                throw ValidationError("--tool-choice \(name): no such tool in \(tools!) (auto, none, required, or one of: "
                    + "\(toolList.map(\.name).joined(separator: ", ")))")
            }
            if chain.stages.contains(where: { if case .grammar = $0 { return true } else { return false } }) {
                throw ValidationError("--grammar, --grammar-file, --json-schema and --json constrain the whole reply: "
                    + "they cannot be used with --tools")
            }
        }
        var template: String?
        if let chatTemplateFile {
            do { template = try String(contentsOfFile: chatTemplateFile, encoding: .utf8) } catch {
                throw ValidationError("--chat-template-file: cannot read \(chatTemplateFile): \(error.localizedDescription)")
            }
        }
        let model = try await modelFlags.load()
        let projector = try await projectorFlags.load(for: model, flags: modelFlags)
        let session = try await CLI.run { () async throws(LlamaError) in
            try ChatSession(model: model, projector: projector, systemPrompt: system, template: template,
                            options: modelFlags.contextOptions())
        }
        let interactive = isatty(STDIN_FILENO) == 1
        if interactive {
            let name = URL(fileURLWithPath: model.path).lastPathComponent
            CLI.note(projector.map { "chat with \(name) and \(URL(fileURLWithPath: $0.path).lastPathComponent): /image PATH, "
                + "/audio PATH, /reset, /exit" } ?? "chat with \(name): /reset, /exit")
        }
        var pending: [ChatContentPart] = []
        while true {
            if interactive { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine() else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            if text == "/reset" {
                await session.reset()
                pending = []
                CLI.note("(conversation cleared)")
                continue
            }
            if ChatAttachments.handle(text, projector: projector, pending: &pending) { continue }
            let message = ChatAttachments.message(text, pending: pending)
            let withMedia = !pending.isEmpty
            pending = []
            if tools != nil {
                try await ChatTools.respond(session, to: message, tools: toolList, choice: choice, maxToolRounds: maxToolRounds,
                                            sampling: chain, options: modelFlags.generationOptions(maxTokens: maxTokens))
                FileHandle.standardOutput.write(Data("\n".utf8))
                continue
            }
            let events: AsyncThrowingStream<GenerationEvent, any Error>
            do {
                events = try await session.respond(to: message, sampling: chain,
                                                   options: modelFlags.generationOptions(maxTokens: maxTokens))
            } catch where withMedia {
                // Media the projector cannot take (too large, too many): the chat goes on without the message.
                CLI.note("error: \(error.description)")
                continue
            } catch {
                CLI.note("error: \(error.description)")
                throw ExitCode(1)
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
    @Flag(help: "With --rpc, compute in this process (see `chat --help`).")
    var inProcess = false

    func run() async throws {
        if modelFlags.rpc != nil && !inProcess { return try await CLI.rerunIsolated() }
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
