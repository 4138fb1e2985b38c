import AsyncHTTPClient
import Foundation
import HTTPTypes
import Llama
import NIOCore
import NIOHTTP1

// Chat requests with images and audio: the media read (base64 `data:` URLs, or http(s) URLs
// fetched within limits when the server allows it), decoded with the model's projector, the
// rendered prompt tokenized with them, and the request queued on the model's slots.

extension ChatRequest {
    /// Whether a message carries an image or audio clip.
    var hasMedia: Bool { messages.contains { $0.content.hasMedia } }

    /// Media need a projector: a 400 naming the model when it has none.
    static func checkMedia(_ messages: [ChatMessage], host: ModelHost) throws(APIError) {
        guard host.projector == nil, let i = messages.firstIndex(where: { $0.content.hasMedia }) else { return }
        throw APIError(.badRequest, "messages[\(i)] holds an image or audio, but the model \"\(host.id)\" has no "
            + "multimodal projector: send text only, or serve the model with its mmproj (--mmproj)",
            param: "messages[\(i)].content", code: "projector_required")
    }
}

extension ServerCore {
    /// Queues a chat whose messages carry media: each decoded with the projector (a part that
    /// does not decode is a 400 naming it), the prompt tokenized with them, then the slots.
    func submitMedia(plan: ChatPlan, request: ChatRequest, host: ModelHost,
                     arrival: ContinuousClock.Instant) async throws(APIError) -> GenerationRun {
        guard let projector = host.projector else {
            try ChatRequest.checkMedia(request.messages, host: host)
            throw APIError.from(LlamaError(.projectorRequired, "the model has no projector"))
        }
        var media: [LlamaMedia] = []
        for (i, message) in request.messages.enumerated() {
            guard case .parts(let parts) = message.content else { continue }
            for (j, part) in parts.enumerated() {
                guard let item = part.media else { continue }
                let param = "messages[\(i)].content[\(j)]"
                let bytes = try await mediaBytes(item, param: param)
                do { media.append(try LlamaMedia(bytes: bytes, projector: projector)) } catch {
                    throw APIError.from(error, param: param)
                }
            }
        }
        let prompt: LlamaMultimodalPrompt
        do { prompt = try projector.tokenize(plan.prompt, media: media, addSpecial: true, parseSpecial: true) } catch {
            throw APIError.from(error, param: "messages")
        }
        let options = try generationOptions(promptLength: prompt.positionCount, host: host, maxTokens: request.maxTokens,
                                            stops: request.stops, format: plan.format, probabilities: request.probabilities)
        let stream: AsyncThrowingStream<GenerationEvent, any Error>
        do {
            stream = try await host.slots.submit(prompt: prompt, projector: projector, sampling: request.sampling, options: options)
        } catch {
            throw APIError.from(error, param: "messages")
        }
        return GenerationRun(stream, arrival: arrival, timeout: configuration.requestTimeout, metrics: metrics)
    }

    /// The options of a generation after a prompt of `promptLength` positions (tokens), which
    /// must leave room in the slot.
    func generationOptions(promptLength: Int, host: ModelHost, maxTokens: Int?, stops: [String], format: GenerationFormat,
                           probabilities: Int?) throws(APIError) -> GenerationOptions {
        guard promptLength < host.sequenceLength else {
            throw APIError(.badRequest, "the prompt has \(promptLength) tokens; a request holds at most \(host.sequenceLength) "
                + "tokens here (the context per slot), prompt and output together: shorten it", param: "messages",
                code: "context_length_exceeded")
        }
        var options = GenerationOptions(maxTokens: maxTokens ?? (host.sequenceLength - promptLength), stopSequences: stops)
        options.format = format
        options.probabilities = probabilities
        return options
    }

    /// The bytes of a media part: its data, or its http(s) URL fetched (when allowed).
    func mediaBytes(_ media: ChatMedia, param: String) async throws(APIError) -> Data {
        switch media.source {
        case .data(let data, _): return data
        case .url(let url): return try await RemoteMedia.fetch(url, param: param, configuration: configuration)
        }
    }
}

/// Images and audio at http(s) URLs, fetched with a size and a time limit.
enum RemoteMedia {
    static func fetch(_ url: String, param: String, configuration: LlamaServerConfiguration) async throws(APIError) -> Data {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme),
              parsed.host != nil else {
            throw APIError(.badRequest, "`\(param)`: media are sent as base64 data: URLs (data:image/png;base64,...) or "
                + "http(s) URLs, not \"\(url.prefix(80))\"", param: param, code: "invalid_media_url")
        }
        guard configuration.allowRemoteMedia else {
            throw APIError(.badRequest, "`\(param)`: this server does not fetch remote media (\(url.prefix(200))): send the bytes "
                + "as a base64 data: URL, or start the server with --allow-remote-media", param: param, code: "remote_media_disabled")
        }
        let limit = configuration.mediaMaxBytes
        let timeout = configuration.mediaTimeout
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        var config = HTTPClient.Configuration(redirectConfiguration: .follow(max: 5, allowCycles: false),
                                              timeout: .init(connect: .nanoseconds(nanoseconds), read: .nanoseconds(nanoseconds)))
        config.httpVersion = .http1Only
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        let result: Result<Data, APIError>
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "User-Agent", value: "llama-swift")
            let response = try await client.execute(request, deadline: .now() + .nanoseconds(nanoseconds))
            if !(200..<300).contains(response.status.code) {
                result = .failure(APIError(.badRequest, "`\(param)`: fetching \(url.prefix(200)) gave HTTP \(response.status.code)",
                                           param: param, code: "remote_media_failed"))
            } else if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > limit {
                result = .failure(tooLarge(url, param: param, limit: limit))
            } else {
                result = .success(Data(try await response.body.collect(upTo: limit).readableBytesView))
            }
        } catch is NIOTooManyBytesError {
            result = .failure(tooLarge(url, param: param, limit: limit))
        } catch let error as HTTPClientError where [.deadlineExceeded, .readTimeout, .connectTimeout].contains(error) {
            result = .failure(APIError(.requestTimeout, "`\(param)`: fetching \(url.prefix(200)) took longer than the server's "
                + "media timeout (\(timeout)): send the bytes as a base64 data: URL", param: param, code: "remote_media_timeout"))
        } catch {
            result = .failure(APIError(.badRequest, "`\(param)`: \(url.prefix(200)) could not be fetched: \(error)", param: param,
                                       code: "remote_media_failed"))
        }
        try? await client.shutdown()
        return try result.get()
    }

    static func tooLarge(_ url: String, param: String, limit: Int) -> APIError {
        APIError(.contentTooLarge, "`\(param)`: \(url.prefix(200)) is larger than the server's media limit (\(limit) bytes)",
                 param: param, code: "remote_media_too_large")
    }
}
