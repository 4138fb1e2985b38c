import Foundation
import Llama
import LlamaTestSupport
import Testing

@Suite("Generation", .serialized)
struct GenerationTests {
    func nativeTokens(_ prompt: String, count: Int) async throws -> [LlamaToken] {
        let result = try await runProcess(try buildNativeReference(), [try TestEnvironment.libraryDirectory().path,
                                    try TestEnvironment.model().path, prompt, "\(count)", "2"])
        try #require(result.status == 0, "\(result.stderr)")
        let line = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("generated:") })
        return line.dropFirst("generated:".count).split(separator: " ").compactMap { LlamaToken($0) }
    }

    @Test("greedy generation equals the native C program, token for token")
    func greedyMatchesNative() async throws {
        let model = try Fixture.model.get()
        for prompt in ["The capital of France is", Fixture.chatPrompt] {
            var native = try await nativeTokens(prompt, count: 64)
            if let last = native.last, model.vocab.isEndOfGeneration(last) { native.removeLast() }
            let context = try Fixture.context()
            let summary = try await context.generate(prompt: prompt, options: GenerationOptions(maxTokens: 64)).summary()
            #expect(summary.generatedTokens == native)
            #expect(summary.generatedTokens.count > 8)
            #expect(try model.vocab.detokenize(summary.generatedTokens) == summary.text)
        }
    }

    @Test("four prompts in one batch give the tokens of four separate runs")
    func batchedPrompts() async throws {
        let model = try Fixture.model.get()
        let prompts = ["The capital of France is", "My favourite fruit is", "def fibonacci(n):", "Once upon a time"]
        let steps = 12
        var separate: [[LlamaToken]] = []
        for p in prompts {
            let context = try Fixture.context()
            var options = GenerationOptions(maxTokens: steps)
            options.stopAtEndOfGeneration = false
            separate.append(try await context.generate(prompt: p, options: options).summary().generatedTokens)
        }

        let context = try Fixture.context(ContextOptions(contextLength: 1024, batchSize: 512, maxSequences: 4, threads: 2))
        let tokenized = try prompts.map { try model.vocab.tokenize($0, addSpecial: true, parseSpecial: true) }
        var batch = LlamaBatch()
        for (s, tokens) in tokenized.enumerated() { batch.add(prompt: tokens, sequence: Int32(s)) }
        var positions = tokenized.map { Int32($0.count) }
        var together = [[LlamaToken]](repeating: [], count: prompts.count)
        for _ in 0..<steps {
            try await context.decode(batch)
            let outputs = batch.outputIndexes
            var next = LlamaBatch()
            for s in prompts.indices {
                let token = try await context.withLogits(at: outputs[s]) { logits in
                    LlamaToken(logits.indices.max { logits[$0] < logits[$1] }!)
                }
                together[s].append(token)
                next.add(token, position: positions[s], sequences: [Int32(s)], output: true)
                positions[s] += 1
            }
            batch = next
        }
        #expect(together == separate)
    }

    @Test("state saved after a prompt and restored into a fresh context continues identically")
    func stateRoundTrip() async throws {
        let model = try Fixture.model.get()
        let prompt = Fixture.chatPrompt
        let tokens = try model.vocab.tokenize(prompt, addSpecial: true, parseSpecial: true)
        let first = try Fixture.context()
        _ = try await first.generate(tokens: tokens, options: GenerationOptions(maxTokens: 1)).summary()
        let state = await first.state()
        let file = try TestEnvironment.temporaryDirectory().appendingPathComponent("state.bin")
        try await first.saveState(to: file, tokens: tokens)
        let expected = try await first.generate(tokens: tokens, options: GenerationOptions(maxTokens: 24)).summary()

        let fromMemory = try Fixture.context()
        try await fromMemory.restore(state: state, tokens: tokens)
        let a = try await fromMemory.generate(tokens: tokens, options: GenerationOptions(maxTokens: 24)).summary()
        #expect(a.reusedPromptTokens == tokens.count - 1)
        #expect(a.generatedTokens == expected.generatedTokens)

        let fromFile = try Fixture.context()
        #expect(try await fromFile.loadState(from: file) == tokens)
        let b = try await fromFile.generate(tokens: tokens, options: GenerationOptions(maxTokens: 24)).summary()
        #expect(b.reusedPromptTokens == tokens.count - 1)
        #expect(b.generatedTokens == expected.generatedTokens)

        let perSequence = try Fixture.context()
        try await perSequence.restore(state: await first.state(sequence: 0), into: 0, tokens: tokens + expected.generatedTokens.dropLast())
        let c = try await perSequence.generate(tokens: tokens, options: GenerationOptions(maxTokens: 24)).summary()
        #expect(c.generatedTokens == expected.generatedTokens)

        let sequenceFile = file.deletingLastPathComponent().appendingPathComponent("sequence.bin")
        try await first.saveState(sequence: 0, to: sequenceFile, tokens: tokens)
        let fromSequenceFile = try Fixture.context()
        #expect(try await fromSequenceFile.loadState(from: sequenceFile, into: 0) == tokens)
        let d = try await fromSequenceFile.generate(tokens: tokens, options: GenerationOptions(maxTokens: 24)).summary()
        #expect(d.generatedTokens == expected.generatedTokens)

        let unwritable = URL(fileURLWithPath: "/nonexistent-dir/state.bin")
        #expect(await expectLlamaError(.stateFailed) { try await first.saveState(to: unwritable, tokens: tokens) } != nil)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: file.deletingLastPathComponent().path)
        #expect(leftovers.sorted() == ["sequence.bin", "state.bin"], "no partial files")

        let bogus = try Fixture.context()
        let error = await expectLlamaError(.stateFailed) { try await bogus.restore(state: Data([1, 2, 3])) }
        #expect(error != nil)
    }

    @Test("a GBNF grammar that allows only digits yields only digits")
    func grammar() async throws {
        let context = try Fixture.context()
        let summary = try await context.generate(
            prompt: "The year the first moon landing happened was",
            sampling: SamplerChain([.grammar("root ::= [0-9]+"), .greedy]),
            options: GenerationOptions(maxTokens: 6)).summary()
        #expect(!summary.text.isEmpty)
        let digitsOnly = summary.text.allSatisfy { $0.isNumber }
        #expect(digitsOnly, "\(summary.text)")

        let bad = await expectLlamaError(.invalidGrammar) {
            try await context.generate(prompt: "x", sampling: SamplerChain([.grammar("root ::= [0-9"), .greedy])).summary()
        }
        #expect(bad != nil)
    }

    final class ForceToken: LlamaCustomSampler, @unchecked Sendable {
        let token: LlamaToken
        var applied = 0
        var accepted: [LlamaToken] = []
        init(_ token: LlamaToken) { self.token = token }
        var name: String { "force-token" }
        func apply(_ candidates: inout TokenCandidates) {
            applied += 1
            for i in 0..<candidates.count where candidates.token(at: i) != token {
                candidates.setLogit(-.infinity, at: i)
            }
        }
        func accept(_ token: LlamaToken) { accepted.append(token) }
    }

    @Test("a sampler written in Swift is called and its choice is honoured")
    func customSampler() async throws {
        let model = try Fixture.model.get()
        let forced = try model.vocab.tokenize(" banana", addSpecial: false).first!
        let sampler = ForceToken(forced)
        let context = try Fixture.context()
        var options = GenerationOptions(maxTokens: 5)
        options.stopAtEndOfGeneration = false
        let summary = try await context.generate(prompt: "The capital of France is",
                                                 sampling: SamplerChain([.custom(sampler), .greedy]),
                                                 options: options).summary()
        #expect(summary.generatedTokens == [LlamaToken](repeating: forced, count: 5))
        #expect(sampler.applied == 5)
        #expect(sampler.accepted == summary.generatedTokens)
    }

    /// Counts sampling steps, from any thread.
    final class StepCounter: LlamaCustomSampler, @unchecked Sendable {
        private let lock = NSLock()
        private var steps = 0
        var count: Int { lock.withLock { steps } }
        func apply(_ candidates: inout TokenCandidates) { lock.withLock { steps += 1 } }
    }

    @Test("cancelling the consumer stops generation within one token")
    func cancellation() async throws {
        let context = try Fixture.context(ContextOptions(contextLength: 2048, batchSize: 512, threads: 2))
        var options = GenerationOptions(maxTokens: 1500)
        options.stopAtEndOfGeneration = false
        let counter = StepCounter()
        let stream = context.generate(prompt: "Count from one to a thousand: one, two, three,",
                                      sampling: SamplerChain([.custom(counter), .greedy]), options: options)
        let consumer = Task { () -> Int in
            var seen = 0
            var atCancel = -1
            // The consuming task is cancelled; its loop then ends, and so does generation.
            for try await event in stream {
                if case .token = event {
                    seen += 1
                    if seen == 5 {
                        atCancel = counter.count
                        withUnsafeCurrentTask { $0?.cancel() }
                    }
                }
            }
            return atCancel
        }
        let sampledAtCancel = try await consumer.value
        try #require(sampledAtCancel >= 5)
        _ = await context.positions()  // the context is free again once generation has stopped
        #expect(counter.count - sampledAtCancel <= 1, "generation went on for \(counter.count - sampledAtCancel) tokens")
        #expect(counter.count < 1500)

        // Leaving the loop releases the stream, which cancels generation too. The producer runs
        // beside the consumer, so the token in flight when the loop breaks may still finish.
        let second = StepCounter()
        var atBreak = 0
        var seen = 0
        for try await event in context.generate(prompt: "Count from one to a thousand: one, two, three,",
                                                sampling: SamplerChain([.custom(second), .greedy]), options: options) {
            if case .token = event {
                seen += 1
                if seen == 5 {
                    atBreak = second.count
                    break
                }
            }
        }
        _ = await context.positions()
        #expect(second.count - atBreak <= 2, "generation went on for \(second.count - atBreak) tokens after the loop ended")
    }

    @Test("stop sequences end generation and are not part of the text")
    func stopSequences() async throws {
        let context = try Fixture.context()
        let full = try await context.generate(prompt: "The capital of France is", options: GenerationOptions(maxTokens: 32)).summary()
        let words = full.text.split(separator: " ")
        try #require(words.count > 3)
        let stop = " " + words[2]
        let stopped = try await context.generate(prompt: "The capital of France is",
                                                 options: GenerationOptions(maxTokens: 32, stopSequences: [String(stop)])).summary()
        #expect(stopped.stopReason == .stopSequence(String(stop)))
        #expect(full.text.hasPrefix(stopped.text))
        #expect(!stopped.text.contains(stop))
    }

    @Test("bad input is a typed error")
    func badInput() async throws {
        let model = try Fixture.model.get()
        let small = try Fixture.context(ContextOptions(contextLength: 64, batchSize: 64, threads: 2))
        let long = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 40)
        #expect(await expectLlamaError(.contextOverflow) { try await small.generate(prompt: long).summary() } != nil)
        #expect(await expectLlamaError(.invalidArgument) { try await small.generate(prompt: "x", options: GenerationOptions(maxTokens: 0)).summary() } != nil)
        #expect(await expectLlamaError(.invalidArgument) { try await small.generate(prompt: "x", sampling: SamplerChain([.topK(0)])).summary() } != nil)
        #expect(await expectLlamaError(.invalidArgument) { try await small.generate(prompt: "x", sampling: SamplerChain([.topP(1.5)])).summary() } != nil)
        #expect(await expectLlamaError(.invalidArgument) { try LlamaContext(model: model, options: ContextOptions(contextLength: 0)) } != nil)
        #expect(await expectLlamaError(.invalidArgument) { try LlamaContext(model: model, options: ContextOptions(threads: -1)) } != nil)
        #expect(await expectLlamaError(.invalidUTF8) { try model.vocab.tokenize(bytes: [0x41, 0xFF, 0xFE]) } != nil)
        #expect(await expectLlamaError(.invalidArgument) { try model.vocab.detokenize([-5]) } != nil)
        var batch = LlamaBatch()
        batch.add(1, position: 0, sequences: [7])
        #expect(await expectLlamaError(.invalidArgument) { try await small.decode(batch) } != nil)
        #expect(await expectLlamaError(.invalidArgument) { try await small.decode(LlamaBatch()) } != nil)
    }
}
