// A chat whose messages carry images and audio, keeping its KV cache across turns.
import Foundation
public import LlamaChat

/// A conversation with a model and its projector that keeps the KV cache across turns, media
/// included: each reply evaluates only what is new since the last one, and media seen before
/// are not encoded again (the projector keeps their embeddings by content id).
public actor MultimodalChatSession {
    /// The context the conversation is evaluated in; its KV cache holds the conversation so far.
    public let context: LlamaContext
    /// The projector that encodes the conversation's media.
    public let projector: LlamaProjector
    /// The conversation; user messages hold the projector's marker where their media go.
    public private(set) var messages: [ChatMessage]
    /// The media of the conversation, in the order of their markers.
    public private(set) var media: [LlamaMedia] = []
    let template: String?
    var record = MultimodalCacheRecord()

    /// Starts a conversation on a new context of the projector's model.
    ///
    /// - Parameters:
    ///   - projector: the projector, loaded for the model that answers.
    ///   - systemPrompt: the first message, from the system role (none when nil).
    ///   - template: a Jinja chat template; nil: the model's own.
    ///   - options: the context's options (a 4096-token context by default).
    public init(projector: LlamaProjector, systemPrompt: String? = nil, template: String? = nil,
                options: ContextOptions = ContextOptions(contextLength: 4096)) throws(LlamaError) {
        context = try LlamaContext(model: projector.model, options: options)
        self.projector = projector
        messages = systemPrompt.map { [.system($0)] } ?? []
        self.template = template
    }

    /// Adds the user's message with its media and streams the reply, which joins the history
    /// when it ends. `text` holds the projector's ``LlamaProjector/marker`` where each item goes;
    /// media without a marker go first, one per line, in order.
    public func respond(to text: String, media newMedia: [LlamaMedia] = [], sampling: SamplerChain = .greedy,
                        options: GenerationOptions = GenerationOptions()) throws(LlamaError)
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        let marker = projector.marker
        let inText = text.components(separatedBy: marker).count - 1
        guard inText <= newMedia.count else {
            throw LlamaError(.invalidArgument, "the message has \(inText) media marker(s) (\(marker)) but \(newMedia.count) "
                + "media were given")
        }
        let content = String(repeating: marker + "\n", count: newMedia.count - inText) + text
        let all = messages + [.user(content)]
        let rendered = try context.model.formatChat(all, addAssistantPrompt: true, template: template)
        let prompt = try projector.tokenize(rendered, media: media + newMedia, addSpecial: false, parseSpecial: true)
        messages.append(.user(content))
        media += newMedia
        return AsyncThrowingStream { continuation in
            let task = Task {
                // The reply joins the history as far as it got (a cancelled one included).
                var reply = ""
                do {
                    reply = try await self.run(prompt, sampling: sampling, options: options) { continuation.yield($0) }.text
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
                self.record(reply: reply)
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func run(_ prompt: LlamaMultimodalPrompt, sampling: SamplerChain, options: GenerationOptions,
             emit: @escaping @Sendable (GenerationEvent) -> Void) async throws -> GenerationSummary {
        var record = self.record
        defer { self.record = record }
        return try await context.generateMultimodal(prompt, projector: projector, sampling: sampling, options: options,
                                                    record: &record, reuse: true, emit: emit)
    }

    func record(reply: String) { messages.append(.assistant(reply)) }

    /// Forgets the conversation (keeping the system prompt) and empties the cache.
    public func reset() async {
        messages = messages.filter { $0.role == "system" }
        media = []
        record = MultimodalCacheRecord()
        await context.clearMemory()
    }
}
