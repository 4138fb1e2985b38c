import LlamaRaw
import Synchronization

/// Requests generated together on one context: each slot is one sequence; every step decodes the next token of
/// every active slot, and pending prompt chunks of newly admitted requests, in ONE llama_decode.
///
/// A request waits in a queue until a slot is free, then takes the free slot whose cached tokens
/// share the longest prefix with its prompt (only the rest of the prompt is evaluated). Each
/// request samples with its own chain (and grammar), built as ``LlamaContext/generate(tokens:sampling:options:)``
/// builds it, and ends as generation there ends (end of generation, stop sequence, `maxTokens`,
/// the sequence's share of the context). The loop runs while there is work and ends when there
/// is none; the next submission starts it again (nothing polls).
///
/// The engine owns the context while it runs: do not generate or decode on the same context
/// through other calls at the same time.
public actor LlamaSlots {
    /// How many requests run together and wait, and how prompts are chunked.
    public struct Options: Sendable {
        /// The slots: sequences generated together (llama.cpp `--parallel`).
        public var slots: Int
        /// Requests waiting for a slot (llama.cpp `--queue-size`); one more is `.busy`.
        public var queueLimit: Int
        /// The most prompt tokens of one request evaluated per step, so that a long prompt does
        /// not stall the others (at most the context's batch size).
        public var promptChunk: Int
        /// Host memory for conversations a slot gives up to another request, in bytes (llama.cpp
        /// `--cache-ram`, 8 GiB by default): a later prompt that continues one of them restores it
        /// into its slot instead of evaluating it again. 0: no such cache; nil: no limit.
        public var promptCacheBytes: Int?

        /// Options; every parameter is the property of the same name.
        public init(slots: Int = 4, queueLimit: Int = 64, promptChunk: Int = 512, promptCacheBytes: Int? = 8 << 30) {
            self.slots = slots
            self.queueLimit = queueLimit
            self.promptChunk = promptChunk
            self.promptCacheBytes = promptCacheBytes
        }
    }

    /// Counters since the engine was made.
    public struct Statistics: Sendable, Equatable {
        /// Slots in all.
        public var slots: Int
        /// Slots running a request.
        public var busySlots: Int
        /// Requests waiting for a slot.
        public var queued: Int
        /// Prompt tokens evaluated (not counting the reused ones).
        public var promptTokens: Int
        /// Tokens generated (sent as `.token` events).
        public var generatedTokens: Int
        /// Prompt tokens found in a slot's cache and not evaluated again (prefix cache hits).
        public var reusedTokens: Int
        /// Decode steps run.
        public var steps: Int
        /// Requests that ended: with a summary, an error, or cancelled by their consumer.
        public var finishedRequests: Int
        /// Submissions refused with `.busy`.
        public var rejectedRequests: Int
        /// Conversations held in the prompt cache (``Options/promptCacheBytes``).
        public var cachedPrompts: Int = 0
        /// Bytes of state the prompt cache holds.
        public var cachedPromptBytes: Int = 0
        /// Conversations restored from the prompt cache into a slot.
        public var restoredPrompts: Int = 0
    }

    /// The context the slots share; each slot is one of its sequences.
    public nonisolated let context: LlamaContext
    /// The options it was created with.
    public nonisolated let options: Options

    var slots: [Slot]
    private var promptCache: SlotPromptCache?
    private var queue: [SlotRequest] = []
    private var running = false
    private var accepting = true
    private var nextID = 0
    private var useClock = 0
    private var counters: Statistics
    private var stepWaiters: [CheckedContinuation<Statistics, Never>] = []
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    /// Per-step record for tests (nil: not kept).
    var trace: [SlotTraceStep]?

    /// `context` must have been made with `ContextOptions.maxSequences >= options.slots` (else .invalidArgument).
    public init(context: LlamaContext, options: Options = Options()) throws(LlamaError) {
        guard options.slots > 0 else { throw LlamaError(.invalidArgument, "slots must be positive, not \(options.slots)") }
        guard options.queueLimit >= 0 else {
            throw LlamaError(.invalidArgument, "queueLimit must not be negative, not \(options.queueLimit)")
        }
        if let bytes = options.promptCacheBytes, bytes < 0 {
            throw LlamaError(.invalidArgument, "promptCacheBytes must not be negative, not \(bytes) (nil: no limit)")
        }
        guard options.promptChunk > 0 else {
            throw LlamaError(.invalidArgument, "promptChunk must be positive, not \(options.promptChunk)")
        }
        guard context.maxSequences >= options.slots else {
            throw LlamaError(.invalidArgument, "\(options.slots) slots need a context with at least \(options.slots) "
                + "sequences; this one has \(context.maxSequences): create it with ContextOptions.maxSequences = \(options.slots)")
        }
        guard context.batchCapacity >= options.slots else {
            throw LlamaError(.invalidArgument, "\(options.slots) slots need a batch of at least \(options.slots) tokens; "
                + "the context's is \(context.batchCapacity): create it with a larger batchSize")
        }
        guard !context.computesEmbeddings else {
            throw LlamaError(.unsupported, "the context computes embeddings, not logits to generate from: create it "
                + "without embeddings for LlamaSlots")
        }
        self.context = context
        self.options = options
        slots = (0..<options.slots).map { Slot(sequence: Int32($0)) }
        promptCache = options.promptCacheBytes == 0 ? nil : SlotPromptCache(limit: options.promptCacheBytes)
        counters = Statistics(slots: options.slots, busySlots: 0, queued: 0, promptTokens: 0, generatedTokens: 0,
                              reusedTokens: 0, steps: 0, finishedRequests: 0, rejectedRequests: 0)
    }

    /// What the slots are doing: busy slots, queued requests, and tokens evaluated, generated and reused so far.
    public var statistics: Statistics {
        var s = counters
        s.busySlots = slots.count { $0.request != nil }
        s.queued = queue.count
        s.cachedPrompts = promptCache?.entries.count ?? 0
        s.cachedPromptBytes = promptCache?.bytes ?? 0
        return s
    }

    /// Waits until a step after step number `step` has run, or the engine has no work (then no
    /// step will come), and returns the statistics then. For watching the engine without
    /// sleeping: a step is the unit in which cancellations take effect.
    public func waitForStep(after step: Int) async -> Statistics {
        if counters.steps > step || !running { return statistics }
        return await withCheckedContinuation { stepWaiters.append($0) }
    }

    // MARK: Submitting

    /// Queues a request; events as LlamaContext.generate gives them (tokens with text, stop sequences honoured,
    /// `.finished(GenerationSummary)` with the stop reason and counts). Ending/cancelling the stream frees the
    /// slot within one step. Throws .busy when the queue is full.
    ///
    /// The stream ends when its consumer's task is cancelled (or the stream is otherwise
    /// terminated); the engine keeps the continuation, so merely dropping the iterator does not
    /// end it. The summary's `timeToFirstToken` counts from the submission (queueing included);
    /// `promptDuration` from the admission to a slot.
    public func submit(prompt: [LlamaToken], sampling: SamplerChain, options: GenerationOptions) throws(LlamaError)
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        try enqueue(prompt: prompt, media: nil, sampling: sampling, options: options)
    }

    /// Queues a request; `media` holds a multimodal prompt's media, `prompt` its placeholders (``SlotMedia``).
    func enqueue(prompt: [LlamaToken], media: SlotMedia?, sampling: SamplerChain, options: GenerationOptions)
        throws(LlamaError) -> AsyncThrowingStream<GenerationEvent, any Error> {
        let submitted = ContinuousClock.now
        guard accepting else {
            counters.rejectedRequests += 1
            throw LlamaError(.busy, "the engine is shutting down and admits no new requests: retry on another server")
        }
        guard !prompt.isEmpty else { throw LlamaError(.invalidArgument, "the prompt is empty") }
        guard options.maxTokens > 0 else {
            throw LlamaError(.invalidArgument, "maxTokens must be positive, not \(options.maxTokens)")
        }
        guard options.speculation == nil else {
            throw LlamaError(.unsupported, "LlamaSlots does not decode speculatively: leave speculation unset")
        }
        try options.checkProbabilities()
        guard prompt.count < context.sequenceLength else {
            throw LlamaError(.contextOverflow, "the prompt has \(prompt.count) tokens; a slot holds "
                + "\(context.capacityDescription): shorten the prompt or create the context with a larger contextLength")
        }
        let vocabCount = context.model.vocab.count
        if media == nil, let bad = prompt.first(where: { $0 < 0 || $0 >= vocabCount }) {
            throw LlamaError(.invalidArgument, "token \(bad) is not in the vocabulary (0..<\(vocabCount))")
        }
        let free = slots.count { $0.request == nil }
        guard queue.count - free < self.options.queueLimit else {
            counters.rejectedRequests += 1
            throw LlamaError(.busy, "all \(slots.count) slots are busy and \(queue.count - free) requests wait for one "
                + "(queueLimit \(self.options.queueLimit)): retry later")
        }
        let sampler = try options.format.constraining(sampling).make(for: context.model)
        let (stream, continuation) = AsyncThrowingStream<GenerationEvent, any Error>.makeStream()
        let cancelled = AbortFlag()
        continuation.onTermination = { _ in cancelled.raised.store(true, ordering: .relaxed) }
        let request = SlotRequest(
            id: nextID, prompt: prompt, options: options, sampler: SlotSampler(sampler), continuation: continuation,
            cancelled: cancelled, submitted: submitted,
            generation: GenerationOutput(options: options, vocab: context.model.vocab, sequenceLength: context.sequenceLength))
        request.media = media
        nextID += 1
        queue.append(request)
        if !running {
            running = true
            Task { await self.loop() }
        }
        return stream
    }

    /// Tokenizes a prompt as ``LlamaContext/generate(prompt:sampling:options:)`` does (with
    /// `options.addSpecial` and `options.parseSpecial`) and submits it.
    public func submit(text: String, sampling: SamplerChain, options: GenerationOptions) throws(LlamaError)
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        let tokens = try context.model.vocab.tokenize(text, addSpecial: options.addSpecial, parseSpecial: options.parseSpecial)
        return try submit(prompt: tokens, sampling: sampling, options: options)
    }

    // MARK: Shutting down

    /// Stops admitting, lets running requests end (or cancels them after `grace`).
    ///
    /// Requests still waiting for a slot end at once with a `.busy` error; new submissions are
    /// `.busy`. Requests cancelled at the end of the grace period end within one step with a
    /// `.finished` summary whose stop reason is `.cancelled`. Returns when every request has ended.
    public func shutdown(grace: Duration) async {
        accepting = false
        for request in queue {
            request.continuation.finish(throwing: LlamaError(.busy, "the engine shut down before the request got a slot"))
            counters.finishedRequests += 1
        }
        queue.removeAll()
        guard running else { return }
        let timer = Task {
            try? await Task.sleep(for: grace)
            if !Task.isCancelled { self.cancelRunning() }
        }
        await withCheckedContinuation { idleWaiters.append($0) }
        timer.cancel()
    }

    private func cancelRunning() {
        for slot in slots { slot.request?.forced = true }
    }

    // MARK: The loop

    private func loop() async {
        while true {
            sweep()
            await admit()
            await evaluateMedia()
            guard slots.contains(where: { $0.request != nil }) else {
                running = false
                let waiters = stepWaiters + [], idle = idleWaiters
                stepWaiters = []
                idleWaiters = []
                let now = statistics
                for w in waiters { w.resume(returning: now) }
                for w in idle { w.resume() }
                return
            }
            await step()
            counters.steps += 1
            let waiters = stepWaiters
            stepWaiters = []
            let now = statistics
            for w in waiters { w.resume(returning: now) }
        }
    }

    /// Ends requests whose consumer went away or that shutdown cancelled, and drops queued ones
    /// whose consumer went away.
    private func sweep() {
        for i in slots.indices {
            guard let request = slots[i].request else { continue }
            if request.cancelled.raised.load(ordering: .relaxed) {
                release(i)
            } else if request.forced {
                finish(i, .cancelled)
            }
        }
        queue.removeAll { request in
            guard request.cancelled.raised.load(ordering: .relaxed) else { return false }
            counters.finishedRequests += 1
            return true
        }
    }

    /// Gives free slots to queued requests: each takes the free slot whose cached tokens share
    /// the longest prefix with its prompt (the least recently used among equals); the rest of
    /// that sequence is removed, and at least one prompt token is left to evaluate (for logits).
    private func admit() async {
        var trims: [(sequence: Int32, keep: Int)] = []
        var admitted: [Int] = []
        while !queue.isEmpty {
            let free = slots.indices.filter { slots[$0].request == nil }
            guard !free.isEmpty else { break }
            let request = queue.removeFirst()
            var best = free[0], bestShared = -1
            for i in free {
                let shared = zip(slots[i].cached, request.prompt).prefix { $0 == $1 }.count
                if shared > bestShared || (shared == bestShared && slots[i].lastUsed < slots[best].lastUsed) {
                    best = i
                    bestShared = shared
                }
            }
            useClock += 1
            slots[best].lastUsed = useClock
            slots[best].request = request
            request.admitted = ContinuousClock.now
            if promptCache != nil { bestShared = await exchangeCached(slot: best, prompt: request.prompt, shared: bestShared) }
            trims.append((slots[best].sequence, request.keepable(min(bestShared, request.prompt.count - 1))))
            admitted.append(best)
        }
        guard !trims.isEmpty else { return }
        let kept = await context.trimSlotSequences(trims)
        for (i, keep) in zip(admitted, kept) {
            slots[i].cached = Array(slots[i].cached.prefix(keep))
            slots[i].request?.reused = keep
            counters.reusedTokens += keep
        }
    }

    /// The prompt cache's part in admitting a prompt to slot `i`, which shares `shared` tokens
    /// with it: restores a saved conversation that serves the prompt better than the slot's
    /// own content, and saves that content first when it is to be replaced or mostly discarded.
    /// Returns the tokens the slot now shares with the prompt.
    private func exchangeCached(slot i: Int, prompt: [LlamaToken], shared: Int) async -> Int {
        let held = slots[i].cached
        guard let cache = promptCache else { return shared }
        let replaced = cache.best(for: prompt, slotTokens: held, shared: shared) != nil
        if !held.isEmpty, !cache.contains(held),
           replaced || SlotPromptCache.shouldSave(slotTokens: held, shared: shared, promptCount: prompt.count) {
            let state = await context.state(sequence: slots[i].sequence)
            _ = promptCache?.insert(tokens: held, state: state)
        }
        guard let entry = promptCache?.take(for: prompt, slotTokens: held, shared: shared) else { return shared }
        do {
            try await context.restore(state: entry.state, into: slots[i].sequence)
        } catch {
            // The sequence is empty after a failed restore (restore(state:into:) empties it).
            slots[i].cached = []
            return 0
        }
        slots[i].cached = entry.tokens
        counters.restoredPrompts += 1
        return SlotPromptCache.sharedPrefix(entry.tokens, prompt)
    }

    /// One decode: the pending token of every generating slot, then prompt chunks of the slots
    /// still evaluating their prompt, in admission order, as far as the batch holds them. When
    /// the decode fails (a unified cache that is full, llama.cpp's error), every request in the
    /// batch ends with that error and its slot keeps what the cache still holds.
    private func step() async {
        var batch = LlamaBatch()
        var outputs: [SlotOutput] = []
        var outputSlots: [Int] = []
        var members: [(slot: Int, tokens: [LlamaToken])] = []
        for i in slots.indices {
            guard let request = slots[i].request, let token = request.pending else { continue }
            outputs.append(SlotOutput(batchIndex: Int32(batch.count), sampler: request.sampler, probabilities: request.options.probabilities))
            outputSlots.append(i)
            batch.add(token, position: Int32(slots[i].cached.count), sequences: [slots[i].sequence], output: true)
            members.append((i, [token]))
        }
        let capacity = context.batchCapacity
        let chunk = min(options.promptChunk, capacity)
        let prompting = slots.indices.filter { slots[$0].request.map { $0.pending == nil } ?? false }
            .sorted { slots[$0].lastUsed < slots[$1].lastUsed }
        for i in prompting {
            guard let request = slots[i].request, batch.count < capacity else { break }
            let start = slots[i].cached.count
            let end = min(request.textEnd(from: start), start + chunk, start + capacity - batch.count)
            let last = end == request.prompt.count
            if last {
                outputs.append(SlotOutput(batchIndex: Int32(batch.count + end - start - 1), sampler: request.sampler,
                                          probabilities: request.options.probabilities))
                outputSlots.append(i)
            }
            let tokens = Array(request.prompt[start..<end])
            batch.add(prompt: tokens, startingAt: Int32(start), sequence: slots[i].sequence, outputLast: last)
            members.append((i, tokens))
        }
        let result = await context.runSlotStep(batch, outputs: outputs)
        trace?.append(SlotTraceStep(entries: members.map { m in
            SlotTraceStep.Entry(request: slots[m.slot].request?.id ?? -1, sequence: slots[m.slot].sequence,
                                promptTokens: slots[m.slot].request?.pending == nil ? m.tokens.count : 0,
                                sampled: outputSlots.contains(m.slot))
        }))
        switch result {
        case .failed(let error):
            for (i, tokens) in members {
                let intended = slots[i].cached.count + tokens.count
                let held = await context.reconcileSlotSequence(slots[i].sequence, intended: intended)
                slots[i].cached = Array((slots[i].cached + tokens).prefix(held))
                fail(i, error)
            }
        case .decoded(let sampled):
            let now = ContinuousClock.now
            for (i, tokens) in members {
                slots[i].cached += tokens
                if let request = slots[i].request, request.pending == nil { counters.promptTokens += tokens.count }
            }
            for (i, result) in zip(outputSlots, sampled) {
                guard let request = slots[i].request else { continue }
                if request.promptDone == nil { request.promptDone = now }
                let token: LlamaToken
                let probabilities: TokenProbabilities?
                switch result {
                case .success(let sample):
                    token = sample.token
                    probabilities = sample.probabilities
                case .failure(let error):
                    fail(i, error)
                    continue
                }
                let outcome: (event: GenerationEvent?, stop: StopReason?)
                do throws(LlamaError) {
                    outcome = try request.generation.add(token, position: slots[i].cached.count)
                } catch {
                    fail(i, error)
                    continue
                }
                if let event = outcome.event {
                    if request.firstToken == nil { request.firstToken = now - request.submitted }
                    counters.generatedTokens += 1
                    if let probabilities { request.continuation.yield(.probabilities(probabilities)) }
                    request.continuation.yield(event)
                }
                if let stop = outcome.stop {
                    finish(i, stop)
                } else {
                    request.pending = token
                }
            }
        }
    }

    // MARK: Ending requests

    /// Frees a slot; its sequence keeps what the cache holds (``Slot/cached``), for the next prompt.
    private func release(_ i: Int) {
        guard let request = slots[i].request else { return }
        request.continuation.finish()
        slots[i].request = nil
        counters.finishedRequests += 1
    }

    func fail(_ i: Int, _ error: LlamaError) {
        slots[i].request?.continuation.finish(throwing: error)
        release(i)
    }

    private func finish(_ i: Int, _ reason: StopReason) {
        guard let request = slots[i].request else { return }
        if let tail = request.generation.tail(for: reason) { request.continuation.yield(.text(tail)) }
        let end = ContinuousClock.now
        let admitted = request.admitted ?? request.submitted
        let promptDone = request.promptDone ?? end
        request.continuation.yield(.finished(GenerationSummary(
            promptTokens: request.prompt.count, reusedPromptTokens: request.reused,
            generatedTokens: request.generation.generated, text: request.generation.text, stopReason: reason,
            promptDuration: promptDone - admitted, generationDuration: end - promptDone,
            timeToFirstToken: request.firstToken)))
        release(i)
    }
}

/// A slot: a sequence of the context, the tokens its cache holds from position 0, and the
/// request it runs.
struct Slot {
    let sequence: Int32
    var cached: [LlamaToken] = []
    var request: SlotRequest?
    /// When it was last given a request (the engine's admission count).
    var lastUsed = 0

    init(sequence: Int32) { self.sequence = sequence }
}

/// A request, from submission to its end; only the engine's actor touches it.
final class SlotRequest {
    let id: Int
    let prompt: [LlamaToken]
    let options: GenerationOptions
    let sampler: SlotSampler
    let continuation: AsyncThrowingStream<GenerationEvent, any Error>.Continuation
    /// Raised when the stream is terminated (its consumer cancelled or went away).
    let cancelled: AbortFlag
    let submitted: ContinuousClock.Instant
    var generation: GenerationOutput
    /// Shutdown's grace period ended: end with `.cancelled` at the next step.
    var forced = false
    var admitted: ContinuousClock.Instant?
    var promptDone: ContinuousClock.Instant?
    var firstToken: Duration?
    var reused = 0
    /// The token sampled last, to evaluate in the next step (nil while the prompt is evaluated).
    var pending: LlamaToken?
    /// A multimodal prompt's media (nil: a text prompt).
    var media: SlotMedia?

    init(id: Int, prompt: [LlamaToken], options: GenerationOptions, sampler: SlotSampler,
         continuation: AsyncThrowingStream<GenerationEvent, any Error>.Continuation, cancelled: AbortFlag,
         submitted: ContinuousClock.Instant, generation: GenerationOutput) {
        self.id = id
        self.prompt = prompt
        self.options = options
        self.sampler = sampler
        self.continuation = continuation
        self.cancelled = cancelled
        self.submitted = submitted
        self.generation = generation
    }
}

/// What one step held, for tests: per slot in the batch, the request (its submission number,
/// from 0), how many prompt tokens it evaluated, and whether a token was sampled for it.
struct SlotTraceStep: Sendable, Equatable {
    struct Entry: Sendable, Equatable {
        var request: Int
        var sequence: Int32
        var promptTokens: Int
        var sampled: Bool
    }
    var entries: [Entry]
}

extension LlamaSlots {
    /// Starts keeping a record of each step (tests).
    func startTrace() { trace = [] }
}
