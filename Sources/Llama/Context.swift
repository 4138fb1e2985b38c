public import Foundation
import LlamaRaw
import Synchronization

/// Performance counters of a context (`llama_perf_context_data`).
public struct PerformanceCounters: Sendable {
    public var loadMilliseconds: Double
    public var promptMilliseconds: Double
    public var generationMilliseconds: Double
    public var promptTokens: Int32
    public var generatedTokens: Int32
    public var reusedTokens: Int32
}

/// Set by task cancellation, read by llama.cpp's abort callback during a decode.
final class AbortFlag: Sendable {
    let raised = Atomic<Bool>(false)
}

/// A context: the KV cache and compute buffers for evaluating a model. One task at a time uses
/// it (it is an actor); any number of contexts may share one model.
public actor LlamaContext {
    public let model: LlamaModel
    nonisolated(unsafe) let pointer: OpaquePointer
    nonisolated(unsafe) var cBatch: llama_batch
    let abort = AbortFlag()
    let c: LlamaSymbols
    /// The tokens of sequence 0 held in the KV cache, when known (generation keeps it).
    var history: [LlamaToken]? = []
    /// LoRA adapters in use, kept alive while applied.
    var appliedAdapters: [LoRAAdapter] = []

    /// The context window in tokens.
    public nonisolated let contextLength: Int
    /// The most tokens one decode call takes.
    public nonisolated let batchCapacity: Int
    /// The most sequences the context holds.
    public nonisolated let maxSequences: Int
    /// Whether the context computes embeddings.
    public nonisolated let computesEmbeddings: Bool
    /// Whether all sequences share one KV buffer (``ContextOptions/unifiedCache``).
    public nonisolated let unifiedCache: Bool

    public init(model: LlamaModel, options: ContextOptions = ContextOptions()) throws(LlamaError) {
        try options.validate()
        let c = model.runtime.raw
        var params = c.llama_context_default_params()
        options.apply(to: &params)
        params.abort_callback = { data in
            Unmanaged<AbortFlag>.fromOpaque(data!).takeUnretainedValue().raised.load(ordering: .relaxed)
        }
        params.abort_callback_data = Unmanaged.passUnretained(abort).toOpaque()
        guard let ctx = c.llama_init_from_model(model.pointer, params) else {
            throw LlamaError(.creationFailed, "llama.cpp could not create a context (window \(params.n_ctx) tokens, "
                + "batch \(params.n_batch)): lower contextLength or batchSize if memory is short")
        }
        self.model = model
        self.c = c
        pointer = ctx
        contextLength = Int(c.llama_n_ctx(ctx))
        batchCapacity = Int(c.llama_n_batch(ctx))
        maxSequences = Int(c.llama_n_seq_max(ctx))
        computesEmbeddings = params.embeddings
        unifiedCache = params.kv_unified
        cBatch = c.llama_batch_init(Int32(batchCapacity), 0, Int32(maxSequences))
    }

    deinit {
        c.llama_batch_free(cBatch)
        c.llama_free(pointer)
    }

    // MARK: Evaluation

    /// Evaluates a batch; cancelling the task aborts the evaluation.
    ///
    /// The corresponding C function is `llama_decode`.
    public func decode(_ batch: LlamaBatch) async throws(LlamaError) {
        history = nil
        try await run(batch, encode: false)
    }

    /// Runs the encoder of an encoder-decoder model on a batch (`llama_encode`).
    public func encode(_ batch: LlamaBatch) async throws(LlamaError) {
        history = nil
        try await run(batch, encode: true)
    }

    func run(_ batch: LlamaBatch, encode: Bool) async throws(LlamaError) {
        try fill(batch)
        try await evaluate(encode: encode)
    }

    /// Evaluates one generated token of sequence 0, written straight into the C batch: the
    /// generation loop's path, with no Swift allocation.
    func runNext(_ token: LlamaToken, position: Int32) async throws(LlamaError) {
        cBatch.token[0] = token
        cBatch.pos[0] = position
        cBatch.n_seq_id[0] = 1
        cBatch.seq_id[0]![0] = 0
        cBatch.logits[0] = 1
        cBatch.n_tokens = 1
        try await evaluate(encode: false)
    }

    private func evaluate(encode: Bool) async throws(LlamaError) {
        let flag = abort
        flag.raised.store(false, ordering: .relaxed)
        let status: Int32 = await withTaskCancellationHandler {
            encode ? c.llama_encode(pointer, cBatch) : c.llama_decode(pointer, cBatch)
        } onCancel: {
            flag.raised.store(true, ordering: .relaxed)
        }
        switch status {
        case 0: return
        case 1: throw LlamaError(.contextOverflow, "the context window (\(contextLength) tokens) is full: clear or "
                                    + "shift the cache, or create the context with a larger contextLength", status: status)
        case 2: throw LlamaError(.cancelled, "the evaluation was cancelled", status: status)
        default: throw LlamaError(.decodeFailed, "llama.cpp failed to evaluate the batch", status: status)
        }
    }

    /// Copies a Swift batch into the C batch.
    private func fill(_ batch: LlamaBatch) throws(LlamaError) {
        guard !batch.isEmpty else { throw LlamaError(.invalidArgument, "the batch is empty") }
        guard batch.count <= batchCapacity else {
            throw LlamaError(.invalidArgument, "the batch has \(batch.count) tokens, more than the context's batch size "
                + "(\(batchCapacity)): split it, or create the context with a larger batchSize")
        }
        let vocabCount = model.vocab.count
        for i in 0..<batch.count {
            let token = batch.tokens[i]
            guard token >= 0, token < vocabCount else {
                throw LlamaError(.invalidArgument, "token \(token) is not in the vocabulary (0..<\(vocabCount))")
            }
            let seqs = batch.sequences[i]
            guard !seqs.isEmpty, seqs.count <= maxSequences, seqs.allSatisfy({ $0 >= 0 && $0 < maxSequences }) else {
                throw LlamaError(.invalidArgument, "sequence ids \(seqs) must be within 0..<\(maxSequences) "
                    + "(create the context with more maxSequences)")
            }
            guard batch.positions[i] >= 0 else { throw LlamaError(.invalidArgument, "positions must not be negative") }
            cBatch.token[i] = token
            cBatch.pos[i] = batch.positions[i]
            cBatch.n_seq_id[i] = Int32(seqs.count)
            for (j, s) in seqs.enumerated() { cBatch.seq_id[i]![j] = s }
            cBatch.logits[i] = batch.outputs[i] ? 1 : 0
        }
        cBatch.n_tokens = Int32(batch.count)
    }

    // MARK: Outputs

    /// Reads the logits of output `index` of the last batch (-1: the last output) without copying.
    public func withLogits<R: Sendable>(at index: Int32 = -1,
                                        _ body: @Sendable (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard let p = c.llama_get_logits_ith(pointer, index) else {
            throw LlamaError(.invalidArgument, "no logits for output \(index) of the last batch")
        }
        return try body(UnsafeBufferPointer(start: p, count: Int(model.vocab.count)))
    }

    /// A copy of the logits of output `index` of the last batch.
    public func logits(at index: Int32 = -1) throws -> [Float] {
        try withLogits(at: index) { Array($0) }
    }

    /// The pooled embedding of a sequence (contexts with embeddings and pooling).
    public func embedding(sequence: Int32) throws(LlamaError) -> [Float] {
        guard let p = c.llama_get_embeddings_seq(pointer, sequence) else {
            throw LlamaError(.unsupported, "no pooled embedding for sequence \(sequence): create the context with "
                + "embeddings: true and a pooling type other than .none")
        }
        let n = c.llama_pooling_type(pointer) == LLAMA_POOLING_TYPE_RANK ? Int(max(1, c.llama_model_n_cls_out(model.pointer)))
            : Int(c.llama_model_n_embd_out(model.pointer))
        return Array(UnsafeBufferPointer(start: p, count: n))
    }

    /// The embedding of output `index` of the last batch (contexts with embeddings).
    public func embedding(at index: Int32) throws(LlamaError) -> [Float] {
        guard let p = c.llama_get_embeddings_ith(pointer, index) else {
            throw LlamaError(.unsupported, "no embedding for output \(index): create the context with embeddings: true")
        }
        return Array(UnsafeBufferPointer(start: p, count: Int(c.llama_model_n_embd_out(model.pointer))))
    }

    // MARK: Memory (KV cache)

    var memory: llama_memory_t? { c.llama_get_memory(pointer) }

    /// Empties the cache.
    public func clearMemory() {
        c.llama_memory_clear(memory, true)
        history = []
    }

    /// Removes positions `range` of a sequence (-1 as sequence: all sequences). Returns false
    /// when the cache cannot remove a partial range (recurrent models).
    @discardableResult
    public func removeTokens(sequence: Int32 = 0, from start: Int32 = 0, to end: Int32? = nil) -> Bool {
        if sequence == 0 || sequence == -1, let h = history {
            history = end == nil ? Array(h.prefix(Int(max(0, start)))) : nil
        }
        return c.llama_memory_seq_rm(memory, sequence, start, end ?? -1)
    }

    /// Copies positions of one sequence to another (shares the cells, no recomputation).
    public func copySequence(_ source: Int32, to destination: Int32, from start: Int32 = 0, to end: Int32? = nil) {
        if destination == 0 { history = nil }
        c.llama_memory_seq_cp(memory, source, destination, start, end ?? -1)
    }

    /// Removes every sequence but one. (llama.cpp's `llama_memory_seq_keep` acts on the cache
    /// stream of that sequence only; the others are removed one by one.)
    public func keepOnly(sequence: Int32) {
        if sequence != 0 { history = [] }
        c.llama_memory_seq_keep(memory, sequence)
        for other in 0..<Int32(maxSequences) where other != sequence {
            _ = c.llama_memory_seq_rm(memory, other, -1, -1)
        }
    }

    /// Adds `delta` to the positions `start..<end` of a sequence (context shifting).
    public func shiftPositions(sequence: Int32 = 0, from start: Int32 = 0, to end: Int32? = nil, by delta: Int32) {
        if sequence == 0 { history = nil }
        c.llama_memory_seq_add(memory, sequence, start, end ?? -1, delta)
    }

    /// The positions a sequence occupies, or nil when it is empty.
    public func positions(sequence: Int32 = 0) -> ClosedRange<Int32>? {
        let low = c.llama_memory_seq_pos_min(memory, sequence)
        let high = c.llama_memory_seq_pos_max(memory, sequence)
        return low < 0 || high < low ? nil : low...high
    }

    // MARK: State

    /// The whole context state (KV cache, outputs) as bytes.
    public func state() -> Data {
        var data = Data(count: c.llama_state_get_size(pointer))
        let written = data.withUnsafeMutableBytes { c.llama_state_get_data(pointer, $0.bindMemory(to: UInt8.self).baseAddress, $0.count) }
        return data.prefix(written)
    }

    /// Restores a state from ``state()`` of a context of the same model and options; `tokens`
    /// (what sequence 0 held) lets generation reuse the restored cache.
    public func restore(state: Data, tokens: [LlamaToken]? = nil) throws(LlamaError) {
        let read = state.withUnsafeBytes { c.llama_state_set_data(pointer, $0.bindMemory(to: UInt8.self).baseAddress, $0.count) }
        guard read > 0 else {
            throw LlamaError(.stateFailed, "the state could not be restored: it comes from another model or context size")
        }
        history = tokens
    }

    /// One sequence's state as bytes.
    public func state(sequence: Int32) -> Data {
        var data = Data(count: c.llama_state_seq_get_size(pointer, sequence))
        let written = data.withUnsafeMutableBytes {
            c.llama_state_seq_get_data(pointer, $0.bindMemory(to: UInt8.self).baseAddress, $0.count, sequence)
        }
        return data.prefix(written)
    }

    /// Restores one sequence's state into `sequence`; `tokens` as in ``restore(state:tokens:)``.
    public func restore(state: Data, into sequence: Int32, tokens: [LlamaToken]? = nil) throws(LlamaError) {
        let read = state.withUnsafeBytes {
            c.llama_state_seq_set_data(pointer, $0.bindMemory(to: UInt8.self).baseAddress, $0.count, sequence)
        }
        guard read > 0 else { throw LlamaError(.stateFailed, "the sequence state could not be restored") }
        if sequence == 0 { history = tokens }
    }

    /// Saves the state and the tokens it holds to a file (written beside and renamed into place).
    public func saveState(to url: URL, tokens: [LlamaToken]) throws(LlamaError) {
        try writeAtomically(url) { path in c.llama_state_save_file(pointer, path, tokens, tokens.count) }
    }

    /// Runs `write` on a temporary path beside `url`, then renames it into place: a failure
    /// leaves neither a partial file nor a damaged older one.
    private func writeAtomically(_ url: URL, _ write: (String) -> Bool) throws(LlamaError) {
        let partial = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(UUID().uuidString)")
        guard write(partial.path) else {
            try? FileManager.default.removeItem(at: partial)
            throw LlamaError(.stateFailed, "could not write the state to \(url.path)")
        }
        guard rename(partial.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: partial)
            throw LlamaError(.stateFailed, "could not move the state into \(url.path): \(reason)")
        }
    }

    /// Saves one sequence's state and its tokens to a file (written beside and renamed into place).
    public func saveState(sequence: Int32, to url: URL, tokens: [LlamaToken]) throws(LlamaError) {
        try writeAtomically(url) { path in c.llama_state_seq_save_file(pointer, path, sequence, tokens, tokens.count) > 0 }
    }

    /// Loads a sequence state file into `sequence` and returns the tokens saved with it.
    public func loadState(from url: URL, into sequence: Int32) throws(LlamaError) -> [LlamaToken] {
        let loaded = try readStateFile(url, what: "a sequence state") { path, tokens, capacity, count in
            c.llama_state_seq_load_file(pointer, path, sequence, tokens, capacity, count) > 0
        }
        if sequence == 0 { history = loaded }
        return loaded
    }

    /// Loads a state file and returns the tokens saved with it.
    public func loadState(from url: URL) throws(LlamaError) -> [LlamaToken] {
        let loaded = try readStateFile(url, what: "a state") { path, tokens, capacity, count in
            c.llama_state_load_file(pointer, path, tokens, capacity, count)
        }
        history = loaded
        return loaded
    }

    /// Runs a llama.cpp state loader on a readable file and returns the tokens it read.
    private func readStateFile(
        _ url: URL, what: String,
        _ load: (String, UnsafeMutablePointer<LlamaToken>, Int, UnsafeMutablePointer<Int>) -> Bool
    ) throws(LlamaError) -> [LlamaToken] {
        guard FileManager.default.isReadableFile(atPath: url.path) else {
            throw LlamaError(.fileNotFound, "cannot read the state file \(url.path)")
        }
        var tokens = [LlamaToken](repeating: 0, count: contextLength)
        var count = 0
        let capacity = tokens.count
        let ok = tokens.withUnsafeMutableBufferPointer { buffer in load(url.path, buffer.baseAddress!, capacity, &count) }
        guard ok else { throw LlamaError(.stateFailed, "\(url.path) is not \(what) of this model and context") }
        return Array(tokens.prefix(count))
    }

    // MARK: Settings and counters

    /// Threads for generation and for prompt processing.
    public func setThreads(_ threads: Int32, batch: Int32? = nil) throws(LlamaError) {
        guard threads > 0, (batch ?? threads) > 0 else { throw LlamaError(.invalidArgument, "threads must be positive") }
        c.llama_set_n_threads(pointer, threads, batch ?? threads)
    }

    public var performance: PerformanceCounters {
        let p = c.llama_perf_context(pointer)
        return PerformanceCounters(loadMilliseconds: p.t_load_ms, promptMilliseconds: p.t_p_eval_ms,
                                   generationMilliseconds: p.t_eval_ms, promptTokens: p.n_p_eval,
                                   generatedTokens: p.n_eval, reusedTokens: p.n_reused)
    }

    public func resetPerformanceCounters() { c.llama_perf_context_reset(pointer) }
}
