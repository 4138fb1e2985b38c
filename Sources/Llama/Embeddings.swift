import Foundation
import LlamaRaw

extension LlamaContext {
    /// Pooled sentence embeddings of texts, evaluated several at a time as separate sequences.
    ///
    /// The context must be created with `embeddings: true` and a pooling type (mean, cls,
    /// last); each text must fit in one batch. Several texts share one decode only with a
    /// unified cache (``ContextOptions/unifiedCache``): at b11434, pooling over several
    /// sequences of separate cache streams in one batch gives wrong vectors, so without it
    /// each text is evaluated alone.
    public func embeddings(for texts: [String], normalize: Bool = true) async throws(LlamaError) -> [[Float]] {
        guard computesEmbeddings else {
            throw LlamaError(.unsupported, "the context does not compute embeddings: create it with "
                + "ContextOptions(embeddings: true, pooling: .mean)")
        }
        guard c.llama_pooling_type(pointer) != LLAMA_POOLING_TYPE_NONE else {
            throw LlamaError(.unsupported, "the context has no pooling: create it with pooling: .mean, .cls or .last")
        }
        let tokenized = try texts.map { (text: String) throws(LlamaError) -> [LlamaToken] in
            let tokens = try model.vocab.tokenize(text, addSpecial: true, parseSpecial: false)
            guard !tokens.isEmpty else { throw LlamaError(.invalidArgument, "cannot embed an empty text") }
            guard tokens.count <= batchCapacity else {
                throw LlamaError(.contextOverflow, "a text has \(tokens.count) tokens, more than the batch size "
                    + "(\(batchCapacity)): create the context with a larger batchSize")
            }
            return tokens
        }
        let perBatch = unifiedCache ? maxSequences : 1
        var result: [[Float]] = []
        var start = 0
        while start < tokenized.count {
            var batch = LlamaBatch()
            var end = start
            while end < tokenized.count, end - start < perBatch, batch.count + tokenized[end].count <= batchCapacity {
                for (i, t) in tokenized[end].enumerated() {
                    batch.add(t, position: Int32(i), sequences: [Int32(end - start)], output: true)
                }
                end += 1
            }
            clearMemory()
            try await run(batch, encode: model.hasEncoder && !model.hasDecoder)
            for s in 0..<(end - start) {
                let e = try embedding(sequence: Int32(s))
                result.append(normalize ? Self.normalized(e) : e)
            }
            start = end
        }
        clearMemory()
        return result
    }

    /// Relevance scores of documents for a query, from a reranking model (pooling `.rank`).
    public func rerank(query: String, documents: [String]) async throws(LlamaError) -> [Float] {
        guard computesEmbeddings, c.llama_pooling_type(pointer) == LLAMA_POOLING_TYPE_RANK else {
            throw LlamaError(.unsupported, "reranking needs a reranking model and a context created with "
                + "embeddings: true and pooling: .rank")
        }
        let vocab = model.vocab
        var scores: [Float] = []
        for document in documents {
            // BOS query EOS SEP document EOS, as rerankers expect.
            var tokens = try vocab.tokenize(query, addSpecial: false)
            if let bos = vocab.bos { tokens.insert(bos, at: 0) }
            if let eos = vocab.eos { tokens.append(eos) }
            if let sep = vocab.sep { tokens.append(sep) }
            tokens += try vocab.tokenize(document, addSpecial: false)
            if let eos = vocab.eos { tokens.append(eos) }
            guard tokens.count <= batchCapacity else {
                throw LlamaError(.contextOverflow, "query and document have \(tokens.count) tokens, more than the batch size")
            }
            var batch = LlamaBatch()
            for (i, t) in tokens.enumerated() { batch.add(t, position: Int32(i), output: true) }
            clearMemory()
            try await run(batch, encode: false)
            scores.append(try embedding(sequence: 0).first ?? 0)
        }
        clearMemory()
        return scores
    }

    static func normalized(_ v: [Float]) -> [Float] {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? v.map { $0 / norm } : v
    }
}

/// The cosine similarity of two vectors of the same length.
public func cosineSimilarity(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "vectors of different lengths")
    var dot: Float = 0, na: Float = 0, nb: Float = 0
    for i in a.indices {
        dot += a[i] * b[i]
        na += a[i] * a[i]
        nb += b[i] * b[i]
    }
    return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
}
