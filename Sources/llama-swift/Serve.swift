import ArgumentParser
import Foundation
import Llama
import LlamaServer
import Logging

/// `llama-swift serve`: the OpenAI-compatible HTTP server (module LlamaServer).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve models over an OpenAI-compatible HTTP API (chat, completions, embeddings, rerank, metrics).",
        discussion: """
            Binds 127.0.0.1 unless --host says otherwise. Once listening it prints a summary, then \
            `listening on http://HOST:PORT` and a JSON line ({"listening": URL, "port", "pid", ...}) on \
            stdout; with --port 0 the system chooses the port. SIGTERM or SIGINT: running requests \
            end (cancelled after --shutdown-grace) and the server exits 0.
            """)

    @Option(help: "The address to bind.")
    var host = "127.0.0.1"
    @Option(help: "The port (0: chosen by the system, printed when listening).")
    var port = 8080
    @Option(name: [.short, .long], help: "A model to serve: a GGUF path, a Hugging Face file (owner/repo/file.gguf), or ALIAS=either; repeatable (default: $LLAMA_MODEL, else SmolLM2-135M-Instruct). Requests pick one with `model`.")
    var model: [String] = []
    @Option(help: "A folder of models, each loaded on the first request that names it: NAME.gguf files, or one sub-folder per model (named after it).")
    var modelsDir: String?
    @Option(name: [.customLong("models-max"), .customLong("max-loaded-models")], help: "The most models loaded at once; one more unloads the least recently used (0: no limit).")
    var modelsMax = 4
    @Option(name: [.customLong("parallel"), .customLong("np", withSingleDash: true)], help: "Slots per model: requests generated together.")
    var parallel = 4
    @Option(name: [.short, .customLong("ctx-size")], help: "Context length per model, shared by its slots.")
    var ctxSize = 4096
    @Option(name: [.customLong("cache-ram"), .customLong("cram", withSingleDash: true)],
            help: "MiB of host memory per model for conversations slots give up, restored when a request continues one (-1: no limit, 0: off).")
    var cacheRam = 8192
    @Option(help: "Requests waiting for a slot per model; more get 503 with Retry-After.")
    var queueSize = 64
    @Option(help: "Requests must send `Authorization: Bearer KEY` (GET /health is open) (default: $LLAMA_SWIFT_API_KEY).")
    var apiKey: String?
    @Option(help: "The largest request body in bytes (413 beyond).")
    var bodyLimit = 4 << 20
    @Option(help: "Allow browsers from this origin (or *) to call the API.")
    var cors: String?
    @Option(name: [.customLong("timeout"), .customLong("to", withSingleDash: true)], help: "Seconds a generation may run before it ends with a request_timeout error (0: no limit).")
    var timeout: Double = 600
    @Option(help: "Seconds running requests may go on after SIGTERM before they are cancelled.")
    var shutdownGrace: Double = 10
    @Option(name: [.short, .long], help: "Threads (default: llama.cpp's choice).")
    var threads: Int32?
    @Option(name: [.customLong("gpu-layers"), .customLong("ngl", withSingleDash: true)], help: "Layers to offload to the GPU (-1: all).")
    var gpuLayers: Int32 = -1
    @Option(help: "The folder of an unpacked llama.cpp release to load (default: $LLAMA_SWIFT_LIB_DIR, else a bundle or the cache, installing when needed).")
    var libDir: String?
    @OptionGroup var parameters: ModelParameterFlags
    @OptionGroup(title: "Images and audio") var media: ServeMediaFlags
    @OptionGroup var install: InstallFlags

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be within 0...65535") }
        guard parallel > 0 else { throw ValidationError("--parallel must be positive") }
        guard ctxSize >= 16 * parallel else { throw ValidationError("--ctx-size must be at least 16 tokens per slot") }
        guard cacheRam >= -1 else { throw ValidationError("--cache-ram must be -1 (no limit), 0 (off) or a number of MiB") }
        guard queueSize >= 0 else { throw ValidationError("--queue-size must not be negative") }
        guard bodyLimit > 0 else { throw ValidationError("--body-limit must be positive") }
        guard timeout >= 0, shutdownGrace >= 0 else { throw ValidationError("--timeout and --shutdown-grace must not be negative") }
        if let threads, threads <= 0 { throw ValidationError("--threads must be positive") }
        if let apiKey, apiKey.isEmpty { throw ValidationError("--api-key must not be empty") }
        guard modelsMax >= 0 else { throw ValidationError("--models-max must not be negative (0: no limit)") }
    }

    /// `ALIAS=PATH` or `PATH`: the alias, and the model reference.
    static func split(_ value: String) -> (alias: String?, reference: String) {
        if let eq = value.firstIndex(of: "="), !value[..<eq].contains("/") {
            return (String(value[..<eq]), String(value[value.index(after: eq)...]))
        }
        return (nil, value)
    }

    func run() async throws {
        let store = LlamaModelStore(options: install.options())
        var paths: [(String, String)] = []
        for value in model.isEmpty && modelsDir == nil ? [""] : model {
            let (alias, reference) = Self.split(value)
            let path: String
            if reference.isEmpty {
                path = try await CLI.run { () async throws(LlamaError) in
                    try await LlamaModel.defaultModelPath(store: store, progress: ProgressPrinter().handler)
                }
            } else if FileManager.default.fileExists(atPath: reference) || reference.hasPrefix("/") || reference.hasPrefix(".") {
                path = reference
            } else if let hub = LlamaModelReference(reference) {
                path = try await CLI.run { () async throws(LlamaError) in
                    try await store.pull(hub, progress: ProgressPrinter().handler).path!.path
                }
            } else {
                CLI.note("error: --model \(reference) is neither a file nor a Hugging Face reference (owner/repo/file.gguf)")
                throw ExitCode(1)
            }
            let id = alias ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            paths.append((id, path))
        }
        let runtime = try await CLI.loadRuntime(libDir: libDir, options: install.options())
        var options = ModelOptions()
        options.gpuLayers = gpuLayers
        options.plannedContextLength = UInt32(ctxSize)
        try parameters.apply(to: &options)
        // --model files are loaded at start (within --models-max), so that a bad one stops the server
        // now; the models of --models-dir on their first request.
        var served = paths.map { ServedModel(id: $0.0, paths: [$0.1], runtime: runtime, options: options) }
        var config = LlamaServerConfiguration()
        try media.apply(to: &served, configuration: &config)
        let preloaded = Array(served.map(\.id).prefix(modelsMax > 0 ? modelsMax : served.count))
        if let modelsDir {
            served += try await CLI.run { () throws(LlamaError) in try ServedModel.folder(modelsDir, runtime: runtime, options: options) }
        }

        config.host = host
        config.port = port
        config.apiKey = apiKey ?? ProcessInfo.processInfo.environment["LLAMA_SWIFT_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        config.maxBodyBytes = bodyLimit
        config.corsOrigin = cors
        config.requestTimeout = timeout > 0 ? .milliseconds(Int64(timeout * 1000)) : nil
        config.slots = parallel
        config.queueSize = queueSize
        config.promptCacheBytes = cacheRam < 0 ? nil : cacheRam << 20
        config.contextLength = ctxSize
        config.threads = threads
        config.shutdownGrace = .milliseconds(Int64(shutdownGrace * 1000))
        config.maxLoadedModels = modelsMax > 0 ? modelsMax : nil
        if !config.isLoopback && config.apiKey == nil {
            CLI.note("warning: serving on \(host), beyond this machine, without an API key: anyone who reaches the port "
                + "can use it; pass --api-key or set LLAMA_SWIFT_API_KEY")
        }
        _ = CLI.logger
        var logger = Logger(label: "llama-swift.serve")
        logger.logLevel = ProcessInfo.processInfo.environment["LLAMA_SWIFT_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        let devices = runtime.devices.map(\.name).joined(separator: ", ")
        let ids = served.map(\.id)
        let slots = parallel
        let loadedAtStart = preloaded
        let server = try await CLI.run { () throws(LlamaError) in
            try LlamaServer(models: served, configuration: config, logger: logger) { boundHost, boundPort in
                let shown = boundHost.contains(":") ? "[\(boundHost)]" : boundHost
                let url = "http://\(shown):\(boundPort)"
                let summary: JSONValue = ["listening": .string(url), "port": .int(boundPort), "pid": .int(Int(getpid())),
                                          "models": .array(ids.map(JSONValue.string)), "slots": .int(slots)]
                let shownModels = ids.map { loadedAtStart.contains($0) ? $0 : "\($0) (on first use)" }.joined(separator: ", ")
                let text = "llama-swift serve: models \(shownModels); \(slots) slots each; devices: \(devices)\n"
                    + "listening on \(url)\n\(summary.jsonText)\n"
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        }
        try await CLI.run { () async throws(LlamaError) in try await server.preload(preloaded) }
        let perSlot = await server.sequenceLengths().map { "\($0.key): \($0.value) tokens per slot" }.sorted().joined(separator: ", ")
        CLI.note("serve: \(perSlot)")
        do {
            try await server.runUntilTerminated()
        } catch {
            CLI.note("error: the server stopped: \(error)")
            throw ExitCode(1)
        }
        CLI.note("serve: shut down")
    }
}
