import Foundation
public import Hummingbird
public import Llama
public import Logging
public import ServiceLifecycle
public import UnixSignals
import NIOCore

/// An OpenAI-compatible HTTP server over llama.cpp models: chat and text completions (streamed
/// as server-sent events), embeddings, reranking, tokenization, health and Prometheus metrics.
///
/// Each model generates on one context with `LlamaSlots` (continuous batching over
/// `configuration.slots` sequences). Run it as a `Service` in your own `ServiceGroup`, or with
/// ``run(gracefulShutdownSignals:)``. A graceful shutdown stops admitting requests, lets the
/// running ones end (cancelling them after `configuration.shutdownGrace`: their streams end with
/// a final event) and then stops the HTTP server.
public final class LlamaServer: Service, Sendable {
    /// How the server listens, admits and limits requests.
    public let configuration: LlamaServerConfiguration
    let core: ServerCore
    let onListening: @Sendable (_ host: String, _ port: Int) -> Void

    /// Makes each model's context and slots.
    ///
    /// - Parameters:
    ///   - models: the models to serve, each under its id (at least one).
    ///   - configuration: how the server listens, admits and limits requests.
    ///   - logger: where requests and failures are logged.
    ///   - onListening: called once the socket is bound, with the host and the port (the system's
    ///     choice when `configuration.port` is 0).
    public init(models: [ServedModel], configuration: LlamaServerConfiguration = LlamaServerConfiguration(),
                logger: Logger = Logger(label: "llama-swift.server"),
                onListening: @escaping @Sendable (_ host: String, _ port: Int) -> Void = { _, _ in }) throws(LlamaError) {
        guard !models.isEmpty else { throw LlamaError(.invalidArgument, "the server needs at least one model") }
        var ids = Set<String>()
        for m in models where !ids.insert(m.id).inserted {
            throw LlamaError(.invalidArgument, "two models are served as \"\(m.id)\": give each its own alias (alias=path)")
        }
        guard (0...65535).contains(configuration.port) else {
            throw LlamaError(.invalidArgument, "the port must be within 0...65535, not \(configuration.port)")
        }
        guard configuration.maxBodyBytes > 0 else { throw LlamaError(.invalidArgument, "maxBodyBytes must be positive") }
        guard configuration.slots > 0, configuration.promptChunk > 0, configuration.queueSize >= 0,
              configuration.contextLength >= 16 * configuration.slots, configuration.contextLength <= Int(UInt32.max) else {
            throw LlamaError(.invalidArgument, "the configuration needs slots > 0, promptChunk > 0, queueSize >= 0 and "
                + "at least 16 tokens of context per slot (slots \(configuration.slots), contextLength "
                + "\(configuration.contextLength), queueSize \(configuration.queueSize), promptChunk \(configuration.promptChunk))")
        }
        if let limit = configuration.maxLoadedModels, limit < 0 {
            throw LlamaError(.invalidArgument, "maxLoadedModels must not be negative (0 or nil: no limit), not \(limit)")
        }
        let registry = try ModelRegistry(models: models, configuration: configuration, logger: logger)
        self.configuration = configuration
        self.core = ServerCore(registry: registry, configuration: configuration, logger: logger)
        self.onListening = onListening
    }

    /// The served models' ids, in order (the first serves requests that name none).
    public var modelIDs: [String] { core.registry.ids }

    /// The models loaded now.
    public func loadedModels() async -> [String] { await core.registry.loaded.map(\.id) }

    /// Tokens one request may hold (prompt and output) for each loaded model, by id.
    public func sequenceLengths() async -> [String: Int] {
        Dictionary(uniqueKeysWithValues: await core.registry.loaded.map { ($0.id, $0.sequenceLength) })
    }

    /// Loads models now rather than on their first request (each model's file, its context and slots),
    /// in order, within ``LlamaServerConfiguration/maxLoadedModels``: a model that does not load is an
    /// error here, at start, rather than a 500 later.
    public func preload(_ ids: [String]) async throws(LlamaError) {
        for id in ids {
            do { _ = try await core.registry.host(id) } catch {
                throw LlamaError(error.code == "model_not_found" ? .invalidArgument : .invalidModel, error.message)
            }
        }
    }

    /// The engine counters of a model (nil when it is not loaded).
    public func statistics(model id: String) async -> LlamaSlots.Statistics? {
        guard let host = await core.registry.loadedHost(id) else { return nil }
        return await host.slots.statistics
    }

    /// Serves until cancelled or gracefully shut down (by the `ServiceGroup` that runs it).
    public func run() async throws {
        let app = Application(
            responder: Responder(core: core),
            server: .http1(configuration: .init(additionalChannelHandlers: [InboundCloseWatcher()])),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port),
                                                    serverName: "llama-swift"),
            onServerRunning: { [onListening, configuration] channel in
                onListening(configuration.host, channel.localAddress?.port ?? configuration.port)
            },
            logger: core.logger)
        let drainer = Drainer(registry: core.registry, grace: configuration.shutdownGrace)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: app), .init(service: drainer, successTerminationBehavior: .gracefullyShutdownGroup)],
            logger: core.logger))
        try await group.run()
    }

    /// Serves until SIGTERM or SIGINT asks for a graceful shutdown.
    public func runUntilTerminated() async throws {
        try await run(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    /// Serves until one of the signals asks for a graceful shutdown.
    public func run(gracefulShutdownSignals: [UnixSignal]) async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: self)], gracefulShutdownSignals: gracefulShutdownSignals, logger: core.logger))
        try await group.run()
    }
}

/// On a graceful shutdown, stops the engines (running requests end, or are cancelled after the
/// grace) before the HTTP server stops.
struct Drainer: Service {
    let registry: ModelRegistry
    let grace: Duration

    func run() async throws {
        do { try await gracefulShutdown() } catch { return }
        let hosts = await registry.live
        await withTaskGroup(of: Void.self) { group in
            for host in hosts { group.addTask { await host.slots.shutdown(grace: grace) } }
        }
    }
}

extension LlamaServer {
    /// Waits until the model's engine has run a step after `step`, or has no work, and returns
    /// its counters then (`LlamaSlots.waitForStep(after:)`): watching the engine without sleeping.
    public func waitForStep(model id: String, after step: Int) async -> LlamaSlots.Statistics? {
        guard let host = await core.registry.loadedHost(id) else { return nil }
        return await host.slots.waitForStep(after: step)
    }
}
