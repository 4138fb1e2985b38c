import LlamaRaw

// The context's side of ``LlamaSlots``: one step is one `llama_decode` of a batch that holds
// tokens of several sequences, then a token sampled for each output with that slot's own chain.
// It runs on the context actor, where ``LlamaContext/decode(_:)`` runs.

/// A slot's sampler chain, handed to the context for the step that samples with it.
///
/// The chain is a C object with no lock: the engine gives it to exactly one step at a time and
/// awaits that step before touching it again, so it is never used from two places at once.
final class SlotSampler: @unchecked Sendable {
    let instance: SamplerInstance
    init(_ instance: SamplerInstance) { self.instance = instance }
}

/// An output of a step's batch, and the chain that samples from it.
struct SlotOutput: Sendable {
    /// The index of the token in the batch (what `llama_get_logits_ith` takes).
    var batchIndex: Int32
    var sampler: SlotSampler
    /// Log-probabilities to report with the token (``GenerationOptions/probabilities``).
    var probabilities: Int?
}

/// A token sampled in a step, with its log-probabilities when they were asked for.
struct SlotSample: Sendable {
    var token: LlamaToken
    var probabilities: TokenProbabilities?
}

/// What a step gave: a sampled token (or the sampling error) for each output, in order, or
/// the evaluation's error.
enum SlotStepResult: Sendable {
    case decoded([Result<SlotSample, LlamaError>])
    case failed(LlamaError)
}

extension LlamaContext {
    /// Evaluates a batch of several sequences in one `llama_decode` and samples each output
    /// with its chain.
    func runSlotStep(_ batch: LlamaBatch, outputs: [SlotOutput]) async -> SlotStepResult {
        // The sequences change under the record generation keeps for sequence 0.
        history = nil
        do {
            try await run(batch, encode: false)
        } catch {
            return .failed(error)
        }
        var tokens: [Result<SlotSample, LlamaError>] = []
        tokens.reserveCapacity(outputs.count)
        for output in outputs {
            guard let logits = c.llama_get_logits_ith(pointer, output.batchIndex) else {
                tokens.append(.failure(LlamaError(.decodeFailed, "llama.cpp has no logits for output \(output.batchIndex) of the step")))
                continue
            }
            do throws(LlamaError) {
                let token = try output.sampler.instance.sample(logits: logits)
                let probabilities = output.probabilities.map {
                    TokenProbabilities.compute(logits: logits, count: Int(model.vocab.count), chosen: token, alternatives: $0)
                }
                tokens.append(.success(SlotSample(token: token, probabilities: probabilities)))
            } catch {
                tokens.append(.failure(error))
            }
        }
        return .decoded(tokens)
    }

    /// Keeps the first `keep` positions of each sequence and removes the rest
    /// (`llama_memory_seq_rm`); returns what each sequence kept: `keep`, or 0 when the cache
    /// cannot remove a partial range (recurrent models) and the sequence was emptied.
    func trimSlotSequences(_ trims: [(sequence: Int32, keep: Int)]) -> [Int] {
        history = nil
        return trims.map { trim in
            if trim.keep > 0, c.llama_memory_seq_rm(memory, trim.sequence, Int32(trim.keep), -1) { return trim.keep }
            clearSequence(trim.sequence)
            return 0
        }
    }

    /// After a failed evaluation: llama.cpp keeps the micro-batches it finished and drops the
    /// one it was computing. Returns how many of `intended` (a sequence's content from position
    /// 0) the cache now holds, read as ``reconcileHistory(with:)`` reads it for sequence 0; when
    /// that cannot be trusted the sequence is emptied and 0 returned.
    func reconcileSlotSequence(_ sequence: Int32, intended: Int) -> Int {
        history = nil
        let high = c.llama_memory_seq_pos_max(memory, sequence)
        if high < 0 { return 0 }
        if Int(high) < intended, c.llama_memory_seq_pos_min(memory, sequence) >= 0 { return Int(high) + 1 }
        clearSequence(sequence)
        return 0
    }
}

/// The output side of one generation, token by token, as ``LlamaContext/generate(tokens:sampling:options:)``
/// does it: end-of-generation, stop sequences (text held back while it could begin one),
/// `maxTokens`, the sequence's share of the context, and the text released at the end. Shared by
/// the slots and generation after media.
struct GenerationOutput {
    let options: GenerationOptions
    let vocab: LlamaVocab
    /// The most tokens the sequence holds (``LlamaContext/sequenceLength``).
    let sequenceLength: Int
    var generated: [LlamaToken] = []
    var text = ""
    var utf8 = UTF8StreamDecoder()
    var stops: StopSequenceFilter
    var pieceBuffer = [CChar](repeating: 0, count: 64)

    init(options: GenerationOptions, vocab: LlamaVocab, sequenceLength: Int) {
        self.options = options
        self.vocab = vocab
        self.sequenceLength = sequenceLength
        stops = StopSequenceFilter(stops: options.stopSequences)
    }

    /// Takes a sampled token that would sit at `position` of the sequence; returns the event to
    /// send (none for an end-of-generation token) and the reason to stop, if generation ends here.
    mutating func add(_ token: LlamaToken, position: Int) throws(LlamaError) -> (event: GenerationEvent?, stop: StopReason?) {
        if options.stopAtEndOfGeneration, vocab.isEndOfGeneration(token) { return (nil, .endOfGeneration(token)) }
        generated.append(token)
        let piece = try vocab.withPiece(token, special: options.renderSpecial, buffer: &pieceBuffer) { utf8.append($0) }
        let (release, stop) = stops.add(piece)
        text += release
        let event = GenerationEvent.token(token, text: release)
        if let stop { return (event, .stopSequence(stop)) }
        if generated.count >= options.maxTokens { return (event, .maxTokens) }
        if position + 1 >= sequenceLength { return (event, .contextFull) }
        return (event, nil)
    }

    /// The text held back, released at the end (none after a stop sequence, whose text is dropped).
    mutating func tail(for reason: StopReason) -> String? {
        if case .stopSequence = reason { return nil }
        let (rest, _) = stops.add(utf8.finish())
        let tail = rest + stops.held
        stops.held = ""
        guard !tail.isEmpty else { return nil }
        text += tail
        return tail
    }
}
