// Prompts with images and audio on ``LlamaSlots``: text tokens go through the shared batch like
// any prompt's; each media chunk is decoded into the slot's sequence on its own, between steps,
// from embeddings encoded before the request was queued.

/// A multimodal prompt as the slots run it.
///
/// The slot engine sees the prompt as tokens, one per position: text tokens as they are, and for
/// each media chunk a placeholder, repeated over its positions: a negative number drawn from the
/// media's cache key. Placeholders never equal a vocabulary token, so a text prompt never reuses
/// a slot's media positions; the same media in the same place of another prompt gives the same
/// placeholders, so that a follow-up turn reuses the slot's cache (and the prompt cache) through
/// its image as it does through text.
struct SlotMedia: Sendable {
    /// A media chunk: its index in the prompt, its first position, and its positions.
    struct Span: Sendable {
        var chunk: Int
        var start: Int
        var positions: Int
    }

    let prompt: LlamaMultimodalPrompt
    let projector: LlamaProjector
    let spans: [Span]
    /// The embeddings of each media chunk, by chunk index.
    let embeddings: [Int: [Float]]
    /// The placeholder tokens, one per position.
    let tokens: [LlamaToken]

    /// Checks the prompt and encodes its media (the projector's cache keeps embeddings of media it saw).
    init(prompt: LlamaMultimodalPrompt, projector: LlamaProjector, model: LlamaModel) throws(LlamaError) {
        guard projector.model === model else {
            throw LlamaError(.invalidArgument, "the projector was loaded for another model (\(projector.model.path)) than "
                + "the slots' (\(model.path))")
        }
        guard let last = prompt.chunks.last, last.kind == .text, !last.tokens.isEmpty else {
            throw LlamaError(.invalidArgument, "the prompt must end with text after its last image or audio clip: "
                + "the model predicts from the last text token")
        }
        var tokens: [LlamaToken] = []
        var spans: [Span] = []
        var embeddings: [Int: [Float]] = [:]
        for (i, chunk) in prompt.chunks.enumerated() {
            if chunk.kind == .text {
                tokens += chunk.tokens
                continue
            }
            embeddings[i] = try projector.embeddings(of: prompt, chunk: i)
            spans.append(Span(chunk: i, start: tokens.count, positions: chunk.positionCount))
            tokens += Array(repeating: Self.placeholder(prompt.cacheKey(of: i)), count: chunk.positionCount)
        }
        self.prompt = prompt
        self.projector = projector
        self.spans = spans
        self.embeddings = embeddings
        self.tokens = tokens
    }

    /// A negative token for a media key (FNV-1a, 30 bits); a random one for media without a key.
    static func placeholder(_ key: String?) -> LlamaToken {
        guard let key else { return -LlamaToken.random(in: 1...(1 << 30)) }
        var hash: UInt32 = 2_166_136_261
        for byte in key.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return -LlamaToken(hash & 0x3FFF_FFFF) - 1
    }

    /// The media chunk that starts at `position`, if one does.
    func span(at position: Int) -> Span? { spans.first { $0.start == position } }

    /// Where the text from `position` ends: the next media chunk's start, or the prompt's end.
    func textEnd(from position: Int) -> Int { spans.first { $0.start >= position }?.start ?? tokens.count }

    /// `keep` cached positions, or fewer so as not to end inside a media chunk.
    func keepable(_ keep: Int) -> Int {
        spans.first { $0.start < keep && keep < $0.start + $0.positions }?.start ?? keep
    }
}

extension SlotRequest {
    /// The positions of the slot's cache this request can keep of the `shared` it has in common
    /// with it (never part of a media chunk).
    func keepable(_ shared: Int) -> Int { media?.keepable(shared) ?? shared }

    /// Where the prompt's text run from `position` ends (a media chunk, or the prompt's end).
    func textEnd(from position: Int) -> Int { media?.textEnd(from: position) ?? prompt.count }
}

extension LlamaSlots {
    /// Queues a prompt with images or audio (``LlamaProjector/tokenize(_:media:addSpecial:parseSpecial:)``);
    /// events as ``submit(prompt:sampling:options:)`` gives them.
    ///
    /// The media are encoded first, by the caller's task (the projector's cache keeps
    /// embeddings of media it saw). Then the prompt runs like any other: its text in the shared
    /// batch, each media chunk decoded into the slot's sequence between two steps (non-causally
    /// where the model wants it), and a later prompt with the same media and text before them
    /// reuses the slot's cache through them.
    ///
    /// - Throws: as ``submit(prompt:sampling:options:)``; `.invalidArgument` for a projector of
    ///   another model or a prompt that does not end with text; the projector's encoding errors.
    public nonisolated func submit(prompt: LlamaMultimodalPrompt, projector: LlamaProjector, sampling: SamplerChain,
                                   options: GenerationOptions) async throws(LlamaError)
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        let media = try SlotMedia(prompt: prompt, projector: projector, model: context.model)
        return try await enqueue(prompt: media.tokens, media: media, sampling: sampling, options: options)
    }

    /// Decodes the media chunks that slots evaluating their prompt have reached. A failure ends
    /// that request with the error; its slot keeps what it held before the chunk.
    func evaluateMedia() async {
        for i in slots.indices {
            guard let request = slots[i].request, request.pending == nil, let media = request.media else { continue }
            while let span = media.span(at: slots[i].cached.count) {
                do {
                    _ = try await context.decodeMedia(media.prompt, chunk: span.chunk, embeddings: media.embeddings[span.chunk] ?? [],
                                                      projector: media.projector, sequence: slots[i].sequence,
                                                      position: Int32(span.start))
                    slots[i].cached += media.tokens[span.start..<(span.start + span.positions)]
                } catch {
                    let kept = await context.trimSlotSequences([(slots[i].sequence, slots[i].cached.count)])
                    slots[i].cached = Array(slots[i].cached.prefix(kept.first ?? 0))
                    fail(i, error)
                    break
                }
            }
        }
    }
}
