// A chat session's one path from a conversation to a reply: text through the context's own
// prompt cache, conversations with images or audio through the projector.
import Foundation
public import LlamaChat

extension LlamaError.Code {
    /// Images or audio were given to a session or model without a projector (`mmproj`).
    public static let projectorRequired = LlamaError.Code(rawValue: "projectorRequired")
}

extension LlamaError {
    /// Media given where no projector reads them.
    static func projectorRequired() -> LlamaError {
        LlamaError(.projectorRequired, "the conversation holds images or audio, and the session has no projector: "
            + "load the model's mmproj (LlamaProjector) and start the session with it (CLI: --mmproj)")
    }
}

extension ChatSession {
    /// Renders `conversation` (with `tools`) and generates the reply. Without media: the prompt
    /// text, fitted to the window when context shift is on, and the context's prompt cache.
    /// With media: rendered with the projector's marker, tokenized with the media, evaluated
    /// from what the cache already holds of it (``MultimodalCacheRecord``), then generated.
    func generate(_ conversation: [ChatMessage], tools: [ToolDefinition] = [], sampling: SamplerChain,
                  options: GenerationOptions) throws(LlamaError) -> AsyncThrowingStream<GenerationEvent, any Error> {
        let model = context.model
        guard conversation.contains(where: { $0.content.hasMedia }) else {
            let prompt = tools.isEmpty ? try fittingPrompt(conversation, options: options)
                : try model.formatChat(conversation, template: template, tools: tools)
            return context.generate(prompt: prompt, sampling: sampling, options: options)
        }
        guard let projector else { throw LlamaError.projectorRequired() }
        let rendered = try model.formatChat(conversation, template: template, tools: tools, mediaMarker: projector.marker)
        var media: [LlamaMedia] = []
        for message in conversation {
            for part in message.content.media { if let item = part.media { media.append(try decode(item, projector: projector)) } }
        }
        let prompt = try projector.tokenize(rendered, media: media, addSpecial: options.addSpecial, parseSpecial: options.parseSpecial)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    // The summary goes out once the session's record of the cache is written back, so
                    // that a turn started as soon as this one finished sees it.
                    let summary = try await self.generate(prompt, projector: projector, sampling: sampling, options: options) {
                        if case .finished = $0 { return }
                        continuation.yield($0)
                    }
                    continuation.yield(.finished(summary))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Generates after a multimodal prompt, keeping what the cache holds of it.
    private func generate(_ prompt: LlamaMultimodalPrompt, projector: LlamaProjector, sampling: SamplerChain,
                          options: GenerationOptions, emit: @escaping @Sendable (GenerationEvent) -> Void) async throws
        -> GenerationSummary {
        var record = self.record
        // After text-only turns the cache holds their tokens: the media turn keeps them.
        if record.units.isEmpty, let tokens = await context.cachedTokens { record.units = tokens.map { .token($0) } }
        defer { self.record = record }
        return try await context.generateMultimodal(prompt, projector: projector, sampling: sampling, options: options,
                                                    record: &record, reuse: true, emit: emit)
    }

    /// A media part decoded for the projector, once per conversation.
    private func decode(_ media: ChatMedia, projector: LlamaProjector) throws(LlamaError) -> LlamaMedia {
        if let done = decoded[media] { return done }
        let item: LlamaMedia
        switch media.source {
        case .data(let bytes, _): item = try LlamaMedia(bytes: bytes, projector: projector)
        case .url(let url):
            guard url.hasPrefix("file://"), let path = URL(string: url)?.path, !path.isEmpty else {
                throw LlamaError(.unsupported, "the media at \(url) is not fetched here: read its bytes and pass them "
                    + "(ChatMedia(data:)), or a file:// URL")
            }
            item = try LlamaMedia(file: path, projector: projector)
        }
        decoded[media] = item
        return item
    }
}
