import Foundation
@testable import Llama
import LlamaTestSupport
import Testing

@Suite("Speculative decoding", .serialized)
struct SpeculativeTests {
    static let paragraph = """
        The old lighthouse stood at the edge of the cliff for more than two hundred years. Every night its keeper \
        climbed the narrow stairs, lit the great lamp and watched the ships pass safely through the dark water. \
        When the keeper grew old, his daughter took his place, and she kept the light burning through every storm.
        """
    /// Three prompts: a rewrite (repeats its input), an open question, a list.
    static let prompts = [
        "<|im_start|>user\nRewrite this paragraph, changing only \"lighthouse\" to \"tower\":\n\n\(paragraph)<|im_end|>\n<|im_start|>assistant\n",
        Fixture.chatPrompt,
        "<|im_start|>user\nExplain how a bicycle works, step by step.<|im_end|>\n<|im_start|>assistant\n",
    ]

    /// A 256-token window: llama.cpp's CPU backend computes a batch's rows exactly as it computes
    /// single tokens while the cache view is under 512 cells (past that, flash attention splits a
    /// single token's cache across threads and rounds differently: a near tie may flip, see the
    /// DocC article). Long generations go through context shifts instead.
    static let window = ContextOptions(contextLength: 256, batchSize: 256, threads: 2)

    /// Generates `count` tokens (end-of-generation tokens included, so every run is that long),
    /// shifting the context when the window fills.
    func generate(_ prompt: String, count: Int, sampling: SamplerChain = .greedy, speculation: Speculation? = nil,
                  context: LlamaContext? = nil, shift: ContextShift = .on(keep: 0)) async throws -> GenerationSummary {
        let context = try context ?? Fixture.context(Self.window)
        var options = GenerationOptions(maxTokens: count)
        options.stopAtEndOfGeneration = false
        options.contextShift = shift
        options.speculation = speculation
        return try await context.generate(prompt: prompt, sampling: sampling, options: options).summary()
    }

    @Test("SmolLM2 drafting for itself: greedy output identical to plain generation, nearly every guess accepted")
    func selfDraft() async throws {
        let model = try Fixture.model.get()
        for prompt in Self.prompts {
            let plain = try await generate(prompt, count: 300)
            let speculative = try await generate(prompt, count: 300, speculation: .draft(model: model, maxDraft: 8, pMin: 0))
            #expect(plain.contextShifts > 0)
            #expect(speculative.contextShifts == plain.contextShifts)
            #expect(speculative.generatedTokens == plain.generatedTokens)
            #expect(speculative.text == plain.text)
            #expect(plain.speculation == nil)
            let stats = try #require(speculative.speculation)
            #expect(stats.draftedTokens > 250, "\(stats)")
            // After a shift the draft re-evaluates what the target moved (RoPE-shifted keys round
            // differently), so a few guesses fail past the first shift.
            #expect(stats.acceptanceRate > 0.8, "\(stats)")
            // Fewer target decodes than tokens: each verification yields the accepted guesses plus one.
            #expect(stats.decodes < 80, "\(stats)")
        }
        // Within the window, no shift: the draft computes exactly what the target computes.
        let short = try await generate(Self.prompts[0], count: 120, speculation: .draft(model: model, maxDraft: 8, pMin: 0))
        let stats = try #require(short.speculation)
        #expect(short.contextShifts == 0)
        #expect(stats.acceptedTokens == stats.draftedTokens, "\(stats)")
    }

    @Test("prompt lookup: greedy output identical to plain generation; the rewrite accepts most of its guesses")
    func lookup() async throws {
        for (index, prompt) in Self.prompts.enumerated() {
            let plain = try await generate(prompt, count: 300)
            let speculative = try await generate(prompt, count: 300, speculation: .lookup())
            #expect(speculative.contextShifts == plain.contextShifts)
            #expect(speculative.generatedTokens == plain.generatedTokens)
            #expect(speculative.text == plain.text)
            let stats = try #require(speculative.speculation)
            if index == 0 {
                #expect(stats.acceptedTokens > 50, "the rewrite repeats the paragraph: \(stats)")
                #expect(stats.decodes < 250, "\(stats)")
            }
            #expect(stats.decodes + stats.acceptedTokens == 299, "one decode per token but the first, less the accepted guesses")
        }
    }

    @Test("a seeded sampler draws the same tokens with and without speculation")
    func seededSampling() async throws {
        let prompt = Self.prompts[0]
        let chain = { SamplerChain.standard(temperature: 0.7, seed: 1234) }
        let plain = try await generate(prompt, count: 150, sampling: chain())
        let lookup = try await generate(prompt, count: 150, sampling: chain(), speculation: .lookup(n: 3, minN: 1, maxDraft: 8))
        #expect(lookup.generatedTokens == plain.generatedTokens)
        #expect(try #require(lookup.speculation).acceptedTokens > 0)
    }

    @Test("stop reasons and the cache record are those of plain generation")
    func stopsAndCache() async throws {
        let model = try Fixture.model.get()
        let prompt = Self.prompts[0]
        let plainContext = try Fixture.context(Self.window)
        let specContext = try Fixture.context(Self.window)
        // A stop sequence from the middle of the plain output.
        let reference = try await generate(prompt, count: 80, context: plainContext)
        let words = reference.text.split(separator: " ")
        try #require(words.count > 20)
        let stop = String(words[12])
        for options in [GenerationOptions(maxTokens: 37), GenerationOptions(maxTokens: 120, stopSequences: [stop]),
                        GenerationOptions(maxTokens: 400)] {
            var options = options
            options.contextShift = .on(keep: -1)
            var spec = options
            spec.speculation = .lookup()
            let a = try await plainContext.generate(prompt: prompt, options: options).summary()
            let b = try await specContext.generate(prompt: prompt, options: spec).summary()
            #expect(a.generatedTokens == b.generatedTokens)
            #expect(a.text == b.text)
            #expect(a.stopReason == b.stopReason)
            let plainCache = await plainContext.cachedTokens
            let specCache = await specContext.cachedTokens
            #expect(plainCache == specCache)
            let positions = await specContext.positions()
            #expect(positions?.upperBound == Int32((specCache?.count ?? 0) - 1), "the cache holds exactly the recorded tokens")
        }
        // A follow-up that reuses the cache gives what plain generation on the same cache gives.
        let followUp = prompt + "Sure"
        var options = GenerationOptions(maxTokens: 40)
        let plain = try await plainContext.generate(prompt: followUp, options: options).summary()
        options.speculation = .draft(model: model)
        let reusing = try await specContext.generate(prompt: followUp, options: options).summary()
        #expect(reusing.reusedPromptTokens > 10)
        #expect(reusing.reusedPromptTokens == plain.reusedPromptTokens)
        #expect(reusing.generatedTokens == plain.generatedTokens)
    }

    @Test("the context window ends speculative generation as it ends plain generation")
    func contextFull() async throws {
        let prompt = Self.prompts[0]
        let a = try await generate(prompt, count: 500, context: try Fixture.context(Self.window), shift: .off)
        let b = try await generate(prompt, count: 500, speculation: .lookup(), context: try Fixture.context(Self.window), shift: .off)
        #expect(a.stopReason == .contextFull)
        #expect(b.stopReason == .contextFull)
        #expect(a.generatedTokens == b.generatedTokens)
    }

    /// The pinned source's vocabulary-only models (`models/ggml-vocab-*.gguf`), read at test time.
    func sourceVocabulary(_ name: String) throws -> URL {
        let source = try TestEnvironment.existing("LLAMA_SOURCE", default: TestEnvironment.pinnedTagFolder
            .appendingPathComponent("source/llama.cpp"), make: "make headers")
        return source.appendingPathComponent("models/ggml-vocab-\(name).gguf")
    }

    func vocabularyOnly(_ path: String) throws -> LlamaModel {
        var options = ModelOptions()
        options.vocabularyOnly = true
        return try LlamaModel(runtime: try Fixture.runtime.get(), path: path, options: options)
    }

    @Test("a draft model of another vocabulary is refused with a typed error naming the difference")
    func incompatibleDrafts() async throws {
        let model = try Fixture.model.get()
        let cases: [(String, String)] = [("llama-spm", "vocabulary type"), ("gpt-2", "tokens, the target's"),
                                         ("llama-bpe", "BOS differs")]
        for (name, expected) in cases {
            let draft = try vocabularyOnly(try sourceVocabulary(name).path)
            var options = GenerationOptions(maxTokens: 8)
            options.speculation = .draft(model: draft)
            let context = try Fixture.context()
            let error = await expectLlamaError(.incompatibleVocabulary) {
                try await context.generate(prompt: "Hello", options: options).summary()
            }
            let message = try #require(error?.message, "\(name): expected .incompatibleVocabulary")
            #expect(message.contains(expected), "\(name): \(message)")
            #expect(message.contains("ggml-vocab-\(name).gguf"))
        }

        // The same tokenizer with one token's text changed: found by the text comparison.
        let world = try model.vocab.tokenize(" world", addSpecial: false)
        try #require(world.count == 1)
        var bytes = try Data(contentsOf: try TestEnvironment.model())
        let text = Data("\u{0120}world".utf8)
        let entry = Data([UInt8(text.count), 0, 0, 0, 0, 0, 0, 0]) + text
        let range = try #require(bytes.range(of: entry))
        bytes.replaceSubrange(range.upperBound - 3..<range.upperBound, with: Data("xyz".utf8))
        let copy = try TestEnvironment.temporaryDirectory().appendingPathComponent("smollm2-changed-token.gguf")
        try bytes.write(to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        let changed = try vocabularyOnly(copy.path)
        let error = await expectLlamaError(.incompatibleVocabulary) { try model.checkDraftCompatibility(changed) }
        let message = try #require(error?.message)
        #expect(message.contains("token \(world[0])"), "\(message)")
        // And the model itself is compatible with itself.
        try model.checkDraftCompatibility(model)
    }

    @Test("bad speculation settings are invalid arguments")
    func invalidSettings() async throws {
        let model = try Fixture.model.get()
        let context = try Fixture.context(ContextOptions(contextLength: 512, batchSize: 32, threads: 2))
        for speculation: Speculation in [.lookup(maxDraft: 0), .lookup(n: 2, minN: 3), .lookup(maxDraft: 32),
                                         .draft(model: model, maxDraft: 4, minDraft: 5), .draft(model: model, pMin: 1.5)] {
            var options = GenerationOptions(maxTokens: 8)
            options.speculation = speculation
            let error = await expectLlamaError(.invalidArgument) {
                try await context.generate(prompt: "Hello", options: options).summary()
            }
            #expect(error != nil, "\(speculation)")
        }
    }

    @Test("prompt lookup finds the latest earlier occurrence of the longest suffix")
    func lookupProposals() async throws {
        // ... 1 2 3 4 9 ... 1 2 3 4 7 8 ... 2 3 4: the latest "2 3 4" is followed by 7 (index 10).
        let tokens: [LlamaToken] = [1, 2, 3, 4, 9, 5, 1, 2, 3, 4, 7, 8, 6, 2, 3, 4]
        #expect(PromptLookup.match(tokens, n: 3, minN: 1) == 10)
        #expect(PromptLookup.match([5, 6, 7], n: 3, minN: 1) == nil)
        #expect(PromptLookup.match([5, 6, 5], n: 2, minN: 1) == 1)
        #expect(PromptLookup.match([5, 6, 5], n: 2, minN: 2) == nil)
        #expect(PromptLookup.match([5], n: 2, minN: 1) == nil)
        // The longest suffix wins over a later occurrence of a shorter one: "1 2 3" at 0 (then 9),
        // though "3" alone occurs later (then 8).
        let longest: [LlamaToken] = [1, 2, 3, 9, 7, 3, 8, 1, 2, 3]
        #expect(PromptLookup.match(longest, n: 3, minN: 1) == 3)
        #expect(PromptLookup.match(longest, n: 1, minN: 1) == 6)
        // Without an anchor, the first guess from a fresh match is two tokens, and the limit holds.
        var lookup = PromptLookup(n: 3, minN: 1, maxDraft: 16)
        #expect(lookup.propose(tokens, limit: 9) == [7, 8])
        var tight = PromptLookup(n: 3, minN: 1, maxDraft: 16)
        #expect(tight.propose(tokens, limit: 1) == [7])
    }

    @Test("prompt lookup keeps copying from where its last guess came from, and resynchronises near it")
    func lookupAnchor() async throws {
        // A passage, then its copy so far: "10 11 12 13 14 15 16 17 18 19", with 12 also at the end
        // of another phrase (30 12 31).
        let passage: [LlamaToken] = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 30, 12, 31, 32]
        var lookup = PromptLookup(n: 4, minN: 2, maxDraft: 16)
        // A fresh match guesses two tokens at first.
        var tokens = passage + [10, 11]
        var guess = lookup.propose(tokens, limit: 16)
        #expect(guess == [12, 13])
        lookup.accepted(2, of: 2)
        #expect(lookup.anchor == 4)
        // The model took both and then 14, the anchor's token: aligned, so the guess runs on as far as the limit.
        tokens += [12, 13, 14]
        guess = lookup.propose(tokens, limit: 5)
        #expect(guess == [15, 16, 17, 18, 19])
        // A comma-like insertion: 15 16 accepted, then 40 instead of 17.
        lookup.accepted(2, of: 5)
        tokens += [15, 16, 40]
        #expect(lookup.anchor == 7)
        // 40 is neither the anchor's 17 nor the 18 after it, and no earlier "16 40": no guess.
        #expect(lookup.propose(tokens, limit: 16).isEmpty)
        lookup.accepted(0, of: 0)
        // Then 18, one after the anchor's 17 (a token left out): aligned again, copying from 19.
        tokens += [18]
        #expect(lookup.propose(tokens, limit: 16) == Array(tokens[9..<min(tokens.count, 9 + 16)]))
        // Rejected outright: the alignment is dropped.
        lookup.accepted(0, of: 7)
        #expect(lookup.anchor == nil)
    }

    @Test("prompt lookup looks for alignment only right after its anchor: later a common token is no sign")
    func lookupStaleAnchor() async throws {
        let passage: [LlamaToken] = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        var lookup = PromptLookup(n: 2, minN: 2, maxDraft: 16)
        var tokens = passage + [10, 11]
        #expect(lookup.propose(tokens, limit: 16) == [12, 13])
        lookup.accepted(1, of: 2)
        #expect(lookup.anchor == 3)
        // 50 instead of 13, then 51, 52 (new text), then 13 by chance: two tokens too late to align.
        tokens += [12, 50, 51, 52, 13]
        #expect(lookup.propose(tokens, limit: 16).isEmpty)
        // Right after the divergence it would have: 50 then 13 is one token added.
        var early = PromptLookup(n: 2, minN: 2, maxDraft: 16)
        _ = early.propose(passage + [10, 11], limit: 16)
        early.accepted(1, of: 2)
        #expect(early.propose(passage + [10, 11, 12, 50, 13], limit: 16) == [14, 15, 16, 17, 18, 19, 10, 11, 12, 50, 13])
    }

    @Test("prompt lookup takes the occurrence nearest its anchor, and sizes fresh guesses by their record")
    func lookupNearest() async throws {
        // "5 6" occurs at 1 and at 8; copying had reached index 3, so the occurrence at 1 is the nearer.
        let tokens: [LlamaToken] = [4, 5, 6, 7, 8, 9, 1, 4, 5, 6, 2, 3, 0, 0, 5, 6]
        #expect(PromptLookup.match(tokens, n: 2, minN: 2) == 10)
        #expect(PromptLookup.match(tokens, n: 2, minN: 2, near: 3) == 3)
        #expect(PromptLookup.match(tokens, n: 2, minN: 2, near: 9) == 10)
        #expect(PromptLookup.match(tokens, n: 3, minN: 3, near: 3) == nil)
        var lookup = PromptLookup(n: 2, minN: 2, maxDraft: 3)
        #expect(lookup.freshLimit == 2)
        #expect(lookup.propose(tokens, limit: 16) == [2, 3])
        lookup.accepted(2, of: 2)
        #expect(lookup.freshLimit == 3)      // doubled, within maxDraft
        var other = PromptLookup(n: 2, minN: 2, maxDraft: 16)
        _ = other.propose(tokens, limit: 16)
        other.accepted(1, of: 2)
        #expect(other.freshLimit == 1)       // halved after a miss
        #expect(other.anchor == 11)
    }

    @Test("after a divergence, prompt lookup guesses from the occurrence nearest its anchor, not the latest")
    func lookupResynchronisesNear() async throws {
        // "5 6" occurs at 1, at 8, and in the copy; the copy had reached index 4 when it diverged.
        var tokens: [LlamaToken] = [20, 5, 6, 1, 21, 22, 23, 24, 5, 6, 2, 25, 20, 5]
        var lookup = PromptLookup(n: 2, minN: 2, maxDraft: 16)
        #expect(lookup.propose(tokens, limit: 16) == [6, 1])
        lookup.accepted(2, of: 2)
        #expect(lookup.anchor == 4)
        tokens += [6, 1, 40]
        #expect(lookup.propose(tokens, limit: 16).isEmpty)
        tokens += [5, 6]
        // Too late to align; of the three "5 6", the one at 1 continues nearest the anchor.
        #expect(lookup.propose(tokens, limit: 16) == [1, 21, 22, 23])
        #expect(PromptLookup.match(tokens, n: 2, minN: 2) == 15)
    }

    @Test("prompt lookup's record of fresh guesses is recent: a long miss does not keep guessing off")
    func lookupRecentRecord() async throws {
        var lookup = PromptLookup(n: 2, minN: 2, maxDraft: 16)
        for _ in 0..<300 { lookup.record(0, of: 1) }
        #expect(2 * lookup.freshAccepted < lookup.freshChecked)
        var agreeing = 0
        while 2 * lookup.freshAccepted < lookup.freshChecked, agreeing < 300 {
            lookup.record(1, of: 1)
            agreeing += 1
        }
        #expect(agreeing <= 16, "\(agreeing) agreeing guesses before guessing resumed")
        #expect(lookup.freshChecked <= 17)
    }

    @Test("prompt lookup holds fresh guesses back while they do not pay, checking them for free")
    func lookupHoldsBack() async throws {
        var lookup = PromptLookup(n: 2, minN: 1, maxDraft: 16)
        var tokens: [LlamaToken] = [1, 2, 3, 4, 5, 6, 7, 8, 1, 2]
        #expect(lookup.propose(tokens, limit: 16) == [3, 4])
        lookup.accepted(0, of: 2)
        #expect((lookup.freshAccepted, lookup.freshChecked) == (1, 4))
        // The model wrote 5: the single-token match guesses 6, but the record is under a half: held back.
        tokens += [5]
        #expect(lookup.propose(tokens, limit: 16).isEmpty)
        lookup.accepted(0, of: 0)
        // The model wrote 6, as the held-back guess said: counted (2 of 5), still under a half.
        tokens += [6]
        #expect(lookup.propose(tokens, limit: 16).isEmpty)
        #expect((lookup.freshAccepted, lookup.freshChecked) == (2, 5))
        lookup.accepted(0, of: 0)
        // 7, as guessed again: 3 of 6, a half, so the next fresh guess goes into the batch; one
        // token long, halved after the miss.
        tokens += [7]
        #expect(lookup.propose(tokens, limit: 16) == [8])
        #expect((lookup.freshAccepted, lookup.freshChecked) == (3, 6))
        #expect(lookup.anchor == 2)
    }

    @Test("llama-swift run: --lookup and -md give plain generation's text and report the guesses; bad flags are errors")
    func cli() async throws {
        let prompt = "Rewrite this sentence exactly: the quick brown fox jumps over the lazy dog, and the lazy dog sleeps."
        let args = ["run", "--temp", "0", "-n", "60", "-t", "2", "-c", "512", "-p", prompt]
        let plain = try await CLITests.cli(args)
        try #require(plain.status == 0, "\(plain.stderr)")
        let model = try TestEnvironment.model().path
        for extra in [["--lookup", "3"], ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-m", "8"],
                      ["-md", model, "--spec-draft-n-max", "4"], ["--model-draft", model, "--draft-max", "6", "--draft-p-min", "0.5"]] {
            let r = try await CLITests.cli(args + extra)
            try #require(r.status == 0, "\(extra): \(r.stderr)")
            #expect(r.stdout == plain.stdout, "\(extra)")
            #expect(r.stderr.contains("run: speculation: "), "\(extra): \(r.stderr)")
        }
        #expect(!plain.stderr.contains("speculation"))
        CLITests.expectFailure(try await CLITests.cli(args + ["--spec-type", "ngram-mod"]), mentioning: "--spec-type ngram-mod")
        CLITests.expectFailure(try await CLITests.cli(args + ["--spec-type", "draft-simple"]), mentioning: "needs a draft model")
        CLITests.expectFailure(try await CLITests.cli(args + ["--spec-type", "draft-mtp", "--lookup", "3"]),
                               mentioning: "--lookup is used by --spec-type ngram-simple")
        CLITests.expectFailure(try await CLITests.cli(args + ["--lookup", "3", "--draft-max", "8"]),
                               mentioning: "--spec-draft-n-max is used by a draft model or MTP")
        CLITests.expectFailure(try await CLITests.cli(args + ["--lookup", "0"]), mentioning: "--lookup")
        let vocab = try sourceVocabulary("llama-spm").path
        let mismatch = try await CLITests.cli(args + ["-md", vocab])
        #expect(mismatch.status != 0)
        #expect(mismatch.stderr.contains("cannot draft for"), "\(mismatch.stderr)")
    }
}
