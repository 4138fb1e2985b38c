import ArgumentParser
import Foundation
import Llama
import LlamaSchema

/// The model and the runtime it runs on: what run, chat, embed share.
struct ModelFlags: ParsableArguments {
    @Option(name: [.short, .long], help: "A GGUF file, or a Hugging Face file (owner/repo/file.gguf, hf://...) pulled into the model store (default: $LLAMA_MODEL, else SmolLM2-135M-Instruct).")
    var model: String?
    @Option(help: "The folder of an unpacked llama.cpp release to load (default: $LLAMA_SWIFT_LIB_DIR, else a bundle or the cache, installing when needed).")
    var libDir: String?
    @Option(name: [.short, .customLong("ctx-size")], help: "Context length in tokens.")
    var ctxSize: UInt32 = 2048
    @Option(name: [.short, .long], help: "Threads (default: llama.cpp's choice).")
    var threads: Int32?
    @Option(name: [.customLong("gpu-layers"), .customLong("ngl")], help: "Layers to offload to the GPU (-1: all).")
    var gpuLayers: Int32 = -1
    @Option(name: .customLong("device"), help: "Use this device (an index from `llama-swift devices`); repeat for several.")
    var devices: [Int] = []
    @Option(help: "How layers spread over devices: none, layer, row.")
    var splitMode: String?
    @Option(help: "Share of each device, e.g. 3,1.")
    var tensorSplit: String?
    @Option(help: "At most this many GiB of GPU memory; the GPU layers are fitted to it.")
    var memoryLimit: Double?
    @Option(help: "RPC servers (host:port,host:port...) whose devices take the layers (with --device, local devices join them).")
    var rpc: String?
    @OptionGroup var install: InstallFlags

    func validate() throws {
        if let splitMode, !["none", "layer", "row"].contains(splitMode) {
            throw ValidationError("--split-mode must be none, layer or row")
        }
        if let tensorSplit, tensorSplit.split(separator: ",").contains(where: { Float($0) == nil || Float($0)! < 0 }) {
            throw ValidationError("--tensor-split takes non-negative numbers separated by commas, e.g. 3,1")
        }
        if let memoryLimit, memoryLimit <= 0 { throw ValidationError("--memory-limit must be positive") }
        for server in rpcServers where LlamaRPCEndpoint(server) == nil {
            throw ValidationError("--rpc \(server) is not host:port")
        }
        guard ctxSize >= 16 else { throw ValidationError("--ctx-size must be at least 16") }
        if let threads, threads <= 0 { throw ValidationError("--threads must be positive") }
    }

    var rpcServers: [String] { rpc?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? [] }

    func runtime() async throws -> LlamaRuntime {
        try await CLI.loadRuntime(libDir: libDir, options: install.options())
    }

    /// The model file: a path, a Hub file pulled into the store, or the default model.
    func modelPath() async throws -> String {
        let store = LlamaModelStore(options: install.options())
        if let model {
            if FileManager.default.fileExists(atPath: model) || model.hasPrefix("/") || model.hasPrefix(".") {
                return model
            }
            guard let reference = LlamaModelReference(model) else {
                CLI.note("error: \(model) is neither a file nor a Hugging Face reference (owner/repo/file.gguf)")
                throw ExitCode(1)
            }
            return try await CLI.run { () async throws(LlamaError) in
                try await store.pull(reference, progress: ProgressPrinter().handler).path!.path
            }
        }
        return try await CLI.run { () async throws(LlamaError) in
            try await LlamaModel.defaultModelPath(store: store, progress: ProgressPrinter().handler)
        }
    }

    /// Loads the runtime and the model, with progress.
    func load() async throws -> LlamaModel {
        let path = try await modelPath()
        let runtime = try await runtime()
        var options = ModelOptions()
        options.gpuLayers = gpuLayers
        options.plannedContextLength = ctxSize
        let remote = try await CLI.addRPC(rpcServers, to: runtime)
        if !devices.isEmpty || splitMode != nil || tensorSplit != nil || memoryLimit != nil || !remote.isEmpty {
            var placement = LlamaPlacement(devices: devices.isEmpty && remote.isEmpty ? nil
                                           : try remote + CLI.devices(devices, of: runtime))
            placement.splitMode = ["none": .none, "row": .row][splitMode ?? ""] ?? .layer
            placement.tensorSplit = tensorSplit?.split(separator: ",").compactMap { Float($0) } ?? []
            placement.memoryLimit = memoryLimit.map { UInt64($0 * Double(1 << 30)) }
            options.placement = placement
        }
        let progress = ProgressPrinter()
        let name = URL(fileURLWithPath: path).lastPathComponent
        do {
            return try await LlamaModel.load(runtime: runtime, paths: [path], options: options) { fraction in
                progress.show(LlamaProgress(phase: .load, item: name, completed: Int64(fraction * 100), total: 100))
            }
        } catch let error as LlamaError {
            CLI.note("error: \(error.description)")
            throw ExitCode(1)
        }
    }

    func contextOptions(embeddings: Bool = false) -> ContextOptions {
        var o = ContextOptions(contextLength: ctxSize, threads: threads)
        if embeddings {
            o.embeddings = true
            o.pooling = .mean
            o.batchSize = ctxSize
            o.microBatchSize = ctxSize
        }
        return o
    }
}

/// Sampling flags in llama.cpp's names.
struct SamplingFlags: ParsableArguments {
    @Option(help: "Temperature; 0 is greedy and deterministic.")
    var temp: Float = 0.8
    @Option(help: "Top-k (0: off).")
    var topK: Int32 = 40
    @Option(help: "Top-p (1: off).")
    var topP: Float = 0.95
    @Option(help: "Min-p (0: off).")
    var minP: Float = 0.05
    @Option(help: "Repetition penalty (1: off).")
    var repeatPenalty: Float = 1.0
    @Option(name: [.short, .long], help: "The sampling seed (default: random).")
    var seed: UInt32?
    @Option(help: "A GBNF grammar the output must follow.")
    var grammar: String?
    @Option(help: "A file with a GBNF grammar.")
    var grammarFile: String?
    @Option(help: "A JSON schema (a file, or the JSON itself) the output must follow, compiled to a grammar.")
    var jsonSchema: String?
    @Flag(help: "The output must be JSON (any value).")
    var json = false

    func validate() throws {
        guard temp >= 0 else { throw ValidationError("--temp must not be negative") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard minP >= 0, minP < 1 else { throw ValidationError("--min-p must be in [0, 1)") }
        guard topK >= 0 else { throw ValidationError("--top-k must not be negative") }
        let constraints = [grammar != nil, grammarFile != nil, jsonSchema != nil, json].filter { $0 }.count
        if constraints > 1 { throw ValidationError("give one of --grammar, --grammar-file, --json-schema and --json") }
        if let grammarFile, !FileManager.default.isReadableFile(atPath: grammarFile) {
            throw ValidationError("cannot read the grammar file \(grammarFile)")
        }
    }

    func chain() throws -> SamplerChain {
        var chain = SamplerChain.standard(temperature: temp, topK: topK, topP: topP, minP: minP, repeatPenalty: repeatPenalty,
                                          seed: seed ?? SamplerChain.randomSeed)
        var text = try grammar ?? grammarFile.map { try String(contentsOfFile: $0, encoding: .utf8) }
        if let jsonSchema {
            let (schema, origin) = try SchemaInput.fileOrJSON(jsonSchema)
            text = try SchemaInput.compile(schema, origin: origin).text
        } else if json {
            text = JSONSchemaGrammar.anyJSON().text
        }
        if let text { chain.stages.insert(.grammar(text), at: 0) }
        return chain
    }
}
