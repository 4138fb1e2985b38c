import Foundation
import LlamaRaw

/// Speculative decoding: cheap guesses of the next tokens, checked by the model in one batch.
///
/// Each step evaluates the last generated token and up to `maxDraft` guessed tokens after it
/// in a single decode, then samples the model's own token at each position in turn: while the
/// sampled token equals the guess, the guess is accepted and the next position's logits are
/// already there; at the first difference the sampled token is kept, the rest is discarded and
/// its cache cells removed (`llama_memory_seq_rm`). So the output is the output of plain
/// generation with the same sampler chain — token for token with greedy sampling, and with a
/// seeded sampler too, since the chain samples the same positions in the same order — as long
/// as llama.cpp computes a batch's rows as it computes single tokens (on the CPU, while the cache
/// view is under 512 cells; past that a near tie may flip: see the "Speculative decoding"
/// article). ``GenerationSummary/speculation`` counts the guesses.
public enum Speculation: Sendable {
    /// A smaller model with the same vocabulary guesses (llama.cpp's `draft-simple`, its
    /// `--spec-draft-model`/`-md`): it drafts greedily up to `maxDraft` tokens, stopping where
    /// its most likely token has a probability below `pMin`; drafts shorter than `minDraft`
    /// are not used. The vocabularies must be compatible as llama.cpp checks them (type,
    /// BOS/EOS, sizes within 128, token texts from id 5 on), else generation fails with
    /// ``LlamaError/Code/incompatibleVocabulary``. A draft context is created for each
    /// generation (the window of the target's sequence, its batch size and threads).
    case draft(model: LlamaModel, maxDraft: Int = 16, minDraft: Int = 0, pMin: Float = 0.75)
    /// Prompt lookup, no second model (llama.cpp's n-gram methods, `--spec-type ngram-simple`):
    /// guesses are copied from the prompt and what was generated so far. While the output follows
    /// a passage it copies on from there, up to `maxDraft` tokens; after a divergence the last `n`
    /// tokens (then `n - 1`, down to `minN`) are looked up, the occurrence nearest the passage
    /// being copied taken, and a short guess made from what followed it (two tokens, doubling while
    /// whole guesses are accepted). Suits output that repeats its input: rewriting, editing code,
    /// extraction, quoting.
    case lookup(n: Int = 4, minN: Int = 2, maxDraft: Int = 16)
    /// The model's own multi-token-prediction (NextN) head guesses (llama.cpp's `draft-mtp`,
    /// `--spec-type draft-mtp`): a second context of the same model runs the head on the target's
    /// hidden states, greedily, up to `maxDraft` tokens, stopping where its best token's
    /// probability among its 10 best is below `pMin`; drafts shorter than `minDraft` are not used.
    /// The model must have MTP layers and be loaded with ``ModelOptions/loadMTP``, else generation
    /// fails with ``LlamaError/Code/unsupported``. The prompt is evaluated in full (no cached
    /// prefix reused), since the head needs the target's state at every position.
    case mtp(maxDraft: Int = 3, minDraft: Int = 0, pMin: Float = 0)

    func validate(batchCapacity: Int) throws(LlamaError) {
        let maxDraft: Int
        switch self {
        case .draft(_, let max, let min, let pMin):
            maxDraft = max
            guard min >= 0, min <= max else {
                throw LlamaError(.invalidArgument, "minDraft must be within 0...maxDraft (\(max)), not \(min)")
            }
            guard !pMin.isNaN, pMin >= 0, pMin <= 1 else {
                throw LlamaError(.invalidArgument, "pMin must be within 0...1, not \(pMin)")
            }
        case .mtp(let max, let min, let pMin):
            maxDraft = max
            guard min >= 0, min <= max else {
                throw LlamaError(.invalidArgument, "minDraft must be within 0...maxDraft (\(max)), not \(min)")
            }
            guard !pMin.isNaN, pMin >= 0, pMin <= 1 else {
                throw LlamaError(.invalidArgument, "pMin must be within 0...1, not \(pMin)")
            }
        case .lookup(let n, let minN, let max):
            maxDraft = max
            guard n >= 1, n <= 1024, minN >= 1, minN <= n else {
                throw LlamaError(.invalidArgument, "the lookup n-gram sizes must satisfy 1 <= minN <= n <= 1024, not "
                    + "minN \(minN), n \(n)")
            }
        }
        guard maxDraft >= 1 else { throw LlamaError(.invalidArgument, "maxDraft must be positive, not \(maxDraft)") }
        guard maxDraft < batchCapacity else {
            throw LlamaError(.invalidArgument, "maxDraft (\(maxDraft)) plus the token before it must fit in one batch of "
                + "\(batchCapacity) tokens: lower maxDraft or create the context with a larger batchSize")
        }
    }
}

/// How much speculation guessed and how much of it the model kept.
public struct SpeculationStatistics: Sendable, Equatable {
    /// Guessed tokens evaluated by the model.
    public var draftedTokens = 0
    /// Guessed tokens the model's sampling agreed with (each saves one decode).
    public var acceptedTokens = 0
    /// Decodes that checked a guess (steps with no guess are plain decodes, not counted).
    public var verifications = 0
    /// Decodes of the model during generation, guesses or not.
    public var decodes = 0

    /// No guesses yet.
    public init() {}

    /// Accepted over drafted (0 when nothing was drafted).
    public var acceptanceRate: Double { draftedTokens == 0 ? 0 : Double(acceptedTokens) / Double(draftedTokens) }
}

extension LlamaError.Code {
    /// A draft model's vocabulary differs from the target's (type, BOS/EOS, size or token texts),
    /// so its guesses would be other tokens.
    public static let incompatibleVocabulary = LlamaError.Code(rawValue: "incompatibleVocabulary")
}

extension LlamaModel {
    /// Checks that `draft` can guess tokens for this model, as llama.cpp's
    /// `common_speculative_are_compatible` does: the same vocabulary type, the same BOS and EOS
    /// (whether added, and which), sizes within 128 tokens, and the same text for every token
    /// from id 5 up to the smaller size. Throws ``LlamaError/Code/incompatibleVocabulary``
    /// naming the first difference.
    public func checkDraftCompatibility(_ draft: LlamaModel) throws(LlamaError) {
        let c = runtime.raw
        let target = vocab.pointer, other = draft.vocab.pointer
        let name = URL(fileURLWithPath: draft.path).lastPathComponent
        func fail(_ what: String) -> LlamaError {
            LlamaError(.incompatibleVocabulary, "the draft model \(name) cannot draft for \(URL(fileURLWithPath: path).lastPathComponent): "
                + "\(what); use a draft model of the same family (the same tokenizer), or prompt lookup (.lookup) instead")
        }
        let typeT = c.llama_vocab_type(target).rawValue, typeD = c.llama_vocab_type(other).rawValue
        guard typeT == typeD else { throw fail("its vocabulary type is \(typeD), the target's \(typeT)") }
        let addBosT = c.llama_vocab_get_add_bos(target), addBosD = c.llama_vocab_get_add_bos(other)
        guard addBosT == addBosD, !addBosT || c.llama_vocab_bos(target) == c.llama_vocab_bos(other) else {
            throw fail("its BOS differs (added: \(addBosD) vs \(addBosT), token \(c.llama_vocab_bos(other)) vs \(c.llama_vocab_bos(target)))")
        }
        let addEosT = c.llama_vocab_get_add_eos(target), addEosD = c.llama_vocab_get_add_eos(other)
        guard addEosT == addEosD, !addEosT || c.llama_vocab_eos(target) == c.llama_vocab_eos(other) else {
            throw fail("its EOS differs (added: \(addEosD) vs \(addEosT), token \(c.llama_vocab_eos(other)) vs \(c.llama_vocab_eos(target)))")
        }
        let countT = vocab.count, countD = draft.vocab.count
        guard abs(Int(countT) - Int(countD)) <= 128 else {
            throw fail("its vocabulary has \(countD) tokens, the target's \(countT) (at most 128 apart)")
        }
        for id in Int32(5)..<min(countT, countD) {
            guard let a = c.llama_vocab_get_text(target, id), let b = c.llama_vocab_get_text(other, id) else { continue }
            guard strcmp(a, b) == 0 else {
                throw fail("token \(id) is \(String(cString: b).debugDescription) in the draft, \(String(cString: a).debugDescription) in the target")
            }
        }
    }
}

/// Where guesses come from during one generation.
enum DraftSource {
    case model(LlamaContext, maxDraft: Int, minDraft: Int, pMin: Float)
    case lookup(PromptLookup)
    case mtp(MTPDrafter, maxDraft: Int)

    var maxDraft: Int {
        switch self {
        case .model(_, let max, _, _), .mtp(_, let max): return max
        case .lookup(let lookup): return lookup.maxDraft
        }
    }

    /// Guesses up to `limit` tokens after `sequence` (the prompt and every token generated, the
    /// last one not yet evaluated by the target).
    mutating func propose(after sequence: [LlamaToken], limit: Int) async throws(LlamaError) -> [LlamaToken] {
        guard limit > 0 else { return [] }
        switch self {
        case .model(let context, _, let minDraft, let pMin):
            return try await context.draftTokens(after: sequence, limit: limit, minDraft: minDraft, pMin: pMin)
        case .lookup(var lookup):
            let guess = lookup.propose(sequence, limit: limit)
            self = .lookup(lookup)
            return guess
        case .mtp:
            return []  // MTP drafts from positions and hidden states: runSpeculativeGeneration asks it
        }
    }

    /// After the target checked a guess: `accepted` of its first `drafted` tokens agreed.
    mutating func accepted(_ accepted: Int, of drafted: Int) {
        guard case .lookup(var lookup) = self else { return }
        lookup.accepted(accepted, of: drafted)
        self = .lookup(lookup)
    }
}

extension LlamaContext {
    /// Drafts greedily after `sequence` on this (draft) context, keeping its cache in step with
    /// the target: the cached prefix that still agrees is kept, the rest evaluated.
    func draftTokens(after sequence: [LlamaToken], limit: Int, minDraft: Int, pMin: Float) async throws(LlamaError) -> [LlamaToken] {
        let vocabCount = model.vocab.count
        var reused = min(zip(history ?? [], sequence).prefix { $0 == $1 }.count, sequence.count - 1)
        // A token outside the draft's vocabulary (sizes may differ by a few): no draft here.
        if sequence[reused...].contains(where: { $0 < 0 || $0 >= vocabCount }) { return [] }
        if history == nil || !removeTokens(sequence: 0, from: Int32(reused)) {
            clearMemory()
            reused = 0
        }
        // The window of the draft is the target's: no room to guess past it.
        let room = sequenceLength - sequence.count
        guard room > 0 else { return [] }
        var position = reused
        do {
            while position < sequence.count {
                var end = min(sequence.count, position + batchCapacity)
                // The newest token alone after a long catch-up (the prompt): llama.cpp's CPU backend
                // computes attention for 64 rows or more another way (tiled), and the target
                // evaluated that token in a small batch; so the draft's cache stays the target's.
                if end == sequence.count, end - position >= 64 { end -= 1 }
                let chunk = sequence[position..<end]
                var batch = LlamaBatch()
                batch.add(prompt: Array(chunk), startingAt: Int32(position), outputLast: position + chunk.count == sequence.count)
                try await run(batch, encode: false)
                position += chunk.count
                history = Array(sequence.prefix(position))
            }
        } catch {
            reconcileHistory(with: sequence)
            throw error
        }
        var drafted: [LlamaToken] = []
        let limit = min(limit, room)
        while drafted.count < limit {
            guard let logits = c.llama_get_logits_ith(pointer, -1) else { break }
            let (token, p) = Self.mostLikely(logits, count: Int(vocabCount))
            if p < pMin { break }
            drafted.append(token)
            if drafted.count >= limit || model.vocab.isEndOfGeneration(token) { break }
            do {
                try await runNext(token, position: Int32(position))
            } catch {
                reconcileHistory(with: sequence + drafted)
                throw error
            }
            position += 1
            history?.append(token)
        }
        return drafted.count < minDraft ? [] : drafted
    }

    /// The most likely token and its probability (softmax of the logits).
    static func mostLikely(_ logits: UnsafePointer<Float>, count: Int) -> (LlamaToken, Float) {
        var best = 0
        var high = -Float.infinity
        for i in 0..<count where logits[i] > high {
            high = logits[i]
            best = i
        }
        var sum: Float = 0
        for i in 0..<count { sum += expf(logits[i] - high) }
        return (LlamaToken(best), sum > 0 ? 1 / sum : 0)
    }

    /// Evaluates the prompt (reusing the cached prefix) for speculative generation: what
    /// ``runGeneration(_:sampling:options:emit:)`` does before its loop. Returns how many
    /// tokens were reused, and whether evaluation was cancelled.
    private func evaluatePrompt(_ prompt: [LlamaToken], mtp: MTPDrafter? = nil) async throws(LlamaError) -> (reused: Int, cancelled: Bool) {
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
        var retried = false
        while true {
            do {
                while position < prompt.count {
                    let chunk = prompt[position..<min(prompt.count, position + batchCapacity)]
                    var batch = LlamaBatch()
                    batch.add(prompt: Array(chunk), startingAt: Int32(position), outputLast: position + chunk.count == prompt.count)
                    try await run(batch, encode: false)
                    if let mtp { await processForMTP(mtp, batch, view: prompt) }
                    position += chunk.count
                    history = Array(prompt.prefix(position))
                }
                return (reused, false)
            } catch {
                reconcileHistory(with: prompt)
                if error.code == .cancelled { return (reused, true) }
                guard error.code == .decodeFailed, !retried, reused > 0 else { throw error }
                retried = true
                clearMemory()
                reused = 0
                position = 0
            }
        }
    }

    /// The draft source for a generation: a draft context for `.draft`, checked first.
    private func draftSource(_ speculation: Speculation) throws(LlamaError) -> DraftSource {
        try speculation.validate(batchCapacity: batchCapacity)
        if c.llama_model_is_recurrent(model.pointer) || c.llama_model_is_hybrid(model.pointer) {
            throw LlamaError(.unsupported, "speculative decoding needs to remove rejected guesses from the cache, which "
                + "the recurrent state of this model (\(model.architecture ?? "unknown architecture")) cannot do: generate without speculation")
        }
        switch speculation {
        case .lookup(let n, let minN, let maxDraft):
            return .lookup(PromptLookup(n: n, minN: minN, maxDraft: maxDraft))
        case .draft(let draftModel, let maxDraft, let minDraft, let pMin):
            try model.checkDraftCompatibility(draftModel)
            if c.llama_model_is_recurrent(draftModel.pointer) || c.llama_model_is_hybrid(draftModel.pointer) {
                throw LlamaError(.unsupported, "the draft model is recurrent or hybrid: its cache cannot drop rejected guesses")
            }
            var options = ContextOptions(contextLength: UInt32(sequenceLength), batchSize: UInt32(batchCapacity),
                                         threads: c.llama_n_threads(pointer))
            options.batchThreads = c.llama_n_threads_batch(pointer)
            let context = try LlamaContext(model: draftModel, options: options)
            guard context.sequenceLength >= sequenceLength else {
                throw LlamaError(.creationFailed, "the draft context holds \(context.sequenceLength) tokens, fewer than the "
                    + "target's \(sequenceLength)")
            }
            return .model(context, maxDraft: maxDraft, minDraft: minDraft, pMin: pMin)
        case .mtp(let maxDraft, let minDraft, let pMin):
            return .mtp(try makeMTPDrafter(maxDraft: maxDraft, minDraft: minDraft, pMin: pMin), maxDraft: maxDraft)
        }
    }

    /// Generation with speculation: ``runGeneration(_:sampling:options:emit:)``'s contract (the
    /// same events, stop reasons, context shifts and cache record), drafting and verifying in batches.
    func runSpeculativeGeneration(_ prompt: [LlamaToken], sampling: SamplerChain, options: GenerationOptions,
                                  speculation: Speculation, emit: (GenerationEvent) -> Void) async throws {
        let start = ContinuousClock.now
        guard !prompt.isEmpty else { throw LlamaError(.invalidArgument, "the prompt is empty") }
        guard options.maxTokens > 0 else {
            throw LlamaError(.invalidArgument, "maxTokens must be positive, not \(options.maxTokens)")
        }
        guard prompt.count < sequenceLength else {
            throw LlamaError(.contextOverflow, "the prompt has \(prompt.count) tokens; the context window holds "
                + "\(capacityDescription): shorten the prompt or create the context with a larger contextLength")
        }
        var source = try draftSource(speculation)
        let sampler = try options.format.constraining(sampling).make(for: model)
        let vocab = model.vocab
        var drafter: MTPDrafter?
        if case .mtp(let d, _) = source {
            drafter = d
            clearSequence(0)  // the head needs the target's state at every position of the prompt
        }
        let (reused, promptCancelled) = try await evaluatePrompt(prompt, mtp: drafter)
        let promptDone = ContinuousClock.now

        var statistics = SpeculationStatistics()
        // Every token so far (the prompt, then what was generated, an end-of-generation token
        // excepted): where prompt lookup searches.
        var sequence = prompt
        // The same as the cache places them (after context shifts, less than `sequence`): the
        // cache holds all but the last, the newest token, at `position`.
        var view = prompt
        var generated: [LlamaToken] = []
        var text = ""
        var utf8 = UTF8StreamDecoder()
        var stops = StopSequenceFilter(stops: options.stopSequences)
        var pieceBuffer = [CChar](repeating: 0, count: 64)
        var reason: StopReason = promptCancelled ? .cancelled : .maxTokens
        var firstToken: Duration?
        var shifts = 0
        var fullReason: String?

        enum Outcome { case next, stop, full }
        /// Takes a token sampled for `slot` of the cache: emits it, and says what comes next.
        func take(_ token: LlamaToken, logits: UnsafePointer<Float>, slot: Int) throws -> Outcome {
            if options.stopAtEndOfGeneration, vocab.isEndOfGeneration(token) {
                reason = .endOfGeneration(token)
                return .stop
            }
            if let n = options.probabilities {
                emit(.probabilities(.compute(logits: logits, count: Int(vocab.count), chosen: token, alternatives: n)))
            }
            generated.append(token)
            sequence.append(token)
            view.append(token)
            if firstToken == nil { firstToken = ContinuousClock.now - start }
            let (release, stop) = stops.add(try vocab.withPiece(token, special: options.renderSpecial, buffer: &pieceBuffer) {
                utf8.append($0)
            })
            text += release
            emit(.token(token, text: release))
            if let stop { reason = .stopSequence(stop); return .stop }
            if generated.count >= options.maxTokens { reason = .maxTokens; return .stop }
            return slot + 1 >= sequenceLength ? .full : .next
        }
        /// The window is full, the cache holding `view` but its last token: shift, or stop.
        func shift() -> Bool {
            let held = view.count - 1
            history = Array(view.prefix(held))
            guard let discarded = shiftWhenFull(options.contextShift, prompt: prompt, position: held, why: &fullReason),
                  let shifted = history, shifted.count == held - discarded else {
                reason = .contextFull
                return false
            }
            view = shifted + [view[held]]
            shifts += 1
            return true
        }

        // How many guesses to ask for: verifying a guess costs compute (on a CPU nearly as much as
        // a token of its own), so after a rejection fewer are asked for, and after a guess fully
        // accepted, twice as many again (up to maxDraft).
        var window = source.maxDraft
        // The first token, from the prompt's logits.
        var finished = promptCancelled
        if !finished {
            if Task.isCancelled {
                reason = .cancelled
                finished = true
            } else {
                guard let logits = c.llama_get_logits_ith(pointer, -1) else {
                    throw LlamaError(.decodeFailed, "llama.cpp has no logits for the last token")
                }
                switch try take(try sampler.sample(logits: logits), logits: logits, slot: prompt.count) {
                case .next: break
                case .stop: finished = true
                case .full: finished = !shift()
                }
            }
        }
        while !finished {
            if Task.isCancelled { reason = .cancelled; break }
            let position = view.count - 1
            // Guesses must fit the window (each at a slot that could still be followed) and the
            // tokens left to generate (a step yields the guesses accepted plus one).
            let limit = min(window, sequenceLength - 2 - position, options.maxTokens - generated.count - 1)
            var draft: [LlamaToken]
            do {
                switch source {
                case .lookup: draft = try await source.propose(after: sequence, limit: limit)
                case .model: draft = try await source.propose(after: view, limit: limit)
                case .mtp(let drafter, let maxDraft):
                    // A fixed length, as llama.cpp's draft-mtp (its draft is cheap).
                    draft = try await drafter.draft(last: view[position], position: position, limit: min(
                        maxDraft, sequenceLength - 2 - position, options.maxTokens - generated.count - 1))
                }
            } catch {
                guard error.code == .cancelled else { throw error }
                reason = .cancelled
                break
            }
            let targetCount = vocab.count
            if let bad = draft.firstIndex(where: { $0 < 0 || $0 >= targetCount }) { draft.removeSubrange(bad...) }

            var batch = LlamaBatch()
            batch.add(view[position], position: Int32(position), output: true)
            for (i, t) in draft.enumerated() { batch.add(t, position: Int32(position + 1 + i), output: true) }
            do {
                try await run(batch, encode: false)
            } catch {
                reconcileHistory(with: view)
                guard error.code == .cancelled else { throw error }
                reason = .cancelled
                break
            }
            if let drafter { await processForMTP(drafter, batch, view: view) }
            statistics.decodes += 1
            if !draft.isEmpty {
                statistics.verifications += 1
                statistics.draftedTokens += draft.count
            }
            // Sample along the batch while the samples agree with the guesses.
            var accepted = 0
            var outcome = Outcome.next
            for i in 0...draft.count {
                guard let logits = c.llama_get_logits_ith(pointer, Int32(i)) else {
                    throw LlamaError(.decodeFailed, "llama.cpp has no logits for position \(position + i)")
                }
                let token = try sampler.sample(logits: logits)
                outcome = try take(token, logits: logits, slot: position + 1 + i)
                let agrees = i < draft.count && token == draft[i]
                if outcome != .next {
                    // The cache keeps what plain generation would hold: not this last token.
                    if agrees { statistics.acceptedTokens += 1 }
                    break
                }
                guard agrees else { break }
                accepted += 1
            }
            statistics.acceptedTokens += accepted
            source.accepted(accepted, of: draft.count)
            if !draft.isEmpty {
                window = accepted == draft.count ? min(source.maxDraft, window * 2)
                    : accepted > 0 ? min(source.maxDraft, max(2, accepted + 1)) : max(1, window / 2)
            }
            // The cache keeps the evaluated token and the accepted guesses; the rest goes.
            let kept = position + 1 + accepted
            if kept < position + 1 + draft.count, !removeTokens(sequence: 0, from: Int32(kept)) {
                clearSequence(0)
                throw LlamaError(.decodeFailed, "llama.cpp could not remove the rejected guesses from the cache; it was cleared")
            }
            history = Array(view.prefix(kept))
            drafter?.accept(accepted, kept: kept)
            switch outcome {
            case .next: break
            case .stop: finished = true
            case .full: finished = !shift()
            }
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
        var summary = GenerationSummary(
            promptTokens: prompt.count, reusedPromptTokens: reused, generatedTokens: generated, text: text,
            stopReason: reason, promptDuration: promptDone - start, generationDuration: end - promptDone,
            timeToFirstToken: firstToken, contextShifts: shifts, contextFullReason: fullReason)
        summary.speculation = statistics
        emit(.finished(summary))
    }
}
