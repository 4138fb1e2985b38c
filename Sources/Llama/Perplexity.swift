import Dispatch
import Foundation
import LlamaRaw

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Perplexity of a model over a text, by llama.cpp's method (`llama-perplexity`, its default mode):
/// the text is tokenized once, cut into chunks of ``Options/contextLength`` tokens, each chunk is
/// evaluated from an empty cache (its first token replaced by BOS when the vocabulary adds one),
/// and only the second half of each chunk is scored — the negative log-likelihood of each token
/// given all the tokens before it in the chunk — so every scored token has at least half a window
/// of context. The estimate is `exp(mean NLL)`; its error is `PPL × sqrt(var(NLL) / (n − 1))`.
///
/// ```swift
/// let result = try await LlamaPerplexity(model: model, options: .init(contextLength: 512, threads: 4))
///     .evaluate(text: text) { chunk in print("[\(chunk.index)]\(chunk.runningEstimate)") }
/// print(result.summary)   // Final estimate: PPL = 14.1234 +/- 0.56789
/// ```
///
/// Like the tool, chunks run several at a time as parallel sequences when ``Options/batchSize``
/// holds more than one chunk (the context is then `contextLength × sequences`, one cache region
/// per sequence), so the figures equal `llama-perplexity`'s for the same `-c`, `-b` and `-t`.
public struct LlamaPerplexity: Sendable {
    /// The model whose perplexity is measured.
    public let model: LlamaModel
    /// Chunking, batching and threads, as `llama-perplexity`'s flags.
    public var options: Options

    /// How the text is cut and evaluated, with `llama-perplexity`'s defaults.
    public struct Options: Sendable {
        /// Tokens per chunk (`-c`, `n_ctx`; the tool's default 512).
        public var contextLength: Int
        /// Tokens per decode call (`-b`; the tool's default 2048): less than a chunk splits each
        /// chunk into several calls; a multiple of the chunk evaluates that many chunks at once.
        public var batchSize: Int
        /// At most this many chunks (`--chunks`); nil: all whole chunks of the text.
        public var chunks: Int?
        /// Threads (`-t`); nil: llama.cpp's default.
        public var threads: Int32?
        /// The rest of the context's options (flash attention, cache types...); its length,
        /// batch sizes, sequences and threads are set from the fields above.
        public var context: ContextOptions

        /// Options; every parameter is the property of the same name (defaults as `llama-perplexity`'s).
        public init(contextLength: Int = 512, batchSize: Int = 2048, chunks: Int? = nil, threads: Int32? = nil,
                    context: ContextOptions = ContextOptions()) {
            self.contextLength = contextLength
            self.batchSize = batchSize
            self.chunks = chunks
            self.threads = threads
            self.context = context
        }
    }

    /// One chunk scored.
    public struct Chunk: Sendable, Equatable, Codable {
        /// 1-based, as the tool prints `[1]`, `[2]`, ...
        public var index: Int
        /// The perplexity of this chunk's scored tokens alone.
        public var perplexity: Double
        /// The estimate over all chunks so far: what the tool prints after `[index]`.
        public var runningEstimate: Double
    }

    /// The figures `llama-perplexity` prints, as values.
    public struct Result: Sendable, Equatable, Codable {
        /// Every chunk scored, in order.
        public var chunks: [Chunk]
        /// The final estimate.
        public var perplexity: Double
        /// Its standard error (the tool's `+/-`); nil when the variance came out negative (the
        /// tool then prints an error instead of the final line).
        public var error: Double?
        /// Tokens in the text.
        public var tokenCount: Int
        /// Tokens scored (the second half of each chunk, its last token excepted).
        public var scoredTokens: Int
        /// Seconds the scoring took.
        public var seconds: Double

        /// The running estimates as the tool prints them: `[1]12.3456,[2]13.4567,...`
        public var runningLine: String {
            chunks.map { String(format: "[%d]%.4f,", $0.index, $0.runningEstimate) }.joined()
        }

        /// The tool's last line: `Final estimate: PPL = 12.3456 +/- 0.12345`.
        public var summary: String {
            guard let error else { return String(format: "Final estimate: PPL = %.4f (no error estimate: negative variance)", perplexity) }
            return String(format: "Final estimate: PPL = %.4f +/- %.5f", perplexity, error)
        }
    }

    /// A perplexity measurement of a model with these options.
    public init(model: LlamaModel, options: Options = Options()) {
        self.model = model
        self.options = options
    }

    /// Scores `text`; `progress` is called after each chunk.
    ///
    /// - Throws: `.invalidArgument` when the text has fewer than `2 × contextLength` tokens or a size is
    ///   not positive; `.unsupported` for a vocabulary that adds EOS (the tool refuses it too);
    ///   `.creationFailed`, `.decodeFailed`, `.cancelled` from the context.
    public func evaluate(text: String, progress: (@Sendable (Chunk) -> Void)? = nil) async throws(LlamaError) -> Result {
        let nCtx = options.contextLength
        guard nCtx >= 2 else { throw LlamaError(.invalidArgument, "the chunk size (-c) must be at least 2 tokens, not \(nCtx)") }
        guard options.batchSize > 0 else { throw LlamaError(.invalidArgument, "the batch size (-b) must be positive") }
        if let chunks = options.chunks, chunks <= 0 {
            throw LlamaError(.invalidArgument, "--chunks must be positive, not \(chunks)")
        }
        if model.vocab.c.llama_vocab_get_add_eos(model.vocab.pointer) {
            throw LlamaError(.unsupported, "this model's vocabulary appends EOS to every text, which perplexity by llama.cpp's "
                + "method does not allow")
        }
        // As llama-perplexity sets them up: sequences = batch / chunk, the context holds them all,
        // and the batch is at most the context.
        let sequences = max(1, options.batchSize / nCtx)
        let contextLength = sequences * nCtx
        // Smaller than a chunk, or a whole number of chunks.
        let batchSize = min(options.batchSize, contextLength)
        let tokens = try model.vocab.tokenize(text, addSpecial: true, parseSpecial: false)
        guard tokens.count >= 2 * nCtx else {
            throw LlamaError(.invalidArgument, "the text has \(tokens.count) tokens; perplexity with chunks of \(nCtx) tokens "
                + "needs at least \(2 * nCtx): give a longer text or a smaller -c")
        }
        var contextOptions = options.context
        contextOptions.contextLength = UInt32(contextLength)
        contextOptions.batchSize = UInt32(batchSize)
        contextOptions.maxSequences = UInt32(sequences)
        contextOptions.threads = options.threads ?? contextOptions.threads
        let context = try LlamaContext(model: model, options: contextOptions)
        return try await context.perplexity(tokens: tokens, chunkLength: nCtx, batchSize: batchSize, sequences: sequences,
                                            maxChunks: options.chunks, progress: progress)
    }
}

extension LlamaContext {
    /// The body of ``LlamaPerplexity/evaluate(text:progress:)``, on the context's executor.
    func perplexity(tokens: [LlamaToken], chunkLength nCtx: Int, batchSize nBatch: Int, sequences nSeq: Int,
                    maxChunks: Int?, progress: (@Sendable (LlamaPerplexity.Chunk) -> Void)?) async throws(LlamaError) -> LlamaPerplexity.Result {
        let started = ContinuousClock.now
        let vocab = model.vocab
        let nVocab = Int(vocab.count)
        let bos = vocab.addsBOS ? vocab.bos : nil
        let chunkCount = min(maxChunks ?? Int.max, tokens.count / nCtx)
        let batches = (nCtx + nBatch - 1) / nBatch
        let first = nCtx / 2
        let scoredPerChunk = nCtx - 1 - first
        var nll = 0.0, nll2 = 0.0
        var count = 0
        var chunks: [LlamaPerplexity.Chunk] = []
        // With several calls per chunk, the outputs of each call are gathered here.
        var gathered: [Float] = []
        if batches > 1 { gathered.reserveCapacity(nCtx * nVocab) }

        var i = 0
        while i < chunkCount {
            let start = i * nCtx
            let seqInBatch = min(nSeq, chunkCount - i)
            clearMemory()
            for j in 0..<batches {
                let batchStart = start + j * nBatch
                let size = min(start + nCtx - batchStart, nBatch)
                var batch = LlamaBatch()
                for seq in 0..<seqInBatch {
                    let seqStart = batchStart + seq * nCtx
                    for k in 0..<size {
                        let position = j * nBatch + k
                        var token = tokens[seqStart + k]
                        if k == 0, j == 0, let bos { token = bos }
                        batch.add(token, position: Int32(position), sequences: [Int32(seq)], output: position >= first)
                    }
                }
                try await decode(batch)
                let outputs = batch.outputs.lazy.filter { $0 }.count
                if batches > 1, outputs > 0, let all = c.llama_get_logits(pointer) {
                    gathered.append(contentsOf: UnsafeBufferPointer(start: all, count: outputs * nVocab))
                }
            }
            for seq in 0..<seqInBatch {
                // The rows' log-probabilities on every core (as the tool does), summed in order.
                let targets = Array(tokens[(start + seq * nCtx + first + 1)...(start + seq * nCtx + first + scoredPerChunk)])
                var logProbabilities = [Double](repeating: 0, count: scoredPerChunk)
                let score = { (rows: UnsafePointer<Float>) in
                    logProbabilities.withUnsafeMutableBufferPointer { out in
                        nonisolated(unsafe) let out = out
                        nonisolated(unsafe) let rows = rows
                        DispatchQueue.concurrentPerform(iterations: scoredPerChunk) { t in
                            out[t] = Self.logSoftmax(rows + t * nVocab, count: nVocab, token: Int(targets[t]))
                        }
                    }
                }
                if batches > 1 {
                    gathered.withUnsafeBufferPointer { score($0.baseAddress!) }
                } else {
                    guard let rows = c.llama_get_logits_ith(pointer, Int32(seq * nCtx + first)) else {
                        throw LlamaError(.decodeFailed, "llama.cpp returned no logits for chunk \(i + seq + 1)")
                    }
                    score(UnsafePointer(rows))
                }
                var chunkNLL = 0.0
                for logProbability in logProbabilities {
                    let v = -logProbability
                    nll += v
                    nll2 += v * v
                    chunkNLL += v
                }
                count += scoredPerChunk
                let chunk = LlamaPerplexity.Chunk(index: i + seq + 1, perplexity: exp(chunkNLL / Double(scoredPerChunk)),
                                                  runningEstimate: exp(nll / Double(count)))
                chunks.append(chunk)
                progress?(chunk)
            }
            gathered.removeAll(keepingCapacity: true)
            i += nSeq
        }
        let mean = nll / Double(count)
        let ppl = exp(mean)
        let variance = nll2 / Double(count) - mean * mean
        let error = variance > 0 ? sqrt(variance / Double(count - 1)) * ppl : nil
        let elapsed = ContinuousClock.now - started
        return LlamaPerplexity.Result(chunks: chunks, perplexity: ppl, error: error, tokenCount: tokens.count,
                                      scoredTokens: count,
                                      seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    /// log P(token) from one row of logits, computed as llama-perplexity computes it: a float
    /// maximum, a double sum of float exponentials, `logit − max − log(sum)`.
    static func logSoftmax(_ logits: UnsafePointer<Float>, count: Int, token: Int) -> Double {
        let row = UnsafeBufferPointer(start: logits, count: count)
        var maxLogit = row[0]
        for value in row where value > maxLogit { maxLogit = value }
        var sum = 0.0
        for value in row { sum += Double(expf(value - maxLogit)) }
        return Double(row[token] - maxLogit) - log(sum)
    }
}
