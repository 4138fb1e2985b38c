public import HTTPTypes
public import Llama

/// An error a request gets back, in OpenAI's shape: `{"error":{"message","type","param","code"}}`
/// with its HTTP status. Every failure of a request becomes one of these, in one place
/// (`APIError.from(_:param:)`), so clients can switch on `code`.
public struct APIError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status of the response.
    public var status: HTTPResponse.Status
    /// What went wrong, for people (`error.message`).
    public var message: String
    /// `invalid_request_error`, `authentication_error`, `not_found_error`, `server_error`, ...
    public var type: String
    /// The request field at fault (`max_tokens`, `messages[1].role`), when one is.
    public var param: String?
    /// A stable code: `invalid_value`, `missing_field`, `model_not_found`, `queue_full`, ...
    public var code: String
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`).
    public var headers: HTTPFields = [:]

    /// An error response; every parameter is the property of the same name.
    public init(_ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error",
                param: String? = nil, code: String) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    /// The response body.
    public var json: JSONValue {
        ["error": ["message": .string(message), "type": .string(type), "param": param.map(JSONValue.string) ?? .null,
                   "code": .string(code)]]
    }

    static func invalid(_ param: String?, _ message: String, code: String = "invalid_value") -> APIError {
        APIError(.badRequest, message, param: param, code: code)
    }

    static func missing(_ param: String) -> APIError {
        APIError(.badRequest, "the request needs the field `\(param)`", param: param, code: "missing_field")
    }

    static func unsupported(_ param: String, _ message: String) -> APIError {
        APIError(.badRequest, message, param: param, code: "unsupported_parameter")
    }

    /// The error of a library call made for a request: the request's fault (4xx) or the server's (5xx).
    static func from(_ error: any Error, param: String? = nil) -> APIError {
        if let api = error as? APIError { return api }
        guard let e = error as? LlamaError else {
            return APIError(.internalServerError, "internal error: \(error)", type: "server_error", code: "internal_error")
        }
        switch e.code {
        case .busy:
            var a = APIError(.serviceUnavailable, "the server is busy: \(e.message)", type: "server_error", code: "queue_full")
            a.headers[.retryAfter] = "1"
            return a
        case .contextOverflow:
            return APIError(.badRequest, e.message, param: param, code: "context_length_exceeded")
        case .invalidSchema:
            return APIError(.badRequest, e.message, param: param, code: "invalid_schema")
        case .invalidGrammar:
            return APIError(.badRequest, e.message, param: param, code: "invalid_grammar")
        case .invalidArgument, .invalidUTF8:
            return APIError(.badRequest, e.message, param: param, code: "invalid_value")
        case .template:
            return APIError(.badRequest, e.message, param: param ?? "messages", code: "template_error")
        case .unsupported:
            return APIError(.badRequest, e.message, param: param, code: "unsupported")
        case .invalidMedia, .projectorRequired:
            return APIError(.badRequest, e.message, param: param, code: e.code == .invalidMedia ? "invalid_media" : "projector_required")
        case .grammarDeadEnd:
            return APIError(.internalServerError, e.message, type: "server_error", code: "grammar_dead_end")
        case .cancelled:
            return APIError(.serviceUnavailable, "the request was cancelled: the server is shutting down",
                            type: "server_error", code: "cancelled")
        default:
            return APIError(.internalServerError, e.description, type: "server_error", code: e.code.rawValue)
        }
    }
}
