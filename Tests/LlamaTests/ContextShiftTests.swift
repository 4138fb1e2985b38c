import Foundation
import Llama
import LlamaTestSupport
import Testing

/// Generation past the context window: llama.cpp's context shift, against a C program doing the
/// same shift on the same libraries.
@Suite("Context shift", .timeLimit(.minutes(10)))
struct ContextShiftTests {
    static let prompt = "Once upon a time, there was a little robot who"

    @Test("greedy generation of 3x a 256-token window with --keep 4 is token-identical to the native shift, and the cache stays consistent")
    func threeWindows() async throws {
        let program = try await ShiftNative.build()
        let keep = 4
        let model = try Fixture.model.get()
        let promptTokens = try model.vocab.tokenize(Self.prompt, addSpecial: true, parseSpecial: true)
        // llama.cpp's --keep counts prompt tokens after the BOS token, which stays too.
        let nativeKeep = keep + (promptTokens.first == model.vocab.bos ? 1 : 0)
        let native = try await ShiftNative.run(program, [
            "shift", try TestEnvironment.libraryDirectory().path, try TestEnvironment.model().path, Self.prompt,
            "256", "768", "\(nativeKeep)", "2",
        ])

        let context = try Fixture.context(ContextOptions(contextLength: 256, batchSize: 256, threads: 2))
        #expect(context.sequenceLength == 256)
        var options = GenerationOptions(maxTokens: 768)
        options.stopAtEndOfGeneration = false
        options.contextShift = .on(keep: keep)
        let summary = try await context.generate(prompt: Self.prompt, options: options).summary()

        #expect(summary.stopReason == .maxTokens)
        #expect(summary.generatedTokens.count == 768)
        #expect(summary.generatedTokens == (try ShiftNative.tokens(native["generated"])))
        let nativeShifts = try #require(native["shifts"].flatMap { Int($0) })
        #expect(summary.contextShifts == nativeShifts)
        #expect(summary.contextShifts >= 5)
        // The cache holds positions 0...pos_max with no gap, as the native run's does, and the
        // record of cached tokens matches it: the kept prompt tokens first.
        let nativeMax = try #require(native["pos_max"].flatMap { Int32($0) })
        #expect(await context.positions(sequence: 0) == 0...nativeMax)
        let cached = try #require(await context.cachedTokens)
        #expect(cached.count == Int(nativeMax) + 1)
        #expect(Array(cached.prefix(nativeKeep)) == Array(promptTokens.prefix(nativeKeep)))
        #expect(Array(cached.suffix(8)) == Array(summary.generatedTokens.dropLast().suffix(8)))

        // The context goes on: the next generation reuses the kept prefix, not the shifted rest.
        let next = try await context.generate(prompt: Self.prompt, options: GenerationOptions(maxTokens: 4)).summary()
        #expect(next.reusedPromptTokens == nativeKeep)
    }

    @Test("with shifting off the generation ends with .contextFull and says why")
    func off() async throws {
        let context = try Fixture.context(ContextOptions(contextLength: 256, batchSize: 256, threads: 2))
        var options = GenerationOptions(maxTokens: 600)
        options.stopAtEndOfGeneration = false
        let summary = try await context.generate(prompt: Self.prompt, options: options).summary()
        #expect(summary.stopReason == .contextFull)
        #expect(summary.contextShifts == 0)
        #expect(summary.contextFullReason?.contains("context shift is off") == true, "\(String(describing: summary.contextFullReason))")
        let promptCount = try Fixture.model.get().vocab.tokenize(Self.prompt, addSpecial: true, parseSpecial: true).count
        #expect(promptCount + summary.generatedTokens.count == 256)
    }

    @Test("keep -1 keeps the whole prompt; the kept count follows llama.cpp (BOS added, at most the window less 4)")
    func keepWholePrompt() async throws {
        let context = try Fixture.context(ContextOptions(contextLength: 256, batchSize: 256, threads: 2))
        var options = GenerationOptions(maxTokens: 270)
        options.stopAtEndOfGeneration = false
        options.contextShift = .on(keep: -1)
        let summary = try await context.generate(prompt: Self.prompt, options: options).summary()
        #expect(summary.generatedTokens.count == 270)
        #expect(summary.contextShifts >= 1)
        let prompt = try Fixture.model.get().vocab.tokenize(Self.prompt, addSpecial: true, parseSpecial: true)
        let cached = try #require(await context.cachedTokens)
        #expect(Array(cached.prefix(prompt.count)) == prompt)
        #expect(await context.positions(sequence: 0) == 0...Int32(cached.count - 1))
    }

    @Test("a chat session outlives its window: the reply shifts, and the next turn leaves the oldest turns out of the prompt")
    func chat() async throws {
        let session = try ChatSession(model: try Fixture.model.get(), systemPrompt: "You are a storyteller.",
                                      options: ContextOptions(contextLength: 256, batchSize: 256, threads: 2))
        var options = GenerationOptions(maxTokens: 300)
        options.stopAtEndOfGeneration = false
        options.contextShift = .on(keep: 0)
        let first = try await session.respond(to: "Tell me a very long story about the sea.", options: options).summary()
        #expect(first.generatedTokens.count == 300)
        #expect(first.contextShifts >= 1)
        // Without shifting, the conversation no longer fits: a typed error.
        let overflow = await caughtLlamaError {
            try await session.respond(to: "And then?", options: GenerationOptions(maxTokens: 8)).summary()
        }
        #expect(overflow?.code == .contextOverflow, "\(String(describing: overflow))")
        var next = GenerationOptions(maxTokens: 16)
        next.contextShift = .on(keep: 0)
        let second = try await session.respond(to: "What happened next?", options: next).summary()
        #expect(!second.generatedTokens.isEmpty)
        #expect(second.promptTokens <= 128)
        let messages = await session.messages
        #expect(messages.first?.role == "system" && messages.count == 7)
    }
}
