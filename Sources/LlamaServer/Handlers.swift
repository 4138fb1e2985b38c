import HTTPTypes
import Foundation
import Hummingbird
import Llama

extension ServerCore {
    /// `POST /v1/completions`: plain text completion.
    func completions(_ body: JSONValue, arrival: ContinuousClock.Instant) async throws(APIError) -> Response {
        let b = try JSONBody(body)
        try SamplingRequest.rejectUnknown(b, known: SamplingRequest.samplingFields.union(SamplingRequest.ignoredHints)
            .union(["prompt", "echo", "suffix", "best_of", "response_format"]))
        try SamplingRequest.rejectUnsupported(b)
        if try b.bool("echo") == true { throw APIError.unsupported("echo", "`echo` is not supported by this server") }
        if b.has("suffix") { throw APIError.unsupported("suffix", "`suffix` is not supported by this server") }
        if let bestOf = try b.int("best_of"), bestOf != 1 { throw APIError.unsupported("best_of", "`best_of` must be 1") }
        let host = try await self.host(for: b)
        let sampling = try SamplingRequest.chain(b, vocabCount: host.model.vocab.count)
        let stops = try SamplingRequest.stops(b)
        let maxTokens = try SamplingRequest.maxTokens(b, sequenceLength: host.sequenceLength) ?? 16
        let format = try ChatRequest.responseFormat(b)
        let stream = try b.bool("stream") ?? false
        let includeUsage = try b.object("stream_options")?.bool("include_usage") ?? false
        let probabilities = try Logprobs.completionsRequest(b)
        let input: ([LlamaToken], GenerationOptions)
        switch b.value("prompt") {
        case .string(let s)?:
            input = try generationInput(text: s, host: host, maxTokens: maxTokens, stops: stops, format: format,
                                    probabilities: probabilities)
        case .array(let a)? where a.count == 1 && a[0].stringValue != nil:
            input = try generationInput(text: a[0].stringValue!, host: host, maxTokens: maxTokens, stops: stops, format: format,
                                    probabilities: probabilities)
        case .array(let a)? where !a.isEmpty && a.allSatisfy({ if case .int = $0 { return true } else { return false } }):
            let tokens = a.map { v -> LlamaToken in if case .int(let i) = v { return LlamaToken(truncatingIfNeeded: i) } else { return -1 } }
            let count = Int(host.model.vocab.count)
            if let bad = a.firstIndex(where: { if case .int(let i) = $0 { return i < 0 || i >= count } else { return true } }) {
                throw APIError.invalid("prompt[\(bad)]", "token ids must be within 0..<\(count)")
            }
            input = try generationInput(tokens: tokens, host: host, maxTokens: maxTokens, stops: stops, format: format,
                                    probabilities: probabilities)
        case .array?:
            throw APIError.unsupported("prompt", "`prompt` must be one string (or one array of token ids): send one request per prompt")
        case nil:
            throw APIError.missing("prompt")
        default:
            throw b.typeError("prompt", "a string")
        }
        let run = try await submit(prompt: input.0, sampling: sampling, options: input.1, host: host, arrival: arrival)
        let base: JSONObject = ["id": .string("cmpl-" + Self.randomID()), "object": "text_completion",
                                "created": .int(Int(Date().timeIntervalSince1970)), "model": .string(host.id),
                                "system_fingerprint": .string(Self.fingerprint)]
        if !stream {
            defer { run.cancel() }
            var summary: GenerationSummary?
            var logprobs = probabilities.map { _ in Logprobs.Completions() }
            do {
                for try await event in run.events {
                    switch event {
                    case .token, .text: break
                    case .probabilities(let p): logprobs?.add(p, vocab: host.model.vocab)
                    case .finished(let s): summary = s
                    }
                }
            } catch {
                throw APIError.from(error)
            }
            guard let summary else { throw APIError.from(LlamaError(.cancelled, "the generation ended without a summary")) }
            var response = base
            response["choices"] = [["index": 0, "text": .string(summary.text), "logprobs": logprobs?.take() ?? .null,
                                    "finish_reason": .string(Self.finishReason(summary, toolCalls: false))]]
            response["usage"] = Self.usage(summary)
            return Self.json(.object(response))
        }
        return sse { writer in
            defer { run.cancel() }
            var logprobs = probabilities.map { _ in Logprobs.Completions() }
            func send(_ text: String, finish: String?) async throws {
                var c = base
                c["choices"] = [["index": 0, "text": .string(text), "logprobs": logprobs?.take() ?? .null,
                                 "finish_reason": finish.map(JSONValue.string) ?? .null]]
                try await writer.event(.object(c))
            }
            var summary: GenerationSummary?
            do {
                for try await event in run.events {
                    switch event {
                    case .token(_, let text), .text(let text): if !text.isEmpty { try await send(text, finish: nil) }
                    case .probabilities(let p): logprobs?.add(p, vocab: host.model.vocab)
                    case .finished(let s): summary = s
                    }
                }
            } catch let error where !(error is SSEWriteError) {
                try await writer.error(APIError.from(error))
                return
            }
            guard let summary else {
                try await writer.error(APIError.from(LlamaError(.cancelled, "the generation ended without a summary")))
                return
            }
            try await send("", finish: Self.finishReason(summary, toolCalls: false))
            if includeUsage {
                var c = base
                c["choices"] = []
                c["usage"] = Self.usage(summary)
                try await writer.event(.object(c))
            }
            try await writer.done()
        }
    }

    /// `POST /v1/embeddings`: one vector per input, mean-pooled and normalized.
    func embeddings(_ body: JSONValue) async throws(APIError) -> Response {
        let b = try JSONBody(body)
        try SamplingRequest.rejectUnknown(b, known: ["model", "input", "encoding_format", "dimensions", "user"])
        let host = try await self.host(for: b)
        guard let inputs = try b.strings("input") else { throw APIError.missing("input") }
        guard !inputs.isEmpty else { throw APIError.invalid("input", "`input` must hold at least one text") }
        if let i = inputs.firstIndex(where: \.isEmpty) { throw APIError.invalid("input[\(i)]", "cannot embed an empty text") }
        let encoding = try b.string("encoding_format") ?? "float"
        guard encoding == "float" || encoding == "base64" else {
            throw APIError.invalid("encoding_format", "`encoding_format` must be float or base64, not \"\(encoding)\"")
        }
        if b.has("dimensions") { throw APIError.unsupported("dimensions", "`dimensions` is not supported: vectors have the model's size") }
        var tokens = 0
        for text in inputs {
            do { tokens += try host.model.vocab.tokenize(text, addSpecial: true, parseSpecial: false).count } catch {
                throw APIError.from(error, param: "input")
            }
        }
        let vectors: [[Float]]
        do {
            let context = try await host.embedder.get()
            vectors = try await context.embeddings(for: inputs)
        } catch {
            throw APIError.from(error, param: "input")
        }
        let data: [JSONValue] = vectors.enumerated().map { i, v in
            let embedding: JSONValue
            if encoding == "base64" {
                let bytes = v.withUnsafeBufferPointer { Data(buffer: $0) }
                embedding = .string(bytes.base64EncodedString())
            } else {
                embedding = .array(v.map { .number(Double($0)) })
            }
            return ["object": "embedding", "index": .int(i), "embedding": embedding]
        }
        return Self.json(["object": "list", "data": .array(data), "model": .string(host.id),
                          "usage": ["prompt_tokens": .int(tokens), "total_tokens": .int(tokens)]])
    }

    /// `POST /v1/rerank`, `/rerank`, `/v1/reranking`, `/reranking`: relevance of documents to a query,
    /// in Jina/Cohere's shape (`documents`), or in Hugging Face TEI's (`texts`, answered with a bare
    /// list of `{index, score}`), as llama.cpp's server answers both.
    func rerank(_ body: JSONValue) async throws(APIError) -> Response {
        let b = try JSONBody(body)
        // TEI's truncate, truncation_direction and raw_scores are accepted and ignored, as llama.cpp's server does:
        // scores are the model's raw output, and input past the batch is an error, never cut.
        try SamplingRequest.rejectUnknown(b, known: ["model", "query", "documents", "texts", "top_n", "return_documents",
                                                     "return_text", "truncate", "truncation_direction", "raw_scores", "user"])
        let host = try await self.host(for: b)
        let query = try b.requiredString("query")
        // llama.cpp's server answers in TEI's shape when `texts` is present, and scores `documents` when both are.
        let tei = b.has("texts")
        let field = b.has("documents") || !tei ? "documents" : "texts"
        guard let raw = try b.array(field) else { throw APIError.missing(field) }
        guard !raw.isEmpty else { throw APIError.invalid(field, "give at least one document", code: "invalid_value") }
        var documents: [String] = []
        for (i, d) in raw.enumerated() {
            switch d {
            case .string(let s): documents.append(s)
            case .object(let o) where field == "documents":
                guard let t = o["text"]?.stringValue else { throw APIError.missing("documents[\(i)].text") }
                documents.append(t)
            default:
                throw APIError.invalid("\(field)[\(i)]", field == "texts" ? "a text is a string" : "a document is a string or {\"text\": ...}",
                                       code: "invalid_type")
            }
        }
        let topN = try b.int("top_n", in: 0...Int(Int32.max)) ?? documents.count
        let returnText = try b.bool(tei ? "return_text" : "return_documents") ?? false
        guard host.isReranker else {
            throw APIError(.badRequest, "the model \"\(host.id)\" is not a reranking model (its GGUF does not set rank pooling): "
                + "serve a reranker (e.g. a bge-reranker GGUF) for /v1/rerank", param: "model", code: "model_not_reranker")
        }
        let scores: [Float]
        var inputs: [[LlamaToken]] = []
        do {
            for d in documents { inputs.append(try host.model.rerankTokens(query: query, document: d)) }
            let context = try await host.reranker.get()
            scores = try await context.rerank(inputs: inputs)
        } catch {
            throw APIError.from(error, param: field)
        }
        let ranked = scores.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
            .prefix(topN)
        let results: [JSONValue] = ranked.map { i, score in
            var r: JSONObject = ["index": .int(i), (tei ? "score" : "relevance_score"): .number(Double(score))]
            if returnText { r[tei ? "text" : "document"] = tei ? .string(documents[i]) : ["text": .string(documents[i])] }
            return .object(r)
        }
        if tei { return Self.json(.array(results)) }
        // The model as the request named it (llama.cpp's server echoes it), else the served name.
        let model = try b.string("model") ?? host.id
        let tokens = inputs.reduce(0) { $0 + $1.count }
        return Self.json(["object": "list", "model": .string(model), "results": .array(results),
                          "usage": ["prompt_tokens": .int(tokens), "total_tokens": .int(tokens)]])
    }

    /// `GET /v1/models`.
    func models() async -> Response {
        Self.json(["object": "list", "data": .array(await registry.listing.map(modelEntry))])
    }

    func model(named id: String) async throws(APIError) -> Response {
        guard let entry = await registry.listing.first(where: { $0.id == id }) else {
            throw APIError(.notFound, "the model \"\(id)\" is not served here", param: "model", code: "model_not_found")
        }
        return Self.json(modelEntry(entry))
    }

    /// A `/v1/models` entry: the state (`loaded`, `loading`, `unloaded`, `failed` with the reason) and,
    /// when loaded, what the model is.
    func modelEntry(_ entry: (id: String, state: ModelRegistry.State, host: ModelHost?, failure: String?)) -> JSONValue {
        var status: JSONObject = ["value": .string(entry.state.rawValue)]
        if let failure = entry.failure { status["failure"] = .string(failure) }
        var value: JSONObject = ["id": .string(entry.id), "object": "model", "owned_by": "llama-swift", "status": .object(status)]
        if let h = entry.host {
            value["created"] = .int(h.created)
            value["meta"] = ["n_ctx_slot": .int(h.sequenceLength), "n_params": .int(Int(h.model.parameterCount)),
                             "n_vocab": .int(Int(h.model.vocab.count)), "size": .int(Int(h.model.sizeInBytes))]
        }
        return .object(value)
    }

    /// `POST /tokenize`: `{"content", "add_special", "parse_special", "with_pieces"}` → `{"tokens"}`.
    func tokenize(_ body: JSONValue) async throws(APIError) -> Response {
        let b = try JSONBody(body)
        try SamplingRequest.rejectUnknown(b, known: ["model", "content", "add_special", "parse_special", "with_pieces"])
        let host = try await self.host(for: b)
        let content = try b.requiredString("content")
        let tokens: [LlamaToken]
        do {
            tokens = try host.model.vocab.tokenize(content, addSpecial: try b.bool("add_special") ?? false,
                                                   parseSpecial: try b.bool("parse_special") ?? true)
        } catch let e as APIError { throw e } catch { throw APIError.from(error, param: "content") }
        if try b.bool("with_pieces") == true {
            var pieces: [JSONValue] = []
            for t in tokens {
                let bytes = (try? host.model.vocab.piece(t, special: true)) ?? []
                let piece: JSONValue = String(validating: bytes, as: UTF8.self).map(JSONValue.string)
                    ?? .array(bytes.map { .int(Int($0)) })
                pieces.append(["id": .int(Int(t)), "piece": piece])
            }
            return Self.json(["tokens": .array(pieces)])
        }
        return Self.json(["tokens": .array(tokens.map { .int(Int($0)) })])
    }

    /// `POST /detokenize`: `{"tokens"}` → `{"content"}`.
    func detokenize(_ body: JSONValue) async throws(APIError) -> Response {
        let b = try JSONBody(body)
        try SamplingRequest.rejectUnknown(b, known: ["model", "tokens"])
        let host = try await self.host(for: b)
        guard let raw = try b.array("tokens") else { throw APIError.missing("tokens") }
        let count = Int(host.model.vocab.count)
        var tokens: [LlamaToken] = []
        for (i, v) in raw.enumerated() {
            guard case .int(let t) = v, t >= 0, t < count else {
                throw APIError.invalid("tokens[\(i)]", "`tokens[\(i)]` must be a token id within 0..<\(count)")
            }
            tokens.append(LlamaToken(t))
        }
        do {
            return Self.json(["content": .string(try host.model.vocab.detokenize(tokens))])
        } catch { throw APIError.from(error, param: "tokens") }
    }
}
