public import Foundation
import LlamaRaw
import Synchronization

/// Performance counters of a context (`llama_perf_context_data`).
public struct PerformanceCounters: Sendable {
    /// Time spent loading, in milliseconds.
    public var loadMilliseconds: Double
    /// Time spent evaluating prompt tokens, in milliseconds.
    public var promptMilliseconds: Double
    /// Time spent generating tokens, in milliseconds.
    public var generationMilliseconds: Double
    /// Prompt tokens evaluated.
    public var promptTokens: Int32
    /// Tokens generated (one evaluation each).
    public var generatedTokens: Int32
    /// Tokens taken from the KV cache instead of being evaluated again.
    public var reusedTokens: Int32
}

/// Set by task cancellation, read by llama.cpp's abort callback during a decode.
final class AbortFlag: Sendable {
    let raised = Atomic<Bool>(false)
}

/// A context: the KV cache and compute buffers for evaluating a model. One task at a time uses
/// it (it is an actor); any number of contexts may share one model.
public actor LlamaContext {
    /// The model this context evaluates.
    public let model: LlamaModel
    nonisolated(unsafe) let pointer: OpaquePointer
    nonisolated(unsafe) var cBatch: llama_batch
    let abort = AbortFlag()
    let c: LlamaSymbols
    /// The tokens of sequence 0 held in the KV cache, when known (generation keeps it).
    var history: [LlamaToken]? = []
    /// LoRA adapters in use, kept alive while applied.
    var appliedAdapters: [LoRAAdapter] = []
    /// The profiler of every decode, if one was given (llama.cpp holds it unretained).
    public nonisolated let profiler: LlamaProfiler?

    /// The context window in tokens (all sequences together, unless the cache is unified).
    public nonisolated let contextLength: Int
    /// The most tokens one sequence holds (`llama_n_ctx_seq`): ``contextLength`` divided among
    /// ``maxSequences`` when the cache is not unified, the whole window when it is. Generation
    /// ends with `.contextFull` at this limit.
    public nonisolated let sequenceLength: Int
    /// The context length asked for (``ContextOptions/contextLength``), when one was: llama.cpp
    /// may raise it (to a multiple of its padding, at least 256), and ``contextLength`` is what
    /// it chose. A warning is logged when the two differ.
    public nonisolated let requestedContextLength: Int?
    /// The most tokens one decode call takes.
    public nonisolated let batchCapacity: Int
    /// The most sequences the context holds.
    public nonisolated let maxSequences: Int
    /// Whether the context attends causally, as llama.cpp decides it: ``ContextOptions/attention``
    /// when given, else the model's `<arch>.attention.causal` (default true); nothing here changes
    /// it afterwards. (`llama_get_causal_attn` is newer than the oldest llama.cpp these sources
    /// build against.)
    nonisolated let causalAttention: Bool
    /// Whether the context computes embeddings.
    public nonisolated let computesEmbeddings: Bool
    /// Whether all sequences share one KV buffer (``ContextOptions/unifiedCache``).
    public nonisolated let unifiedCache: Bool
    /// The thread the context's work runs on, so that a decode does not hold a thread of Swift's
    /// cooperative pool (see ``ContextExecutor``).
    nonisolated let executor: ContextExecutor

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Creates a context for a model (`llama_init_from_model`).
    ///
    /// - Parameters:
    ///   - model: the model to evaluate.
    ///   - options: context length, batch sizes, threads, embeddings, cache types...; unset fields keep llama.cpp's defaults.
    ///   - profiler: records the time of each graph operation of every decode (the eval callback
    ///     `cb_eval`); profiled decodes are slower, see ``LlamaProfiler``.
    public init(model: LlamaModel, options: ContextOptions = ContextOptions(), profiler: LlamaProfiler? = nil) throws(LlamaError) {
        try options.validate()
        let c = model.runtime.raw
        var params = c.llama_context_default_params()
        options.apply(to: &params)
        try profiler?.install(into: &params, symbols: c)
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
        self.profiler = profiler
        pointer = ctx
        contextLength = Int(c.llama_n_ctx(ctx))
        sequenceLength = Int(c.llama_n_ctx_seq(ctx))
        requestedContextLength = options.contextLength.map { Int($0) }
        if let requested = requestedContextLength, requested != contextLength {
            LlamaLog.note("the context length \(requested) was \(contextLength > requested ? "raised" : "lowered") to "
                + "\(contextLength) by llama.cpp (its minimum and padding); LlamaContext.contextLength has the value in use")
        }
        batchCapacity = Int(c.llama_n_batch(ctx))
        maxSequences = Int(c.llama_n_seq_max(ctx))
        switch options.attention {
        case .causal?: causalAttention = true
        case .nonCausal?: causalAttention = false
        default: causalAttention = model.architecture.map { model.metadata["\($0).attention.causal"] != "false" } ?? true
        }
        computesEmbeddings = params.embeddings
        unifiedCache = params.kv_unified
        cBatch = c.llama_batch_init(Int32(batchCapacity), 0, Int32(maxSequences))
        // Last, once nothing can throw: a thread started for a context that failed would never end.
        executor = ContextExecutor()
    }

    deinit {
        c.llama_batch_free(cBatch)
        c.llama_free(pointer)
        executor.stop()
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
        case 1: throw LlamaError(.contextOverflow, "the context window (\(capacityDescription)) is full: clear or "
                                    + "shift the cache, or create the context with a larger contextLength", status: status)
        case 2: throw LlamaError(.cancelled, "the evaluation was cancelled", status: status)
        default: throw LlamaError(.decodeFailed, "llama.cpp failed to evaluate the batch", status: status)
        }
    }

    /// The window, per sequence when sequences split it.
    nonisolated var capacityDescription: String {
        sequenceLength == contextLength ? "\(contextLength) tokens"
            : "\(sequenceLength) tokens per sequence, \(contextLength) in all over \(maxSequences) sequences"
    }

    /// The most tokens one decode takes: the batch size, or for a model without causal attention
    /// the micro-batch size, since it must read its input in one micro-batch.
    var singlePassLimit: Int {
        causalAttention ? batchCapacity : min(batchCapacity, Int(c.llama_n_ubatch(pointer)))
    }


    /// Copies a Swift batch into the C batch.
    private func fill(_ batch: LlamaBatch) throws(LlamaError) {
        guard !batch.isEmpty else { throw LlamaError(.invalidArgument, "the batch is empty") }
        guard batch.count <= batchCapacity else {
            throw LlamaError(.invalidArgument, "the batch has \(batch.count) tokens, more than the context's batch size "
                + "(\(batchCapacity)): split it, or create the context with a larger batchSize")
        }
        // llama.cpp asserts that a model without causal attention gets the whole batch in one micro-batch.
        guard batch.count <= singlePassLimit else {
            throw LlamaError(.contextOverflow, "the batch has \(batch.count) tokens, more than the micro-batch size "
                + "(\(singlePassLimit)): a model without causal attention (an encoder, a BERT-style embedder or reranker) "
                + "reads its input in one micro-batch; create the context with a microBatchSize of at least \(batch.count)")
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
    /// when the cache cannot remove a partial range (recurrent models), or the context has no
    /// such sequence.
    @discardableResult
    public func removeTokens(sequence: Int32 = 0, from start: Int32 = 0, to end: Int32? = nil) -> Bool {
        // llama.cpp asserts on a sequence id it does not have.
        guard sequence == -1 || (sequence >= 0 && sequence < maxSequences) else { return false }
        if sequence == 0 || sequence == -1, let h = history {
            history = end == nil ? Array(h.prefix(Int(max(0, start)))) : nil
        }
        return c.llama_memory_seq_rm(memory, sequence, start, end ?? -1)
    }

    /// Copies positions of one sequence to another (shares the cells, no recomputation).
    public func copySequence(_ source: Int32, to destination: Int32, from start: Int32 = 0, to end: Int32? = nil) throws(LlamaError) {
        try checkSequence(source)
        try checkSequence(destination)
        if destination == 0 { history = nil }
        c.llama_memory_seq_cp(memory, source, destination, start, end ?? -1)
    }

    /// Removes every sequence but one. (llama.cpp's `llama_memory_seq_keep` acts on the cache
    /// stream of that sequence only; the others are removed one by one.)
    public func keepOnly(sequence: Int32) throws(LlamaError) {
        try checkSequence(sequence)
        if sequence != 0 { history = [] }
        c.llama_memory_seq_keep(memory, sequence)
        for other in 0..<Int32(maxSequences) where other != sequence {
            _ = c.llama_memory_seq_rm(memory, other, -1, -1)
        }
    }

    /// Adds `delta` to the positions `start..<end` of a sequence (context shifting).
    public func shiftPositions(sequence: Int32 = 0, from start: Int32 = 0, to end: Int32? = nil, by delta: Int32) throws(LlamaError) {
        try checkSequence(sequence)
        if sequence == 0 { history = nil }
        c.llama_memory_seq_add(memory, sequence, start, end ?? -1, delta)
    }

    /// After an evaluation of sequence 0 failed or was cancelled part-way: llama.cpp keeps the
    /// micro-batches it finished and drops the one it was computing, so the record of cached
    /// tokens is set to what the cache now holds of `tokens` (the sequence's intended content,
    /// from position 0), read from `llama_memory_seq_pos_max`; when that cannot be trusted, the
    /// sequence is cleared.
    func reconcileHistory(with tokens: [LlamaToken]) {
        let high = c.llama_memory_seq_pos_max(memory, 0)
        if high < 0 {
            history = []
        } else if Int(high) < tokens.count, c.llama_memory_seq_pos_min(memory, 0) >= 0 {
            history = Array(tokens.prefix(Int(high) + 1))
        } else {
            clearSequence(0)
        }
    }

    /// Empties one sequence (its cells, and the record of sequence 0's tokens). llama.cpp's
    /// `seq_rm` does not reach cells at negative positions (a damaged state can put them
    /// there): when some remain, or the context has only this sequence, the whole cache is emptied.
    func clearSequence(_ sequence: Int32) {
        if maxSequences == 1 || !c.llama_memory_seq_rm(memory, sequence, -1, -1)
            || c.llama_memory_seq_pos_max(memory, sequence) != -1 || c.llama_memory_seq_pos_min(memory, sequence) != -1 {
            clearMemory()
        }
        if sequence == 0 { history = [] }
    }

    func checkSequence(_ sequence: Int32) throws(LlamaError) {
        guard sequence >= 0, sequence < maxSequences else {
            throw LlamaError(.invalidArgument, "sequence \(sequence) is not within 0..<\(maxSequences) "
                + "(create the context with more maxSequences)")
        }
    }

    /// The positions a sequence occupies, or nil when it is empty.
    public func positions(sequence: Int32 = 0) -> ClosedRange<Int32>? {
        guard sequence >= 0, sequence < maxSequences else { return nil }
        let low = c.llama_memory_seq_pos_min(memory, sequence)
        let high = c.llama_memory_seq_pos_max(memory, sequence)
        return low < 0 || high < low ? nil : low...high
    }

    // MARK: State
    //
    // llama.cpp reads state bytes trusting their sizes (a truncated sequence file makes it assert),
    // so every restore goes through memory: the file's header is checked here, the rest is handed
    // to llama.cpp's bounds-checked reader, and all of it must be read. A failed restore empties
    // what it touched (the whole cache, or the sequence), so the context stays usable. The state
    // format has no checksum: bytes changed inside the cached values load and change the output.

    /// The tokens of sequence 0 in the KV cache, as this context knows them (generation keeps
    /// the record; nil after ``decode(_:)`` of your own batches or a position shift).
    public var cachedTokens: [LlamaToken]? { history }

    /// The whole context state (KV cache, outputs) as bytes.
    public func state() -> Data {
        var data = Data(count: c.llama_state_get_size(pointer))
        let written = data.withUnsafeMutableBytes { c.llama_state_get_data(pointer, $0.bindMemory(to: UInt8.self).baseAddress, $0.count) }
        return data.prefix(written)
    }

    /// Restores a state from ``state()`` of a context of the same model and options; `tokens`
    /// (what sequence 0 held) lets generation reuse the restored cache. On failure the cache is
    /// left empty.
    public func restore(state: Data, tokens: [LlamaToken]? = nil) throws(LlamaError) {
        try restoreWhole(state, what: "the state")
        try adopt(tokens, sequence: 0, what: "the state")
    }

    private func restoreWhole(_ state: Data, what: String) throws(LlamaError) {
        let read = state.withUnsafeBytes { c.llama_state_set_data(pointer, $0.bindMemory(to: UInt8.self).baseAddress, $0.count) }
        guard read == state.count, read > 0 else {
            clearMemory()
            throw LlamaError(.stateFailed, read == 0
                ? "\(what) could not be restored: it is damaged or truncated, or comes from another model or context size"
                : "\(what) has \(state.count - read) bytes more than llama.cpp read: it is damaged")
        }
    }

    /// Sets the record of sequence 0 after a restore, checking the restored positions against
    /// the token list: the cache must hold at least as many positions as it claims tokens. On
    /// a mismatch the sequence is emptied.
    private func adopt(_ tokens: [LlamaToken]?, sequence: Int32, what: String) throws(LlamaError) {
        let low = c.llama_memory_seq_pos_min(memory, sequence)
        let high = c.llama_memory_seq_pos_max(memory, sequence)
        if high >= Int32(sequenceLength) || (high >= 0 && low < 0) || (tokens.map { $0.count > Int(high) + 1 } ?? false) {
            clearSequence(sequence)
            throw LlamaError(.stateFailed, "\(what) is damaged: its cache holds positions \(low)...\(high) for "
                + "sequence \(sequence)\(tokens.map { ", but lists \($0.count) tokens" } ?? "")")
        }
        guard sequence == 0 else { return }
        if let tokens, high + 1 > Int32(tokens.count) {
            // The cache holds more than the list says: keep what the list covers.
            _ = c.llama_memory_seq_rm(memory, 0, Int32(tokens.count), -1)
        }
        history = tokens
    }

    /// One sequence's state as bytes.
    /// Empty for a sequence the context does not have.
    public func state(sequence: Int32) -> Data {
        guard sequence >= 0, sequence < maxSequences else { return Data() }
        var data = Data(count: c.llama_state_seq_get_size(pointer, sequence))
        let written = data.withUnsafeMutableBytes {
            c.llama_state_seq_get_data(pointer, $0.bindMemory(to: UInt8.self).baseAddress, $0.count, sequence)
        }
        return data.prefix(written)
    }

    /// The first bytes of ``state(sequence:)``: llama.cpp's `io_magic` (llama-context.cpp, not
    /// in llama.h) and the sequence id.
    static let sequenceStateMagic: UInt32 = 0xaf14_3cd8

    /// Restores one sequence's state into `sequence`; `tokens` as in ``restore(state:tokens:)``.
    /// On failure the sequence is left empty.
    public func restore(state: Data, into sequence: Int32, tokens: [LlamaToken]? = nil) throws(LlamaError) {
        try checkSequence(sequence)
        guard state.count >= 8, state.prefix(4).withUnsafeBytes({ $0.loadUnaligned(as: UInt32.self) }) == Self.sequenceStateMagic else {
            throw LlamaError(.stateFailed, "the bytes are not a sequence state (\(state.count) bytes, no sequence-state header)")
        }
        try restoreSequence(state, into: sequence, what: "the sequence state")
        try adopt(tokens, sequence: sequence, what: "the sequence state")
    }

    private func restoreSequence(_ state: Data, into sequence: Int32, what: String) throws(LlamaError) {
        let read = state.withUnsafeBytes {
            c.llama_state_seq_set_data(pointer, $0.bindMemory(to: UInt8.self).baseAddress, $0.count, sequence)
        }
        guard read == state.count else {
            clearSequence(sequence)
            throw LlamaError(.stateFailed, read == 0
                ? "\(what) could not be restored: it is damaged or truncated, or comes from another model"
                : "\(what) has \(state.count - read) bytes more than llama.cpp read: it is damaged")
        }
    }

    /// Saves the state and the tokens of sequence 0 to a file (written beside and renamed into
    /// place). `tokens` nil: the context's own record (``cachedTokens``), which generation keeps;
    /// an error when the context does not know them.
    public func saveState(to url: URL, tokens: [LlamaToken]? = nil) throws(LlamaError) {
        let tokens = try recordedTokens(tokens)
        try writeAtomically(url) { path in c.llama_state_save_file(pointer, path, tokens, tokens.count) }
    }

    private func recordedTokens(_ given: [LlamaToken]?) throws(LlamaError) -> [LlamaToken] {
        if let given { return given }
        guard let history else {
            throw LlamaError(.invalidArgument, "the context does not know which tokens its cache holds (after decode(_:) "
                + "of your own batches, or a position shift): pass tokens")
        }
        return history
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

    /// Saves one sequence's state and its tokens to a file (written beside and renamed into
    /// place). `tokens` nil: for sequence 0 the context's own record, for others none.
    public func saveState(sequence: Int32, to url: URL, tokens: [LlamaToken]? = nil) throws(LlamaError) {
        try checkSequence(sequence)
        let tokens = sequence == 0 ? try recordedTokens(tokens) : tokens ?? []
        try writeAtomically(url) { path in c.llama_state_seq_save_file(pointer, path, sequence, tokens, tokens.count) > 0 }
    }

    /// Loads a sequence state file into `sequence` and returns the tokens saved with it. On
    /// failure the sequence is left empty.
    public func loadState(from url: URL, into sequence: Int32) throws(LlamaError) -> [LlamaToken] {
        try checkSequence(sequence)
        let (tokens, body) = try readStateFile(url, magic: LLAMA_STATE_SEQ_MAGIC, version: UInt32(LLAMA_STATE_SEQ_VERSION),
                                               what: "a sequence state")
        // The in-memory form: llama.cpp's header (magic, sequence id), then the same bytes.
        var state = Data(capacity: body.count + 8)
        withUnsafeBytes(of: Self.sequenceStateMagic.littleEndian) { state.append(contentsOf: $0) }
        withUnsafeBytes(of: sequence.littleEndian) { state.append(contentsOf: $0) }
        state.append(body)
        try restoreSequence(state, into: sequence, what: "\(url.path)")
        try adopt(tokens, sequence: sequence, what: url.path)
        return tokens
    }

    /// Loads a state file and returns the tokens saved with it. On failure the cache is left empty.
    public func loadState(from url: URL) throws(LlamaError) -> [LlamaToken] {
        let (tokens, body) = try readStateFile(url, magic: LLAMA_SESSION_MAGIC, version: UInt32(LLAMA_SESSION_VERSION), what: "a state")
        try restoreWhole(body, what: url.path)
        try adopt(tokens, sequence: 0, what: url.path)
        return tokens
    }

    /// Reads a llama.cpp state file and checks its header (magic, version, token count against
    /// the file's size and the context): returns the tokens and the state bytes after them.
    private func readStateFile(_ url: URL, magic: UInt32, version: UInt32, what: String)
        throws(LlamaError) -> (tokens: [LlamaToken], state: Data) {
        guard FileManager.default.isReadableFile(atPath: url.path), let data = try? Data(contentsOf: url) else {
            throw LlamaError(.fileNotFound, "cannot read the state file \(url.path)")
        }
        func u32(_ offset: Int) -> UInt32 {
            data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        }
        guard data.count >= 12, u32(0) == magic, u32(4) == version else {
            throw LlamaError(.stateFailed, "\(url.path) is not \(what) file of this llama.cpp version (\(data.count) bytes)")
        }
        let count = Int(u32(8))
        guard count <= sequenceLength, 12 + count * 4 <= data.count else {
            throw LlamaError(.stateFailed, "\(url.path) lists \(count) tokens: more than \(12 + count * 4 > data.count ? "the file holds" : "a sequence of this context holds (\(sequenceLength))")")
        }
        let tokens = (0..<count).map { LlamaToken(bitPattern: u32(12 + $0 * 4)) }
        let vocabCount = model.vocab.count
        if let bad = tokens.first(where: { $0 < 0 || $0 >= vocabCount }) {
            throw LlamaError(.stateFailed, "\(url.path) lists token \(bad), which is not in this model's vocabulary")
        }
        let body = data.subdata(in: (12 + count * 4)..<data.count)
        guard !body.isEmpty else { throw LlamaError(.stateFailed, "\(url.path) holds tokens but no state") }
        return (tokens, body)
    }

    // MARK: Settings and counters

    /// Threads for generation and for prompt processing.
    public func setThreads(_ threads: Int32, batch: Int32? = nil) throws(LlamaError) {
        guard threads > 0, (batch ?? threads) > 0 else { throw LlamaError(.invalidArgument, "threads must be positive") }
        c.llama_set_n_threads(pointer, threads, batch ?? threads)
    }

    /// llama.cpp's performance counters for this context (`llama_perf_context`).
    public var performance: PerformanceCounters {
        let p = c.llama_perf_context(pointer)
        return PerformanceCounters(loadMilliseconds: p.t_load_ms, promptMilliseconds: p.t_p_eval_ms,
                                   generationMilliseconds: p.t_eval_ms, promptTokens: p.n_p_eval,
                                   generatedTokens: p.n_eval, reusedTokens: p.n_reused)
    }

    /// Sets the performance counters back to zero (`llama_perf_context_reset`).
    public func resetPerformanceCounters() { c.llama_perf_context_reset(pointer) }
}
