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
        let limit = singlePassLimit
        let tokenized = try texts.map { (text: String) throws(LlamaError) -> [LlamaToken] in
            let tokens = try model.vocab.tokenize(text, addSpecial: true, parseSpecial: false)
            guard !tokens.isEmpty else { throw LlamaError(.invalidArgument, "cannot embed an empty text") }
            guard tokens.count <= limit else {
                throw LlamaError(.contextOverflow, "a text has \(tokens.count) tokens, more than one decode takes "
                    + "(\(limit)): create the context with a larger batchSize"
                    + (limit < batchCapacity ? " and microBatchSize (the model reads a text in one micro-batch)" : ""))
            }
            return tokens
        }
        let perBatch = unifiedCache ? maxSequences : 1
        var result: [[Float]] = []
        var start = 0
        while start < tokenized.count {
            var batch = LlamaBatch()
            var end = start
            while end < tokenized.count, end - start < perBatch, batch.count + tokenized[end].count <= limit {
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

    /// Relevance scores of documents for a query, from a reranking model (pooling `.rank`):
    /// the first value of the pooled output for each document's input (``LlamaModel/rerankTokens(query:document:)``),
    /// as llama.cpp's server scores them.
    public func rerank(query: String, documents: [String]) async throws(LlamaError) -> [Float] {
        var inputs: [[LlamaToken]] = []
        for document in documents { inputs.append(try model.rerankTokens(query: query, document: document)) }
        return try await rerank(inputs: inputs)
    }

    /// Relevance scores of inputs already built by ``LlamaModel/rerankTokens(query:document:)``
    /// (for a caller that also needs their token counts), in their order.
    public func rerank(inputs: [[LlamaToken]]) async throws(LlamaError) -> [Float] {
        guard computesEmbeddings, c.llama_pooling_type(pointer) == LLAMA_POOLING_TYPE_RANK else {
            throw LlamaError(.unsupported, "reranking needs a reranking model and a context created with "
                + "embeddings: true and pooling: .rank")
        }
        let limit = singlePassLimit
        var scores: [Float] = []
        for tokens in inputs {
            guard !tokens.isEmpty else { throw LlamaError(.invalidArgument, "an empty query and document make no input to score") }
            guard tokens.count <= limit else {
                throw LlamaError(.contextOverflow, "query and document have \(tokens.count) tokens, more than one decode takes "
                    + "(\(limit)): shorten the document, or create the context with a larger batchSize"
                    + (limit < batchCapacity ? " and microBatchSize (the model reads its input in one micro-batch)" : ""))
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

extension LlamaModel {
    /// The input a reranker scores for a query and a document, built as llama.cpp's server builds it:
    /// with the model's `rerank` template (`tokenizer.chat_template.rerank`, its `{query}` and
    /// `{document}` replaced in that order) when it has one, else BOS (when the vocabulary adds
    /// it), the query, EOS (or SEP where there is no EOS), SEP (when the vocabulary adds it), the
    /// document and EOS again (when the vocabulary adds EOS).
    ///
    /// Query and document are never read for control tokens: control-token text in them is
    /// neutralised (``neutralisingControlTokens(in:)``) before the template's own control tokens
    /// are parsed. llama.cpp's server parses them in the template's case, so its input differs
    /// from this one only for texts that spell out a control token.
    public func rerankTokens(query: String, document: String) throws(LlamaError) -> [LlamaToken] {
        let vocab = self.vocab
        if let template = chatTemplate(named: "rerank") {
            let prompt = template.replacingOccurrences(of: "{query}", with: neutralisingControlTokens(in: query))
                .replacingOccurrences(of: "{document}", with: neutralisingControlTokens(in: document))
            return try vocab.tokenize(prompt, addSpecial: false, parseSpecial: true)
        }
        let end = vocab.eos ?? vocab.sep
        var tokens: [LlamaToken] = []
        if vocab.addsBOS, let bos = vocab.bos { tokens.append(bos) }
        tokens += try vocab.tokenize(query, addSpecial: false, parseSpecial: false)
        if vocab.addsEOS, let end { tokens.append(end) }
        if vocab.addsSEP, let sep = vocab.sep { tokens.append(sep) }
        tokens += try vocab.tokenize(document, addSpecial: false, parseSpecial: false)
        if vocab.addsEOS, let end { tokens.append(end) }
        return tokens
    }
}
