import ArgumentParser
import Foundation
import Llama
import LlamaSchema
import Logging

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
    @OptionGroup var parameters: ModelParameterFlags
    @Flag(inversion: .prefixedNo, help: "When the context fills up, keep --keep tokens, drop half of the rest and go on (default: off: stop).")
    var contextShift = false
    @Option(help: "With --context-shift, the prompt tokens kept at the start (BOS not counted; -1: the whole prompt).")
    var keep: Int = 0
    @Flag(name: [.customShort("v"), .long], help: "Show llama.cpp's own log (buffers, overrides, layers) on stderr.")
    var verbose = false
    @OptionGroup var install: InstallFlags

    func validate() throws {
        if keep < -1 { throw ValidationError("--keep must be -1 (the whole prompt) or more") }
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
        let runtime = try await CLI.loadRuntime(libDir: libDir, options: install.options())
        if verbose { runtime.logLevel = .debug }
        return runtime
    }

    /// The model-parameter flags as the llama-helper process takes them.
    func parameterRequest() throws -> HelperRequest.Generate.ModelParameters {
        var options = ModelOptions()
        try parameters.apply(to: &options)
        return HelperRequest.Generate.ModelParameters(options)
    }

    /// `--context-shift` and `--keep`, for GenerationOptions.contextShift.
    var contextShiftSetting: ContextShift { contextShift ? .on(keep: keep) : .off }

    /// Generation options with `--context-shift` and `--keep` applied.
    func generationOptions(maxTokens: Int) -> GenerationOptions {
        var options = GenerationOptions(maxTokens: maxTokens)
        options.contextShift = contextShiftSetting
        return options
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

    /// Loads the runtime and the model, with progress (with its MTP layers when `loadMTP`).
    func load(loadMTP: Bool = false) async throws -> LlamaModel {
        let path = try await modelPath()
        let runtime = try await runtime()
        var options = ModelOptions()
        options.gpuLayers = gpuLayers
        options.plannedContextLength = ctxSize
        try parameters.apply(to: &options)
        if loadMTP { options.loadMTP = true }
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

/// The fields of llama_model_params beyond placement, in llama.cpp's flag names: run, chat and
/// embed take them through ModelFlags; serve and bench can add this group and call `apply`.
struct ModelParameterFlags: ParsableArguments {
    @Option(name: .customLong("override-kv"), help: ArgumentHelp(
        "Override model metadata while loading: KEY=TYPE:VALUE (TYPE: int, float, bool, str), comma-separated or repeated.",
        discussion: "Example: --override-kv tokenizer.ggml.add_bos_token=bool:false", valueName: "KEY=TYPE:VALUE,..."))
    var overrideKV: [String] = []
    @Option(name: [.customLong("ot", withSingleDash: true), .customLong("override-tensor")], help: ArgumentHelp(
        "Put tensors whose names match a pattern in a buffer type: PATTERN=BUFTYPE, comma-separated or repeated (e.g. exps=CPU).",
        valueName: "PATTERN=BUFTYPE,..."))
    var overrideTensor: [String] = []
    @Flag(inversion: .prefixedNo, help: "Repack weights into the CPU's extra buffer types (default: on; --no-repack gives the layout an RPC server computes with).")
    var repack = true
    @Flag(help: "Bypass the GPU's host buffer, so that the extra buffer types can be used.")
    var noHost = false
    @Option(name: [.customLong("lm", withSingleDash: true), .customLong("load-mode")],
            help: ArgumentHelp("How weights are read: auto, none, mmap, mlock, mmap+mlock, dio (default: auto).", valueName: "MODE"))
    var loadMode: String?
    @Option(name: [.customLong("lzm", withSingleDash: true), .customLong("lazy-mode")],
            help: ArgumentHelp("On-demand reading of large marked tensors: on, auto, off (default: auto).", valueName: "MODE"))
    var lazyMode: String?
    @Flag(help: "Check the model's tensor data for invalid values while loading.")
    var checkTensors = false

    func validate() throws {
        if let message = overrideProblem { throw ValidationError(message) }
        if let loadMode, ModelOptions.LoadMode(name: loadMode) == nil {
            throw ValidationError("--load-mode must be auto, none, mmap, mlock, mmap+mlock or dio, not \(loadMode)")
        }
        if let lazyMode, ModelOptions.LazyMode(name: lazyMode) == nil {
            throw ValidationError("--lazy-mode must be on, auto or off, not \(lazyMode)")
        }
    }

    /// The message of the first malformed --override-kv or -ot item, if any.
    var overrideProblem: String? {
        switch Result(catching: { () throws(LlamaError) in (try metadataOverrides(), try tensorBufferOverrides()) }) {
        case .success: nil
        case .failure(let error): error.message
        }
    }

    func metadataOverrides() throws(LlamaError) -> [ModelOptions.MetadataOverride] {
        var result: [ModelOptions.MetadataOverride] = []
        for item in overrideKV.flatMap({ $0.split(separator: ",").map(String.init) }) {
            result.append(try ModelOptions.MetadataOverride(parsing: item))
        }
        return result
    }

    func tensorBufferOverrides() throws(LlamaError) -> [ModelOptions.TensorBufferOverride] {
        var result: [ModelOptions.TensorBufferOverride] = []
        for item in overrideTensor.flatMap({ $0.split(separator: ",").map(String.init) }) {
            result.append(try ModelOptions.TensorBufferOverride(parsing: item))
        }
        return result
    }

    /// The model parameters of these flags beyond placement (validated already).
    func apply(to options: inout ModelOptions) throws {
        options.metadataOverrides = try metadataOverrides()
        options.tensorBufferOverrides = try tensorBufferOverrides()
        options.useExtraBufferTypes = repack
        options.noHost = noHost
        options.loadMode = loadMode.flatMap(ModelOptions.LoadMode.init(name:))
        options.lazyMode = lazyMode.flatMap(ModelOptions.LazyMode.init(name:))
        options.checkTensors = checkTensors
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
