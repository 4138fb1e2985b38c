import HTTPTypes
import Foundation
import Llama
import Logging

/// The served models and which of them are loaded: a model file is loaded on the first request
/// that names it (concurrent requests wait for the same load), and past
/// ``LlamaServerConfiguration/maxLoadedModels`` the least recently requested one is unloaded.
///
/// Unloading drops the registry's hold on the model's host: requests already running on it keep
/// it alive and finish; its context and model are freed when the last one ends. Those hosts stay
/// reachable (weakly) for a graceful shutdown.
actor ModelRegistry {
    /// How a model stands, as `/v1/models` reports it.
    enum State: String {
        case loaded, loading, unloaded, failed
    }

    private struct Entry {
        let served: ServedModel
        var host: ModelHost?
        var loading: Task<ModelHost, any Error>?
        var failure: String?
        var lastUsed = 0
    }

    nonisolated let ids: [String]
    private let configuration: LlamaServerConfiguration
    private let logger: Logger
    private var entries: [Entry]
    private var clock = 0
    private var retired: [WeakHost] = []
    /// Models loaded since the start, and unloaded (for `/metrics`).
    private(set) var loads = 0
    private(set) var unloads = 0

    /// Makes the hosts of models given loaded (their contexts are made now); files wait for a request.
    init(models: [ServedModel], configuration: LlamaServerConfiguration, logger: Logger) throws(LlamaError) {
        var entries: [Entry] = []
        for m in models {
            var entry = Entry(served: m)
            let loaded = entries.count { $0.host != nil }
            if case .model(let model) = m.source, configuration.maxLoadedModels.map({ $0 <= 0 || loaded < $0 }) ?? true {
                entry.host = try ModelHost(id: m.id, model: model, configuration: configuration, projectorPath: m.projectorPath)
            }
            entries.append(entry)
        }
        self.entries = entries
        ids = models.map(\.id)
        self.configuration = configuration
        self.logger = logger
    }

    /// The host of model `id` (nil: the first model), loading it when needed.
    func host(_ id: String?) async throws(APIError) -> ModelHost {
        let i: Int
        if let id {
            guard let found = ids.firstIndex(of: id) else {
                throw APIError(.notFound, "the model \"\(id)\" is not served here; GET /v1/models lists the models "
                    + "(\(ids.joined(separator: ", ")))", type: "invalid_request_error", param: "model", code: "model_not_found")
            }
            i = found
        } else {
            i = 0
        }
        clock += 1
        entries[i].lastUsed = clock
        if let host = entries[i].host { return host }
        let task: Task<ModelHost, any Error>
        if let loading = entries[i].loading {
            task = loading
        } else {
            let served = entries[i].served, configuration = self.configuration
            logger.info("loading model \(served.id)")
            task = Task.detached { try await Self.load(served, configuration: configuration) }
            entries[i].loading = task
            entries[i].failure = nil
        }
        do {
            let host = try await task.value
            // Another waiter of the same load may have stored it already.
            if let stored = entries[i].host { return stored }
            entries[i].host = host
            entries[i].loading = nil
            loads += 1
            unloadBeyondLimit(keeping: i)
            return host
        } catch {
            entries[i].loading = nil
            let reason = (error as? LlamaError)?.message ?? "\(error)"
            entries[i].failure = reason
            throw APIError(.internalServerError, "the model \"\(entries[i].served.id)\" could not be loaded: \(reason)",
                           type: "server_error", param: "model", code: "model_load_failed")
        }
    }

    private static func load(_ served: ServedModel, configuration: LlamaServerConfiguration) async throws -> ModelHost {
        let model: LlamaModel
        switch served.source {
        case .model(let m): model = m
        case .file(let paths, let runtime, let options): model = try await LlamaModel.load(runtime: runtime, paths: paths, options: options)
        }
        return try ModelHost(id: served.id, model: model, configuration: configuration, projectorPath: served.projectorPath)
    }

    /// Unloads the least recently requested models until at most `maxLoadedModels` are loaded.
    private func unloadBeyondLimit(keeping kept: Int) {
        guard let limit = configuration.maxLoadedModels, limit > 0 else { return }
        while entries.count(where: { $0.host != nil }) > limit {
            guard let victim = entries.indices.filter({ $0 != kept && entries[$0].host != nil })
                .min(by: { entries[$0].lastUsed < entries[$1].lastUsed }) else { return }
            if let host = entries[victim].host { retired.append(WeakHost(host)) }
            entries[victim].host = nil
            unloads += 1
            logger.info("unloaded model \(entries[victim].served.id) (--models-max \(limit))")
        }
        retired.removeAll { $0.host == nil }
    }

    /// The loaded hosts.
    var loaded: [ModelHost] { entries.compactMap(\.host) }

    /// The loaded host of model `id`, without loading it.
    func loadedHost(_ id: String) -> ModelHost? {
        ids.firstIndex(of: id).flatMap { entries[$0].host }
    }

    /// Every host still alive: loaded, or unloaded with requests still running on it.
    var live: [ModelHost] { loaded + retired.compactMap(\.host) }

    /// Each model, its state, and its host when loaded.
    var listing: [(id: String, state: State, host: ModelHost?, failure: String?)] {
        entries.map { e in
            let state: State = e.host != nil ? .loaded : e.loading != nil ? .loading : e.failure != nil ? .failed : .unloaded
            return (e.served.id, state, e.host, e.failure)
        }
    }
}

/// A host held without keeping it alive.
private struct WeakHost {
    weak var host: ModelHost?
    init(_ host: ModelHost) { self.host = host }
}
