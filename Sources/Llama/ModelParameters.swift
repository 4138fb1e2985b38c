import Foundation
import LlamaRaw

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension ModelOptions {
    /// How the weights are read from the file. The corresponding C enum is `llama_load_mode`;
    /// the names are those of llama.cpp's `--load-mode`.
    public struct LoadMode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// Memory-map, unless a device cannot use mapped memory (llama.cpp's default).
        public static let auto = LoadMode(rawValue: LLAMA_LOAD_MODE_AUTO.rawValue)
        /// Read the file into memory.
        public static let none = LoadMode(rawValue: LLAMA_LOAD_MODE_NONE.rawValue)
        /// Memory-map the file.
        public static let mmap = LoadMode(rawValue: LLAMA_LOAD_MODE_MMAP.rawValue)
        /// Read the file and lock the weights in RAM (`mlock`): never swapped out or compressed.
        public static let mlock = LoadMode(rawValue: LLAMA_LOAD_MODE_MLOCK.rawValue)
        /// Memory-map the file and lock the mapping in RAM.
        public static let mmapMlock = LoadMode(rawValue: LLAMA_LOAD_MODE_MMAP_MLOCK.rawValue)
        /// Read with direct I/O (`O_DIRECT`) where the file system allows it, bypassing the page cache.
        public static let directIO = LoadMode(rawValue: LLAMA_LOAD_MODE_DIRECT_IO.rawValue)

        static let names: [(String, LoadMode)] = [
            ("auto", .auto), ("none", .none), ("mmap", .mmap), ("mlock", .mlock), ("mmap+mlock", .mmapMlock), ("dio", .directIO),
        ]
        /// A mode by its `--load-mode` name: auto, none, mmap, mlock, mmap+mlock, dio.
        public init?(name: String) {
            guard let mode = Self.names.first(where: { $0.0 == name })?.1 else { return nil }
            self = mode
        }
        public var description: String { Self.names.first { $0.1 == self }?.0 ?? "load mode \(rawValue)" }
        /// Whether the weights are locked in RAM.
        public var locks: Bool { self == .mlock || self == .mmapMlock }
    }

    /// Reading the rows of some large tensors (those the architecture marks, such as per-layer
    /// embeddings) from the file on demand. The corresponding C enum is `llama_lazy_mode`; the
    /// names are those of llama.cpp's `--lazy-mode`.
    public struct LazyMode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// Always read whole tensors up front.
        public static let off = LazyMode(rawValue: LLAMA_LAZY_MODE_OFF.rawValue)
        /// On demand for marked tensors over 4 GiB (needs memory mapping); llama.cpp's default.
        public static let auto = LazyMode(rawValue: LLAMA_LAZY_MODE_AUTO.rawValue)
        /// On demand for every marked tensor (needs memory mapping).
        public static let on = LazyMode(rawValue: LLAMA_LAZY_MODE_ON.rawValue)

        static let names: [(String, LazyMode)] = [("off", .off), ("auto", .auto), ("on", .on)]
        /// A mode by its `--lazy-mode` name: on, auto, off.
        public init?(name: String) {
            guard let mode = Self.names.first(where: { $0.0 == name })?.1 else { return nil }
            self = mode
        }
        public var description: String { Self.names.first { $0.1 == self }?.0 ?? "lazy mode \(rawValue)" }
    }

    /// A typed value replacing one of the model's metadata values while loading (llama.cpp's
    /// `--override-kv KEY=TYPE:VALUE`). The corresponding C struct is `llama_model_kv_override`.
    ///
    /// llama.cpp reads the override where it reads the key (hyper-parameters, tokenizer settings);
    /// ``LlamaModel/metadata`` still shows the file's own values.
    public struct MetadataOverride: Sendable, Hashable, CustomStringConvertible {
        /// The typed value of an override (`int:`, `float:`, `bool:`, `str:` in llama.cpp's flag).
        public enum Value: Sendable, Hashable {
            /// An integer.
            case int(Int64)
            /// A floating-point number.
            case float(Double)
            /// A boolean.
            case bool(Bool)
            /// At most 127 bytes of UTF-8.
            case string(String)
        }
        /// The key (at most 127 bytes), e.g. `tokenizer.ggml.add_bos_token`.
        public var key: String
        /// The value llama.cpp reads instead of the file's.
        public var value: Value

        /// An override of one metadata key.
        public init(key: String, value: Value) {
            self.key = key
            self.value = value
        }

        /// Parses llama.cpp's `KEY=TYPE:VALUE` (TYPE: int, float, bool, str).
        public init(parsing text: String) throws(LlamaError) {
            guard let equals = text.firstIndex(of: "=") else {
                throw Self.malformed(text, "it has no '=' between the key and TYPE:VALUE")
            }
            let key = String(text[..<equals])
            let typed = text[text.index(after: equals)...]
            guard let colon = typed.firstIndex(of: ":") else {
                throw Self.malformed(text, "the value has no TYPE: prefix (int:, float:, bool: or str:)")
            }
            let type = typed[..<colon], raw = String(typed[typed.index(after: colon)...])
            switch type {
            case "int":
                guard let v = Int64(raw) else { throw Self.malformed(text, "\(raw) is not a 64-bit integer") }
                value = .int(v)
            case "float":
                guard let v = Double(raw), v.isFinite else { throw Self.malformed(text, "\(raw) is not a finite number") }
                value = .float(v)
            case "bool":
                guard raw == "true" || raw == "false" else { throw Self.malformed(text, "a bool is true or false, not \(raw)") }
                value = .bool(raw == "true")
            case "str":
                value = .string(raw)
            default:
                throw Self.malformed(text, "unknown type \(type): use int, float, bool or str")
            }
            self.key = key
            try validate()
        }

        /// Refuses what does not fit llama.cpp's struct (128-byte key and string buffers, NUL-terminated).
        func validate() throws(LlamaError) {
            if key.isEmpty { throw Self.malformed(description, "the key is empty") }
            if key.utf8.count > 127 { throw Self.malformed(description, "the key is longer than 127 bytes") }
            if key.utf8.contains(0) { throw Self.malformed(description, "the key contains a NUL byte") }
            if case .string(let s) = value {
                if s.utf8.count > 127 { throw Self.malformed(description, "a str value is at most 127 bytes, not \(s.utf8.count)") }
                if s.utf8.contains(0) { throw Self.malformed(description, "the value contains a NUL byte") }
            }
        }

        static func malformed(_ text: String, _ why: String) -> LlamaError {
            LlamaError(.invalidArgument, "--override-kv \(text): \(why); write KEY=TYPE:VALUE, e.g. "
                + "tokenizer.ggml.add_bos_token=bool:false")
        }

        /// `KEY=TYPE:VALUE`, as llama.cpp writes it.
        public var description: String {
            switch value {
            case .int(let v): "\(key)=int:\(v)"
            case .float(let v): "\(key)=float:\(v)"
            case .bool(let v): "\(key)=bool:\(v)"
            case .string(let v): "\(key)=str:\(v)"
            }
        }

        var cValue: llama_model_kv_override {
            var o = llama_model_kv_override()
            withUnsafeMutableBytes(of: &o.key) { Self.copy(key, into: $0) }
            switch value {
            case .int(let v): o.tag = LLAMA_KV_OVERRIDE_TYPE_INT; o.val_i64 = v
            case .float(let v): o.tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT; o.val_f64 = v
            case .bool(let v): o.tag = LLAMA_KV_OVERRIDE_TYPE_BOOL; o.val_bool = v
            case .string(let v):
                o.tag = LLAMA_KV_OVERRIDE_TYPE_STR
                withUnsafeMutableBytes(of: &o.val_str) { Self.copy(v, into: $0) }
            }
            return o
        }

        static func copy(_ text: String, into buffer: UnsafeMutableRawBufferPointer) {
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            for (i, byte) in text.utf8.prefix(buffer.count - 1).enumerated() { buffer[i] = byte }
        }
    }

    /// Tensors whose names match a pattern go to a buffer type (llama.cpp's `-ot
    /// PATTERN=BUFTYPE`, e.g. `exps=CPU` keeps the experts of a MoE model in RAM). The
    /// corresponding C struct is `llama_model_tensor_buft_override`.
    public struct TensorBufferOverride: Sendable, Hashable, CustomStringConvertible {
        /// A regular expression (ECMAScript, searched in the tensor name), e.g. `blk\.1[0-9]\.ffn_.*`.
        public var pattern: String
        /// The name of a buffer type of a device (see ``LlamaRuntime/bufferTypeNames``), e.g. `CPU`, `CUDA0`.
        public var bufferType: String

        /// Puts the tensors whose names match `pattern` in the buffer type named `bufferType`.
        public init(pattern: String, bufferType: String) {
            self.pattern = pattern
            self.bufferType = bufferType
        }

        /// Parses llama.cpp's `PATTERN=BUFTYPE` (one item of `-ot`'s comma-separated list).
        public init(parsing text: String) throws(LlamaError) {
            guard let equals = text.lastIndex(of: "=") else {
                throw LlamaError(.invalidArgument, "--override-tensor \(text): it has no '=': write PATTERN=BUFTYPE, e.g. exps=CPU")
            }
            pattern = String(text[..<equals])
            bufferType = String(text[text.index(after: equals)...])
            guard !pattern.isEmpty, !bufferType.isEmpty else {
                throw LlamaError(.invalidArgument, "--override-tensor \(text): the pattern and the buffer type must not be empty: "
                    + "write PATTERN=BUFTYPE, e.g. exps=CPU")
            }
        }

        public var description: String { "\(pattern)=\(bufferType)" }
    }
}

extension LlamaRuntime {
    /// The buffer types tensors can be placed in by name (``ModelOptions/TensorBufferOverride``):
    /// each device's own, as llama.cpp's `-ot` lists them. The corresponding C functions are
    /// `ggml_backend_dev_buffer_type` and `ggml_backend_buft_name`.
    public var bufferTypeNames: [String] { bufferTypes().map(\.name) }

    func bufferTypes() -> [(name: String, type: ggml_backend_buffer_type_t)] {
        let c = raw
        var result: [(name: String, type: ggml_backend_buffer_type_t)] = []
        for i in 0..<c.ggml_backend_dev_count() {
            guard let dev = c.ggml_backend_dev_get(i), let buft = c.ggml_backend_dev_buffer_type(dev),
                  let name = c.ggml_backend_buft_name(buft).map({ String(cString: $0) }) else { continue }
            if !result.contains(where: { $0.name == name }) { result.append((name, buft)) }
        }
        return result
    }
}

extension LlamaModel {
    /// Fills the fields of `params` that ``ModelOptions`` holds beyond placement, and calls `body`
    /// while the C arrays they point to (metadata and tensor overrides) are alive.
    static func withModelParameters<R>(_ options: ModelOptions, runtime: LlamaRuntime, paths: [String],
                                       params: inout llama_model_params,
                                       _ body: (inout llama_model_params) throws(LlamaError) -> R) throws(LlamaError) -> R {
        let c = runtime.raw
        params.use_extra_bufts = options.useExtraBufferTypes
        params.no_host = options.noHost
        params.no_alloc = options.noAlloc
        params.load_mtp = options.loadMTP
        if let mode = options.loadMode { params.load_mode = llama_load_mode(rawValue: mode.rawValue) }
        if let lazy = options.lazyMode { params.lazy_mode = llama_lazy_mode(rawValue: lazy.rawValue) }
        if options.noAlloc {
            // llama.cpp asserts (ending the process) on a mapped load that allocates nothing; its
            // own fitting measures with load_mode none.
            if let mode = options.loadMode, mode != .none {
                throw LlamaError(.invalidArgument, "noAlloc reads no weights, so load mode \(mode) does not apply: "
                    + "leave loadMode nil or set it to .none")
            }
            params.load_mode = LLAMA_LOAD_MODE_NONE
        }
        if ModelOptions.LoadMode(rawValue: params.load_mode.rawValue).locks {
            try checkMemoryLock(paths: paths)
        }

        for o in options.metadataOverrides { try o.validate() }
        // llama.cpp reads the list up to an entry whose key is empty.
        let overrides = options.metadataOverrides.map(\.cValue) + [llama_model_kv_override()]

        let available = runtime.bufferTypes()
        var buffers: [(pattern: UnsafeMutablePointer<CChar>?, type: ggml_backend_buffer_type_t)] = []
        defer { buffers.forEach { free($0.pattern) } }
        for o in options.tensorBufferOverrides {
            guard let type = available.first(where: { $0.name == o.bufferType })?.type else {
                throw LlamaError(.invalidArgument, "--override-tensor \(o): there is no buffer type \(o.bufferType); "
                    + "the devices loaded offer: \(available.map(\.name).joined(separator: ", "))")
            }
            if o.pattern.utf8.contains(0) {
                throw LlamaError(.invalidArgument, "--override-tensor \(o): the pattern contains a NUL byte")
            }
            buffers.append((strdup(o.pattern), type))
        }
        let limit = c.llama_max_tensor_buft_overrides()
        if buffers.count > 0, buffers.count >= limit {
            throw LlamaError(.invalidArgument, "--override-tensor: \(buffers.count) overrides, llama.cpp takes at most \(limit - 1)")
        }
        let cBuffers = buffers.map { llama_model_tensor_buft_override(pattern: $0.pattern, buft: $0.type) }
            + [llama_model_tensor_buft_override(pattern: nil, buft: nil)]

        return try overrides.withUnsafeBufferPointer { (kv: UnsafeBufferPointer<llama_model_kv_override>) throws(LlamaError) -> R in
            try cBuffers.withUnsafeBufferPointer { (bufts: UnsafeBufferPointer<llama_model_tensor_buft_override>) throws(LlamaError) -> R in
                if !options.metadataOverrides.isEmpty { params.kv_overrides = kv.baseAddress }
                if !options.tensorBufferOverrides.isEmpty { params.tensor_buft_overrides = bufts.baseAddress }
                defer { params.kv_overrides = nil; params.tensor_buft_overrides = nil }
                return try body(&params)
            }
        }
    }

    /// Locking the weights in RAM needs room under RLIMIT_MEMLOCK, or the privilege to exceed it
    /// (CAP_IPC_LOCK); llama.cpp only warns and goes on unlocked, so that is refused here first.
    static func checkMemoryLock(paths: [String]) throws(LlamaError) {
        #if os(Linux)
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return }
        let needed = paths.reduce(UInt64(0)) { total, path in
            total + ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0)
        }
        guard UInt64(limit.rlim_cur) < needed, !canLockWithoutLimit else { return }
        throw LlamaError(.unsupported, "--load-mode mlock: locking \(needed >> 20) MiB of weights in RAM needs RLIMIT_MEMLOCK of at "
            + "least that, and this process may lock \(UInt64(limit.rlim_cur) >> 10) KiB: raise it (ulimit -l, or LimitMEMLOCK= in a "
            + "systemd unit), grant CAP_IPC_LOCK, or load without mlock")
        #endif
    }

    /// Whether this process holds CAP_IPC_LOCK (bit 14 of the effective capabilities).
    static var canLockWithoutLimit: Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let caps = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return caps & (1 << 14) != 0
    }
}
