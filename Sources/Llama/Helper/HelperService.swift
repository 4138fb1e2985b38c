public import Foundation

/// The helper's side of the protocol: what `llama-helper` runs on the request it read. Every
/// outcome is a message (`devices`, the tokens and `finished`, or `failure`); a crash of ggml
/// ends the process, which the library sees through its termination.
public enum LlamaHelperService {
    /// Answers one request line through `send`; returns the exit status for the helper (0 when
    /// the request succeeded, 1 when it failed, 2 when the line was not a request of this protocol).
    public static func answer(_ line: Data, send: @Sendable (HelperResponse) -> Void) async -> Int32 {
        let request: HelperRequest
        do { request = try LlamaHelperProtocol.decode(HelperRequest.self, from: line) } catch {
            send(HelperResponse(.failure(.init(code: .helperProtocol, message: "\(LlamaHelper.executableName) speaks helper "
                + "protocol \(LlamaHelperProtocol.version) and read \(error.description): use the \(LlamaHelper.executableName) "
                + "built with the same version of the library"))))
            return 2
        }
        do throws(LlamaError) {
            switch request.command {
            case .backendCheck(let check):
                let runtime = try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: check.directory))
                send(HelperResponse(.devices(runtime.devices)))
            case .rpcCheck(let check):
                send(HelperResponse(.devices(try await rpcCheck(check))))
            case .generate(let generate):
                try await self.generate(generate) { send(HelperResponse($0)) }
            case .validateModel(let validate):
                send(HelperResponse(.validated(try await validateModel(validate))))
            }
            return 0
        } catch {
            send(HelperResponse(.failure(.init(error))))
            return 1
        }
    }

    static func rpcCheck(_ check: HelperRequest.RPCCheck) async throws(LlamaError) -> [LlamaDevice] {
        guard let endpoint = LlamaRPCEndpoint(check.endpoint) else {
            throw LlamaError(.invalidArgument, "\(check.endpoint) is not host:port")
        }
        let timeout = Duration.milliseconds(Int64(max(0.001, check.timeoutSeconds) * 1000))
        let runtime = try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: check.directory))
        // Our own handshake first: a version mismatch is then a value with both versions, before
        // ggml's handshake, which ends the process on one.
        _ = try LlamaRuntime.rpcHandshake(endpoint, timeout: timeout)
        let devices = try await runtime.addRPCServer(check.endpoint, timeout: timeout, isolated: false)
        guard !devices.isEmpty else {
            throw LlamaError(.rpcProtocol, "the RPC server at \(endpoint) offers no device",
                             underlying: HelperResponse.RPCFailure(kind: .noDevices))
        }
        return devices
    }

    /// Loads the model as ``LlamaModel`` does (our checks, then llama.cpp's loader, vocabulary
    /// only or whole); an abort in llama.cpp ends this process, which the library reports.
    static func validateModel(_ v: HelperRequest.ValidateModel) async throws(LlamaError) -> HelperResponse.ModelReport {
        let runtime = try await LlamaRuntime.load(libraryDirectory: v.directory.map { URL(fileURLWithPath: $0) })
        var options = ModelOptions()
        options.vocabularyOnly = v.vocabularyOnly
        // Nothing is computed: the weights stay on the CPU.
        options.gpuLayers = 0
        let model: LlamaModel
        do { model = try await LlamaModel.load(runtime: runtime, paths: [v.path], options: options) } catch {
            throw error as? LlamaError ?? LlamaError(.invalidModel, "\(v.path) could not be loaded: \(error)", underlying: error)
        }
        return HelperResponse.ModelReport(architecture: model.architecture, description: v.vocabularyOnly ? "" : model.description,
                                          vocabularySize: model.vocab.count, vocabularyOnly: v.vocabularyOnly)
    }

    static func generate(_ g: HelperRequest.Generate, send: (HelperResponse.Message) -> Void) async throws(LlamaError) {
        let runtime = try await LlamaRuntime.load(libraryDirectory: g.directory.map { URL(fileURLWithPath: $0) })
        var options = ModelOptions()
        try g.parameters?.apply(to: &options)
        options.gpuLayers = g.gpuLayers
        options.plannedContextLength = g.contextLength
        var remote: [LlamaDevice] = []
        let timeout = Duration.milliseconds(Int64(max(0.001, g.rpcTimeoutSeconds) * 1000))
        for server in g.rpcServers {
            guard let endpoint = LlamaRPCEndpoint(server) else { throw LlamaError(.invalidArgument, "\(server) is not host:port") }
            _ = try LlamaRuntime.rpcHandshake(endpoint, timeout: timeout)
            remote += try await runtime.addRPCServer(server, timeout: timeout, isolated: false)
        }
        if !remote.isEmpty { options.placement = LlamaPlacement(devices: remote) }
        let model: LlamaModel
        do { model = try await LlamaModel.load(runtime: runtime, paths: [g.model], options: options) } catch {
            throw error as? LlamaError ?? LlamaError(.invalidModel, "\(g.model) could not be loaded: \(error)", underlying: error)
        }
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: g.contextLength, threads: g.threads))
        // A model without a chat template (a base model) does plain completion.
        let plain = g.raw || model.chatTemplate() == nil
        let input = plain ? g.prompt : try model.formatChat([.user(g.prompt)])
        var generation = GenerationOptions(maxTokens: g.maxTokens, stopSequences: g.stopSequences)
        generation.addSpecial = plain
        generation.contextShift = g.contextShiftKeep.map { .on(keep: $0) } ?? .off
        do {
            for try await event in context.generate(prompt: input, sampling: g.sampling.chain, options: generation) {
                switch event {
                case .token(let id, let text): send(.token(.init(id: id, text: text)))
                case .text(let text): send(.text(text))
                case .probabilities: break
                case .finished(let summary): send(.finished(.init(summary)))
                }
            }
        } catch {
            throw error as? LlamaError ?? LlamaError(.decodeFailed, "\(error)", underlying: error)
        }
    }
}
