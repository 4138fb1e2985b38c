public import Foundation
import LlamaRaw

/// How layers are spread over several devices. The corresponding C enum is `llama_split_mode`.
public struct SplitMode: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Everything on the main device.
    public static let none = SplitMode(rawValue: LLAMA_SPLIT_MODE_NONE.rawValue)
    /// Whole layers per device, in proportion to the tensor split.
    public static let layer = SplitMode(rawValue: LLAMA_SPLIT_MODE_LAYER.rawValue)
    /// Rows of each matrix split across devices.
    public static let row = SplitMode(rawValue: LLAMA_SPLIT_MODE_ROW.rawValue)
}

/// Where a model's layers go: which devices, how many layers off the CPU, and how they split.
public struct LlamaPlacement: Sendable {
    /// The devices to use (from ``LlamaRuntime/devices``); nil lets llama.cpp use every GPU.
    public var devices: [LlamaDevice]?
    /// How a model spreads over several devices: by layer (the default) or by row.
    public var splitMode: SplitMode = .layer
    /// The share of each device (same order as `devices`); empty: by free memory.
    public var tensorSplit: [Float] = []
    /// Keep this much memory of each GPU free for other programs.
    public var reserveBytes: UInt64 = 0
    /// At most this many bytes of GPU memory in all (nil: what is free).
    public var memoryLimit: UInt64?
    /// Fit the layer count to the memory (`false`: offload every layer, as llama.cpp does).
    public var fitLayers = true

    /// A placement on these devices (nil: every device ggml has).
    public init(devices: [LlamaDevice]? = nil) { self.devices = devices }
}

/// An estimate of what a model needs in memory, from its GGUF tensor table (libllama at b11434
/// has no fitting function): weights per layer, the KV cache per layer and token, and the
/// layers that fit in a given amount of memory.
public struct LlamaMemoryEstimate: Sendable, Equatable {
    /// Bytes of the weights of each repeating layer (`blk.N.*`).
    public var layerBytes: [Int]
    /// The weights outside the layers (embeddings, output, norms).
    public var otherBytes: Int
    /// KV cache bytes per token of context, per layer (K and V, f16 unless said).
    public var kvBytesPerTokenPerLayer: Int
    /// The number of repeating layers (`blk.N`).
    public var layerCount: Int { layerBytes.count }
    /// Bytes of all weights: the layers and the rest.
    public var weightBytes: Int { layerBytes.reduce(0, +) + otherBytes }

    /// Reads the estimate from a GGUF header.
    public init(gguf: GGUFFile, cacheTypeBytes: Double = 2) throws(LlamaError) {
        guard case .string(let arch)? = gguf["general.architecture"] else {
            throw LlamaError(.invalidModel, "\(gguf.path) has no general.architecture: cannot estimate its memory")
        }
        func int(_ key: String) -> Int? {
            switch gguf["\(arch).\(key)"] {
            case .int(let v)?: return Int(v)
            case .uint(let v)?: return Int(v)
            case .array(_, _, let preview)?: if case .uint(let v)? = preview.first { return Int(v) } else { return nil }
            default: return nil
            }
        }
        guard let blocks = int("block_count"), let embedding = int("embedding_length") else {
            throw LlamaError(.invalidModel, "\(gguf.path) lacks \(arch).block_count or \(arch).embedding_length")
        }
        var layers = [Int](repeating: 0, count: blocks)
        var other = 0
        for t in gguf.tensors {
            let parts = t.name.split(separator: ".")
            if parts.count > 2, parts[0] == "blk", let i = Int(parts[1]), i < blocks { layers[i] += t.size } else { other += t.size }
        }
        let heads = int("attention.head_count") ?? 1
        let kvHeads = int("attention.head_count_kv") ?? heads
        let keyLength = int("attention.key_length") ?? embedding / max(heads, 1)
        let valueLength = int("attention.value_length") ?? embedding / max(heads, 1)
        layerBytes = layers
        otherBytes = other
        kvBytesPerTokenPerLayer = Int(Double(kvHeads * (keyLength + valueLength)) * cacheTypeBytes)
    }

    /// The layers that fit in `bytes`: each layer with its KV cache for `contextLength` tokens,
    /// after a reserve for compute buffers and the output layer.
    public func layersFitting(in bytes: UInt64, contextLength: Int) -> Int {
        let computeReserve = max(64 << 20, otherBytes / 4)
        var left = Int(min(bytes, UInt64(Int.max))) - computeReserve
        var n = 0
        for layer in layerBytes {
            let need = layer + kvBytesPerTokenPerLayer * contextLength
            guard left >= need else { break }
            left -= need
            n += 1
        }
        return n
    }
}

extension LlamaModel {
    /// The model parameters for a placement: the devices as a null-terminated array, the split,
    /// and the GPU layers fitted to free memory when asked. `body` runs while the arrays live.
    static func withPlacement<R>(_ placement: LlamaPlacement?, options: ModelOptions, runtime: LlamaRuntime, paths: [String],
                                 params: inout llama_model_params,
                                 _ body: (inout llama_model_params) throws(LlamaError) -> R) throws(LlamaError) -> R {
        guard let placement else { return try body(&params) }
        let c = runtime.raw
        let chosen = placement.devices ?? runtime.devices.filter(\.isGPU)
        let handles: [ggml_backend_dev_t?] = chosen.compactMap { c.ggml_backend_dev_get($0.index) } + [nil]
        if placement.fitLayers, options.gpuLayers < 0, !chosen.isEmpty, !chosen.allSatisfy({ $0.kind == .cpu }) {
            let free = chosen.filter { $0.kind != .cpu }.reduce(UInt64(0)) { $0 + ($1.memoryFree > placement.reserveBytes ? $1.memoryFree - placement.reserveBytes : 0) }
            let budget = min(free, placement.memoryLimit ?? .max)
            let estimate = try LlamaMemoryEstimate(gguf: try GGUFFile(path: paths[0], runtime: runtime, arrayPreview: 1))
            let fitted = estimate.layersFitting(in: budget, contextLength: Int(options.plannedContextLength))
            params.n_gpu_layers = fitted == estimate.layerCount ? -1 : Int32(fitted)
        }
        params.split_mode = llama_split_mode(rawValue: placement.splitMode.rawValue)
        var split = [Float](repeating: 0, count: max(c.llama_max_devices(), 1))
        for (i, share) in placement.tensorSplit.prefix(split.count).enumerated() { split[i] = share }
        return try handles.withUnsafeBufferPointer { (devices: UnsafeBufferPointer<ggml_backend_dev_t?>) throws(LlamaError) -> R in
            try split.withUnsafeBufferPointer { (shares: UnsafeBufferPointer<Float>) throws(LlamaError) -> R in
                params.devices = UnsafeMutablePointer(mutating: devices.baseAddress)
                if !placement.tensorSplit.isEmpty { params.tensor_split = shares.baseAddress }
                defer { params.devices = nil; params.tensor_split = nil }
                return try body(&params)
            }
        }
    }
}
