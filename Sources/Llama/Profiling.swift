import LlamaRaw
import Synchronization

/// The time and count of one graph operation on one device, summed over the decodes a
/// ``LlamaProfiler`` observed.
public struct LlamaProfileEntry: Sendable, Hashable, Codable {
    /// The operation as ggml describes it (`ggml_op_desc`): `MUL_MAT`, `RMS_NORM`, `ROPE`, and
    /// for unary and gated operations the function itself (`SILU`, `SWIGLU`).
    public var operation: String
    /// The device that holds the node's output: a device name such as `CPU` or `CUDA0`. A GPU's
    /// pinned host buffer counts as `CPU`, since only the CPU backend computes into it.
    public var device: String
    /// Graph nodes of this operation on this device.
    public var calls: Int
    /// Time spent computing them, in milliseconds. Views (`VIEW`, `RESHAPE`, `PERMUTE`,
    /// `TRANSPOSE`) and `NONE` nodes compute nothing and are counted with no time.
    public var milliseconds: Double
    /// Bytes of the outputs written (`ggml_nbytes` of each node).
    public var bytes: Int

    /// Creates an entry.
    public init(operation: String, device: String, calls: Int, milliseconds: Double, bytes: Int) {
        self.operation = operation
        self.device = device
        self.calls = calls
        self.milliseconds = milliseconds
        self.bytes = bytes
    }
}

/// What a ``LlamaProfiler`` recorded: per operation and device, the nodes computed and the time
/// they took.
public struct LlamaProfile: Sendable, Hashable, Codable {
    /// One entry per operation and device, the most time first (then by name).
    public var entries: [LlamaProfileEntry]
    /// Graph nodes the scheduler evaluated (views included).
    public var nodes: Int

    /// Creates a profile from entries (sorted here) and a node count.
    public init(entries: [LlamaProfileEntry], nodes: Int) {
        self.entries = entries.sorted {
            ($0.milliseconds, $1.operation, $1.device) > ($1.milliseconds, $0.operation, $0.device)
        }
        self.nodes = nodes
    }

    /// The time of every node, in milliseconds: at most the wall time of the decodes profiled,
    /// which also include graph building, input copies and sampling.
    public var milliseconds: Double { entries.reduce(0) { $0 + $1.milliseconds } }

    /// Nodes of an operation (as ``LlamaProfileEntry/operation`` names it), on every device.
    public func calls(of operation: String) -> Int {
        entries.filter { $0.operation == operation }.reduce(0) { $0 + $1.calls }
    }

    /// Milliseconds per device.
    public var deviceMilliseconds: [String: Double] {
        entries.reduce(into: [:]) { $0[$1.device, default: 0] += $1.milliseconds }
    }

    /// Two profiles added together (for instance the runs of a benchmark).
    public static func + (a: LlamaProfile, b: LlamaProfile) -> LlamaProfile {
        var sums: [String: LlamaProfileEntry] = [:]
        for entry in a.entries + b.entries {
            let key = entry.operation + "\u{0}" + entry.device
            if var sum = sums[key] {
                sum.calls += entry.calls
                sum.milliseconds += entry.milliseconds
                sum.bytes += entry.bytes
                sums[key] = sum
            } else {
                sums[key] = entry
            }
        }
        return LlamaProfile(entries: Array(sums.values), nodes: a.nodes + b.nodes)
    }
}

/// Per-operation and per-device timing of a context's decodes, from the graph scheduler's eval
/// callback (`cb_eval` of `llama_context_params`, a `ggml_backend_sched_eval_callback`).
///
/// Pass one to ``LlamaContext/init(model:options:profiler:)``; every decode then adds to it until
/// ``reset()``, and ``profile()`` reads what it holds. The scheduler asks the callback about each
/// node of the graph; answering yes makes it compute the graph up to that node, wait for the
/// device, and call back: the time between the two is the node's. So a profiled decode computes
/// its graph one node at a time, with a synchronisation after each: it is slower than an
/// unprofiled one (most for generation, whose nodes are small, and on GPUs, which lose their
/// queueing), and the shares of the operations are what this serial run spent.
/// `llama-swift bench --profile` measures both, run for run, and prints the ratio. While ``isEnabled`` is
/// false the callback answers no to every node and the graph runs as one piece again.
///
/// One profiler serves one context.
public final class LlamaProfiler: Sendable {
    private struct Key: Hashable {
        var operation: UnsafePointer<CChar>?
        var bufferType: OpaquePointer?
    }

    private struct Sum {
        var calls = 0
        var nanoseconds: Int64 = 0
        var bytes = 0
    }

    private struct State: @unchecked Sendable {
        var enabled: Bool
        var symbols: LlamaSymbols?
        var sums: [Key: Sum] = [:]
        var nodes = 0
        /// The node being computed, and when the scheduler was told to compute it.
        var pending: Key?
        var started = ContinuousClock.now
        /// Device names, by buffer type.
        var devices: [OpaquePointer?: String] = [:]
    }

    private let state: Mutex<State>

    /// Creates a profiler, recording from the start unless `enabled` is false.
    public init(enabled: Bool = true) {
        state = Mutex(State(enabled: enabled))
    }

    /// Whether decodes are profiled now; changing it between decodes is safe.
    public var isEnabled: Bool {
        get { state.withLock { $0.enabled } }
        set { state.withLock { $0.enabled = newValue } }
    }

    /// Forgets everything recorded.
    public func reset() {
        state.withLock {
            $0.sums = [:]
            $0.nodes = 0
            $0.pending = nil
        }
    }

    /// What was recorded since the profiler was made or last reset.
    public func profile() -> LlamaProfile {
        state.withLock { s in
            var entries: [LlamaProfileEntry] = []
            for (key, sum) in s.sums {
                entries.append(LlamaProfileEntry(
                    operation: key.operation.map { String(cString: $0) } ?? "unknown", device: s.devices[key.bufferType] ?? "unallocated",
                    calls: sum.calls, milliseconds: Double(sum.nanoseconds) / 1e6, bytes: sum.bytes))
            }
            return LlamaProfile(entries: entries, nodes: s.nodes)
        }
    }

    /// Sets the context parameters' eval callback to this profiler (the context keeps it alive).
    func install(into params: inout llama_context_params, symbols: LlamaSymbols) throws(LlamaError) {
        let free = state.withLock { s -> Bool in
            guard s.symbols == nil else { return false }
            s.symbols = symbols
            return true
        }
        guard free else {
            throw LlamaError(.invalidArgument, "this LlamaProfiler already profiles another context: create one per context")
        }
        params.cb_eval = { tensor, ask, data in
            guard let tensor, let data else { return false }
            return Unmanaged<LlamaProfiler>.fromOpaque(data).takeUnretainedValue().observe(tensor, ask: ask)
        }
        params.cb_eval_user_data = Unmanaged.passUnretained(self).toOpaque()
    }

    /// The scheduler's question (`ask`: should it stop after this node?) or its report that the
    /// node is computed.
    private func observe(_ tensor: UnsafeMutablePointer<ggml_tensor>, ask: Bool) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { s in
            guard s.enabled, let c = s.symbols else { return false }
            guard ask else {
                if let key = s.pending {
                    let (seconds, attoseconds) = (now - s.started).components
                    s.sums[key, default: Sum()].nanoseconds += seconds * 1_000_000_000 + attoseconds / 1_000_000_000
                    s.pending = nil
                }
                return true
            }
            s.nodes += 1
            let op = tensor.pointee.op
            let computes = !(op == GGML_OP_NONE || op == GGML_OP_VIEW || op == GGML_OP_RESHAPE || op == GGML_OP_PERMUTE
                             || op == GGML_OP_TRANSPOSE)
            let buffer = tensor.pointee.buffer ?? tensor.pointee.view_src?.pointee.buffer
            let bufferType = buffer.flatMap { c.ggml_backend_buffer_get_type($0) }
            let key = Key(operation: c.ggml_op_desc(tensor), bufferType: bufferType)
            if s.devices[bufferType] == nil { s.devices[bufferType] = Self.deviceName(bufferType, c) }
            s.sums[key, default: Sum()].calls += 1
            s.sums[key, default: Sum()].bytes += computes ? c.ggml_nbytes(tensor) : 0
            guard computes else { return false }
            s.pending = key
            s.started = ContinuousClock.now
            return true
        }
    }

    /// The device of a buffer type: its device's name, except that a device's host buffer type
    /// (pinned memory for the CPU backend's compute buffers) is the CPU's.
    private static func deviceName(_ bufferType: OpaquePointer?, _ c: LlamaSymbols) -> String {
        guard let bufferType else { return "unallocated" }
        guard let device = c.ggml_backend_buft_get_device(bufferType) else {
            return c.ggml_backend_buft_is_host(bufferType) ? "CPU"
                : c.ggml_backend_buft_name(bufferType).map { String(cString: $0) } ?? "unnamed buffer type"
        }
        if c.ggml_backend_dev_type(device) != GGML_BACKEND_DEVICE_TYPE_CPU,
           c.ggml_backend_dev_host_buffer_type(device) == bufferType {
            return "CPU"
        }
        return c.ggml_backend_dev_name(device).map { String(cString: $0) } ?? "unnamed device"
    }
}
