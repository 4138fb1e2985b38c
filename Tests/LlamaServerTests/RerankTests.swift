import Foundation
import Llama
import LlamaJinja
import LlamaServer
import LlamaTestSupport
import Testing

/// Reranking through the library and `/v1/rerank`, with SmolLM2 copied as a reranker (rank pooling
/// set by `GGUFFile.rewrite`): no reranking model is reachable here. `make check-rerank` compares the
/// same endpoint with llama.cpp's `llama-server --reranking` on such copies.
@Suite("Reranking", .serialized)
struct RerankTests {
    static let template = "<|im_start|>system\nJudge the document.<|im_end|>\n<|im_start|>user\n<Query>: {query}\n"
        + "<Document>: {document}<|im_end|>\n<|im_start|>assistant\n"

    /// SmolLM2 with rank pooling, and the `rerank` template when asked.
    static func reranker(template: String? = nil) throws -> LlamaModel {
        let runtime = try ServerFixture.runtime.get()
        let path = try TestEnvironment.temporaryDirectory().appendingPathComponent("reranker.gguf").path
        var edits: [GGUFFile.MetadataEdit] = [.init(key: "llama.pooling_type", value: .uint(4))]
        if let template { edits.append(.init(key: "tokenizer.chat_template.rerank", value: .string(template))) }
        try GGUFFile.rewrite(try TestEnvironment.model().path, to: path, setting: edits, runtime: runtime)
        return try LlamaModel(runtime: runtime, path: path)
    }

    static let query = "What is the capital of France?"
    static let documents = ["Paris is the capital and largest city of France.", "Berlin is the capital of Germany.",
                            "The Eiffel Tower is in Paris.", "Bread is made from flour, water and yeast."]

    @Test("served: Jina and TEI shapes on all four routes, ordered by the library's scores, usage counting the scored tokens")
    func served() async throws {
        let model = try Self.reranker()
        var options = ContextOptions(contextLength: 2048, threads: 2)
        options.embeddings = true
        options.pooling = .rank
        options.batchSize = 2048
        let scores = try await LlamaContext(model: model, options: options).rerank(query: Self.query, documents: Self.documents)
        #expect(Set(scores).count == Self.documents.count, "scores that tell documents apart: \(scores)")
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let tokens = try Self.documents.reduce(0) { $0 + (try model.rerankTokens(query: Self.query, document: $1)).count }
        let documents = JSONValue.array(Self.documents.map { .string($0) })
        try await withServer(models: [ServedModel(id: "rr", model: model)]) { _, client in
            for route in ["/v1/rerank", "/rerank", "/v1/reranking", "/reranking"] {
                let r = try await client.post(route, ["model": "rr", "query": .string(Self.query), "documents": documents])
                try #require(r.status == 200, "\(route): \(r.body)")
                let results = try #require(r.json?["results"]?.arrayValue, "\(r.body)")
                #expect(results.compactMap { $0["index"]?.intValue } == order, "\(route)")
                #expect(results.compactMap { $0["relevance_score"]?.doubleValue } == order.map { Double(scores[$0]) }, "\(route)")
                #expect(r.json?["usage"]?["prompt_tokens"]?.intValue == tokens, "\(r.body)")
            }
            // TEI: `texts` in, a bare list of {index, score[, text]} out.
            let tei = try await client.post("/rerank", ["model": "rr", "query": .string(Self.query), "texts": documents,
                                                        "return_text": true])
            try #require(tei.status == 200, "\(tei.body)")
            let list = try #require(tei.json?.arrayValue, "\(tei.body)")
            #expect(list.compactMap { $0["index"]?.intValue } == order)
            #expect(list.compactMap { $0["score"]?.doubleValue } == order.map { Double(scores[$0]) })
            #expect(list.compactMap { $0["text"]?.stringValue } == order.map { Self.documents[$0] })
            // top_n and return_documents; documents as {"text": ...}.
            let top = try await client.post("/v1/rerank", ["model": "rr", "query": .string(Self.query), "top_n": 2, "return_documents": true,
                                                           "documents": .array(Self.documents.map { ["text": .string($0)] })])
            try #require(top.status == 200, "\(top.body)")
            let two = try #require(top.json?["results"]?.arrayValue)
            #expect(two.compactMap { $0["index"]?.intValue } == Array(order.prefix(2)))
            #expect(two.compactMap { $0["document"]?["text"]?.stringValue } == order.prefix(2).map { Self.documents[$0] })
            // Bad bodies are 400s naming the field; the next good request works.
            for (body, param) in [(["model": "rr", "query": "q", "documents": []] as JSONValue, "documents"),
                                  (["model": "rr", "query": "q", "texts": [1]], "texts[0]"),
                                  (["model": "rr", "documents": ["a"]], "query"),
                                  (["model": "rr", "query": "q", "documents": ["a"], "top_n": -1], "top_n"),
                                  (["model": "rr", "query": "q", "documents": ["a"], "temperature": 1], "temperature")] {
                let bad = try await client.post("/v1/rerank", body)
                #expect(bad.status == 400, "\(body): \(bad.body)")
                #expect(bad.json?["error"]?["param"]?.stringValue == param, "\(bad.body)")
            }
            let again = try await client.post("/v1/rerank", ["model": "rr", "query": .string(Self.query), "documents": documents])
            #expect(again.status == 200)
            // As llama.cpp's server: top_n 0 is an empty list; TEI's truncate, truncation_direction and raw_scores are
            // accepted; with both `texts` and `documents`, the documents are scored and the answer has TEI's shape.
            let none = try await client.post("/v1/rerank", ["model": "rr", "query": "q", "documents": ["a"], "top_n": 0])
            #expect(none.status == 200 && none.json?["results"]?.arrayValue?.isEmpty == true, "\(none.body)")
            let both = try await client.post("/rerank", ["model": "rr", "query": .string(Self.query), "documents": documents,
                                                         "texts": ["ignored"], "truncate": true, "truncation_direction": "Right",
                                                         "raw_scores": false])
            #expect(both.status == 200, "\(both.body)")
            #expect(both.json?.arrayValue?.compactMap { $0["index"]?.intValue } == order, "\(both.body)")
        }
    }

    @Test("the rerank template: query and document in its places, its control tokens parsed, the same text typed by a user not")
    func template() async throws {
        let model = try Self.reranker(template: Self.template)
        let vocab = model.vocab
        let imEnd = try #require(try vocab.tokenize("<|im_end|>", addSpecial: false, parseSpecial: true).first)
        let tokens = try model.rerankTokens(query: "q", document: "d")
        let expected = Self.template.replacingOccurrences(of: "{query}", with: "q").replacingOccurrences(of: "{document}", with: "d")
        #expect(tokens == (try vocab.tokenize(expected, addSpecial: false, parseSpecial: true)))
        #expect(tokens.filter { $0 == imEnd }.count == 2)
        let typed = try model.rerankTokens(query: "q<|im_end|>", document: "<|im_end|>d")
        #expect(typed.filter { $0 == imEnd }.count == 2, "a user's <|im_end|> stays text")
        // The plain copy (no template, SmolLM2 adds no BOS/EOS/SEP): query then document.
        let plain = try Self.reranker()
        #expect(try plain.rerankTokens(query: "q", document: "d")
                == (try plain.vocab.tokenize("q", addSpecial: false)) + (try plain.vocab.tokenize("d", addSpecial: false)))
        // A model that is no reranker still gets the typed refusal.
        try await withServer { _, client in
            let r = try await client.post("/v1/rerank", ["query": "q", "documents": ["a"]])
            #expect(r.status == 400)
            #expect(r.json?["error"]?["code"]?.stringValue == "model_not_reranker", "\(r.body)")
        }
    }
}

private extension JSONValue {
    var intValue: Int? { if case .int(let i) = self { return i }; return nil }
    var doubleValue: Double? {
        switch self {
        case .double(let d): d
        case .int(let i): Double(i)
        default: nil
        }
    }
}
