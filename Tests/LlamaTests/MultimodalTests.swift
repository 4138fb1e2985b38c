import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// The generated audio: the C program's `tone:N`.
func tonePCM(samples n: Int, rate: Int) -> [Float] {
    (0..<n).map { Float(0.5 * sin(2.0 * Double.pi * 440.0 * Double($0) / Double(rate))) }
}

/// What the C program printed and wrote.
struct NativeMultimodalRun {
    var chunks: [(kind: Int, tokens: Int, positions: Int)]
    var generated: [LlamaToken]
    var embeddings: [Int: Data]
}

enum MultimodalFixture {
    static var mediaSource: URL {
        get throws {
            let source = ProcessInfo.processInfo.environment["LLAMA_SOURCE"].map { URL(fileURLWithPath: $0) }
                ?? TestEnvironment.pinnedTagFolder.appendingPathComponent("source/llama.cpp")
            let dir = source.appendingPathComponent("tools/mtmd")
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("test-1.jpeg").path) else {
                throw TestEnvironment.Missing(description: "\(dir.path)/test-1.jpeg does not exist: run `make headers` (it fetches the pinned source)")
            }
            return dir
        }
    }

    static func projector(_ kind: SyntheticProjector.Kind, output: Int = 576) throws -> String {
        let path = try TestEnvironment.temporaryDirectory().appendingPathComponent("mmproj-\(kind).gguf").path
        try SyntheticProjector.write(kind, output: output, to: path, symbols: try Fixture.runtime.get().raw)
        return path
    }

    static func options() -> ProjectorOptions {
        var o = ProjectorOptions()
        o.useGPU = false
        o.threads = 2
        o.warmup = false
        return o
    }

    static func buildNative() async throws -> URL {
        try await buildNativeReference("mtmd_reference", includes: ["tools/mtmd"], libraries: ["mtmd"])
    }

    static func runNative(projector: String, prompt: String, media: [String], predict: Int,
                          model: String? = nil) async throws -> NativeMultimodalRun {
        let program = try await buildNative()
        let out = try TestEnvironment.temporaryDirectory()
        let result = try await runProcess(program, [try TestEnvironment.libraryDirectory().path, try model ?? TestEnvironment.model().path,
                                                    projector, out.path, "\(predict)", "2", prompt] + media, timeout: 600)
        try #require(result.status == 0, "the native multimodal reference failed: \(result.stderr.suffix(3000))")
        var run = NativeMultimodalRun(chunks: [], generated: [], embeddings: [:])
        for line in result.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if line.hasPrefix("chunk:"), fields.count == 5, let k = Int(fields[2]), let t = Int(fields[3]), let p = Int(fields[4]) {
                run.chunks.append((k, t, p))
                if k != 0 { run.embeddings[run.chunks.count - 1] = try Data(contentsOf: out.appendingPathComponent("embd-\(run.chunks.count - 1).bin")) }
            } else if line.hasPrefix("generated:") {
                run.generated = fields.dropFirst().compactMap { LlamaToken($0) }
            }
        }
        return run
    }

    static func context(length: UInt32 = 2048) throws -> LlamaContext {
        try Fixture.context(ContextOptions(contextLength: length, batchSize: 512, threads: 2))
    }
}

@Suite("Multimodal (libmtmd) against native C", .serialized)
struct MultimodalTests {
    static let chatPrompt = "<|im_start|>user\n<__media__>\nWhat is in this picture?<|im_end|>\n<|im_start|>assistant\n"

    /// Checks Swift's chunks and embeddings against the C program's, bit for bit, then greedy tokens.
    func expectEqualToNative(_ native: NativeMultimodalRun, prompt: LlamaMultimodalPrompt, projector: LlamaProjector,
                             predict: Int) async throws {
        let kinds: [LlamaMultimodalPrompt.Kind: Int] = [.text: 0, .image: 1, .audio: 2]
        #expect(prompt.chunks.map { kinds[$0.kind]! } == native.chunks.map(\.kind))
        #expect(prompt.chunks.map(\.tokenCount) == native.chunks.map(\.tokens))
        #expect(prompt.chunks.map(\.positionCount) == native.chunks.map(\.positions))
        let mediaChunks = prompt.chunks.indices.filter { prompt.chunks[$0].kind != .text }
        #expect(!mediaChunks.isEmpty)
        #expect(Set(mediaChunks) == Set(native.embeddings.keys))
        for index in mediaChunks {
            let swift = try projector.embeddings(of: prompt, chunk: index)
            let c = try #require(native.embeddings[index])
            #expect(swift.count == prompt.chunks[index].tokenCount * Int(projector.model.embeddingLength))
            let bytes = swift.withUnsafeBytes { Data($0) }
            #expect(bytes == c, "chunk \(index): embeddings differ from the C program's")
            #expect(swift.contains { $0 != 0 })
        }
        let context = try LlamaContext(model: projector.model, options: ContextOptions(contextLength: 2048, batchSize: 512, threads: 2))
        var options = GenerationOptions(maxTokens: predict)
        options.stopAtEndOfGeneration = true
        let summary = try await context.generate(prompt: prompt, projector: projector, options: options).summary()
        #expect(summary.generatedTokens == native.generated)
        #expect(summary.generatedTokens.count > 4)
    }

    @Test("images: embeddings bit for bit and greedy tokens equal the C program's (test-1.jpeg, gradient, 1×1, very wide)")
    func visionEqualsNative() async throws {
        let path = try MultimodalFixture.projector(.llava)
        let jpeg = try MultimodalFixture.mediaSource.appendingPathComponent("test-1.jpeg").path
        let prompt = "<|im_start|>user\n<__media__> <__media__> <__media__> <__media__>\nWhat is in these pictures?<|im_end|>\n<|im_start|>assistant\n"
        let native = try await MultimodalFixture.runNative(projector: path, prompt: prompt,
                                                           media: ["file:" + jpeg, "gradient:37:23", "gradient:1:1", "gradient:1500:2"], predict: 24)
        let runtime = try Fixture.runtime.get()
        let projector = try LlamaProjector(model: try Fixture.model.get(), path: path, options: MultimodalFixture.options())
        #expect(projector.supportsVision && !projector.supportsAudio && !projector.usesMRoPE)
        #expect(projector.projectorType == "mlp")
        let media = [try LlamaMedia(file: jpeg, projector: projector),
                     try LlamaMedia(rgb: gradientRGB(width: 37, height: 23), width: 37, height: 23, runtime: runtime),
                     try LlamaMedia(rgb: gradientRGB(width: 1, height: 1), width: 1, height: 1, runtime: runtime),
                     try LlamaMedia(rgb: gradientRGB(width: 1500, height: 2), width: 1500, height: 2, runtime: runtime)]
        #expect(media.map(\.width) == [media[0].width, 37, 1, 1500] && media[0].width > 0)
        let imagesWithIDs = media.allSatisfy { !$0.isAudio && $0.id.count == 64 }
        #expect(imagesWithIDs)
        try await expectEqualToNative(native, prompt: try projector.tokenize(prompt, media: media), projector: projector, predict: 24)
    }

    @Test("audio: embeddings bit for bit and greedy tokens equal the C program's (test-2.mp3, a generated tone)")
    func audioEqualsNative() async throws {
        let path = try MultimodalFixture.projector(.qwen2Audio)
        let mp3 = try MultimodalFixture.mediaSource.appendingPathComponent("test-2.mp3").path
        let prompt = "<|im_start|>user\nListen: <__media__> and <__media__>\nWhat did you hear?<|im_end|>\n<|im_start|>assistant\n"
        let native = try await MultimodalFixture.runNative(projector: path, prompt: prompt, media: ["file:" + mp3, "tone:8000"],
                                                           predict: 16)
        let runtime = try Fixture.runtime.get()
        let projector = try LlamaProjector(model: try Fixture.model.get(), path: path, options: MultimodalFixture.options())
        #expect(projector.supportsAudio && !projector.supportsVision)
        let rate = try #require(projector.audioSampleRate)
        #expect(rate == 16000)
        let media = [try LlamaMedia(file: mp3, projector: projector),
                     try LlamaMedia(pcm: tonePCM(samples: 8000, rate: rate), runtime: runtime)]
        let allAudio = media.allSatisfy { $0.isAudio }
        #expect(allAudio)
        #expect(media[1].width == 8000)
        try await expectEqualToNative(native, prompt: try projector.tokenize(prompt, media: media), projector: projector, predict: 16)
    }

    @Test("two chat turns showing the same image encode it once, and the second turn reuses the cache")
    func chatEncodesOnce() async throws {
        let projector = try LlamaProjector(model: try Fixture.model.get(), path: try MultimodalFixture.projector(.llava),
                                           options: MultimodalFixture.options())
        let png = pngImage(rgb: gradientRGB(width: 48, height: 40), width: 48, height: 40)
        let image = ChatContentPart.image(ChatMedia(data: png, format: "image/png"))
        let chat = try ChatSession(projector: projector, options: ContextOptions(contextLength: 1024, batchSize: 512, threads: 2))
        let first = try await chat.respond(to: ChatMessage(role: "user", content: .parts([image, .text("What is in this picture?")])),
                                           options: GenerationOptions(maxTokens: 12)).summary()
        #expect(projector.encodeCount == 1)
        #expect(first.reusedPromptTokens == 0)
        // The marker's text typed by the user is text, not a place for media.
        let second = try await chat.respond(to: ChatMessage(role: "user", content: .parts([.text("And now? \(projector.marker)"), image])),
                                            options: GenerationOptions(maxTokens: 12)).summary()
        #expect(projector.encodeCount == 1, "the same image was encoded again")
        // The first turn (its image included) stays in the cache.
        #expect(second.reusedPromptTokens > first.promptTokens - 4)
        #expect(await chat.messages.count == 4)

        // The second turn's reply equals a fresh evaluation of the whole conversation.
        let fresh = try MultimodalFixture.context(length: 1024)
        let messages = Array(await chat.messages.prefix(3))
        let decoded = try LlamaMedia(bytes: png, projector: projector)
        let rendered = try projector.model.formatChat(messages, mediaMarker: projector.marker)
        #expect(rendered.components(separatedBy: projector.marker).count == 3)
        let prompt = try projector.tokenize(rendered, media: [decoded, decoded], addSpecial: GenerationOptions().addSpecial,
                                            parseSpecial: true)
        let whole = try await fresh.generate(prompt: prompt, projector: projector, options: GenerationOptions(maxTokens: 12)).summary()
        #expect(whole.generatedTokens == second.generatedTokens)
        #expect(projector.encodeCount == 1)

        // A text turn, then one with the image: the second keeps the first's cache.
        let mixed = try ChatSession(projector: projector, options: ContextOptions(contextLength: 1024, batchSize: 512, threads: 2))
        let text = try await mixed.respond(to: "Hello!", options: GenerationOptions(maxTokens: 4)).summary()
        let withImage = try await mixed.respond(to: ChatMessage(role: "user", content: .parts([image, .text("And this?")])),
                                                options: GenerationOptions(maxTokens: 4)).summary()
        #expect(withImage.reusedPromptTokens >= text.promptTokens)

        // Without a projector, media are refused with a code to switch on; the session goes on.
        let plain = try ChatSession(model: projector.model, options: ContextOptions(contextLength: 1024, batchSize: 512, threads: 2))
        let refused = await #expect(throws: LlamaError.self) {
            _ = try await plain.respond(to: ChatMessage(role: "user", content: .parts([image, .text("What is it?")])))
        }
        #expect(refused?.code == .projectorRequired)
        #expect(refused?.message.contains("mmproj") == true)
        #expect(await plain.messages.isEmpty)
        let after = try await plain.respond(to: "Hello!", options: GenerationOptions(maxTokens: 4)).summary()
        #expect(after.generatedTokens == text.generatedTokens)
    }

    /// Greedy tokens of a plain text prompt: the context still works after a refused input.
    func expectUsable(_ context: LlamaContext, _ reference: [LlamaToken]) async throws {
        let summary = try await context.generate(prompt: "The capital of France is", options: GenerationOptions(maxTokens: 8)).summary()
        #expect(summary.generatedTokens == reference)
    }

    @Test("bad input: typed errors, no crash, the context still usable")
    func badInput() async throws {
        let model = try Fixture.model.get()
        let runtime = try Fixture.runtime.get()
        let dir = try MultimodalFixture.mediaSource
        let vision = try LlamaProjector(model: model, path: try MultimodalFixture.projector(.llava), options: MultimodalFixture.options())
        let audio = try LlamaProjector(model: model, path: try MultimodalFixture.projector(.qwen2Audio), options: MultimodalFixture.options())
        let context = try MultimodalFixture.context(length: 256)
        let reference = try await MultimodalFixture.context(length: 256).generate(prompt: "The capital of France is",
                                                             options: GenerationOptions(maxTokens: 8)).summary().generatedTokens
        #expect(reference.count == 8)

        // Audio bytes to a projector without an audio encoder.
        #expect(await expectLlamaError(.unsupported) { try LlamaMedia(file: dir.appendingPathComponent("test-2.mp3").path, projector: vision) } != nil)
        // Media that do not decode.
        let jpeg = try Data(contentsOf: dir.appendingPathComponent("test-1.jpeg"))
        let mp3 = try Data(contentsOf: dir.appendingPathComponent("test-2.mp3"))
        let undecodable: [(String, Data, LlamaProjector)] = [
            ("a truncated JPEG", jpeg.prefix(100), vision), ("a truncated MP3", mp3.prefix(200), audio),
            ("text", Data("hello, not an image\n".utf8), vision), ("nothing", Data(), vision),
            ("random bytes", Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }), audio),
            ("a WebP header", Data("RIFF\u{0}\u{0}\u{0}\u{0}WEBPVP8 ".utf8) + jpeg.prefix(64), vision)]
        for (name, bytes, projector) in undecodable {
            let error = await expectLlamaError(.invalidMedia) { try LlamaMedia(bytes: Data(bytes), projector: projector) }
            #expect(error != nil, "\(name) was not refused with .invalidMedia")
        }
        #expect(await expectLlamaError(.fileNotFound) { try LlamaMedia(file: "/nonexistent/picture.png", projector: vision) } != nil)
        // Empty media.
        #expect(await expectLlamaError(.invalidMedia) { try LlamaMedia(rgb: [], width: 0, height: 0, runtime: runtime) } != nil)
        #expect(await expectLlamaError(.invalidMedia) { try LlamaMedia(rgb: [], width: 10, height: 0, runtime: runtime) } != nil)
        #expect(await expectLlamaError(.invalidMedia) { try LlamaMedia(pcm: [], runtime: runtime) } != nil)
        #expect(await expectLlamaError(.invalidMedia) { try LlamaMedia(pcm: [0, .nan], runtime: runtime) } != nil)
        #expect(await expectLlamaError(.invalidArgument) { try LlamaMedia(rgb: [1, 2], width: 1, height: 1, runtime: runtime) } != nil)
        #expect(await expectLlamaError(.invalidMedia) {
            try LlamaMedia(rgb: [0, 0, 0], width: 1 << 20, height: 1 << 20, runtime: runtime)
        } != nil)

        let image = try LlamaMedia(rgb: gradientRGB(width: 8, height: 8), width: 8, height: 8, runtime: runtime)
        let tone = try LlamaMedia(pcm: tonePCM(samples: 1600, rate: 16000), runtime: runtime)
        // More media than markers, and fewer.
        #expect(await expectLlamaError(.invalidArgument) { try vision.tokenize("one marker <__media__> only", media: [image, image]) } != nil)
        #expect(await expectLlamaError(.invalidArgument) { try vision.tokenize("<__media__> <__media__>", media: [image]) } != nil)
        // Audio to a vision projector, an image to an audio projector.
        #expect(await expectLlamaError(.unsupported) { try vision.tokenize("<__media__> hi", media: [tone]) } != nil)
        #expect(await expectLlamaError(.unsupported) { try audio.tokenize("<__media__> hi", media: [image]) } != nil)
        // A prompt that ends with media gives nothing to predict from.
        let trailing = try vision.tokenize("Look: <__media__>", media: [image])
        #expect(await expectLlamaError(.invalidArgument) { try await context.generate(prompt: trailing, projector: vision).summary() } != nil)
        // Far more image tokens than the window holds.
        let many = try vision.tokenize(String(repeating: "<__media__>", count: 40) + " What?", media: Array(repeating: image, count: 40))
        #expect(many.tokenCount > context.sequenceLength)
        #expect(await expectLlamaError(.contextOverflow) { try await context.generate(prompt: many, projector: vision).summary() } != nil)
        try await expectUsable(context, reference)

        // Projectors that do not fit, or are not projectors.
        #expect(await expectLlamaError(.fileNotFound) { try LlamaProjector(model: model, path: "/nonexistent/mmproj.gguf") } != nil)
        let text = await expectLlamaError(.invalidModel) { try LlamaProjector(model: model, path: model.path) }
        #expect(text?.message.contains("not a multimodal projector") == true)
        let wide = await expectLlamaError(.projectorMismatch) {
            try LlamaProjector(model: model, path: try MultimodalFixture.projector(.llava, output: 512), options: MultimodalFixture.options())
        }
        #expect(wide?.message.contains("n_embd = 576") == true, "\(String(describing: wide))")
        let truncated = try TestEnvironment.temporaryDirectory().appendingPathComponent("truncated.gguf")
        try Data(contentsOf: URL(fileURLWithPath: try MultimodalFixture.projector(.llava))).prefix(20_000).write(to: truncated)
        #expect(await expectLlamaError(.invalidModel) { try LlamaProjector(model: model, path: truncated.path) } != nil)
        // Idefics3 frames images with tokens SmolLM2 lacks (native C asserts on them in mtmd_helper_eval_chunks).
        let idefics = try LlamaProjector(model: model, path: try MultimodalFixture.projector(.idefics3), options: MultimodalFixture.options())
        let lacking = await expectLlamaError(.projectorMismatch) { try idefics.tokenize("<__media__> hi", media: [image]) }
        #expect(lacking?.message.contains("vocabulary lacks") == true)
        try await expectUsable(context, reference)

        // And after all that, an image prompt still works.
        let fine = try vision.tokenize("<__media__> What is this?", media: [image])
        let summary = try await context.generate(prompt: fine, projector: vision, options: GenerationOptions(maxTokens: 4)).summary()
        #expect(summary.generatedTokens.count == 4)
        try await expectUsable(context, reference)
    }

    /// `make check-vlm MODEL=... MMPROJ=...`: the same equality run for a real vision model.
    @Test("a real vision model: embeddings and greedy tokens equal the C program's (make check-vlm)",
          .enabled(if: ProcessInfo.processInfo.environment["LLAMA_VLM_MMPROJ"] != nil))
    func realModelEqualsNative() async throws {
        let env = ProcessInfo.processInfo.environment
        let modelPath = try #require(env["LLAMA_VLM_MODEL"], "set LLAMA_VLM_MODEL with LLAMA_VLM_MMPROJ")
        let mmproj = try #require(env["LLAMA_VLM_MMPROJ"])
        let image = try env["LLAMA_VLM_IMAGE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? MultimodalFixture.mediaSource.appendingPathComponent("test-1.jpeg").path
        let model = try LlamaModel(runtime: try Fixture.runtime.get(), path: modelPath)
        let text = try model.formatChat([.user("<__media__>\nDescribe this image in one sentence.")])
        let native = try await MultimodalFixture.runNative(projector: mmproj, prompt: text, media: ["file:" + image], predict: 32,
                                                           model: modelPath)
        var options = MultimodalFixture.options()
        options.useGPU = env["LLAMA_VLM_GPU"] == "1"
        let projector = try LlamaProjector(model: model, path: mmproj, options: options)
        let prompt = try projector.tokenize(text, media: [try LlamaMedia(file: image, projector: projector)])
        try await expectEqualToNative(native, prompt: prompt, projector: projector, predict: 32)
    }

    @Test("chat --mmproj --tools: a message with an image goes through the tool loop (a required call, its result, an answer)")
    func chatWithImageAndTools() async throws {
        let path = try MultimodalFixture.projector(.llava)
        let jpeg = try MultimodalFixture.mediaSource.appendingPathComponent("test-1.jpeg").path
        let f = try ChatToolsCLITests.files()
        let r = try await CLITests.cli(["chat", "--mmproj", path, "--no-mmproj-offload", "--temp", "0", "-n", "96", "-c", "2048",
                                        "-t", "2", "--tools", f.tools.path, "--tool-choice", "required",
                                        "--chat-template-file", f.template.path],
                                       stdin: "/image \(jpeg)\nWhat is 12 times 7?\n/exit\n")
        try #require(r.status == 0, "\(r.stderr.suffix(2000))")
        #expect(r.stderr.contains("(image test-1.jpeg attached to the next message)"), "\(r.stderr)")
        #expect(r.stderr.contains("[tool call "), "\(r.stderr)")
        #expect(r.stderr.contains("[tool result "), "\(r.stderr)")
        #expect(!r.stdout.contains("<tool_call>"), "\(r.stdout)")
    }

    @Test("llama-swift run --mmproj --image and chat --mmproj with /image give the library's greedy reply")
    func commandLine() async throws {
        let path = try MultimodalFixture.projector(.llava)
        let jpeg = try MultimodalFixture.mediaSource.appendingPathComponent("test-1.jpeg").path
        let question = "What is in this picture?"
        let model = try Fixture.model.get()
        let projector = try LlamaProjector(model: model, path: path, options: MultimodalFixture.options())
        let prompt = try projector.tokenize(try model.formatChat([.user(projector.marker + question)]),
                                            media: [try LlamaMedia(file: jpeg, projector: projector)])
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 2048, threads: 2))
        let expected = try await context.generate(prompt: prompt, projector: projector, options: GenerationOptions(maxTokens: 8)).summary()
        #expect(expected.generatedTokens.count == 8)

        let common = ["--mmproj", path, "--temp", "0", "-n", "8", "-t", "2", "-c", "2048", "--no-mmproj-offload"]
        let run = try await CLITests.cli(["run", "--image", jpeg, "-p", question] + common)
        #expect(run.status == 0, "\(run.stderr.suffix(2000))")
        #expect(run.stdout == expected.text + "\n")
        let chat = try await CLITests.cli(["chat"] + common, stdin: "/image \(jpeg)\n\(question)\n/audio /nonexistent.wav\n/exit\n")
        #expect(chat.status == 0, "\(chat.stderr.suffix(2000))")
        #expect(chat.stdout == expected.text + "\n")
        #expect(chat.stderr.contains("cannot read the media file /nonexistent.wav"))

        CLITests.expectFailure(try await CLITests.cli(["run", "--image", jpeg, "-p", question]), mentioning: "--mmproj")
        CLITests.expectFailure(try await CLITests.cli(["run", "--mmproj", "/nonexistent/mmproj.gguf", "-p", question]),
                               mentioning: "cannot read the projector /nonexistent/mmproj.gguf")
        CLITests.expectFailure(try await CLITests.cli(["run", "--mmproj", path, "--image", jpeg, "--image", jpeg, "-p",
                                                       "one \(projector.marker) only"]), mentioning: "marker")
    }
}
