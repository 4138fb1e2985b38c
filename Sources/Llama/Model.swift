public import Foundation
import LlamaRaw
import Synchronization

/// A token id of a model's vocabulary.
public typealias LlamaToken = Int32

/// How a model is loaded. The corresponding C struct is `llama_model_params`.
public struct ModelOptions: Sendable {
    /// Layers to offload to a GPU (-1: all). No effect with the CPU backend.
    public var gpuLayers: Int32 = -1
    /// The GPU holding the whole model when layers are not split.
    public var mainGPU: Int32 = 0
    /// Map the file instead of reading it (faster start, shared pages).
    public var useMemoryMap = true
    /// Load only the vocabulary (tokenizing without weights).
    public var vocabularyOnly = false
    /// Validate tensor data while loading (slower).
    public var checkTensors = false
    /// Devices, split and fitting of layers to free memory (nil: llama.cpp's defaults).
    public var placement: LlamaPlacement?
    /// The context length the fitting keeps KV cache room for.
    public var plannedContextLength: UInt32 = 4096
    /// How the weights are read: mmap, mlock, direct I/O... (llama.cpp's `--load-mode`); nil:
    /// llama.cpp's `auto`, or `none` when ``useMemoryMap`` is false.
    public var loadMode: LoadMode?
    /// On-demand reading of large marked tensors (llama.cpp's `--lazy-mode`); nil: llama.cpp's default (`auto`).
    public var lazyMode: LazyMode?
    /// Typed metadata values that replace the file's while loading (`--override-kv`), e.g. `tokenizer.ggml.add_bos_token=bool:false`.
    public var metadataOverrides: [MetadataOverride] = []
    /// Tensors whose names match a pattern go to a named buffer type (`-ot`, `--override-tensor`), e.g. `exps=CPU`.
    public var tensorBufferOverrides: [TensorBufferOverride] = []
    /// Use the CPU's extra buffer types, where llama.cpp repacks weights (Q4_0, IQ4_NL, Q4_K...) into
    /// layouts for this CPU's instructions; `false` is llama.cpp's `--no-repack`. The C field is `use_extra_bufts`.
    public var useExtraBufferTypes = true
    /// Bypass the GPU's host buffer, so that the extra buffer types can hold CPU weights (`--no-host`).
    public var noHost = false
    /// Read only the metadata and plan the buffers without allocating or reading the weights (to
    /// measure what a load would take; such a model cannot compute). The C field is `no_alloc`.
    public var noAlloc = false
    /// Load the multi-token-prediction (MTP / NextN) layers of models that have them, for
    /// speculative decoding with the model's own heads. The C field is `load_mtp`.
    public var loadMTP = false

    /// llama.cpp's defaults (all layers offloaded, memory-mapped).
    public init() {}
}

/// A GGUF model, loaded. Immutable and shareable: any number of contexts may use it at once,
/// and it stays alive as long as one of them does.
public final class LlamaModel: Sendable {
    /// The runtime the model was loaded with.
    public let runtime: LlamaRuntime
    nonisolated(unsafe) let pointer: OpaquePointer
    /// The model's tokenizer (it holds the model, so a tokenizer kept after the model is dropped
    /// still works).
    public var vocab: LlamaVocab { LlamaVocab(model: self, pointer: vocabPointer) }
    nonisolated(unsafe) let vocabPointer: OpaquePointer
    /// The file it was loaded from (the first, for split models).
    public let path: String
    /// Whether it was loaded with its multi-token-prediction layers (``ModelOptions/loadMTP``):
    /// MTP drafting needs them.
    let loadedMTP: Bool
    /// The texts tokenizing with `parseSpecial` reads as control tokens, found once.
    let controlTokenTextsCache = Mutex<[String]?>(nil)

    var c: LlamaSymbols { runtime.raw }

    /// Loads a model; `progress` gets the fraction loaded and returns false to cancel.
    ///
    /// - Parameters:
    ///   - runtime: the loaded libraries.
    ///   - paths: one GGUF file, or every part of a split model, in order.
    ///   - options: how the model is loaded and where its layers go.
    ///   - progress: called with the fraction loaded; return false to cancel the load.
    public init(runtime: LlamaRuntime, paths: [String], options: ModelOptions = ModelOptions(),
                progress: (@Sendable (Float) -> Bool)? = nil) throws(LlamaError) {
        guard let first = paths.first else { throw LlamaError(.invalidArgument, "no model file given") }
        // What llama.cpp asserts on (ending the process) is refused here first: GGUFFile.validate.
        for path in paths { try GGUFFile.validate(path: path, runtime: runtime, vocabularyOnly: options.vocabularyOnly) }
        self.runtime = runtime
        self.path = first
        let c = runtime.raw
        var params = c.llama_model_default_params()
        params.n_gpu_layers = options.gpuLayers
        params.main_gpu = options.mainGPU
        params.vocab_only = options.vocabularyOnly
        params.check_tensors = options.checkTensors
        if !options.useMemoryMap { params.load_mode = LLAMA_LOAD_MODE_NONE }
        let box = ProgressBox(progress)
        let loaded: OpaquePointer? = try Self.withModelParameters(options, runtime: runtime, paths: paths, params: &params) {
            (params: inout llama_model_params) throws(LlamaError) in
            try Self.withPlacement(options.placement, options: options, runtime: runtime, paths: paths,
                                   params: &params) { (params: inout llama_model_params) throws(LlamaError) in
            withExtendedLifetime(box) {
                params.progress_callback = { fraction, data in
                    Unmanaged<ProgressBox>.fromOpaque(data!).takeUnretainedValue().report(fraction)
                }
                params.progress_callback_user_data = Unmanaged.passUnretained(box).toOpaque()
                if paths.count == 1 { return c.llama_model_load_from_file(first, params) }
                var cStrings = paths.map { strdup($0) }
                defer { cStrings.forEach { free($0) } }
                return cStrings.withUnsafeMutableBufferPointer { buffer in
                    buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) {
                        c.llama_model_load_from_splits($0.baseAddress, paths.count, params)
                    }
                }
            }
            }
        }
        guard let loaded else {
            if box.cancelled { throw LlamaError(.cancelled, "loading \(first) was cancelled") }
            if !options.metadataOverrides.isEmpty || !options.tensorBufferOverrides.isEmpty {
                throw LlamaError(.invalidModel, "llama.cpp could not load \(first) with the overrides "
                    + (options.metadataOverrides.map { "--override-kv \($0)" } + options.tensorBufferOverrides.map { "-ot \($0)" })
                        .joined(separator: ", ")
                    + ": a value it refuses (see its log), or a file that is damaged or of an architecture it does not know")
            }
            throw LlamaError(.invalidModel, "llama.cpp could not load \(first): the file is damaged, truncated, "
                + "or a model architecture this llama.cpp (\(LlamaPin.tag)) does not know")
        }
        pointer = loaded
        vocabPointer = c.llama_model_get_vocab(loaded)!
        loadedMTP = options.loadMTP
    }

    /// Loads one GGUF file.
    public convenience init(runtime: LlamaRuntime, path: String, options: ModelOptions = ModelOptions(),
                            progress: (@Sendable (Float) -> Bool)? = nil) throws(LlamaError) {
        try self.init(runtime: runtime, paths: [path], options: options, progress: progress)
    }

    /// Loads a model off the caller's thread; cancelling the task cancels the load.
    public static func load(runtime: LlamaRuntime, paths: [String], options: ModelOptions = ModelOptions(),
                            progress: (@Sendable (Float) -> Void)? = nil) async throws -> LlamaModel {
        let cancelled = Atomic<Bool>(false)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<LlamaModel, any Error>) in
                Thread.detachNewThread {
                    continuation.resume(with: Result {
                        try LlamaModel(runtime: runtime, paths: paths, options: options) { fraction in
                            progress?(fraction)
                            return !cancelled.load(ordering: .relaxed)
                        }
                    })
                }
            }
        } onCancel: {
            cancelled.store(true, ordering: .relaxed)
        }
    }

    deinit { c.llama_model_free(pointer) }

    /// Refuses what is not a readable GGUF file before llama.cpp sees it.
    static func checkGGUF(_ path: String) throws(LlamaError) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw LlamaError(.fileNotFound, "cannot read the model \(path): no such file, or no permission")
        }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 4)) ?? nil
        guard magic == Data("GGUF".utf8) else {
            throw LlamaError(.invalidModel, "\(path) is not a GGUF model (it does not start with GGUF): "
                + "llama.cpp loads .gguf files; convert other formats with llama.cpp's convert_hf_to_gguf.py")
        }
    }

    // MARK: Facts

    /// A one-line description (architecture, size, quantization).
    public var description: String { Self.string { c.llama_model_desc(pointer, $0, $1) } ?? "" }
    /// The size of the weights in bytes.
    public var sizeInBytes: UInt64 { c.llama_model_size(pointer) }
    /// The number of parameters.
    public var parameterCount: UInt64 { c.llama_model_n_params(pointer) }
    /// The context length the model was trained with.
    public var trainingContextLength: Int32 { c.llama_model_n_ctx_train(pointer) }
    /// The embedding width.
    public var embeddingLength: Int32 { c.llama_model_n_embd(pointer) }
    /// The number of layers.
    public var layerCount: Int32 { c.llama_model_n_layer(pointer) }
    /// The architecture (`general.architecture`), e.g. "llama".
    public var architecture: String? { metadata["general.architecture"] }
    /// Whether the model has an encoder (T5-like) and whether it can decode.
    public var hasEncoder: Bool { c.llama_model_has_encoder(pointer) }
    /// Whether the model has a decoder (`llama_model_has_decoder`): false for encoder-only models.
    public var hasDecoder: Bool { c.llama_model_has_decoder(pointer) }

    /// Every metadata key and its value, as text.
    public var metadata: [String: String] {
        var result: [String: String] = [:]
        for i in 0..<c.llama_model_meta_count(pointer) {
            guard let key = Self.string({ c.llama_model_meta_key_by_index(pointer, i, $0, $1) }),
                  let value = Self.string({ c.llama_model_meta_val_str_by_index(pointer, i, $0, $1) }) else { continue }
            result[key] = value
        }
        return result
    }

    /// The chat template stored in the model (`name` selects one of several), if any.
    public func chatTemplate(named name: String? = nil) -> String? {
        c.llama_model_chat_template(pointer, name).map { String(cString: $0) }
    }

    /// Calls a C function that writes a string into a buffer and returns the length it needed.
    static func string(_ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        var n = buffer.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        if n < 0 { return nil }
        if Int(n) >= buffer.count {
            buffer = [CChar](repeating: 0, count: Int(n) + 1)
            n = buffer.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        }
        return String(decoding: buffer.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Carries the Swift progress closure through llama.cpp's `void *` user data.
final class ProgressBox: @unchecked Sendable {
    let body: (@Sendable (Float) -> Bool)?
    var cancelled = false
    init(_ body: (@Sendable (Float) -> Bool)?) { self.body = body }
    func report(_ fraction: Float) -> Bool {
        guard let body else { return true }
        if body(fraction) { return true }
        cancelled = true
        return false
    }
}
