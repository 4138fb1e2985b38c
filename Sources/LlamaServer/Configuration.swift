import Foundation
public import Llama

/// How a ``LlamaServer`` listens, admits and limits requests. Flags of `llama-swift serve`
/// (named as llama.cpp's `llama-server` names them) fill it.
public struct LlamaServerConfiguration: Sendable {
    /// The address to bind: loopback unless told otherwise.
    public var host: String = "127.0.0.1"
    /// The port; 0 lets the system choose one (see ``LlamaServer/onListening``).
    public var port: Int = 8080
    /// Requests must carry `Authorization: Bearer <apiKey>` (except `GET /health`); nil: no key.
    public var apiKey: String?
    /// The largest request body, in bytes; a larger one is 413.
    public var maxBodyBytes: Int = 4 << 20
    /// Browsers from this origin (or `*`) may call the API; nil: no CORS headers at all.
    public var corsOrigin: String?
    /// A generation running longer than this ends with a `request_timeout` error; nil: no limit.
    public var requestTimeout: Duration? = .seconds(600)
    /// The slots of each model: requests generated together (llama.cpp `--parallel`).
    public var slots: Int = 4
    /// Requests waiting for a slot, per model; one more gets 503 with `Retry-After`.
    public var queueSize: Int = 64
    /// The context length of each model's context, shared by its slots (llama.cpp `--ctx-size`).
    public var contextLength: Int = 4096
    /// Prompt tokens of one request evaluated per step.
    public var promptChunk: Int = 512
    /// Threads for generation (nil: llama.cpp's choice).
    public var threads: Int32?
    /// How long running requests may go on after a shutdown begins before they are cancelled.
    public var shutdownGrace: Duration = .seconds(10)

    public init() {}

    /// Whether `host` is a loopback address.
    public var isLoopback: Bool {
        let h = host.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || h.hasPrefix("127.")
    }
}

/// A model the server serves under an id (the `model` field of requests).
public struct ServedModel: Sendable {
    public var id: String
    public var model: LlamaModel

    public init(id: String, model: LlamaModel) {
        self.id = id
        self.model = model
    }
}
