// Evaluating multimodal prompts into a context, and generating after them.
import Foundation
import LlamaRaw
import Synchronization

/// What a sequence of the KV cache holds, unit by unit: text tokens, and media chunks (each
/// one unit, with the positions it takes). Comparing it with a new prompt tells how much of the
/// cache a chat turn can keep.
public struct MultimodalCacheRecord: Sendable, Equatable {
    enum Unit: Sendable, Equatable {
        case token(LlamaToken)
        case media(key: String, positions: Int)

        var positions: Int {
            switch self {
            case .token: return 1
            case .media(_, let n): return n
            }
        }
    }

    var units: [Unit] = []

    /// An empty record: nothing cached.
    public init() {}

    /// The positions the record covers.
    public var positionCount: Int { units.reduce(0) { $0 + $1.positions } }

    /// The tokens the first `units` units of a prompt put in the cache.
    static func tokenCount(of prompt: LlamaMultimodalPrompt, units: Int) -> Int {
        var remaining = units, tokens = 0
        for chunk in prompt.chunks where remaining > 0 {
            if chunk.kind == .text {
                let n = min(remaining, chunk.tokens.count)
                tokens += n
                remaining -= n
            } else {
                tokens += chunk.tokenCount
                remaining -= 1
            }
        }
        return tokens
    }

    static func units(of prompt: LlamaMultimodalPrompt) -> [Unit] {
        let keys = prompt.chunkKeys
        var units: [Unit] = []
        for (i, chunk) in prompt.chunks.enumerated() {
            if chunk.kind == .text { units += chunk.tokens.map { .token($0) } } else {
                units.append(.media(key: keys[i], positions: chunk.positionCount))
            }
        }
        return units
    }
}

extension LlamaContext {
    /// Evaluates a multimodal prompt into `sequence`, from position `start`: text chunks as
    /// token batches, media chunks as their embeddings (encoded once by the projector, then
    /// taken from its cache), with positions handled for M-RoPE models and non-causal
    /// attention for media where the projector asks for it. Returns the next position.
    ///
    /// The corresponding C functions are `mtmd_helper_eval_chunk_single` (text) and
    /// `mtmd_helper_decode_image_chunk` (media). Cancelling the task aborts the evaluation.
    public func evaluate(_ prompt: LlamaMultimodalPrompt, projector: LlamaProjector, sequence: Int32 = 0,
                         from start: Int32 = 0, logitsLast: Bool = true) async throws(LlamaError) -> Int32 {
        try await evaluate(prompt, projector: projector, sequence: sequence, fromUnit: 0, position: start, logitsLast: logitsLast)
    }

    /// Evaluates the prompt from its `fromUnit`-th unit (see ``MultimodalCacheRecord``), at `position`.
    func evaluate(_ prompt: LlamaMultimodalPrompt, projector: LlamaProjector, sequence: Int32,
                  fromUnit first: Int, position start: Int32, logitsLast: Bool) async throws(LlamaError) -> Int32 {
        try checkSequence(sequence)
        guard projector.model === model else {
            throw LlamaError(.invalidArgument, "the projector was loaded for another model (\(projector.model.path)) "
                + "than the context's (\(model.path))")
        }
        guard start >= 0 else { throw LlamaError(.invalidArgument, "positions must not be negative") }
        let units = MultimodalCacheRecord.units(of: prompt)
        let remaining = units.dropFirst(first).reduce(0) { $0 + $1.positions }
        guard Int(start) + remaining <= sequenceLength else {
            throw LlamaError(.contextOverflow, "the prompt takes \(Int(start) + remaining) positions with its media; the context "
                + "window holds \(capacityDescription): use fewer or smaller media, or a larger contextLength")
        }
        if sequence == 0 { history = nil }
        let lctx = pointer
        let mctx = projector.pointer
        let nBatch = Int32(batchCapacity)
        var position = start
        var unit = 0
        let last = prompt.chunks.count - 1
        for (index, chunk) in prompt.chunks.enumerated() {
            let units = chunk.kind == .text ? chunk.tokens.count : 1
            defer { unit += units }
            guard unit + units > first else { continue }
            let wantLogits = logitsLast && index == last
            if chunk.kind == .text {
                let offset = max(0, first - unit)
                if offset == 0 {
                    let c = self.c
                    let pointer = prompt.chunkPointer(index)
                    var next = position
                    let status = try await withAbort { () throws(LlamaError) -> Int32 in
                        try LlamaProjector.mtmd { () throws(LlamaSymbolError) in
                            try c.mtmd_helper_eval_chunk_single(mctx, lctx, pointer, position, sequence, nBatch, wantLogits, &next)
                        }
                    }
                    try check(status, what: "text")
                    position = next
                } else {
                    // Part of a text chunk the cache already holds the start of.
                    let tokens = Array(chunk.tokens[offset...])
                    var done = 0
                    while done < tokens.count {
                        let piece = tokens[done..<min(tokens.count, done + batchCapacity)]
                        var batch = LlamaBatch()
                        for (i, t) in piece.enumerated() {
                            batch.add(t, position: position + Int32(i), sequences: [sequence],
                                      output: wantLogits && done + piece.count == tokens.count && i == piece.count - 1)
                        }
                        try await run(batch, encode: false)
                        done += piece.count
                        position += Int32(piece.count)
                    }
                }
            } else {
                let embeddings = try projector.encode(prompt.chunkPointer(index), key: prompt.cacheKey(of: index),
                                                      tokens: chunk.tokenCount)
                position = try await decodeMedia(prompt, chunk: index, embeddings: embeddings, projector: projector,
                                                 sequence: sequence, position: position)
            }
        }
        return position
    }

    /// Decodes the embeddings of media chunk `index` of `prompt` into `sequence` at `position`
    /// (non-causally where the projector asks for it); returns the next position.
    ///
    /// The corresponding C function is `mtmd_helper_decode_image_chunk`.
    func decodeMedia(_ prompt: LlamaMultimodalPrompt, chunk index: Int, embeddings: [Float], projector: LlamaProjector,
                     sequence: Int32, position: Int32) async throws(LlamaError) -> Int32 {
        if sequence == 0 { history = nil }
        var embeddings = embeddings
        let c = self.c, lctx = pointer, mctx = projector.pointer, nBatch = Int32(batchCapacity)
        let pointer = prompt.chunkPointer(index)
        var next = position
        let status = try await withAbort { () throws(LlamaError) -> Int32 in
            try embeddings.withUnsafeMutableBufferPointer { (buffer) throws(LlamaError) -> Int32 in
                try LlamaProjector.mtmd { () throws(LlamaSymbolError) in
                    try c.mtmd_helper_decode_image_chunk(mctx, lctx, pointer, buffer.baseAddress, position, sequence,
                                                         nBatch, &next, nil, nil)
                }
            }
        }
        try check(status, what: prompt.chunks[index].kind == .image ? "image" : "audio")
        return next
    }

    /// Runs a C evaluation with cancellation carried into llama.cpp's abort callback.
    private func withAbort(_ body: () throws(LlamaError) -> Int32) async throws(LlamaError) -> Int32 {
        let flag = abort
        flag.raised.store(false, ordering: .relaxed)
        let result: Result<Int32, LlamaError> = await withTaskCancellationHandler {
            Result { () throws(LlamaError) in try body() }
        } onCancel: {
            flag.raised.store(true, ordering: .relaxed)
        }
        return try result.get()
    }

    private func check(_ status: Int32, what: String) throws(LlamaError) {
        switch status {
        case 0: return
        case 1: throw LlamaError(.contextOverflow, "the context window (\(capacityDescription)) is full: clear it, "
                                    + "or create the context with a larger contextLength", status: status)
        case 2: throw LlamaError(.cancelled, "the evaluation was cancelled", status: status)
        default: throw LlamaError(.decodeFailed, "llama.cpp failed to evaluate the \(what) chunk", status: status)
        }
    }

    /// Generates text after a multimodal prompt, as a stream of tokens and text ending with a
    /// summary, like ``generate(prompt:sampling:options:)``. The prompt fills sequence 0 from
    /// position 0; the prompt must end with text (a media chunk gives no logits to sample from).
    public nonisolated func generate(prompt: LlamaMultimodalPrompt, projector: LlamaProjector,
                                     sampling: SamplerChain = .greedy, options: GenerationOptions = GenerationOptions())
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var record = MultimodalCacheRecord()
                    _ = try await self.generateMultimodal(prompt, projector: projector, sampling: sampling, options: options,
                                                      record: &record, reuse: false) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Evaluates `prompt` into sequence 0, keeping what `record` says the cache already holds
    /// of it when `reuse` is set, then generates; `record` is kept up to date with the cache.
    func generateMultimodal(_ prompt: LlamaMultimodalPrompt, projector: LlamaProjector, sampling: SamplerChain,
                            options: GenerationOptions, record: inout MultimodalCacheRecord, reuse: Bool,
                            emit: @Sendable (GenerationEvent) -> Void) async throws -> GenerationSummary {
        let start = ContinuousClock.now
        guard let lastChunk = prompt.chunks.last, lastChunk.kind == .text, !lastChunk.tokens.isEmpty else {
            throw LlamaError(.invalidArgument, "the prompt must end with text after its last image or audio clip: "
                + "the model predicts from the last text token")
        }
        guard options.maxTokens > 0 else {
            throw LlamaError(.invalidArgument, "maxTokens must be positive, not \(options.maxTokens)")
        }
        try options.checkProbabilities()
        guard options.speculation == nil, case .off = options.contextShift else {
            throw LlamaError(.unsupported, "generation after media neither decodes speculatively nor shifts the context: "
                + "leave speculation unset and contextShift .off")
        }
        let sampler = try options.format.constraining(sampling).make(for: model)
        let units = MultimodalCacheRecord.units(of: prompt)
        // Keep the common prefix, but evaluate at least the last text token (for its logits).
        var kept = reuse ? zip(record.units, units).prefix { $0 == $1 }.count : 0
        kept = min(kept, units.count - 1)
        let keptPositions = units.prefix(kept).reduce(0) { $0 + $1.positions }
        if kept == 0 || !removeTokens(sequence: 0, from: Int32(keptPositions)) {
            clearSequence(0)
            kept = 0
        }
        record.units = Array(units.prefix(kept))
        let keptTokens = MultimodalCacheRecord.tokenCount(of: prompt, units: kept)
        var position: Int32
        do {
            position = try await evaluate(prompt, projector: projector, sequence: 0, fromUnit: kept,
                                          position: Int32(units.prefix(kept).reduce(0) { $0 + $1.positions }), logitsLast: true)
        } catch {
            // What the cache holds past the kept prefix is unknown now.
            _ = removeTokens(sequence: 0, from: Int32(keptPositions))
            throw error
        }
        history = nil
        record.units = units
        let promptDone = ContinuousClock.now

        var output = GenerationOutput(options: options, vocab: model.vocab, sequenceLength: sequenceLength)
        var reason: StopReason = .maxTokens
        var firstToken: Duration?
        while true {
            if Task.isCancelled { reason = .cancelled; break }
            guard let logits = c.llama_get_logits_ith(pointer, -1) else {
                throw LlamaError(.decodeFailed, "llama.cpp has no logits for the last token")
            }
            let token = try sampler.sample(logits: logits)
            let (event, stop) = try output.add(token, position: Int(position))
            if let event {
                if firstToken == nil { firstToken = ContinuousClock.now - start }
                if let n = options.probabilities {
                    emit(.probabilities(.compute(logits: logits, count: Int(model.vocab.count), chosen: token, alternatives: n)))
                }
                emit(event)
            }
            if let stop { reason = stop; break }
            do {
                try await runNext(token, position: position)
            } catch {
                _ = removeTokens(sequence: 0, from: position)
                history = nil
                guard error.code == .cancelled else { throw error }
                reason = .cancelled
                break
            }
            history = nil
            record.units.append(.token(token))
            position += 1
        }
        if let tail = output.tail(for: reason) { emit(.text(tail)) }
        let end = ContinuousClock.now
        let summary = GenerationSummary(
            promptTokens: prompt.tokenCount, reusedPromptTokens: keptTokens, generatedTokens: output.generated, text: output.text,
            stopReason: reason, promptDuration: promptDone - start, generationDuration: end - promptDone,
            timeToFirstToken: firstToken)
        emit(.finished(summary))
        return summary
    }
}
