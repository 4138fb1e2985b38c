public import LlamaRaw

/// A device ggml can compute on: the CPU, a GPU, an accelerator, a remote RPC server.
public struct LlamaDevice: Sendable, Codable, Equatable, CustomStringConvertible {
    /// What kind of device ggml reports (`ggml_backend_dev_type`).
    public struct Kind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        /// The host CPU.
        public static let cpu = Kind(rawValue: "cpu")
        /// A GPU with its own memory.
        public static let gpu = Kind(rawValue: "gpu")
        /// A GPU sharing the host's memory.
        public static let integratedGPU = Kind(rawValue: "igpu")
        /// An accelerator that computes alongside the CPU (BLAS, AMX...).
        public static let accelerator = Kind(rawValue: "accelerator")
        /// A device that stands for several others (ggml's meta device).
        public static let meta = Kind(rawValue: "meta")
    }

    /// The position in ggml's device registry.
    public var index: Int
    /// `CPU`, `CUDA0`, `Vulkan0`, `RPC[127.0.0.1:50052]`...
    public var name: String
    public var description: String
    /// What kind of device it is.
    public var kind: Kind
    /// The backend that registered it (`CPU`, `CUDA`, `RPC`...).
    public var backend: String
    /// Free memory in bytes, as the backend reports it.
    public var memoryFree: UInt64
    /// Total memory in bytes, as the backend reports it.
    public var memoryTotal: UInt64

    /// Whether it is a GPU, discrete or integrated.
    public var isGPU: Bool { kind == .gpu || kind == .integratedGPU }
}

extension LlamaRuntime {
    /// Every device of ggml's backend registry, as it is now (free memory is read each time).
    /// The corresponding C functions are `ggml_backend_dev_count` and `ggml_backend_dev_get`.
    public var devices: [LlamaDevice] {
        let c = raw
        return (0..<c.ggml_backend_dev_count()).compactMap { i in
            guard let dev = c.ggml_backend_dev_get(i) else { return nil }
            return LlamaDevice(device: dev, index: i, c)
        }
    }
}

extension LlamaDevice {
    init(device dev: ggml_backend_dev_t, index: Int, _ c: LlamaSymbols) {
        var free = 0, total = 0
        c.ggml_backend_dev_memory(dev, &free, &total)
        let kind: Kind
        switch c.ggml_backend_dev_type(dev) {
        case GGML_BACKEND_DEVICE_TYPE_CPU: kind = .cpu
        case GGML_BACKEND_DEVICE_TYPE_GPU: kind = .gpu
        case GGML_BACKEND_DEVICE_TYPE_IGPU: kind = .integratedGPU
        case GGML_BACKEND_DEVICE_TYPE_ACCEL: kind = .accelerator
        case GGML_BACKEND_DEVICE_TYPE_META: kind = .meta
        default: kind = Kind(rawValue: "unknown")
        }
        let backend = c.ggml_backend_dev_backend_reg(dev).flatMap { c.ggml_backend_reg_name($0) }.map { String(cString: $0) } ?? ""
        self.init(index: index, name: c.ggml_backend_dev_name(dev).map { String(cString: $0) } ?? "",
                  description: c.ggml_backend_dev_description(dev).map { String(cString: $0) } ?? "",
                  kind: kind, backend: backend, memoryFree: UInt64(max(free, 0)), memoryTotal: UInt64(max(total, 0)))
    }
}
