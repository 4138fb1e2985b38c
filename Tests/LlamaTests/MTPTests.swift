import Foundation
@testable import Llama
import LlamaTestSupport
import Testing

/// MTP (NextN) drafting on a synthetic hy_v3 model with one MTP layer (`SyntheticMTPModel`): no
/// real MTP model is reachable here. llama.cpp's own `llama-server --spec-type draft-mtp` on the
/// same file is the reference for the drafted and accepted counts (`make check-mtp`, which runs
/// `reference` below with `LLAMA_MTP_CHECK_DIR` set and then tools/check_mtp.py).
@Suite("MTP drafting", .serialized)
struct MTPTests {
    /// The synthetic model, written once per test run.
    static let file: Result<String, any Error> = Result {
        let path = try TestEnvironment.temporaryDirectory().appendingPathComponent("hy-v3-mtp.gguf").path
        try SyntheticMTPModel.write(to: path, tokenizer: try TestEnvironment.model().path,
                                    symbols: try Fixture.runtime.get().raw)
        return path
    }
    static func model(loadMTP: Bool) throws -> LlamaModel {
        var options = ModelOptions()
        options.loadMTP = loadMTP
        return try LlamaModel(runtime: try Fixture.runtime.get(), path: try file.get(), options: options)
    }
    static let withMTP: Result<LlamaModel, any Error> = Result { try model(loadMTP: true) }

    static let prompt = "The old lighthouse stood at the edge of the cliff"
    static let window = ContextOptions(contextLength: 512, batchSize: 512, threads: 2)

    func generate(_ model: LlamaModel, count: Int, sampling: SamplerChain = .greedy,
                  speculation: Speculation? = nil) async throws -> GenerationSummary {
        let context = try LlamaContext(model: model, options: Self.window)
        var options = GenerationOptions(maxTokens: count)
        options.stopAtEndOfGeneration = false
        options.speculation = speculation
        return try await context.generate(prompt: Self.prompt, sampling: sampling, options: options).summary()
    }

    @Test("greedy: the tokens of plain generation, with guesses both accepted and rejected")
    func greedy() async throws {
        let model = try Self.withMTP.get()
        let plain = try await generate(model, count: 200)
        let mtp = try await generate(model, count: 200, speculation: .mtp())
        #expect(plain.generatedTokens.count == 200)
        #expect(mtp.generatedTokens == plain.generatedTokens)
        let stats = try #require(mtp.speculation)
        print("MTP greedy, 200 tokens: \(stats.draftedTokens) drafted, \(stats.acceptedTokens) accepted, "
            + "\(stats.verifications) verifications, \(stats.decodes) decodes")
        #expect(stats.acceptedTokens > 0, "\(stats)")
        #expect(stats.acceptedTokens < stats.draftedTokens, "some guesses are rejected: \(stats)")
        // Each step drafts up to 3, and a decode yields the accepted guesses plus one token.
        #expect(stats.decodes + stats.acceptedTokens == 199, "\(stats)")
        #expect(stats.draftedTokens <= 3 * stats.verifications)
    }

    @Test("a seeded sampler draws the same tokens with and without MTP drafting")
    func seeded() async throws {
        let model = try Self.withMTP.get()
        let chain = { SamplerChain.standard(temperature: 0.7, seed: 1234) }
        let plain = try await generate(model, count: 150, sampling: chain())
        let mtp = try await generate(model, count: 150, sampling: chain(), speculation: .mtp(maxDraft: 4))
        #expect(mtp.generatedTokens == plain.generatedTokens)
        let stats = try #require(mtp.speculation)
        #expect(stats.draftedTokens > 0, "\(stats)")
    }

    @Test("context shifts: the draft cache follows the target's, the output stays plain generation's")
    func shifts() async throws {
        let model = try Self.withMTP.get()
        func run(_ speculation: Speculation?) async throws -> GenerationSummary {
            let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 256, batchSize: 256, threads: 2))
            var options = GenerationOptions(maxTokens: 400)
            options.stopAtEndOfGeneration = false
            options.contextShift = .on(keep: 0)
            options.speculation = speculation
            return try await context.generate(prompt: Self.prompt, options: options).summary()
        }
        let plain = try await run(nil)
        let mtp = try await run(.mtp())
        #expect(plain.contextShifts > 0)
        #expect(mtp.contextShifts == plain.contextShifts)
        #expect(mtp.generatedTokens == plain.generatedTokens)
        let stats = try #require(mtp.speculation)
        print("MTP with \(mtp.contextShifts) context shifts, 400 tokens: \(stats.draftedTokens) drafted, \(stats.acceptedTokens) accepted")
        #expect(stats.acceptedTokens > 200, "drafting goes on after the shifts (stopping at the first would give about 150): \(stats)")
    }

    @Test("a prefix another sequence holds survives an MTP generation (only sequence 0 is evaluated afresh)")
    func otherSequencesKept() async throws {
        let model = try Self.withMTP.get()
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 1024, batchSize: 512,
                                                                             maxSequences: 2, threads: 2))
        var options = GenerationOptions(maxTokens: 8)
        options.stopAtEndOfGeneration = false
        _ = try await context.generate(prompt: Self.prompt, options: options).summary()
        try await context.copySequence(0, to: 1)
        let saved = try #require(await context.positions(sequence: 1))
        options.speculation = .mtp()
        options.maxTokens = 40
        let mtp = try await context.generate(prompt: Self.prompt, options: options).summary()
        #expect(try #require(mtp.speculation).draftedTokens > 0)
        let after = await context.positions(sequence: 1)
        #expect(after == saved)
    }

    @Test("refused with a typed error: a model without MTP layers, and one loaded without them")
    func refusals() async throws {
        let smol = try Fixture.model.get()
        let none = await expectLlamaError(.unsupported) { try await generate(smol, count: 4, speculation: .mtp()) }
        #expect(none?.message.contains("no multi-token-prediction") == true, "\(String(describing: none))")
        let unloaded = try Self.model(loadMTP: false)
        let skipped = await expectLlamaError(.unsupported) { try await generate(unloaded, count: 4, speculation: .mtp()) }
        #expect(skipped?.message.contains("loadMTP") == true, "\(String(describing: skipped))")
        let bad = await expectLlamaError(.invalidArgument) {
            try await generate(try Self.withMTP.get(), count: 4, speculation: .mtp(maxDraft: 2, minDraft: 3))
        }
        #expect(bad != nil)
    }

    @Test("llama-swift run --spec-type draft-mtp loads the MTP layers: plain generation's text, the guesses reported")
    func cli() async throws {
        let args = ["run", "-m", try Self.file.get(), "--raw", "--temp", "0", "-n", "60", "-t", "2", "-c", "512", "-p", Self.prompt]
        let plain = try await CLITests.cli(args)
        try #require(plain.status == 0, "\(plain.stderr)")
        let mtp = try await CLITests.cli(args + ["--spec-type", "draft-mtp", "--spec-draft-n-max", "3"])
        try #require(mtp.status == 0, "\(mtp.stderr)")
        #expect(mtp.stdout == plain.stdout)
        #expect(mtp.stderr.contains("run: speculation: "), "\(mtp.stderr)")
        let smol = try await CLITests.cli(["run", "--temp", "0", "-n", "4", "-t", "2", "-p", "Hi", "--spec-type", "draft-mtp"])
        #expect(smol.status != 0)
        #expect(smol.stderr.contains("no multi-token-prediction"), "\(smol.stderr)")
    }

    @Test("the reference run: the prompt's tokens, ours and the counts (exported for make check-mtp)")
    func reference() async throws {
        let model = try Self.withMTP.get()
        let mtp = try await generate(model, count: 200, speculation: .mtp(maxDraft: 3))
        let stats = try #require(mtp.speculation)
        #expect(mtp.generatedTokens.count == 200)
        guard let dir = ProcessInfo.processInfo.environment["LLAMA_MTP_CHECK_DIR"] else { return }
        let out = URL(fileURLWithPath: dir)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let copy = out.appendingPathComponent("hy-v3-mtp.gguf")
        if FileManager.default.fileExists(atPath: copy.path) { try FileManager.default.removeItem(at: copy) }
        try FileManager.default.copyItem(atPath: try Self.file.get(), toPath: copy.path)
        let prompt = try model.vocab.tokenize(Self.prompt, addSpecial: true, parseSpecial: true)
        let json: [String: Any] = [
            "model": copy.path, "prompt_tokens": prompt, "n_predict": 200, "tokens": mtp.generatedTokens,
            "drafted": stats.draftedTokens, "accepted": stats.acceptedTokens, "verifications": stats.verifications,
            "context": 512, "batch": 512, "threads": 2,
        ]
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]).write(to: out.appendingPathComponent("ours.json"))
    }
}
