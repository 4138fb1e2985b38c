import ArgumentParser
import Foundation
import Llama

/// `--mmproj` and its settings, for `run` and `chat`.
struct ProjectorFlags: ParsableArguments {
    @Option(help: "A multimodal projector (the model's mmproj GGUF): images and audio can then go in the prompt (run: --image, --audio; chat: /image, /audio).")
    var mmproj: String?
    @Flag(name: .customLong("no-mmproj-offload"), help: "Keep the projector on the CPU.")
    var noMmprojOffload = false
    @Option(help: "With --mmproj: the fewest tokens an image becomes (projectors with dynamic resolution).")
    var imageMinTokens: Int32?
    @Option(help: "With --mmproj: the most tokens an image becomes (projectors with dynamic resolution).")
    var imageMaxTokens: Int32?

    func validate() throws {
        if mmproj == nil && (noMmprojOffload || imageMinTokens != nil || imageMaxTokens != nil) {
            throw ValidationError("--no-mmproj-offload, --image-min-tokens and --image-max-tokens need --mmproj")
        }
    }

    func load(for model: LlamaModel, threads: Int32?) async throws -> LlamaProjector? {
        guard let mmproj else { return nil }
        var options = ProjectorOptions()
        options.useGPU = !noMmprojOffload
        options.threads = threads
        options.imageMinTokens = imageMinTokens
        options.imageMaxTokens = imageMaxTokens
        return try await CLI.run { () async throws(LlamaError) in try LlamaProjector(model: model, path: mmproj, options: options) }
    }
}

/// `--image` and `--audio` of `run`.
struct MediaFlags: ParsableArguments {
    @Option(help: "An image for the prompt (JPEG, PNG, BMP, GIF...), repeatable; needs --mmproj. The prompt's <__media__> markers say where each image and audio file goes (images first, then audio); without markers they go before the prompt.")
    var image: [String] = []
    @Option(help: "An audio file for the prompt (WAV, MP3, FLAC), repeatable; needs --mmproj.")
    var audio: [String] = []

    var isEmpty: Bool { image.isEmpty && audio.isEmpty }
}

extension Run {
    /// `run --mmproj`: the prompt with its media.
    func runMultimodal(prompt text: String, projector: LlamaProjector, model: LlamaModel) async throws {
        let chain = try sampling.chain()
        let result = try await CLI.run { () async throws(LlamaError) in
            var items: [LlamaMedia] = []
            for path in media.image + media.audio { items.append(try LlamaMedia(file: path, projector: projector)) }
            let marker = projector.marker
            let inText = text.components(separatedBy: marker).count - 1
            guard inText == 0 || inText == items.count else {
                throw LlamaError(.invalidArgument, "the prompt has \(inText) \(marker) marker(s) but \(items.count) media "
                    + "were given (--image, --audio)")
            }
            let content = String(repeating: marker + "\n", count: inText == 0 ? items.count : 0) + text
            let plain = raw || model.chatTemplate() == nil
            let input = plain ? content : try model.formatChat([.user(content)])
            let prompt = try projector.tokenize(input, media: items, addSpecial: plain, parseSpecial: true)
            let context = try LlamaContext(model: model, options: modelFlags.contextOptions())
            return context.generate(prompt: prompt, projector: projector, sampling: chain,
                                    options: GenerationOptions(maxTokens: maxTokens, stopSequences: stop))
        }
        let summary = try await stream(result)
        FileHandle.standardOutput.write(Data("\n".utf8))
        report(summary)
    }
}

extension Chat {
    /// `chat --mmproj`: `/image PATH` and `/audio PATH` attach media to the next message.
    func chatMultimodal(projector: LlamaProjector, template: String?) async throws {
        let chain = try sampling.chain()
        let session = try await CLI.run { () async throws(LlamaError) in
            try MultimodalChatSession(projector: projector, systemPrompt: system, template: template,
                                      options: modelFlags.contextOptions())
        }
        let interactive = isatty(STDIN_FILENO) == 1
        if interactive {
            CLI.note("chat with \(URL(fileURLWithPath: projector.model.path).lastPathComponent) and "
                + "\(URL(fileURLWithPath: projector.path).lastPathComponent): /image PATH, /audio PATH, /reset, /exit")
        }
        var pending: [LlamaMedia] = []
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
            if text.hasPrefix("/image ") || text.hasPrefix("/audio ") {
                let path = String(text.dropFirst(7)).trimmingCharacters(in: .whitespaces)
                do {
                    let item = try LlamaMedia(file: path, projector: projector)
                    if item.isAudio != text.hasPrefix("/audio ") {
                        CLI.note("note: \(path) is \(item.isAudio ? "audio" : "an image"); attached as such")
                    }
                    pending.append(item)
                    CLI.note("(\(item.isAudio ? "audio" : "image") \(URL(fileURLWithPath: path).lastPathComponent) attached to the next message)")
                } catch {
                    CLI.note("error: \(error.description)")
                }
                continue
            }
            let media = pending
            pending = []
            let events: AsyncThrowingStream<GenerationEvent, any Error>
            do {
                events = try await session.respond(to: text, media: media, sampling: chain,
                                                   options: modelFlags.generationOptions(maxTokens: maxTokens))
            } catch {
                CLI.note("error: \(error.description)")
                continue
            }
            _ = try await stream(events)
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}
