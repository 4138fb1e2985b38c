import ArgumentParser
import Foundation
import Llama

/// `--mmproj` and its settings, for `run` and `chat`.
struct ProjectorFlags: ParsableArguments {
    @Option(help: "A multimodal projector (the model's mmproj GGUF): images and audio can then go in the prompt (run: --image, --audio; chat: /image, /audio). `auto` with a Hugging Face --model: the one `models pull --mmproj` stored beside it (pulled now if it is not).")
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

    func load(for model: LlamaModel, flags: ModelFlags) async throws -> LlamaProjector? {
        guard let mmproj = try await path(flags) else { return nil }
        let threads = flags.threads
        var options = ProjectorOptions()
        options.useGPU = !noMmprojOffload
        options.threads = threads
        options.imageMinTokens = imageMinTokens
        options.imageMaxTokens = imageMaxTokens
        return try await CLI.run { () async throws(LlamaError) in try LlamaProjector(model: model, path: mmproj, options: options) }
    }
}

extension ProjectorFlags {
    /// The projector's file: `--mmproj` itself, or with `auto` the one stored beside the Hub model (pulled when missing).
    func path(_ flags: ModelFlags) async throws -> String? {
        guard mmproj == "auto" else { return mmproj }
        guard let text = flags.model, !FileManager.default.fileExists(atPath: text), let reference = LlamaModelReference(text) else {
            throw ValidationError("--mmproj auto needs a Hugging Face --model (owner/repo/file.gguf); with a model file, "
                + "pass its mmproj file")
        }
        let store = LlamaModelStore(options: flags.install.options())
        return try await CLI.run { () async throws(LlamaError) in
            try await store.pullProjector(for: reference, progress: ProgressPrinter().handler).path!.path
        }
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
    /// `run --mmproj`: the prompt with its media. Markers in the prompt place the media; without
    /// them the media go before the prompt, as parts of one user message.
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
            let plain = raw || model.chatTemplate() == nil
            // Media without markers go first: plain, one per line; in a chat message, as media parts
            // render (llama.cpp's server rule: no line break next to a marker).
            let missing = inText == 0 ? items.count : 0
            let input = plain ? String(repeating: marker + "\n", count: missing) + text
                : try model.formatChat([.user(String(repeating: marker, count: missing) + text)])
            let prompt = try projector.tokenize(input, media: items, addSpecial: true, parseSpecial: true)
            let context = try LlamaContext(model: model, options: modelFlags.contextOptions())
            return context.generate(prompt: prompt, projector: projector, sampling: chain,
                                    options: GenerationOptions(maxTokens: maxTokens, stopSequences: stop))
        }
        let summary = try await stream(result)
        FileHandle.standardOutput.write(Data("\n".utf8))
        report(summary)
    }
}

/// `chat --mmproj`: `/image PATH` and `/audio PATH` attach media to the next message.
enum ChatAttachments {
    /// Handles `/image PATH` and `/audio PATH`: the file read and checked with the projector,
    /// then held for the next message. False when the line is not one of them.
    static func handle(_ line: String, projector: LlamaProjector?, pending: inout [ChatContentPart]) -> Bool {
        guard line.hasPrefix("/image ") || line.hasPrefix("/audio ") else { return false }
        let path = String(line.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard let projector else {
            CLI.note("error: /image and /audio need a projector: start the chat with --mmproj")
            return true
        }
        guard let bytes = FileManager.default.contents(atPath: path) else {
            CLI.note("error: cannot read the media file \(path): no such file, or no permission")
            return true
        }
        do {
            // Decoded now, so that a file the projector cannot read is refused at once.
            let item = try LlamaMedia(bytes: bytes, projector: projector)
            if item.isAudio != line.hasPrefix("/audio ") {
                CLI.note("note: \(path) is \(item.isAudio ? "audio" : "an image"); attached as such")
            }
            let media = ChatMedia(data: bytes)
            pending.append(item.isAudio ? .audio(media) : .image(media))
            CLI.note("(\(item.isAudio ? "audio" : "image") \(URL(fileURLWithPath: path).lastPathComponent) attached to the next message)")
        } catch {
            CLI.note("error: \(path): \(error.description)")
        }
        return true
    }

    /// The user's message: the attached media, then the text.
    static func message(_ text: String, pending: [ChatContentPart]) -> ChatMessage {
        ChatMessage(role: "user", content: pending.isEmpty ? .text(text) : .parts(pending + [.text(text)]))
    }
}
