import Prometheus
import HTTPTypes
import Foundation
import Hummingbird
import Llama
import Logging

/// What every handler shares: the served models, the configuration, the metrics.
final class ServerCore: Sendable {
    let registry: ModelRegistry
    let configuration: LlamaServerConfiguration
    let metrics: ServerMetrics
    let logger: Logger

    init(registry: ModelRegistry, configuration: LlamaServerConfiguration, logger: Logger) {
        self.registry = registry
        self.configuration = configuration
        self.metrics = ServerMetrics()
        self.logger = logger
    }

    static let fingerprint = "llama-swift-" + LlamaRuntime.llamaCppTag

    static func randomID() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<24).map { _ in String("0123456789abcdef".randomElement(using: &g)!) }.joined()
    }

    /// The model a request names (`model`), or the first one when it names none; loaded if it is not.
    func host(for b: JSONBody) async throws(APIError) -> ModelHost {
        try await registry.host(try b.string("model"))
    }

    /// The prompt's tokens and the generation options of a request.
    func generationInput(text: String, host: ModelHost, maxTokens: Int?, stops: [String],
                         format: GenerationFormat, probabilities: Int? = nil) throws(APIError) -> ([LlamaToken], GenerationOptions) {
        let tokens: [LlamaToken]
        do { tokens = try host.model.vocab.tokenize(text, addSpecial: true, parseSpecial: true) } catch {
            throw APIError.from(error, param: "prompt")
        }
        return try generationInput(tokens: tokens, host: host, maxTokens: maxTokens, stops: stops, format: format,
                                   probabilities: probabilities)
    }

    func generationInput(tokens: [LlamaToken], host: ModelHost, maxTokens: Int?, stops: [String],
                         format: GenerationFormat, probabilities: Int? = nil) throws(APIError) -> ([LlamaToken], GenerationOptions) {
        guard !tokens.isEmpty else { throw APIError.invalid("prompt", "the prompt is empty") }
        return (tokens, try generationOptions(promptLength: tokens.count, host: host, maxTokens: maxTokens, stops: stops,
                                              format: format, probabilities: probabilities))
    }

    /// Queues a generation on the model's slots.
    func submit(prompt: [LlamaToken], sampling: SamplerChain, options: GenerationOptions, host: ModelHost,
                arrival: ContinuousClock.Instant) async throws(APIError) -> GenerationRun {
        let stream: AsyncThrowingStream<GenerationEvent, any Error>
        do { stream = try await host.slots.submit(prompt: prompt, sampling: sampling, options: options) } catch {
            throw APIError.from(error)
        }
        return GenerationRun(stream, arrival: arrival, timeout: configuration.requestTimeout, metrics: metrics)
    }

    static func finishReason(_ summary: GenerationSummary, toolCalls: Bool) -> String {
        if toolCalls { return "tool_calls" }
        switch summary.stopReason {
        case .maxTokens, .contextFull: return "length"
        case .endOfGeneration, .stopSequence: return "stop"
        case .cancelled: return "cancelled"
        }
    }

    static func usage(_ s: GenerationSummary) -> JSONValue {
        ["prompt_tokens": .int(s.promptTokens), "completion_tokens": .int(s.generatedTokens.count),
         "total_tokens": .int(s.promptTokens + s.generatedTokens.count),
         "prompt_tokens_details": ["cached_tokens": .int(s.reusedPromptTokens)]]
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var headers: HTTPFields = [:]
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: value.jsonText)))
    }

    static func error(_ e: APIError) -> Response {
        var r = json(e.json, status: e.status)
        for field in e.headers { r.headers.append(field) }
        return r
    }
}
