import Foundation
import Llama
import LlamaTestSupport
import Logging
import Testing

@Suite("Models, vocabularies, chat, embeddings")
struct ModelTests {
    @Test("metadata, facts and the chat template")
    func facts() throws {
        let model = try Fixture.model.get()
        #expect(model.architecture == "llama")
        #expect(model.metadata["general.architecture"] == "llama")
        #expect(model.metadata.count > 10)
        #expect(model.parameterCount > 100_000_000)
        #expect(model.sizeInBytes > 50_000_000)
        #expect(model.layerCount > 0 && model.embeddingLength > 0 && model.trainingContextLength >= 2048)
        #expect(model.chatTemplate()?.contains("im_start") == true)
        #expect(!model.description.isEmpty)
        #expect(model.vocab.count > 40_000)
        #expect(model.vocab.eos != nil)
    }

    @Test("loading reports progress, and returning false cancels it")
    func progressAndCancel() async throws {
        let runtime = try Fixture.runtime.get()
        let path = try TestEnvironment.model().path
        let seen = Progress()
        _ = try LlamaModel(runtime: runtime, path: path) { fraction in
            seen.add(fraction)
            return true
        }
        #expect(seen.values.last == 1.0)
        let error = await expectLlamaError(.cancelled) {
            try LlamaModel(runtime: runtime, path: path) { _ in false }
        }
        #expect(error != nil)

        let task = Task { try await LlamaModel.load(runtime: runtime, paths: [path]) }
        task.cancel()
        let outcome = await task.result
        if case .failure(let e) = outcome { #expect((e as? LlamaError)?.code == .cancelled) }
        let loaded = try await LlamaModel.load(runtime: runtime, paths: [path])
        #expect(loaded.architecture == "llama")
    }

    final class Progress: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var values: [Float] = []
        func add(_ v: Float) { lock.withLock { values.append(v) } }
    }

    @Test("files that are missing, not GGUF or truncated are typed errors")
    func badFiles() async throws {
        let runtime = try Fixture.runtime.get()
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(await expectLlamaError(.fileNotFound) { try LlamaModel(runtime: runtime, path: dir.path + "/none.gguf") } != nil)
        let text = dir.appendingPathComponent("notes.gguf")
        try Data("just some text".utf8).write(to: text)
        #expect(await expectLlamaError(.invalidModel) { try LlamaModel(runtime: runtime, path: text.path) } != nil)
        let truncated = dir.appendingPathComponent("truncated.gguf")
        let handle = try FileHandle(forReadingFrom: try TestEnvironment.model())
        try handle.read(upToCount: 4 << 20)!.write(to: truncated)
        try handle.close()
        let error = await expectLlamaError(.invalidModel) { try LlamaModel(runtime: runtime, path: truncated.path) }
        #expect(error?.message.contains("truncated") == true)
    }

    @Test("a context keeps its model alive: no use after free")
    func modelLifetime() async throws {
        let runtime = try Fixture.runtime.get()
        weak var weakModel: LlamaModel?
        var context: LlamaContext? = try {
            let model = try LlamaModel(runtime: runtime, path: try TestEnvironment.model().path)
            weakModel = model
            return try LlamaContext(model: model, options: ContextOptions(contextLength: 256, threads: 2))
        }()
        #expect(weakModel != nil)
        let summary = try await context!.generate(prompt: "Hello", options: GenerationOptions(maxTokens: 4)).summary()
        #expect(!summary.generatedTokens.isEmpty)
        context = nil
        // The generation's task lets go of the context just after the stream delivered its summary:
        // give it a bounded while to end (on a loaded machine it may not have run yet).
        for _ in 0..<500 where weakModel != nil { try await Task.sleep(for: .milliseconds(20)) }
        #expect(weakModel == nil)
    }

    @Test("a tokenizer keeps its model alive: tokenizing after the model itself was dropped")
    func vocabLifetime() throws {
        let runtime = try Fixture.runtime.get()
        weak var weakModel: LlamaModel?
        var vocab: LlamaVocab? = try {
            let model = try LlamaModel(runtime: runtime, path: try TestEnvironment.model().path)
            weakModel = model
            return model.vocab
        }()
        #expect(weakModel != nil)
        let tokens = try vocab!.tokenize("The tokenizer outlives its model's variable.", addSpecial: false, parseSpecial: false)
        #expect(tokens == (try Fixture.model.get().vocab.tokenize("The tokenizer outlives its model's variable.",
                                                                 addSpecial: false, parseSpecial: false)))
        vocab = nil
        #expect(weakModel == nil)
    }

    @Test("tokens round-trip, and streamed pieces of multi-byte text are byte-exact")
    func tokensAndUTF8() throws {
        let vocab = try Fixture.model.get().vocab
        let text = "Grüße aus Zürich! 日本語のテキスト 🌍🚀 naïve café — ok"
        let tokens = try vocab.tokenize(text, addSpecial: false)
        #expect(try vocab.detokenize(tokens) == text)
        var decoder = UTF8StreamDecoder()
        var streamed = ""
        var sawPartial = false
        for t in tokens {
            let piece = try vocab.piece(t)
            if String(validating: piece, as: UTF8.self) == nil { sawPartial = true }
            let out = decoder.append(piece)
            #expect(String(validating: Array(out.utf8), as: UTF8.self) != nil)
            streamed += out
        }
        streamed += decoder.finish()
        #expect(streamed == text)
        #expect(sawPartial, "the text should have a character split across tokens")
        let special = try vocab.tokenize("<|im_start|>", addSpecial: false, parseSpecial: true)
        #expect(special.count == 1)
        #expect(try vocab.tokenize("<|im_start|>", addSpecial: false, parseSpecial: false).count > 1)
    }

    @Test("the decoder never splits a character, whatever the chunks")
    func decoderChunks() {
        let bytes = Array("aé日🌍b".utf8)
        for split in 1..<bytes.count {
            var d = UTF8StreamDecoder()
            let out = d.append(Array(bytes[..<split])) + d.append(Array(bytes[split...])) + d.finish()
            #expect(out == "aé日🌍b")
        }
        var d = UTF8StreamDecoder()
        #expect(d.append([0xF0, 0x9F]) == "")
        #expect(d.finish() == "\u{FFFD}")
    }

    @Test("the chat template gives what llama_chat_apply_template gives in C")
    func chatTemplate() async throws {
        let model = try Fixture.model.get()
        let messages: [ChatMessage] = [.system("You are terse."), .user("Name a color."), .assistant("Blue."),
                                       .user("Another one?")]
        let formatted = try model.formatChat(messages)
        var arguments = ["--chat", try TestEnvironment.libraryDirectory().path, try TestEnvironment.model().path]
        for m in messages { arguments += [m.role, m.text] }
        let native = try await runProcess(try buildNativeReference(), arguments)
        try #require(native.status == 0, "\(native.stderr)")
        #expect(formatted == native.stdout)
        #expect(formatted.hasSuffix("<|im_start|>assistant\n"))
        let runtime = try Fixture.runtime.get()
        #expect(runtime.builtinChatTemplates.contains("chatml"))
        #expect(try model.formatChat(messages, template: "chatml").contains("<|im_start|>system"))
    }

    @Test("a chat session reuses its cache across turns")
    func chatSession() async throws {
        let session = try ChatSession(model: try Fixture.model.get(), systemPrompt: "You are a helpful assistant.",
                                      options: ContextOptions(contextLength: 2048, threads: 2))
        let first = try await session.respond(to: "What is the capital of France?",
                                              options: GenerationOptions(maxTokens: 24)).summary()
        let second = try await session.respond(to: "And of Italy?", options: GenerationOptions(maxTokens: 24)).summary()
        #expect(first.reusedPromptTokens == 0)
        #expect(second.reusedPromptTokens >= first.promptTokens, "the history was evaluated again")
        #expect(await session.messages.count == 5)
        #expect(await session.messages.last?.text == second.text)
        await session.reset()
        #expect(await session.messages.count == 1)

        // An abandoned reply keeps what was said so far.
        var seen = 0
        for try await event in try await session.respond(to: "Tell me a long story.", options: GenerationOptions(maxTokens: 200)) {
            if case .token = event {
                seen += 1
                if seen == 3 { break }
            }
        }
        // The reply is recorded by the session's own task once generation has stopped. ChatSession
        // has no event for that, so this polls, bounded for a loaded machine (the check below fails
        // when the bound passes).
        let deadline = ContinuousClock.now + .seconds(60)
        while await session.messages.last?.role != "assistant", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let last = await session.messages.last
        #expect(last?.role == "assistant")
        #expect(last?.text.isEmpty == false)
    }

    @Test("embeddings of paraphrases are closer than of unrelated sentences")
    func embeddings() async throws {
        let texts = ["The cat is sleeping on the sofa.", "A cat sleeps on the couch.",
                     "Interest rates rose by half a percent today."]
        var options = ContextOptions(contextLength: 1024, batchSize: 512, maxSequences: 4, threads: 2,
                                     embeddings: true, pooling: .mean)
        options.unifiedCache = true
        let context = try Fixture.context(options)
        let e = try await context.embeddings(for: texts)
        #expect(e.count == 3)
        // Evaluated together or one by one, the vectors are the same.
        let separate = try Fixture.context(ContextOptions(contextLength: 1024, batchSize: 512, maxSequences: 4, threads: 2,
                                                          embeddings: true, pooling: .mean))
        let one = try await separate.embeddings(for: texts)
        for i in texts.indices { #expect(cosineSimilarity(e[i], one[i]) > 0.9999) }
        #expect(abs(e[0].reduce(0) { $0 + $1 * $1 } - 1) < 1e-3, "normalized")
        #expect(cosineSimilarity(e[0], e[1]) > cosineSimilarity(e[0], e[2]))
        let generation = try Fixture.context()
        #expect(await expectLlamaError(.unsupported) { try await generation.embeddings(for: ["x"]) } != nil)
        #expect(await expectLlamaError(.unsupported) { try await context.rerank(query: "q", documents: ["d"]) } != nil)
    }

    @Test("KV cache operations per sequence")
    func memory() async throws {
        let model = try Fixture.model.get()
        let context = try Fixture.context(ContextOptions(contextLength: 512, batchSize: 512, maxSequences: 2, threads: 2))
        let a = try model.vocab.tokenize("One two three four five", addSpecial: true)
        let b = try model.vocab.tokenize("Six seven eight nine ten", addSpecial: true)
        var batch = LlamaBatch()
        batch.add(prompt: a, sequence: 0)
        batch.add(prompt: b, sequence: 1)
        try await context.decode(batch)
        #expect(try await context.logits(at: -1).count == Int(model.vocab.count))
        let perf = await context.performance
        #expect(perf.promptTokens >= 1 && perf.promptMilliseconds > 0)
        #expect(await context.positions(sequence: 0) == 0...Int32(a.count - 1))
        #expect(await context.positions(sequence: 1) == 0...Int32(b.count - 1))
        #expect(await context.removeTokens(sequence: 1, from: 3))
        #expect(await context.positions(sequence: 1) == 0...2)
        try await context.shiftPositions(sequence: 1, by: 10)
        #expect(await context.positions(sequence: 1) == 10...12)
        try await context.keepOnly(sequence: 1)
        #expect(await context.positions(sequence: 0) == nil)
        try await context.copySequence(1, to: 0)
        #expect(await context.positions(sequence: 0) == 10...12)
        await context.clearMemory()
        #expect(await context.positions(sequence: 1) == nil)
    }

    @Test("control vectors change the output and clearing restores it")
    func controlVector() async throws {
        let model = try Fixture.model.get()
        let context = try Fixture.context()
        let prompt = "The capital of France is"
        let plain = try await context.generate(prompt: prompt, options: GenerationOptions(maxTokens: 12)).summary()
        let width = Int(model.embeddingLength), layers = Int(model.layerCount)
        try await context.setControlVector([Float](repeating: 0, count: width * layers), layers: 1...Int32(layers))
        await context.clearMemory()
        let zero = try await context.generate(prompt: prompt, options: GenerationOptions(maxTokens: 12)).summary()
        #expect(zero.generatedTokens == plain.generatedTokens)
        let strong = (0..<(width * layers)).map { Float(($0 * 7919) % 13) - 6 }
        try await context.setControlVector(strong, layers: 1...Int32(layers))
        await context.clearMemory()
        let steered = try await context.generate(prompt: prompt, options: GenerationOptions(maxTokens: 12)).summary()
        #expect(steered.generatedTokens != plain.generatedTokens)
        await context.clearControlVector()
        await context.clearMemory()
        let back = try await context.generate(prompt: prompt, options: GenerationOptions(maxTokens: 12)).summary()
        #expect(back.generatedTokens == plain.generatedTokens)
        #expect(await expectLlamaError(.invalidArgument) { try await context.setControlVector([1, 2], layers: 1...1) } != nil)
        let notAdapter = try TestEnvironment.temporaryDirectory().appendingPathComponent("x.gguf")
        try Data("nope".utf8).write(to: notAdapter)
        #expect(await expectLlamaError(.invalidModel) { try LoRAAdapter(model: model, path: notAdapter.path) } != nil)
    }
}

@Suite("Logging")
struct LoggingTests {
    final class Capture: LogHandler, @unchecked Sendable {
        static let shared = Capture()
        private let lock = NSLock()
        private var lines: [(Logger.Level, String)] = []
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { lock.withLock { lines.append((event.level, "\(event.message)")) } }
        func take() -> [(Logger.Level, String)] { lock.withLock { defer { lines = [] }; return lines } }
    }

    @Test("llama.cpp logs reach swift-log, quiet by default")
    func logging() throws {
        let runtime = try LlamaRuntime(libraryDirectory: try TestEnvironment.libraryDirectory(),
                                       logger: Logger(label: "test") { _ in Capture.shared })
        defer { runtime.logLevel = .warning }
        _ = Capture.shared.take()
        _ = try LlamaModel(runtime: runtime, path: try TestEnvironment.model().path)
        #expect(Capture.shared.take().allSatisfy { $0.0 >= .warning }, "quiet by default")
        runtime.logLevel = .info
        _ = try LlamaModel(runtime: runtime, path: try TestEnvironment.model().path)
        let lines = Capture.shared.take()
        #expect(lines.contains { $0.0 == .info && $0.1.contains("llama_model_loader") })
    }
}
