import Foundation
public import Llama

/// How a ``LlamaServer`` listens, admits and limits requests. Flags of `llama-swift serve`
/// (named as llama.cpp's `llama-server` names them) fill it.
public struct LlamaServerConfiguration: Sendable {
    /// The address to bind: loopback unless told otherwise.
    public var host: String = "127.0.0.1"
    /// The port; 0 lets the system choose one (see the `onListening` parameter of ``LlamaServer/init(models:configuration:logger:onListening:)``).
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
    /// Host memory per model for conversations its slots give up, in bytes (llama.cpp `--cache-ram`):
    /// a later request continuing one is restored instead of evaluated. 0: none; nil: no limit.
    public var promptCacheBytes: Int? = 8 << 30
    /// Threads for generation (nil: llama.cpp's choice).
    public var threads: Int32?
    /// How long running requests may go on after a shutdown begins before they are cancelled.
    public var shutdownGrace: Duration = .seconds(10)
    /// Fetch images and audio that requests give as http(s) URLs (refused otherwise: clients send
    /// base64 `data:` URLs). The server then reaches any address the URLs name, the local network
    /// included: allow it only for trusted clients.
    public var allowRemoteMedia = false
    /// The largest remote image or audio file fetched, in bytes (413 beyond).
    public var mediaMaxBytes = 20 << 20
    /// How long fetching one remote image or audio file may take (408 beyond).
    public var mediaTimeout: Duration = .seconds(10)
    /// The most models loaded at once (llama.cpp `--models-max`); loading one more unloads the least
    /// recently used. nil: no limit. Requests still running on an unloaded model finish first; its
    /// memory is freed when they end.
    public var maxLoadedModels: Int?

    /// The defaults of `llama-swift serve`.
    public init() {}

    /// Whether `host` is a loopback address.
    public var isLoopback: Bool {
        let h = host.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || h.hasPrefix("127.")
    }
}

/// A model the server serves under an id (the `model` field of requests): one loaded already, or
/// a file loaded on its first request (and unloaded again past ``LlamaServerConfiguration/maxLoadedModels``).
public struct ServedModel: Sendable {
    /// Where the model comes from.
    public enum Source: Sendable {
        /// A model loaded by the caller: its context is made at start; unloading frees the context
        /// (and the slots' caches), not the model, which the caller holds.
        case model(LlamaModel)
        /// A GGUF file (every part of a split model, in order), loaded on the first request for it.
        case file(paths: [String], runtime: LlamaRuntime, options: ModelOptions)
    }

    /// The name clients ask for in `model` (and `GET /v1/models` lists).
    public var id: String
    /// Where the model comes from: loaded by the caller, or a file loaded on first use.
    public var source: Source
    /// A multimodal projector (mmproj GGUF) loaded with the model, so that chat requests may carry
    /// images and audio (llama.cpp `--mmproj`); nil: text only.
    public var projectorPath: String?

    /// A model the caller loaded, served under `id`.
    public init(id: String, model: LlamaModel) {
        self.id = id
        source = .model(model)
    }

    /// A model file loaded when a request first names it.
    public init(id: String, paths: [String], runtime: LlamaRuntime, options: ModelOptions = ModelOptions()) {
        self.id = id
        source = .file(paths: paths, runtime: runtime, options: options)
    }

    /// The models of a folder as llama.cpp's `--models-dir` finds them: each `NAME.gguf` in it is
    /// model `NAME`; each sub-folder is a model named after the folder (its `.gguf` file, or the
    /// first part `…-00001-of-….gguf` of a split one). Projector (`mmproj`) and draft (`mtp-`,
    /// `dspark-`, `dflash-`) files are companions, not models; a folder's `mmproj` file is its
    /// model's ``projectorPath``. Sorted by id.
    public static func folder(_ path: String, runtime: LlamaRuntime, options: ModelOptions = ModelOptions())
        throws(LlamaError) -> [ServedModel] {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue,
              let names = try? fm.contentsOfDirectory(atPath: path) else {
            throw LlamaError(.fileNotFound, "the models folder \(path) does not exist or is not a folder (--models-dir)")
        }
        func companion(_ name: String) -> Bool {
            name.contains("mmproj") || ["mtp-", "dspark-", "dflash-"].contains { name.hasPrefix($0) }
        }
        var found: [ServedModel] = []
        for name in names.sorted() {
            let full = (path as NSString).appendingPathComponent(name)
            var sub: ObjCBool = false
            guard fm.fileExists(atPath: full, isDirectory: &sub) else { continue }
            if sub.boolValue {
                let files = ((try? fm.contentsOfDirectory(atPath: full)) ?? []).sorted()
                    .filter { $0.hasSuffix(".gguf") && !companion($0) }
                let chosen = files.first { $0.contains("-00001-of-") } ?? files.last { !$0.contains("-of-") }
                if let chosen {
                    var served = ServedModel(id: name, paths: [(full as NSString).appendingPathComponent(chosen)],
                                             runtime: runtime, options: options)
                    // As llama.cpp's router: the folder's mmproj file is the model's projector.
                    served.projectorPath = ((try? fm.contentsOfDirectory(atPath: full)) ?? []).sorted()
                        .first { $0.hasSuffix(".gguf") && $0.contains("mmproj") }
                        .map { (full as NSString).appendingPathComponent($0) }
                    found.append(served)
                }
            } else if name.hasSuffix(".gguf"), !companion(name) {
                found.append(ServedModel(id: String(name.dropLast(".gguf".count)), paths: [full], runtime: runtime, options: options))
            }
        }
        guard !found.isEmpty else {
            throw LlamaError(.fileNotFound, "the models folder \(path) holds no model: put NAME.gguf files (or one folder per "
                + "model) in it")
        }
        return found
    }
}
