import Foundation
import Llama
import LlamaServer
import LlamaTestSupport
import Testing

/// Chat requests with images through the server's projector (a synthetic one: no real vision
/// model is reachable here), against the library on the same image.
@Suite("Server: images and audio through the projector", .serialized)
struct ServerMediaTests {
    static let question = "What is in this picture?"
    static let png = pngImage(rgb: gradientRGB(width: 48, height: 40), width: 48, height: 40)

    static func projectorPath() throws -> String {
        let path = try TestEnvironment.temporaryDirectory().appendingPathComponent("mmproj-llava.gguf").path
        try SyntheticProjector.write(.llava, output: 576, to: path, symbols: try ServerFixture.runtime.get().raw)
        return path
    }

    static func served(projector: String?) throws -> ServedModel {
        var served = ServedModel(id: ServerFixture.modelID, model: try ServerFixture.model.get())
        served.projectorPath = projector
        return served
    }

    static func body(image url: String, question: String = question, maxTokens: Int = 12) -> JSONValue {
        ["model": .string(ServerFixture.modelID), "temperature": 0, "max_tokens": .int(maxTokens),
         "messages": [["role": "user", "content": [["type": "image_url", "image_url": ["url": .string(url)]],
                                                   ["type": "text", "text": .string(question)]]]]]
    }

    static var dataURL: String { "data:image/png;base64," + png.base64EncodedString() }

    /// The library's greedy reply to the same message, on a context of its own.
    static func libraryReply(projector path: String) async throws -> GenerationSummary {
        let model = try ServerFixture.model.get()
        var options = ProjectorOptions()
        options.useGPU = false
        options.threads = 2
        let projector = try LlamaProjector(model: model, path: path, options: options)
        let message = ChatMessage(role: "user", content: .parts([.image(ChatMedia(data: png, format: "image/png")), .text(question)]))
        let rendered = try model.formatChat([message], mediaMarker: projector.marker)
        let prompt = try projector.tokenize(rendered, media: [try LlamaMedia(bytes: png, projector: projector)])
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 1024, threads: 2))
        return try await context.generate(prompt: prompt, projector: projector, options: GenerationOptions(maxTokens: 12)).summary()
    }

    static func expectError(_ reply: Reply, _ status: Int, code: String, mentioning text: String? = nil,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.status == status, "\(reply.body)", sourceLocation: sourceLocation)
        let error = reply.json?["error"]
        #expect(error?["code"]?.stringValue == code, "\(reply.body)", sourceLocation: sourceLocation)
        #expect(error?["type"]?.stringValue == "invalid_request_error", "\(reply.body)", sourceLocation: sourceLocation)
        if let text { #expect(error?["message"]?.stringValue?.contains(text) == true, "\(reply.body)", sourceLocation: sourceLocation) }
    }

    @Test("greedy text after an image: the server's equals the library's; the same image again reuses the slot's cache through it")
    func imageEqualsLibrary() async throws {
        let path = try Self.projectorPath()
        let expected = try await Self.libraryReply(projector: path)
        #expect(expected.generatedTokens.count == 12)
        try await withServer(models: [try Self.served(projector: path)]) { server, client in
            let reply = try await client.post("/v1/chat/completions", Self.body(image: Self.dataURL))
            #expect(reply.status == 200, "\(reply.body)")
            #expect(reply.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == expected.text)
            #expect(reply.json?["usage"]?["completion_tokens"] == .int(expected.generatedTokens.count))
            #expect(reply.json?["usage"]?["prompt_tokens"] == .int(expected.promptTokens))

            // Streamed, and again: the slot keeps the prompt, image included (all but the last token).
            let streamed = try await client.stream("/v1/chat/completions", {
                var b = Self.body(image: Self.dataURL)
                if case .object(var o) = b { o["stream"] = true; o["stream_options"] = ["include_usage": true]; b = .object(o) }
                return b
            }())
            #expect(streamed.status == 200)
            let chunks = streamed.events.dropLast().compactMap { try? JSONValue(parsing: $0) }
            #expect(chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.joined() == expected.text)
            #expect(chunks.last?["usage"]?["prompt_tokens_details"]?["cached_tokens"] == .int(expected.promptTokens - 1))
            let statistics = await server.statistics(model: ServerFixture.modelID)
            #expect((statistics?.reusedTokens ?? 0) >= expected.promptTokens - 1)
        }
    }

    @Test("bad media: no projector, bad base64, a corrupt image, audio to a vision projector, remote URLs not allowed: 400s; the server keeps serving")
    func badMedia() async throws {
        let path = try Self.projectorPath()
        let expected = try await Self.libraryReply(projector: path)
        try await withServer(models: [try Self.served(projector: nil)]) { _, client in
            Self.expectError(try await client.post("/v1/chat/completions", Self.body(image: Self.dataURL)), 400,
                             code: "projector_required", mentioning: "--mmproj")
        }
        try await withServer(models: [try Self.served(projector: path)]) { _, client in
            Self.expectError(try await client.post("/v1/chat/completions", Self.body(image: "data:image/png;base64,@@not base64@@")),
                             400, code: "invalid_media", mentioning: "base64")
            let corrupt = Data(Self.png.prefix(40)) + Data(repeating: 7, count: 64)
            Self.expectError(try await client.post("/v1/chat/completions", Self.body(image: "data:image/png;base64," + corrupt.base64EncodedString())),
                             400, code: "invalid_media", mentioning: "could not be decoded")
            let audio: JSONValue = ["temperature": 0, "max_tokens": 4, "messages": [["role": "user", "content": [
                ["type": "input_audio", "input_audio": ["data": .string(Data("RIFF\u{0}\u{0}\u{0}\u{0}WAVEfmt ".utf8).base64EncodedString()), "format": "wav"]],
                ["type": "text", "text": "Hear this?"]]]]]
            let refused = try await client.post("/v1/chat/completions", audio)
            #expect(refused.status == 400, "\(refused.body)")
            Self.expectError(try await client.post("/v1/chat/completions", Self.body(image: "https://127.0.0.1:9/cat.png")), 400,
                             code: "remote_media_disabled", mentioning: "--allow-remote-media")
            Self.expectError(try await client.post("/v1/chat/completions", Self.body(image: "ftp://example.com/cat.png")), 400,
                             code: "invalid_media_url")
            // Still serving, and the same reply as before.
            let reply = try await client.post("/v1/chat/completions", Self.body(image: Self.dataURL))
            #expect(reply.status == 200, "\(reply.body)")
            #expect(reply.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == expected.text)
        }
    }

    @Test("--allow-remote-media: an image over loopback HTTP gives the data: URL's reply; 404, oversize and stalled fetches are 400, 413, 408")
    func remoteMedia() async throws {
        let path = try Self.projectorPath()
        let expected = try await Self.libraryReply(projector: path)
        let file = try TestEnvironment.temporaryDirectory().appendingPathComponent("cat.png")
        try Self.png.write(to: file)
        let big = try TestEnvironment.temporaryDirectory().appendingPathComponent("big.png")
        try (Self.png + Data(repeating: 0, count: 4096)).write(to: big)
        let mirror = try await MirrorServer(files: ["cat.png": file, "big.png": big])
        let base = "http://127.0.0.1:\(mirror.port)"
        try await withServer(models: [try Self.served(projector: path)], { c in
            c.allowRemoteMedia = true
            c.mediaMaxBytes = Self.png.count + 1024
            c.mediaTimeout = .seconds(2)
        }) { _, client in
            let reply = try await client.post("/v1/chat/completions", Self.body(image: base + "/cat.png"))
            #expect(reply.status == 200, "\(reply.body)")
            #expect(reply.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == expected.text)
            Self.expectError(try await client.post("/v1/chat/completions", Self.body(image: base + "/404/cat.png")), 400,
                             code: "remote_media_failed", mentioning: "HTTP 404")
            Self.expectError(try await client.post("/v1/chat/completions", Self.body(image: base + "/big.png")), 413,
                             code: "remote_media_too_large")
            Self.expectError(try await client.post("/v1/chat/completions", Self.body(image: base + "/stall/cat.png")), 408,
                             code: "remote_media_timeout")
            let again = try await client.post("/v1/chat/completions", Self.body(image: base + "/cat.png"))
            #expect(again.status == 200, "\(again.body)")
        }
    }
}
