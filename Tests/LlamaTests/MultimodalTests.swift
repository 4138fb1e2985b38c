import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// Small projector GGUFs written through the bound gguf API: seeded random weights, tiny
/// encoders, and an output width of the text model's embedding width, so that SmolLM2 consumes
/// their embeddings. No real vision or audio model is reachable here; equality with a C program
/// over the same libraries is the proof.
enum SyntheticProjector {
    enum Kind {
        /// LLaVA-style: a 2-layer ViT over 32×32 images in 8×8 patches, and an MLP (16 tokens per image).
        case llava
        /// Qwen2-Audio: a Whisper encoder (1 layer, 80 mel bins) and a linear projection.
        case qwen2Audio
        /// Idefics3 (SmolVLM): its image template needs tokens SmolLM2 lacks.
        case idefics3
    }

    /// A deterministic generator (SplitMix64).
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        /// Uniform in [-scale, scale).
        mutating func weight(_ scale: Float) -> Float {
            (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }

    static let width = 16, heads = 2, feedForward = 32

    /// Writes a projector of `kind` whose embeddings are `output` wide.
    static func write(_ kind: Kind, output: Int, to path: String, seed: UInt64 = 7, runtime: LlamaRuntime) throws {
        let c = runtime.raw
        var random = Random(state: seed)
        let e = width
        var tensors: [(String, [Int64], Float)] = []  // name, ggml shape (ne), scale (0: ones-ish norm weights)
        func linear(_ name: String, _ input: Int, _ outputs: Int, bias: Bool = true) {
            tensors.append(("\(name).weight", [Int64(input), Int64(outputs)], 0.3))
            if bias { tensors.append(("\(name).bias", [Int64(outputs)], 0.1)) }
        }
        func norm(_ name: String, _ n: Int) {
            tensors.append(("\(name).weight", [Int64(n)], -1))
            tensors.append(("\(name).bias", [Int64(n)], 0.1))
        }
        func block(_ prefix: String, _ i: Int, keyBias: Bool) {
            linear("\(prefix).blk.\(i).attn_q", e, e)
            linear("\(prefix).blk.\(i).attn_k", e, e, bias: keyBias)
            linear("\(prefix).blk.\(i).attn_v", e, e)
            linear("\(prefix).blk.\(i).attn_out", e, e)
            norm("\(prefix).blk.\(i).ln1", e)
            norm("\(prefix).blk.\(i).ln2", e)
            linear("\(prefix).blk.\(i).ffn_up", e, feedForward)
            linear("\(prefix).blk.\(i).ffn_down", feedForward, e)
        }

        guard let gguf = c.gguf_init_empty() else { throw TestEnvironment.Missing(description: "gguf_init_empty failed") }
        defer { c.gguf_free(gguf) }
        func u32(_ key: String, _ v: UInt32) { c.gguf_set_val_u32(gguf, key, v) }
        c.gguf_set_val_str(gguf, "general.architecture", "clip")
        c.gguf_set_val_str(gguf, "general.name", "synthetic \(kind) projector (tests)")
        let section: String
        switch kind {
        case .llava, .idefics3:
            section = "vision"
            c.gguf_set_val_str(gguf, "clip.projector_type", kind == .llava ? "mlp" : "idefics3")
            c.gguf_set_val_bool(gguf, "clip.has_vision_encoder", true)
            c.gguf_set_val_bool(gguf, "clip.use_gelu", true)
            u32("clip.vision.image_size", 32)
            u32("clip.vision.patch_size", 8)
            for key in ["clip.vision.image_mean", "clip.vision.image_std"] {
                let half: [Float] = [0.5, 0.5, 0.5]
                half.withUnsafeBufferPointer { c.gguf_set_arr_data(gguf, key, GGUF_TYPE_FLOAT32, $0.baseAddress, 3) }
            }
            let blocks = kind == .llava ? 2 : 1
            tensors.append(("v.patch_embd.weight", [8, 8, 3, Int64(e)], 0.3))
            tensors.append(("v.patch_embd.bias", [Int64(e)], 0.1))
            tensors.append(("v.position_embd.weight", [Int64(e), 16], 0.3))
            if kind == .llava { norm("v.pre_ln", e) } else { norm("v.post_ln", e) }
            for i in 0..<blocks { block("v", i, keyBias: true) }
            if kind == .llava {
                linear("mm.0", e, 64)
                linear("mm.2", 64, output)
            } else {
                u32("clip.vision.projector.scale_factor", 2)
                u32("clip.vision.preproc_image_size", 64)
                tensors.append(("mm.model.fc.weight", [Int64(e * 4), Int64(output)], 0.3))
            }
            u32("clip.vision.block_count", UInt32(blocks))
        case .qwen2Audio:
            section = "audio"
            c.gguf_set_val_str(gguf, "clip.projector_type", "qwen2a")
            c.gguf_set_val_bool(gguf, "clip.has_audio_encoder", true)
            u32("clip.audio.num_mel_bins", 80)
            u32("clip.audio.block_count", 1)
            tensors.append(("a.conv1d.1.weight", [3, 80, Int64(e)], 0.3))
            tensors.append(("a.conv1d.1.bias", [1, Int64(e)], 0.1))
            tensors.append(("a.conv1d.2.weight", [3, Int64(e), Int64(e)], 0.3))
            tensors.append(("a.conv1d.2.bias", [1, Int64(e)], 0.1))
            tensors.append(("a.position_embd.weight", [Int64(e), 1500], 0.3))
            block("a", 0, keyBias: false)
            norm("a.post_ln", e)
            linear("mm.a.fc", e, output)
        }
        u32("clip.\(section).embedding_length", UInt32(e))
        u32("clip.\(section).attention.head_count", UInt32(heads))
        u32("clip.\(section).feed_forward_length", UInt32(feedForward))
        u32("clip.\(section).projection_dim", UInt32(output))
        c.gguf_set_val_f32(gguf, "clip.\(section).attention.layer_norm_epsilon", 1e-6)

        let elements = tensors.reduce(0) { $0 + Int($1.1.reduce(1, *)) }
        let params = ggml_init_params(mem_size: elements * 4 + tensors.count * 1024 + (1 << 16), mem_buffer: nil, no_alloc: false)
        guard let ggml = c.ggml_init(params) else { throw TestEnvironment.Missing(description: "ggml_init failed") }
        defer { c.ggml_free(ggml) }
        for (name, shape, scale) in tensors {
            let t: UnsafeMutablePointer<ggml_tensor>?
            switch shape.count {
            case 1: t = c.ggml_new_tensor_1d(ggml, GGML_TYPE_F32, shape[0])
            case 2: t = c.ggml_new_tensor_2d(ggml, GGML_TYPE_F32, shape[0], shape[1])
            case 3: t = c.ggml_new_tensor_3d(ggml, GGML_TYPE_F32, shape[0], shape[1], shape[2])
            default: t = c.ggml_new_tensor_4d(ggml, GGML_TYPE_F32, shape[0], shape[1], shape[2], shape[3])
            }
            guard let t, let data = t.pointee.data else { throw TestEnvironment.Missing(description: "ggml_new_tensor failed") }
            _ = c.ggml_set_name(t, name)
            let values = data.assumingMemoryBound(to: Float.self)
            for i in 0..<Int(shape.reduce(1, *)) { values[i] = scale < 0 ? 1 + random.weight(0.2) : random.weight(scale) }
            c.gguf_add_tensor(gguf, t)
        }
        guard c.gguf_write_to_file(gguf, path, false) else {
            throw TestEnvironment.Missing(description: "gguf_write_to_file \(path) failed")
        }
    }
}

/// The generated images: the same formula as the C program's `gradient:W:H`.
func gradientRGB(width w: Int, height h: Int) -> [UInt8] {
    let dx = w > 1 ? w - 1 : 1, dy = h > 1 ? h - 1 : 1, dxy = w + h > 2 ? w + h - 2 : 1
    var rgb = [UInt8](repeating: 0, count: w * h * 3)
    for y in 0..<h {
        for x in 0..<w {
            let p = (y * w + x) * 3
            rgb[p] = UInt8(x * 255 / dx)
            rgb[p + 1] = UInt8(y * 255 / dy)
            rgb[p + 2] = UInt8((x + y) * 255 / dxy)
        }
    }
    return rgb
}

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
        try SyntheticProjector.write(kind, output: output, to: path, runtime: try Fixture.runtime.get())
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
        let runtime = try Fixture.runtime.get()
        let image = try LlamaMedia(rgb: gradientRGB(width: 48, height: 40), width: 48, height: 40, runtime: runtime)
        let again = try LlamaMedia(rgb: gradientRGB(width: 48, height: 40), width: 48, height: 40, runtime: runtime)
        #expect(image.id == again.id)
        let chat = try MultimodalChatSession(projector: projector, options: ContextOptions(contextLength: 1024, batchSize: 512, threads: 2))
        let first = try await chat.respond(to: "What is in this picture?", media: [image],
                                           options: GenerationOptions(maxTokens: 12)).summary()
        #expect(projector.encodeCount == 1)
        #expect(first.reusedPromptTokens == 0)
        let second = try await chat.respond(to: "And now? \(projector.marker)", media: [again],
                                            options: GenerationOptions(maxTokens: 12)).summary()
        #expect(projector.encodeCount == 1, "the same image was encoded again")
        // The first turn (its image included) stays in the cache.
        #expect(second.reusedPromptTokens > first.promptTokens - 4)
        #expect(await chat.messages.count == 4)
        #expect(await chat.media.count == 2)

        // The second turn's reply equals a fresh evaluation of the whole conversation.
        let fresh = try MultimodalFixture.context(length: 1024)
        let messages = Array(await chat.messages.prefix(3))
        let prompt = try projector.tokenize(try projector.model.formatChat(messages), media: [image, again],
                                            addSpecial: false, parseSpecial: true)
        let whole = try await fresh.generate(prompt: prompt, projector: projector, options: GenerationOptions(maxTokens: 12)).summary()
        #expect(whole.generatedTokens == second.generatedTokens)
        #expect(projector.encodeCount == 1)
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

    @Test("llama-swift run --mmproj --image and chat --mmproj with /image give the library's greedy reply")
    func commandLine() async throws {
        let path = try MultimodalFixture.projector(.llava)
        let jpeg = try MultimodalFixture.mediaSource.appendingPathComponent("test-1.jpeg").path
        let question = "What is in this picture?"
        let model = try Fixture.model.get()
        let projector = try LlamaProjector(model: model, path: path, options: MultimodalFixture.options())
        let prompt = try projector.tokenize(try model.formatChat([.user("\(projector.marker)\n\(question)")]),
                                            media: [try LlamaMedia(file: jpeg, projector: projector)], addSpecial: false)
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
