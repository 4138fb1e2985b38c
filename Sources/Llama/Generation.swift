import Foundation
import LlamaRaw

/// How text is generated.
public struct GenerationOptions: Sendable {
    /// The most tokens to generate.
    public var maxTokens: Int = 256
    /// Stop when one of these appears in the text (it is not part of the output).
    public var stopSequences: [String] = []
    /// Stop at an end-of-generation token (EOS, EOT...).
    public var stopAtEndOfGeneration = true
    /// Add the model's BOS/EOS when tokenizing the prompt.
    public var addSpecial = true
    /// Read special-token text in the prompt (`<|im_start|>`) as special tokens: for prompt text
    /// you wrote or a chat template rendered (``LlamaModel/formatChat(_:addAssistantPrompt:template:tools:variables:now:parseSpecialInContent:mediaMarker:)``
    /// neutralises special-token text inside message content, so that it stays text). Turn it off
    /// for a prompt that is untrusted text as a whole.
    public var parseSpecial = true
    /// Render special tokens in the output as their text.
    public var renderSpecial = false
    /// What the output must be: free text (the default), or text a grammar allows, applied as
    /// a grammar stage in front of the sampler chain.
    public var format: GenerationFormat = .text
    /// When the sequence fills the context window: stop with `.contextFull` (`.off`, the default), or
    /// drop older tokens and go on (``ContextShift``, llama.cpp's `--context-shift` and `--keep`).
    public var contextShift: ContextShift = .off
    /// Speculative decoding: guesses checked in batches (``Speculation``); nil generates one token per decode.
    public var speculation: Speculation?
    /// Log-probabilities (OpenAI `logprobs`): nil sends none; `n` sends a
    /// ``GenerationEvent/probabilities(_:)`` event before each token with the token's own and the `n`
    /// most probable ones' (0...``TokenProbabilities/maxAlternatives``), from the raw logits.
    public var probabilities: Int?

    /// Options with llama.cpp's defaults but for these two.
    ///
    /// - Parameters:
    ///   - maxTokens: the most tokens to generate.
    ///   - stopSequences: text that ends generation when it appears.
    public init(maxTokens: Int = 256, stopSequences: [String] = []) {
        self.maxTokens = maxTokens
        self.stopSequences = stopSequences
    }
}

/// Why generation ended.
public enum StopReason: Sendable, Equatable {
    /// `maxTokens` tokens were generated.
    case maxTokens
    /// The model generated an end-of-generation token (EOS, EOT...): this one.
    case endOfGeneration(LlamaToken)
    /// One of the stop sequences appeared: this one.
    case stopSequence(String)
    /// The context window is full (the sequence's share of it: ``LlamaContext/sequenceLength``).
    case contextFull
    /// The task was cancelled.
    case cancelled
}

/// What a generation produced, and how long it took.
public struct GenerationSummary: Sendable {
    /// Tokens of the prompt, and how many of them the KV cache already held.
    public var promptTokens: Int
    /// Prompt tokens taken from the KV cache rather than evaluated.
    public var reusedPromptTokens: Int
    /// The generated tokens.
    public var generatedTokens: [LlamaToken]
    /// The generated text (without a matched stop sequence).
    public var text: String
    /// Why generation ended.
    public var stopReason: StopReason
    /// Time spent evaluating the prompt.
    public var promptDuration: Duration
    /// Time spent generating, after the prompt.
    public var generationDuration: Duration
    /// From the request to the first token.
    public var timeToFirstToken: Duration?
    /// How many times the context was shifted to make room (``GenerationOptions/contextShift``).
    public var contextShifts: Int = 0
    /// With ``StopReason/contextFull``: why the context could not make room (shifting off, or a
    /// cache that cannot shift).
    public var contextFullReason: String? = nil
    /// What speculative decoding guessed and kept (nil without ``GenerationOptions/speculation``).
    public var speculation: SpeculationStatistics? = nil

    /// Generated tokens per second of ``generationDuration`` (0 when it took no time).
    public var tokensPerSecond: Double {
        let seconds = Double(generationDuration.components.seconds) + Double(generationDuration.components.attoseconds) / 1e18
        return seconds > 0 ? Double(generatedTokens.count) / seconds : 0
    }
}

/// An element of a generation stream.
public enum GenerationEvent: Sendable {
    /// A generated token and the text it completed (possibly empty: part of a character, or
    /// text held back while it could still begin a stop sequence).
    case token(LlamaToken, text: String)
    /// Text released at the end (held back, then known not to be a stop sequence).
    case text(String)
    /// The log-probabilities of the token that the next `.token` event carries (only when
    /// ``GenerationOptions/probabilities`` asks for them).
    case probabilities(TokenProbabilities)
    /// The last event: what was generated and how long it took.
    case finished(GenerationSummary)
}

extension AsyncThrowingStream where Element == GenerationEvent, Failure == any Error {
    /// Runs the stream to its end and returns the summary.
    public func summary() async throws -> GenerationSummary {
        for try await event in self {
            if case .finished(let summary) = event { return summary }
        }
        throw LlamaError(.cancelled, "the generation ended without a summary")
    }
}

/// Releases generated text while watching for stop sequences: text that could still begin one
/// is held back until it cannot.
struct StopSequenceFilter {
    let stops: [String]
    var held = ""

    /// Adds text; returns what can be released and the stop sequence found, if any.
    mutating func add(_ text: String) -> (release: String, stop: String?) {
        held += text
        for stop in stops where !stop.isEmpty {
            if let range = held.range(of: stop) {
                let before = String(held[..<range.lowerBound])
                held = ""
                return (before, stop)
            }
        }
        // Keep the longest suffix that is a prefix of a stop sequence.
        var keep = 0
        for stop in stops where !stop.isEmpty {
            for n in stride(from: min(stop.count - 1, held.count), to: 0, by: -1) where held.hasSuffix(stop.prefix(n)) {
                keep = max(keep, n)
                break
            }
        }
        let release = String(held.dropLast(keep))
        held = String(held.suffix(keep))
        return (release, nil)
    }
}

extension LlamaContext {
    /// Generates text after a prompt, as a stream of tokens and text, ending with a summary.
    ///
    /// The prompt is the whole content of sequence 0: when the KV cache already holds a prefix
    /// of it (the previous prompt and answer, in a chat), only the rest is evaluated. Cancelling
    /// the consuming task stops generation within one token.
    public nonisolated func generate(prompt: String, sampling: SamplerChain = .greedy,
                                     options: GenerationOptions = GenerationOptions())
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        stream(sampling: sampling, options: options) { context in
            try context.model.vocab.tokenize(prompt, addSpecial: options.addSpecial, parseSpecial: options.parseSpecial)
        }
    }

    /// Generates after prompt tokens (see ``generate(prompt:sampling:options:)``).
    public nonisolated func generate(tokens: [LlamaToken], sampling: SamplerChain = .greedy,
                                     options: GenerationOptions = GenerationOptions())
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        stream(sampling: sampling, options: options) { _ in tokens }
    }

    private nonisolated func stream(sampling: SamplerChain, options: GenerationOptions,
                                    _ tokens: @escaping @Sendable (LlamaContext) throws -> [LlamaToken])
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await self.runGeneration(tokens(self), sampling: sampling, options: options) {
                        continuation.yield($0)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func runGeneration(_ prompt: [LlamaToken], sampling: SamplerChain, options: GenerationOptions,
                       emit: (GenerationEvent) -> Void) async throws {
        try options.checkProbabilities()
        if let speculation = options.speculation {
            return try await runSpeculativeGeneration(prompt, sampling: sampling, options: options, speculation: speculation, emit: emit)
        }
        let start = ContinuousClock.now
        guard !prompt.isEmpty else { throw LlamaError(.invalidArgument, "the prompt is empty") }
        guard options.maxTokens > 0 else {
            throw LlamaError(.invalidArgument, "maxTokens must be positive, not \(options.maxTokens)")
        }
        guard prompt.count < sequenceLength else {
            throw LlamaError(.contextOverflow, "the prompt has \(prompt.count) tokens; the context window holds "
                + "\(capacityDescription): shorten the prompt or create the context with a larger contextLength")
        }
        let sampler = try options.format.constraining(sampling).make(for: model)
        let vocab = model.vocab

        // Reuse the cached prefix; at least one token is evaluated, to get logits. Whatever the
        // cache holds past the reused prefix is removed, recorded or not.
        var reused = 0
        if let history {
            reused = min(zip(history, prompt).prefix { $0 == $1 }.count, prompt.count - 1)
            if !removeTokens(sequence: 0, from: Int32(reused)) {
                clearMemory()
                reused = 0
            }
        } else {
            clearMemory()
        }
        var position = reused
        var cancelled = false
        var retried = false
        while true {
            do {
                while position < prompt.count {
                    let chunk = prompt[position..<min(prompt.count, position + batchCapacity)]
                    var batch = LlamaBatch()
                    batch.add(prompt: Array(chunk), startingAt: Int32(position), outputLast: position + chunk.count == prompt.count)
                    try await run(batch, encode: false)
                    position += chunk.count
                    history = Array(prompt.prefix(position))
                }
                break
            } catch {
                // llama.cpp keeps the micro-batches it finished: the record follows the cache.
                reconcileHistory(with: prompt)
                if error.code == .cancelled {
                    cancelled = true
                    break
                }
                // A reused cache that llama.cpp refuses (a damaged restored state): start over once.
                guard error.code == .decodeFailed, !retried, reused > 0 else { throw error }
                retried = true
                clearMemory()
                reused = 0
                position = 0
            }
        }
        let promptDone = ContinuousClock.now

        var generated: [LlamaToken] = []
        var text = ""
        var utf8 = UTF8StreamDecoder()
        var stops = StopSequenceFilter(stops: options.stopSequences)
        var pieceBuffer = [CChar](repeating: 0, count: 64)
        var reason: StopReason = cancelled ? .cancelled : .maxTokens
        var firstToken: Duration?
        var shifts = 0
        var fullReason: String?
        while !cancelled {
            if Task.isCancelled { reason = .cancelled; break }
            guard let logits = c.llama_get_logits_ith(pointer, -1) else {
                throw LlamaError(.decodeFailed, "llama.cpp has no logits for the last token")
            }
            let token = try sampler.sample(logits: logits)
            if options.stopAtEndOfGeneration, vocab.isEndOfGeneration(token) {
                reason = .endOfGeneration(token)
                break
            }
            if let n = options.probabilities {
                emit(.probabilities(.compute(logits: logits, count: Int(vocab.count), chosen: token, alternatives: n)))
            }
            generated.append(token)
            if firstToken == nil { firstToken = ContinuousClock.now - start }
            let (release, stop) = stops.add(try vocab.withPiece(token, special: options.renderSpecial, buffer: &pieceBuffer) {
                utf8.append($0)
            })
            text += release
            emit(.token(token, text: release))
            if let stop { reason = .stopSequence(stop); break }
            if generated.count >= options.maxTokens { reason = .maxTokens; break }
            if position + 1 >= sequenceLength {
                guard let discarded = shiftWhenFull(options.contextShift, prompt: prompt, position: position, why: &fullReason)
                else { reason = .contextFull; break }
                position -= discarded
                shifts += 1
            }
            do {
                try await runNext(token, position: Int32(position))
            } catch {
                guard error.code == .cancelled else {
                    reconcileHistory(with: history ?? [])
                    throw error
                }
                reason = .cancelled
                break
            }
            position += 1
            history?.append(token)
        }
        if case .stopSequence = reason {} else {
            let (rest, _) = stops.add(utf8.finish())
            let tail = rest + stops.held
            if !tail.isEmpty {
                text += tail
                emit(.text(tail))
            }
        }
        let end = ContinuousClock.now
        emit(.finished(GenerationSummary(
            promptTokens: prompt.count, reusedPromptTokens: reused, generatedTokens: generated, text: text,
            stopReason: reason, promptDuration: promptDone - start, generationDuration: end - promptDone,
            timeToFirstToken: firstToken, contextShifts: shifts, contextFullReason: fullReason)))
    }
}
