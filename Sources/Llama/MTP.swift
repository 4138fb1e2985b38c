import Foundation
import LlamaRaw
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Multi-token prediction (NextN) drafting: the model's own MTP head guesses, as llama.cpp's
// `--spec-type draft-mtp` does it (common/speculative.cpp, the single-head path).
//
// A second context of the same model (`ctx_type` MTP) runs the head. Each of its entries carries a
// token and, as that token's embedding, the target's hidden state of the position before (the
// state that predicted the token). So after every decode of the target, the same tokens are
// decoded on the draft context with the target's states shifted by one; the state of the batch's
// last row is kept for the next batch's first token. Drafting then chains the head on itself:
// the token it predicted, with the state it computed, predicts the next.

/// The llama.cpp functions MTP drafting calls that the generated table does not bind, resolved by
/// name from the loaded libllama: handwritten, kept to what drafting needs.
///
/// - `llama_set_embeddings_nextn`, `llama_get_embeddings_nextn(_ith)`: C++ staging functions of
///   src/llama-ext.h (b11434), exported under their mangled names only; not in llama.h, so the
///   generator never sees them.
/// - `llama_batch_ext_*` and `llama_process` (include/llama.h of b11434): newer than the oldest
///   header these sources must build against (b11003), so they cannot come from the generated table.
struct MTPFunctions {
    typealias SetNextn = @convention(c) (OpaquePointer?, Bool, Bool) -> Void
    typealias GetNextn = @convention(c) (OpaquePointer?) -> UnsafeMutablePointer<Float>?
    typealias GetNextnRow = @convention(c) (OpaquePointer?, Int32) -> UnsafeMutablePointer<Float>?
    typealias BatchInit = @convention(c) (OpaquePointer?) -> OpaquePointer?
    typealias BatchFree = @convention(c) (OpaquePointer?) -> Void
    typealias BatchAddToken = @convention(c) (OpaquePointer?, Int32, Int32) -> Int32
    typealias BatchSetPosition = @convention(c) (OpaquePointer?, Int32, UnsafePointer<Int32>?) -> Bool
    typealias BatchSetEmbedding = @convention(c) (OpaquePointer?, Int32, llama_swift_embd_view) -> Bool
    typealias BatchSetOutput = @convention(c) (OpaquePointer?, Int32, Bool) -> Bool
    typealias Process = @convention(c) (OpaquePointer?, UInt32, OpaquePointer?) -> Int32

    let setEmbeddingsNextn: SetNextn
    let embeddingsNextn: GetNextn
    let embeddingsNextnRow: GetNextnRow
    let batchInit: BatchInit
    let batchFree: BatchFree
    let batchClear: BatchFree
    let batchAddToken: BatchAddToken
    let batchSetPosition: BatchSetPosition
    let batchSetEmbedding: BatchSetEmbedding
    let batchSetOutput: BatchSetOutput
    let process: Process

    /// `LLAMA_PROCESS_TYPE_DECODE` (enum llama_process_type, include/llama.h of b11434).
    static let decode: UInt32 = 1

    /// Resolves the functions from the libllama the runtime loaded; throws `.unsupported` naming
    /// the missing ones (libraries older or newer than these staging functions).
    static func resolve(in runtime: LlamaRuntime) throws(LlamaError) -> MTPFunctions {
        let file = LlamaPin.libraries.first { $0.name == "llama" }?.file ?? "libllama"
        let path = runtime.libraryDirectory.appendingPathComponent("\(file).\(LlamaLibraries.libraryExtension)").path
        // Already loaded by the runtime: RTLD_NOLOAD only finds its handle.
        guard let handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD) else {
            throw LlamaError(.unsupported, "MTP drafting could not find the loaded \(path)")
        }
        // The runtime's own handle keeps the library loaded; this one only looked it up.
        defer { dlclose(handle) }
        var missing: [String] = []
        func find<T>(_ name: String, _ type: T.Type) -> T? {
            guard let symbol = dlsym(handle, name) else {
                missing.append(name)
                return nil
            }
            return unsafeBitCast(symbol, to: type)
        }
        let setNextn = find("_Z26llama_set_embeddings_nextnP13llama_contextbb", SetNextn.self)
        let getNextn = find("_Z26llama_get_embeddings_nextnP13llama_context", GetNextn.self)
        let getRow = find("_Z30llama_get_embeddings_nextn_ithP13llama_contexti", GetNextnRow.self)
        let initBatch = find("llama_batch_ext_init", BatchInit.self)
        let freeBatch = find("llama_batch_ext_free", BatchFree.self)
        let clear = find("llama_batch_ext_clear", BatchFree.self)
        let addToken = find("llama_batch_ext_add_token", BatchAddToken.self)
        let setPosition = find("llama_batch_ext_set_pos", BatchSetPosition.self)
        let setEmbedding = find("llama_batch_ext_set_embd_token", BatchSetEmbedding.self)
        let setOutput = find("llama_batch_ext_set_output_logits", BatchSetOutput.self)
        let process = find("llama_process", Process.self)
        guard let setNextn, let getNextn, let getRow, let initBatch, let freeBatch, let clear, let addToken,
              let setPosition, let setEmbedding, let setOutput, let process else {
            throw LlamaError(.unsupported, "MTP drafting needs llama.cpp functions these libraries lack (\(missing.joined(separator: ", "))): "
                + "load the llama.cpp \(LlamaPin.tag) release, or use another speculation (.draft, .lookup)")
        }
        return MTPFunctions(setEmbeddingsNextn: setNextn, embeddingsNextn: getNextn, embeddingsNextnRow: getRow,
                            batchInit: initBatch, batchFree: freeBatch, batchClear: clear, batchAddToken: addToken,
                            batchSetPosition: setPosition, batchSetEmbedding: setEmbedding, batchSetOutput: setOutput,
                            process: process)
    }
}

/// The MTP head of one generation: its context, the target's hidden states it pairs with tokens,
/// and what its cache holds. Used only from the target context's isolation (its methods run
/// there), hence unchecked: nothing else reaches it.
final class MTPDrafter: @unchecked Sendable {
    let f: MTPFunctions
    let c: LlamaSymbols
    /// The target context (not owned).
    let target: OpaquePointer
    /// The draft context (`ctx_type` MTP) and its batch, owned.
    let pointer: OpaquePointer
    let batch: OpaquePointer
    let width: Int
    let vocabCount: Int
    let maxDraft: Int, minDraft: Int, pMin: Float
    let abort = AbortFlag()
    /// The target's state for the first token of the next batch (llama.cpp's `pending_h`).
    var pending: [Float]
    /// The target's states of the last batch, one row per token (llama.cpp's `verify_h`).
    var verifyRows: [Float] = []
    /// The tokens the draft cache holds at positions 0..<count (the target's, in step).
    var held: [LlamaToken] = []
    /// The cache could not be kept in step with the target's: no more drafts this generation.
    var lost = false

    init(targetPointer: OpaquePointer, model: LlamaModel, maxDraft: Int, minDraft: Int, pMin: Float,
         contextLength: Int, batchCapacity: Int) throws(LlamaError) {
        let c = model.runtime.raw
        let name = URL(fileURLWithPath: model.path).lastPathComponent
        let layers = c.llama_model_n_layer_nextn(model.pointer)
        guard layers > 0 else {
            throw LlamaError(.unsupported, "\(name) has no multi-token-prediction (NextN) layers "
                + "(\(model.architecture ?? "its architecture").nextn_predict_layers is 0), so it cannot draft for itself: "
                + "use a model shipped with MTP layers, or another speculation (.draft with a smaller model, .lookup)")
        }
        guard layers == 1 else {
            throw LlamaError(.unsupported, "\(name) has \(layers) MTP heads; only single-head MTP drafting is implemented "
                + "(llama.cpp chains several heads, or shares the cache for Gemma 4 assistants): use .draft or .lookup")
        }
        guard model.loadedMTP else {
            throw LlamaError(.unsupported, "\(name) was loaded without its MTP layers: load it with ModelOptions.loadMTP = true "
                + "(llama-swift run --spec-type draft-mtp does) to draft with them")
        }
        f = try MTPFunctions.resolve(in: model.runtime)
        self.c = c
        self.target = targetPointer
        width = Int(c.llama_model_n_embd_out(model.pointer))
        vocabCount = Int(model.vocab.count)
        self.maxDraft = maxDraft
        self.minDraft = minDraft
        self.pMin = pMin
        pending = [Float](repeating: 0, count: width)

        // The target's parameters where they matter (window, batch, threads), the MTP graph.
        var params = c.llama_context_default_params()
        params.n_ctx = UInt32(contextLength)
        params.n_batch = UInt32(batchCapacity)
        params.n_ubatch = c.llama_n_ubatch(targetPointer)
        params.n_seq_max = 1
        params.n_threads = c.llama_n_threads(targetPointer)
        params.n_threads_batch = c.llama_n_threads_batch(targetPointer)
        params.ctx_type = LLAMA_CONTEXT_TYPE_MTP
        params.abort_callback = { data in
            Unmanaged<AbortFlag>.fromOpaque(data!).takeUnretainedValue().raised.load(ordering: .relaxed)
        }
        params.abort_callback_data = Unmanaged.passUnretained(abort).toOpaque()
        guard let context = c.llama_init_from_model(model.pointer, params) else {
            throw LlamaError(.creationFailed, "llama.cpp could not create the MTP draft context of \(name) (window "
                + "\(contextLength) tokens): lower contextLength if memory is short")
        }
        guard let batch = f.batchInit(context) else {
            c.llama_free(context)
            throw LlamaError(.creationFailed, "llama.cpp could not create a batch for the MTP draft context")
        }
        pointer = context
        self.batch = batch
        // The target's states for every token of its batches; the draft's for its outputs only.
        f.setEmbeddingsNextn(targetPointer, true, false)
        f.setEmbeddingsNextn(context, true, true)
    }

    deinit {
        // The target computes no states once the generation is over (llama.cpp's defaults).
        f.setEmbeddingsNextn(target, false, false)
        f.batchFree(batch)
        c.llama_free(pointer)
    }

    var memory: OpaquePointer? { c.llama_get_memory(pointer) }

    /// Adds one entry to the batch: a token at a position, its embedding a hidden-state row.
    private func add(_ token: LlamaToken, position: Int32, state: UnsafePointer<Float>, output: Bool) -> Bool {
        let index = f.batchAddToken(batch, 0, token)
        guard index >= 0 else { return false }
        var positions: (Int32, Int32, Int32, Int32) = (position, 0, 0, 0)
        let placed = withUnsafePointer(to: &positions) {
            $0.withMemoryRebound(to: Int32.self, capacity: 4) { f.batchSetPosition(batch, index, $0) }
        }
        guard placed, f.batchSetEmbedding(batch, index, llama_swift_embd_view(data: state, n_rows: 1, n_embd: width)) else {
            return false
        }
        return !output || f.batchSetOutput(batch, index, true)
    }

    /// `llama_process` on the draft context, cancellable like the target's decodes.
    private func run(isolation: isolated (any Actor)? = #isolation) async throws(LlamaError) {
        let flag = abort
        flag.raised.store(false, ordering: .relaxed)
        let status: Int32 = await withTaskCancellationHandler {
            f.process(pointer, MTPFunctions.decode, batch)
        } onCancel: {
            flag.raised.store(true, ordering: .relaxed)
        }
        switch status {
        case 0: return
        case 2: throw LlamaError(.cancelled, "the MTP draft evaluation was cancelled", status: status)
        default: throw LlamaError(.decodeFailed, "llama.cpp failed to evaluate the MTP draft batch", status: status)
        }
    }

    /// After the target decoded `tokens` at `positions` (consecutive): the same tokens on the
    /// draft context, each with the target's state of the position before it. `view` is what the
    /// target's cache places at positions 0..., so that a context shift is followed.
    func process(tokens: [LlamaToken], first position: Int, view: [LlamaToken],
                 isolation: isolated (any Actor)? = #isolation) async throws(LlamaError) {
        guard !lost, !tokens.isEmpty else { return }
        let rows = tokens.count
        // The target's states of this batch, one per token (unmasked).
        verifyRows = [Float](repeating: 0, count: rows * width)
        for i in 0..<rows {
            guard let row = f.embeddingsNextnRow(target, Int32(i)) else {
                throw LlamaError(.decodeFailed, "llama.cpp has no hidden state (nextn) for row \(i) of the target's batch")
            }
            verifyRows.withUnsafeMutableBufferPointer {
                $0.baseAddress!.advanced(by: i * width).update(from: row, count: width)
            }
        }
        guard follow(to: position, view: view) else {
            lost = true
            return
        }
        f.batchClear(batch)
        var added = true
        pending.withUnsafeBufferPointer { first in
            verifyRows.withUnsafeBufferPointer { states in
                for k in 0..<rows where added {
                    let state = k == 0 ? first.baseAddress! : states.baseAddress!.advanced(by: (k - 1) * width)
                    added = add(tokens[k], position: Int32(position + k), state: state, output: false)
                }
            }
        }
        guard added else { throw LlamaError(.decodeFailed, "the MTP draft batch refused an entry (\(rows) tokens)") }
        do {
            try await run()
        } catch {
            lost = true
            throw error
        }
        held = Array(held.prefix(position)) + tokens
        pending = Array(verifyRows[((rows - 1) * width)...])
    }

    /// Makes the draft cache hold what the target's holds before `position`: after a rollback,
    /// drops the rest; after a context shift (a run of tokens removed from the target, the rest
    /// moved back), does the same. False when it cannot.
    private func follow(to position: Int, view: [LlamaToken]) -> Bool {
        if position == 0 {
            c.llama_memory_clear(memory, true)
            held = []
            pending = [Float](repeating: 0, count: width)
            return true
        }
        guard view.count >= position else { return false }
        if held.count >= position, held.prefix(position).elementsEqual(view.prefix(position)) {
            if held.count > position { _ = c.llama_memory_seq_rm(memory, 0, Int32(position), -1) }
            held = Array(held.prefix(position))
            return true
        }
        // A context shift: held = kept + discarded + moved, view = kept + moved (+ newer tokens).
        let keep = zip(held, view).prefix { $0 == $1 }.count
        let discard = held.count - position
        guard discard > 0, keep + discard <= held.count,
              held[(keep + discard)...].elementsEqual(view[keep..<position]),
              c.llama_memory_seq_rm(memory, 0, Int32(keep), Int32(keep + discard)) else { return false }
        c.llama_memory_seq_add(memory, 0, Int32(keep + discard), Int32(held.count), Int32(-discard))
        held.removeSubrange(keep..<(keep + discard))
        return true
    }

    /// After verification: `accepted` guesses were kept, the target's cache holds `kept` tokens.
    /// The state that predicted the token now last is the next draft's (llama.cpp's `accept`).
    func accept(_ accepted: Int, kept: Int) {
        guard !lost else { return }
        let rows = verifyRows.count / width
        if rows > 0 {
            let row = min(accepted, rows - 1)
            pending = Array(verifyRows[(row * width)..<((row + 1) * width)])
        }
        if held.count > kept {
            _ = c.llama_memory_seq_rm(memory, 0, Int32(kept), -1)
            held = Array(held.prefix(kept))
        }
    }

    /// Up to `limit` guesses after `last`, the newest token (at `position`, not yet evaluated by
    /// the target): the head's most likely token at each step, stopping where its probability
    /// among its 10 best is under `pMin`. Fewer than `minDraft`: none.
    func draft(last: LlamaToken, position: Int, limit: Int,
               isolation: isolated (any Actor)? = #isolation) async throws(LlamaError) -> [LlamaToken] {
        guard !lost, limit > 0, held.count == position else { return [] }
        var drafted: [LlamaToken] = []
        var token = last
        var state = pending
        defer {
            // The draft region goes: the verification's own pass refills it.
            _ = c.llama_memory_seq_rm(memory, 0, Int32(position), -1)
        }
        while drafted.count < min(limit, maxDraft) {
            f.batchClear(batch)
            let added = state.withUnsafeBufferPointer {
                add(token, position: Int32(position + drafted.count), state: $0.baseAddress!, output: true)
            }
            guard added else { break }
            do {
                try await run()
            } catch {
                guard error.code == .cancelled else { break }  // llama.cpp keeps what it drafted
                throw error
            }
            guard let logits = c.llama_get_logits_ith(pointer, 0) else { break }
            let (best, p) = Self.best(logits, count: vocabCount)
            if p < pMin { break }
            drafted.append(best)
            guard let row = f.embeddingsNextnRow(pointer, 0) else { break }
            state = Array(UnsafeBufferPointer(start: row, count: width))
            token = best
        }
        return drafted.count < minDraft ? [] : drafted
    }

    /// The most likely token and its probability among the 10 most likely (llama.cpp's draft
    /// sampler is a top-10 cut).
    static func best(_ logits: UnsafePointer<Float>, count: Int) -> (LlamaToken, Float) {
        var top: [Float] = []
        top.reserveCapacity(11)
        var bestIndex = 0
        for i in 0..<count {
            let v = logits[i]
            if top.count < 10 || v > top[top.count - 1] {
                if top.isEmpty || v > top[0] { bestIndex = i }
                let at = top.firstIndex { v > $0 } ?? top.count
                top.insert(v, at: at)
                if top.count > 10 { top.removeLast() }
            }
        }
        guard let high = top.first else { return (0, 0) }
        let sum = top.reduce(Float(0)) { $0 + expf($1 - high) }
        return (LlamaToken(bestIndex), sum > 0 ? 1 / sum : 0)
    }
}

extension LlamaContext {
    /// The MTP drafter of a generation on this context (checks the model first).
    func makeMTPDrafter(maxDraft: Int, minDraft: Int, pMin: Float) throws(LlamaError) -> MTPDrafter {
        try MTPDrafter(targetPointer: pointer, model: model, maxDraft: maxDraft, minDraft: minDraft, pMin: pMin,
                       contextLength: Int(c.llama_n_ctx(pointer)), batchCapacity: batchCapacity)
    }

    /// After a decode of `batch` on this context: the drafter follows (`MTPDrafter.process`). The
    /// target's decode succeeded, so a failure here (or a cancellation) ends drafting for this
    /// generation, not the generation: plain steps follow, and their output is the same.
    func processForMTP(_ drafter: MTPDrafter, _ batch: LlamaBatch, view: [LlamaToken]) async {
        guard let first = batch.positions.first else { return }
        do {
            try await drafter.process(tokens: batch.tokens, first: Int(first), view: view)
        } catch {
            drafter.lost = true
        }
    }
}
