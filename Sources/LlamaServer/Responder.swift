import Prometheus
import HTTPTypes
import Foundation
import Hummingbird
import Llama
import NIOCore

/// Routes requests, checks the API key, reads bodies within the limit, adds CORS headers, and
/// turns every error into OpenAI's JSON shape; counts responses by status.
struct Responder: HTTPResponder {
    typealias Context = ServerRequestContext
    let core: ServerCore

    func respond(to request: Request, context: Context) async throws -> Response {
        let arrival = ContinuousClock.now
        var response: Response
        do {
            response = try await route(request, arrival: arrival, connection: context.channel)
        } catch let e as APIError {
            response = ServerCore.error(e)
        } catch is CancellationError {
            // The client went away (nginx's 499): nobody reads this.
            response = ServerCore.error(APIError(HTTPResponse.Status(code: 499), "the client closed the request",
                                                 code: "client_closed_request"))
        } catch {
            response = ServerCore.error(APIError.from(error))
        }
        if let origin = core.configuration.corsOrigin {
            response.headers[.accessControlAllowOrigin] = origin == "*" ? "*" : origin
            response.headers[.vary] = "Origin"
        }
        core.metrics.count(status: Int(response.status.code))
        if response.headers[.contentType] != "text/event-stream" {
            core.metrics.requestDuration.record(ContinuousClock.now - arrival)
        }
        return response
    }

    static let generationRoutes: Set<String> = ["/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions"]
    static let postRoutes: Set<String> = ["/v1/embeddings", "/embeddings", "/v1/rerank", "/rerank", "/v1/reranking", "/reranking", "/tokenize", "/detokenize"]

    func route(_ request: Request, arrival: ContinuousClock.Instant, connection: (any Channel)? = nil) async throws -> Response {
        var path = request.uri.path
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        let method = request.method

        if method == .options {
            guard core.configuration.corsOrigin != nil else {
                throw APIError(.methodNotAllowed, "OPTIONS is answered only with --cors", code: "method_not_allowed")
            }
            var headers: HTTPFields = [:]
            headers[.accessControlAllowMethods] = "GET, POST, OPTIONS"
            headers[.accessControlAllowHeaders] = "Authorization, Content-Type"
            headers[.accessControlMaxAge] = "600"
            return Response(status: .noContent, headers: headers)
        }
        if path == "/health" || path == "/v1/health" {
            try expect(method, .get, path)
            return ServerCore.json(["status": "ok"])
        }
        try authorize(request)
        switch path {
        case "/metrics":
            try expect(method, .get, path)
            var headers: HTTPFields = [:]
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            let text = await core.metrics.exposition(models: core.registry)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        case "/v1/models", "/models":
            try expect(method, .get, path)
            return await core.models()
        case _ where path.hasPrefix("/v1/models/"):
            try expect(method, .get, path)
            return try await core.model(named: String(path.dropFirst("/v1/models/".count)).removingPercentEncoding ?? "")
        case _ where Self.generationRoutes.contains(path):
            try expect(method, .post, path)
            let body = try await readJSON(request.body, headers: request.headers)
            // A generation ends when its client goes away: a stream notices at its next write; a
            // reply still being generated when the connection's watcher sees the client close,
            // which cancels the work (the engine frees the slot within one step).
            guard let connection,
                  let watcher = try? await connection.pipeline.handler(type: InboundCloseWatcher.self).get() else {
                return try await dispatch(path, body, arrival: arrival)
            }
            let work = Task { try await dispatch(path, body, arrival: arrival) }
            let id = watcher.onClose { work.cancel() }
            defer { watcher.remove(id) }
            return try await withTaskCancellationHandler { try await work.value } onCancel: { work.cancel() }
        case _ where Self.postRoutes.contains(path):
            try expect(method, .post, path)
            return try await dispatch(path, try await readJSON(request.body, headers: request.headers), arrival: arrival)
        default:
            throw APIError(.notFound, "no endpoint \(method) \(path)", type: "not_found_error", code: "not_found")
        }
    }

    func dispatch(_ path: String, _ body: JSONValue, arrival: ContinuousClock.Instant) async throws -> Response {
        switch path {
        case "/v1/chat/completions", "/chat/completions": return try await core.chatCompletions(body, arrival: arrival)
        case "/v1/completions", "/completions": return try await core.completions(body, arrival: arrival)
        case "/v1/embeddings", "/embeddings": return try await core.embeddings(body)
        case "/v1/rerank", "/rerank", "/v1/reranking", "/reranking": return try await core.rerank(body)
        case "/tokenize": return try await core.tokenize(body)
        default: return try await core.detokenize(body)
        }
    }

    func expect(_ method: HTTPRequest.Method, _ wanted: HTTPRequest.Method, _ path: String) throws(APIError) {
        guard method == wanted else {
            var e = APIError(.methodNotAllowed, "\(path) takes \(wanted), not \(method)", code: "method_not_allowed")
            e.headers[.allow] = wanted.rawValue
            throw e
        }
    }

    /// `Authorization: Bearer <key>`, compared in constant time.
    func authorize(_ request: Request) throws(APIError) {
        guard let key = core.configuration.apiKey else { return }
        let header = request.headers[.authorization] ?? ""
        let given = header.hasPrefix("Bearer ") ? String(header.dropFirst("Bearer ".count)) : ""
        guard Self.constantTimeEqual(Array(given.utf8), Array(key.utf8)) else {
            var e = APIError(.unauthorized, header.isEmpty ? "the request needs an API key: Authorization: Bearer <key>"
                                                           : "the API key is not valid", type: "authentication_error",
                             code: "invalid_api_key")
            e.headers[.wwwAuthenticate] = "Bearer"
            throw e
        }
    }

    /// Equality whose time depends only on the lengths, not on where the bytes differ.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt(a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= UInt(x ^ y)
        }
        return difference == 0
    }

    /// The body as JSON: within the size limit (413), UTF-8 (400), JSON (400).
    func readJSON(_ body: RequestBody, headers: HTTPFields) async throws -> JSONValue {
        let limit = core.configuration.maxBodyBytes
        let tooLarge = APIError(.contentTooLarge, "the request body is larger than the server's limit of \(limit) bytes",
                                code: "request_too_large")
        if let length = headers[.contentLength].flatMap(Int.init), length > limit { throw tooLarge }
        var bytes: [UInt8] = []
        for try await buffer in body {
            guard bytes.count + buffer.readableBytes <= limit else { throw tooLarge }
            bytes += buffer.readableBytesView
        }
        return try Self.parseJSON(bytes)
    }

    /// A body's bytes as JSON: UTF-8 (400), JSON (400).
    static func parseJSON(_ bytes: [UInt8]) throws(APIError) -> JSONValue {
        guard !bytes.isEmpty else { throw APIError.invalid(nil, "the request has no body: send a JSON object", code: "invalid_json") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw APIError.invalid(nil, "the request body is not valid UTF-8", code: "invalid_utf8")
        }
        do { return try JSONValue(parsing: text) } catch {
            throw APIError.invalid(nil, "the request body is not valid JSON: \(error.description)", code: "invalid_json")
        }
    }
}

/// The request context: Hummingbird's basics and the connection, whose closing cancels a
/// generation that is still being computed for it.
struct ServerRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: (any Channel)?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
