import Foundation
@testable import Llama
import LlamaTestSupport
import Testing

/// What a consumer saw of one stream.
struct SlotOutcome: Sendable {
    var streamedText = ""
    var tokens: [LlamaToken] = []
    var summary: GenerationSummary?
    var error: LlamaError?
    var otherError: String?
    var probabilities: [TokenProbabilities] = []
}

@Suite("parallel slots", .serialized, .timeLimit(.minutes(10)))
struct SlotsTests {
    static let prompts = [
        "Write a haiku about the sea.", "What is the capital of France?", "Name three primary colours.",
        "Explain photosynthesis in one sentence.", "Give me a JSON object describing a cat.", "Count from one to ten.",
        "What is two plus two?", "Describe a rainy day in Paris.",
    ].map { "<|im_start|>user\n\($0)<|im_end|>\n<|im_start|>assistant\n" }

    static func tokens(_ prompt: String) throws -> [LlamaToken] {
        try Fixture.model.get().vocab.tokenize(prompt, addSpecial: true, parseSpecial: true)
    }

    /// A context for `slots` sequences of 512 tokens each (the solo context's window).
    static func engine(slots: Int, queueLimit: Int = 64, promptChunk: Int = 512,
                       promptCacheBytes: Int? = 8 << 30) throws -> LlamaSlots {
        let context = try Fixture.context(ContextOptions(contextLength: UInt32(512 * slots), batchSize: 512,
                                                         maxSequences: UInt32(slots), threads: 2))
        return try LlamaSlots(context: context, options: .init(slots: slots, queueLimit: queueLimit, promptChunk: promptChunk,
                                                               promptCacheBytes: promptCacheBytes))
    }

    /// Greedy generation of each prompt alone, on a fresh cache each time.
    static func solo(_ prompts: [[LlamaToken]], options: [GenerationOptions]) async throws -> [GenerationSummary] {
        let context = try Fixture.context()
        var results: [GenerationSummary] = []
        for (prompt, options) in zip(prompts, options) {
            await context.clearMemory()
            results.append(try await context.generate(tokens: prompt, options: options).summary())
        }
        return results
    }

    static func collect(_ stream: AsyncThrowingStream<GenerationEvent, any Error>) async -> SlotOutcome {
        var outcome = SlotOutcome()
        do {
            for try await event in stream {
                switch event {
                case .token(let token, let text):
                    outcome.tokens.append(token)
                    outcome.streamedText += text
                case .text(let text): outcome.streamedText += text
                case .probabilities(let p): outcome.probabilities.append(p)
                case .finished(let summary): outcome.summary = summary
                }
            }
        } catch let error as LlamaError {
            outcome.error = error
        } catch {
            outcome.otherError = "\(error)"
        }
        return outcome
    }

    /// Waits, step by step (at most `steps` of them), until `done` holds for the statistics.
    static func waitUntil(_ engine: LlamaSlots, steps: Int = 400,
                          _ done: (LlamaSlots.Statistics) -> Bool) async -> LlamaSlots.Statistics {
        var stats = await engine.statistics
        for _ in 0..<steps where !done(stats) {
            stats = await engine.waitForStep(after: stats.steps)
        }
        return stats
    }

    static func long(_ maxTokens: Int) -> GenerationOptions {
        var options = GenerationOptions(maxTokens: maxTokens)
        options.stopAtEndOfGeneration = false
        return options
    }

    @Test("8 concurrent greedy requests on 4 slots (2 with a JSON grammar) each equal their solo generation")
    func concurrentEqualsSolo() async throws {
        let prompts = try Self.prompts.map(Self.tokens)
        let options = prompts.indices.map { i in
            // Free text runs the whole 48 tokens (past an end of generation); JSON ends with its value.
            var o = Self.long(48)
            if i == 4 || i == 6 {
                o.format = .json
                o.stopAtEndOfGeneration = true
            }
            return o
        }
        let expected = try await Self.solo(prompts, options: options)
        let engine = try Self.engine(slots: 4)
        var streams: [AsyncThrowingStream<GenerationEvent, any Error>] = []
        for (p, o) in zip(prompts, options) { streams.append(try await engine.submit(prompt: p, sampling: .greedy, options: o)) }
        let outcomes = await withTaskGroup(of: (Int, SlotOutcome).self) { group in
            for (i, s) in streams.enumerated() { group.addTask { (i, await Self.collect(s)) } }
            var all = [SlotOutcome](repeating: SlotOutcome(), count: streams.count)
            for await (i, o) in group { all[i] = o }
            return all
        }
        var agreeing = 0
        for (i, outcome) in outcomes.enumerated() {
            let summary = try #require(outcome.summary, "request \(i): \(outcome.error.map { "\($0)" } ?? outcome.otherError ?? "no summary")")
            #expect(summary.generatedTokens == expected[i].generatedTokens, "request \(i)")
            #expect(summary.text == expected[i].text, "request \(i)")
            #expect(summary.stopReason == expected[i].stopReason, "request \(i)")
            #expect(outcome.streamedText == summary.text)
            #expect(outcome.tokens == summary.generatedTokens)
            if summary.generatedTokens == expected[i].generatedTokens { agreeing += 1 }
        }
        #expect(agreeing == 8)
        let counts = expected.map(\.generatedTokens.count)
        #expect(counts.filter { $0 == 48 }.count >= 6 && counts.allSatisfy { $0 > 4 }, "solo token counts \(counts)")
        let stats = await Self.waitUntil(engine) { $0.busySlots == 0 }
        #expect(stats.busySlots == 0 && stats.queued == 0 && stats.finishedRequests == 8)
        #expect(stats.generatedTokens == expected.map(\.generatedTokens.count).reduce(0, +))
        // Fewer steps than running the requests one after another.
        #expect(stats.steps < expected.map { $0.generatedTokens.count + 1 }.reduce(0, +))
    }

    @Test("one slot, requests one after another: each equals its solo generation")
    func oneSlotEqualsSolo() async throws {
        let prompts = try Self.prompts.prefix(3).map(Self.tokens)
        let options = [GenerationOptions](repeating: GenerationOptions(maxTokens: 48), count: prompts.count)
        let expected = try await Self.solo(prompts, options: options)
        let engine = try Self.engine(slots: 1)
        for (i, p) in prompts.enumerated() {
            let outcome = await Self.collect(try await engine.submit(prompt: p, sampling: .greedy, options: options[i]))
            let summary = try #require(outcome.summary, "\(outcome.error.map { "\($0)" } ?? outcome.otherError ?? "no summary")")
            #expect(summary.generatedTokens == expected[i].generatedTokens, "request \(i)")
            #expect(summary.text == expected[i].text)
        }
    }

    @Test("log-probabilities: one per generated token, the greedy token first among its alternatives, equal to the single-sequence path's")
    func probabilities() async throws {
        let prompt = try Self.tokens(Self.prompts[2])
        var options = GenerationOptions(maxTokens: 12)
        options.probabilities = 4
        // The single-sequence path.
        let context = try Fixture.context()
        await context.clearMemory()
        var solo: [TokenProbabilities] = []
        var soloTokens: [LlamaToken] = []
        for try await event in await context.generate(tokens: prompt, options: options) {
            if case .probabilities(let p) = event { solo.append(p) }
            if case .token(let t, _) = event { soloTokens.append(t) }
        }
        let engine = try Self.engine(slots: 2)
        let outcome = await Self.collect(try await engine.submit(prompt: prompt, sampling: .greedy, options: options))
        #expect(outcome.tokens == soloTokens)
        #expect(outcome.probabilities.count == outcome.tokens.count && outcome.tokens.count == 12)
        #expect(outcome.probabilities.map(\.token) == outcome.tokens)
        for p in outcome.probabilities {
            #expect(p.top.count == 4 && p.top.first?.token == p.token && p.top.first?.logprob == p.logprob, "\(p)")
            #expect(p.logprob <= 0 && p.top.map(\.logprob) == p.top.map(\.logprob).sorted(by: >))
        }
        // One sequence in the batch, the same logits: the same figures (within float noise of the summation order).
        #expect(zip(outcome.probabilities, solo).allSatisfy { abs($0.logprob - $1.logprob) < 1e-4 && $0.top.map(\.token) == $1.top.map(\.token) })
        var bad = options
        bad.probabilities = TokenProbabilities.maxAlternatives + 1
        await #expect(throws: LlamaError.self) { _ = try await engine.submit(prompt: prompt, sampling: .greedy, options: bad) }
    }

    @Test("a long prompt admitted while another slot generates is evaluated in chunks, the other slot sampling between them")
    func longPromptInterleaves() async throws {
        let engine = try Self.engine(slots: 2, promptChunk: 16)
        await engine.startTrace()
        let short = try Self.tokens(Self.prompts[0])
        let longText = "<|im_start|>user\n" + String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 8)
            + "Summarise this.<|im_end|>\n<|im_start|>assistant\n"
        let long = try Self.tokens(longText)
        try #require(long.count > 3 * 16)

        let first = try await engine.submit(prompt: short, sampling: .greedy, options: Self.long(200))
        var iterator = first.makeAsyncIterator()
        var firstTokens = 0
        while firstTokens == 0, let event = try await iterator.next() {
            if case .token = event { firstTokens += 1 }
        }
        try #require(firstTokens == 1)
        let second = try await engine.submit(prompt: long, sampling: .greedy, options: GenerationOptions(maxTokens: 8))
        async let longOutcome = Self.collect(second)
        var rest = SlotOutcome()
        do {
            while let event = try await iterator.next() {
                if case .finished(let summary) = event { rest.summary = summary }
            }
        } catch { rest.otherError = "\(error)" }
        let longResult = await longOutcome
        let shortSummary = try #require(rest.summary, "\(rest.otherError ?? "no summary")")
        let longSummary = try #require(longResult.summary, "\(longResult.error.map { "\($0)" } ?? longResult.otherError ?? "no summary")")
        #expect(shortSummary.stopReason == .maxTokens && shortSummary.generatedTokens.count == 200)
        #expect(!longSummary.generatedTokens.isEmpty)

        let trace = try #require(await engine.trace)
        let longSteps = trace.filter { $0.entries.contains { $0.request == 1 && $0.promptTokens > 0 } }
        #expect(longSteps.count == (long.count + 15) / 16)
        #expect(longSteps.allSatisfy { $0.entries.contains { $0.request == 1 && $0.promptTokens <= 16 } })
        // In every step that evaluated a chunk of the long prompt, the first request sampled a token.
        #expect(longSteps.allSatisfy { $0.entries.contains { $0.request == 0 && $0.sampled && $0.promptTokens == 0 } })
        let stats = await Self.waitUntil(engine) { $0.busySlots == 0 }
        #expect(stats.promptTokens == short.count + long.count)
    }

    @Test("a cancelled stream frees its slot within one step; the next request on that slot equals solo")
    func cancelFreesSlot() async throws {
        let engine = try Self.engine(slots: 1)
        let stream = try await engine.submit(prompt: try Self.tokens(Self.prompts[1]), sampling: .greedy, options: Self.long(400))
        let consumer = Task { await Self.collect(stream) }
        let running = await Self.waitUntil(engine) { $0.generatedTokens >= 3 }
        #expect(running.busySlots == 1 && running.generatedTokens >= 3)
        consumer.cancel()
        let cancelled = await consumer.value
        #expect(cancelled.summary == nil && cancelled.tokens.count < 400)
        let before = await engine.statistics.steps
        let after = await Self.waitUntil(engine, steps: 3) { $0.busySlots == 0 }
        #expect(after.busySlots == 0)
        #expect(after.steps <= before + 1, "freed after \(after.steps - before) steps")
        #expect(after.finishedRequests == 1)

        let prompt = try Self.tokens(Self.prompts[2])
        let expected = try await Self.solo([prompt], options: [GenerationOptions(maxTokens: 48)])[0]
        let next = await Self.collect(try await engine.submit(prompt: prompt, sampling: .greedy, options: GenerationOptions(maxTokens: 48)))
        let summary = try #require(next.summary)
        #expect(summary.generatedTokens == expected.generatedTokens)
    }

    @Test("a full queue refuses a request with .busy; a cancelled queued request leaves the queue")
    func queueFull() async throws {
        let engine = try Self.engine(slots: 1, queueLimit: 1)
        let prompt = try Self.tokens(Self.prompts[3])
        let a = try await engine.submit(prompt: prompt, sampling: .greedy, options: Self.long(300))
        let b = try await engine.submit(prompt: prompt, sampling: .greedy, options: GenerationOptions(maxTokens: 4))
        let error = await expectLlamaError(.busy) {
            try await engine.submit(prompt: prompt, sampling: .greedy, options: GenerationOptions(maxTokens: 4))
        }
        #expect(error != nil)
        let stats = await engine.statistics
        #expect(stats.rejectedRequests == 1 && stats.queued + stats.busySlots == 2)

        let consumerA = Task { await Self.collect(a) }
        let consumerB = Task { await Self.collect(b) }
        let running = await Self.waitUntil(engine) { $0.busySlots == 1 && $0.queued == 1 }
        #expect(running.busySlots == 1 && running.queued == 1)
        consumerB.cancel()
        #expect(await consumerB.value.summary == nil)
        let dropped = await Self.waitUntil(engine, steps: 3) { $0.queued == 0 }
        #expect(dropped.queued == 0 && dropped.busySlots == 1 && dropped.finishedRequests == 1)

        let c = try await engine.submit(prompt: prompt, sampling: .greedy, options: GenerationOptions(maxTokens: 4))
        consumerA.cancel()
        #expect(await consumerA.value.summary == nil)
        let outcomeC = await Self.collect(c)
        #expect(outcomeC.summary?.generatedTokens.count == 4)
        // The prompt is the one the cancelled request left in the slot's cache.
        #expect(outcomeC.summary?.reusedPromptTokens == prompt.count - 1)
    }

    @Test("the same prompt twice on one slot reuses the cached prompt and gives the same text")
    func prefixCache() async throws {
        let engine = try Self.engine(slots: 1)
        let prompt = try Self.tokens(Self.prompts[0])
        let first = try #require(await Self.collect(try await engine.submit(prompt: prompt, sampling: .greedy,
                                                                            options: GenerationOptions(maxTokens: 32))).summary)
        let second = try #require(await Self.collect(try await engine.submit(prompt: prompt, sampling: .greedy,
                                                                             options: GenerationOptions(maxTokens: 32))).summary)
        #expect(first.reusedPromptTokens == 0)
        #expect(second.reusedPromptTokens >= prompt.count - 1)
        #expect(second.generatedTokens == first.generatedTokens && second.text == first.text)
        let stats = await engine.statistics
        #expect(stats.reusedTokens == second.reusedPromptTokens)
        #expect(stats.promptTokens == prompt.count + (prompt.count - second.reusedPromptTokens))
    }

    @Test("prompt cache: a conversation the only slot gave up is restored when its next turn comes, and the text equals solo",
          arguments: [8 << 30, 0, 1])
    func promptCacheRestores(limit: Int) async throws {
        let engine = try Self.engine(slots: 1, promptCacheBytes: limit)
        let first = try Self.tokens(Self.prompts[0])
        let a = try #require(await Self.collect(try await engine.submit(prompt: first, sampling: .greedy,
                                                                        options: Self.long(24))).summary)
        // An unrelated request takes the slot: the first conversation leaves the cache.
        _ = try #require(await Self.collect(try await engine.submit(prompt: try Self.tokens(Self.prompts[1]), sampling: .greedy,
                                                                    options: GenerationOptions(maxTokens: 8))).summary)
        let held = await engine.statistics
        // The first conversation's next turn: its prompt, the answer, and a new question.
        let next = first + a.generatedTokens + (try Self.tokens("<|im_end|>\n<|im_start|>user\nAnd another one?<|im_end|>\n"
            + "<|im_start|>assistant\n").dropFirst(Fixture.model.get().vocab.addsBOS ? 1 : 0))
        let options = GenerationOptions(maxTokens: 24)
        let c = try #require(await Self.collect(try await engine.submit(prompt: next, sampling: .greedy, options: options)).summary)
        let solo = try #require(try await Self.solo([next], options: [options]).first)
        #expect(c.generatedTokens == solo.generatedTokens && c.text == solo.text)
        let stats = await engine.statistics
        if limit == 8 << 30 {
            // What the cache holds: the first conversation (prompt and the answer's evaluated tokens).
            #expect(held.cachedPrompts == 1 && held.cachedPromptBytes > 0)
            #expect(stats.restoredPrompts == 1)
            #expect(c.reusedPromptTokens == first.count + a.generatedTokens.count - 1)
        } else {
            // Off, or a limit no state fits: nothing kept, only the shared chat prefix reused.
            #expect(held.cachedPrompts == 0 && held.cachedPromptBytes == 0 && stats.restoredPrompts == 0)
            #expect(c.reusedPromptTokens < first.count / 2)
        }
    }

    @Test("shutdown with running and queued requests: every stream ends, within the bound")
    func shutdownEndsStreams() async throws {
        let engine = try Self.engine(slots: 2)
        var streams: [AsyncThrowingStream<GenerationEvent, any Error>] = []
        for p in Self.prompts.prefix(3) {
            streams.append(try await engine.submit(prompt: try Self.tokens(p), sampling: .greedy, options: Self.long(400)))
        }
        let consumers = streams.map { s in Task { await Self.collect(s) } }
        let running = await Self.waitUntil(engine) { $0.generatedTokens >= 4 }
        #expect(running.busySlots == 2 && running.queued == 1)
        let shutdown = Task { await engine.shutdown(grace: .milliseconds(100)) }
        let ended = await withTaskGroup(of: Bool.self) { group in
            group.addTask { await shutdown.value; return true }
            group.addTask { try? await Task.sleep(for: .seconds(60)); return false }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
        #expect(ended, "shutdown did not return within 60 s")
        var outcomes: [SlotOutcome] = []
        for c in consumers { outcomes.append(await c.value) }
        for o in outcomes.prefix(2) {
            let summary = try #require(o.summary, "a running request ended without a summary: \(o.error.map { "\($0)" } ?? o.otherError ?? "")")
            #expect(summary.stopReason == .cancelled)
            #expect(summary.generatedTokens.count < 400)
        }
        #expect(outcomes[2].error?.code == .busy)
        let after = await engine.statistics
        #expect(after.busySlots == 0 && after.queued == 0 && after.finishedRequests == 3)
        let refused = await expectLlamaError(.busy) {
            try await engine.submit(prompt: try Self.tokens(Self.prompts[0]), sampling: .greedy, options: GenerationOptions())
        }
        #expect(refused != nil)
    }

    @Test("a context with fewer sequences than slots is refused; bad requests throw before queueing")
    func invalidArguments() async throws {
        let context = try Fixture.context()
        let error = await expectLlamaError(.invalidArgument) { try LlamaSlots(context: context, options: .init(slots: 2)) }
        #expect(error != nil)
        let engine = try Self.engine(slots: 1)
        #expect(await expectLlamaError(.invalidArgument) {
            try await engine.submit(prompt: [], sampling: .greedy, options: GenerationOptions())
        } != nil)
        #expect(await expectLlamaError(.contextOverflow) {
            try await engine.submit(prompt: [LlamaToken](repeating: 1, count: 600), sampling: .greedy, options: GenerationOptions())
        } != nil)
        #expect(await expectLlamaError(.invalidArgument) {
            try await engine.submit(prompt: [1, -5], sampling: .greedy, options: GenerationOptions())
        } != nil)
        #expect(await expectLlamaError(.invalidGrammar) {
            var options = GenerationOptions()
            options.format = .grammar("root ::= (")
            return try await engine.submit(prompt: [1, 2], sampling: .greedy, options: options)
        } != nil)
        #expect(await engine.statistics.queued == 0)
    }
}
