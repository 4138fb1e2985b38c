import Foundation
import Llama
import LlamaServer
import LlamaTestSupport
import NIOHTTP1
import Testing

/// The server in this process on a port the system chose, over real loopback HTTP, with SmolLM2.
@Suite("LlamaServer over loopback", .serialized, .timeLimit(.minutes(10)))
struct ServerTests {
    @Test("greedy: /v1/completions and /v1/chat/completions give the library's greedy text for the same prompt")
    func greedyEqualsLibrary() async throws {
        let model = try ServerFixture.model.get()
        let prompt = "The three primary colours are"
        let messages: [ChatMessage] = [.user("Write one sentence about the sea.")]
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 1024, threads: 2))
        let plain = try await context.generate(prompt: prompt, sampling: .greedy, options: GenerationOptions(maxTokens: 32)).summary()
        let chatPrompt = try model.formatChat(messages)
        let chat = try await context.generate(prompt: chatPrompt, sampling: .greedy, options: GenerationOptions(maxTokens: 32)).summary()
        #expect(plain.generatedTokens.count == 32)

        try await withServer { _, client in
            let completion = try await client.post("/v1/completions", ["prompt": .string(prompt), "temperature": 0, "max_tokens": 32])
            #expect(completion.status == 200, "\(completion.body)")
            let choice = completion.json?["choices"]?.arrayValue?.first
            #expect(choice?["text"]?.stringValue == plain.text)
            #expect(choice?["finish_reason"]?.stringValue == "length")
            #expect(completion.json?["usage"]?["completion_tokens"] == .int(32))
            #expect(completion.json?["usage"]?["prompt_tokens"] == .int(plain.promptTokens))

            let reply = try await client.post("/v1/chat/completions", [
                "model": .string(ServerFixture.modelID), "messages": [["role": "user", "content": "Write one sentence about the sea."]],
                "temperature": 0, "max_tokens": 32])
            #expect(reply.status == 200, "\(reply.body)")
            let message = reply.json?["choices"]?.arrayValue?.first?["message"]
            #expect(message?["content"]?.stringValue == chat.text)
            #expect(message?["role"]?.stringValue == "assistant")

            // Streamed, the same text in pieces, then a finish reason, usage and [DONE].
            let streamed = try await client.stream("/v1/chat/completions", [
                "messages": [["role": "user", "content": "Write one sentence about the sea."]], "temperature": 0, "max_tokens": 32,
                "stream": true, "stream_options": ["include_usage": true]])
            #expect(streamed.status == 200)
            #expect(streamed.events.last == "[DONE]")
            let chunks = streamed.events.dropLast().compactMap { try? JSONValue(parsing: $0) }
            let text = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.joined()
            #expect(text == chat.text)
            let finish = chat.stopReason == .maxTokens ? "length" : "stop"
            #expect(chunks.contains { $0["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue == finish })
            #expect(chunks.last?["usage"]?["completion_tokens"] == .int(chat.generatedTokens.count))
        }
    }

    @Test("8 concurrent greedy chat requests on 4 slots: each equals its solo generation by the library")
    func concurrentGreedy() async throws {
        let model = try ServerFixture.model.get()
        let questions = ["Name a fruit.", "What is the sea?", "Say hello in French.", "Count to five.",
                         "Describe a cat.", "What is 2 + 2?", "Name a colour.", "Write a haiku about rain."]
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 1024, threads: 2))
        var solo: [String] = []
        for q in questions {
            let prompt = try model.formatChat([.user(q)])
            solo.append(try await context.generate(prompt: prompt, sampling: .greedy, options: GenerationOptions(maxTokens: 32)).summary().text)
        }
        let expected = solo
        try await withServer({ $0.slots = 4; $0.contextLength = 4096 }) { server, client in
            let replies = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for (i, q) in questions.enumerated() {
                    group.addTask {
                        let r = try await client.post("/v1/chat/completions", [
                            "messages": [["role": "user", "content": .string(q)]], "temperature": 0, "max_tokens": 32])
                        return (i, r.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue)
                    }
                }
                var out = [String?](repeating: nil, count: questions.count)
                for try await (i, text) in group { out[i] = text }
                return out
            }
            let agreeing = zip(replies, expected).filter { $0 == $1 }.count
            #expect(agreeing == 8, "server \(replies) vs solo \(expected)")
            let stats = try #require(await server.statistics(model: ServerFixture.modelID))
            #expect(stats.finishedRequests == 8)
        }
    }

    @Test("bad requests: 46 of them get the right 4xx in OpenAI's error shape, and the next good request succeeds")
    func badRequests() async throws {
        let key = "sk-test-\(UUID().uuidString)"
        try await withServer({ $0.apiKey = key; $0.maxBodyBytes = 64 << 10 }) { server, client in
            let auth = [("Authorization", "Bearer \(key)")]
            let user: JSONValue = ["role": "user", "content": "hi"]
            let tool: JSONValue = ["type": "function", "function": ["name": "calc", "parameters": ["type": "object"]]]
            func chat(_ extra: JSONObject) -> JSONValue {
                var o: JSONObject = ["messages": [user], "max_tokens": 4]
                for (k, v) in extra { o[k] = v }
                return .object(o)
            }
            let longPrompt = String(repeating: "the sea is blue and wide ", count: 400)
            struct Case { var name: String; var method: String = "POST"; var path = "/v1/chat/completions"
                          var bytes: [UInt8]; var headers: [(String, String)]? = nil
                          var status: Int; var code: String?; var param: String? = nil }
            func json(_ v: JSONValue) -> [UInt8] { Array(v.jsonText.utf8) }
            let cases: [Case] = [
                Case(name: "malformed JSON", bytes: Array("{\"messages\": [".utf8), status: 400, code: "invalid_json"),
                Case(name: "body is an array", bytes: json([user]), status: 400, code: "invalid_type"),
                Case(name: "empty body", bytes: [], status: 400, code: "invalid_json"),
                Case(name: "invalid UTF-8", bytes: Array("{\"messages\": [{\"role\": \"user\", \"content\": \"".utf8) + [0xff, 0xfe] + Array("\"}]}".utf8),
                     status: 400, code: "invalid_utf8"),
                Case(name: "oversized body", bytes: json(chat(["user": .string(String(repeating: "x", count: 70 << 10))])),
                     status: 413, code: "request_too_large"),
                Case(name: "no API key", bytes: json(chat([:])), headers: [], status: 401, code: "invalid_api_key"),
                Case(name: "wrong API key", bytes: json(chat([:])), headers: [("Authorization", "Bearer sk-wrong")], status: 401, code: "invalid_api_key"),
                Case(name: "key without Bearer", bytes: json(chat([:])), headers: [("Authorization", key)], status: 401, code: "invalid_api_key"),
                Case(name: "unknown model", bytes: json(chat(["model": "gpt-17"])), status: 404, code: "model_not_found", param: "model"),
                Case(name: "no messages", bytes: json(["max_tokens": 4]), status: 400, code: "missing_field", param: "messages"),
                Case(name: "empty messages", bytes: json(["messages": []]), status: 400, code: "invalid_value", param: "messages"),
                Case(name: "messages not an array", bytes: json(["messages": "hi"]), status: 400, code: "invalid_type", param: "messages"),
                Case(name: "message not an object", bytes: json(["messages": ["hi"]]), status: 400, code: "invalid_type", param: "messages[0]"),
                Case(name: "bad role", bytes: json(["messages": [["role": "wizard", "content": "hi"]]]), status: 400, code: "invalid_value", param: "messages[0].role"),
                Case(name: "role not a string", bytes: json(["messages": [["role": 3, "content": "hi"]]]), status: 400, code: "invalid_type", param: "messages[0].role"),
                Case(name: "content a number", bytes: json(["messages": [["role": "user", "content": 5]]]), status: 400, code: "invalid_type", param: "messages[0].content"),
                Case(name: "user content null", bytes: json(["messages": [["role": "user", "content": nil]]]), status: 400, code: "missing_field", param: "messages[0].content"),
                Case(name: "image part", bytes: json(["messages": [["role": "user", "content": [["type": "image_url", "image_url": ["url": "x"]]]]]]),
                     status: 400, code: "projector_required", param: "messages[0].content"),
                Case(name: "tool result without call id", bytes: json(["messages": [user, ["role": "tool", "content": "4"]]]),
                     status: 400, code: "missing_field", param: "messages[1].tool_call_id"),
                Case(name: "invalid tool schema", bytes: json(chat(["tools": [["type": "function", "function": ["name": "calc", "parameters":
                    ["type": "object", "properties": ["a": ["$ref": "#/$defs/missing"]]]]]]])),
                     status: 400, code: "invalid_schema", param: "tools[0].function.parameters"),
                Case(name: "bad tool name", bytes: json(chat(["tools": [["type": "function", "function": ["name": "two words"]]]])),
                     status: 400, code: "invalid_value", param: "tools[0].function.name"),
                Case(name: "tool_choice names an unknown tool", bytes: json(chat(["tools": [tool], "tool_choice": ["type": "function", "function": ["name": "nope"]]])),
                     status: 400, code: "invalid_value", param: "tool_choice"),
                Case(name: "tool_choice required without tools", bytes: json(chat(["tool_choice": "required"])), status: 400, code: "invalid_value", param: "tool_choice"),
                Case(name: "huge max_tokens", bytes: json(chat(["max_tokens": 10_000_000])), status: 400, code: "context_length_exceeded", param: "max_tokens"),
                Case(name: "negative max_tokens", bytes: json(chat(["max_tokens": -5])), status: 400, code: "invalid_value", param: "max_tokens"),
                Case(name: "negative temperature", bytes: json(chat(["temperature": -1])), status: 400, code: "invalid_value", param: "temperature"),
                Case(name: "temperature a string", bytes: json(chat(["temperature": "hot"])), status: 400, code: "invalid_type", param: "temperature"),
                Case(name: "top_p above 1", bytes: json(chat(["top_p": 2])), status: 400, code: "invalid_value", param: "top_p"),
                Case(name: "n > 1", bytes: json(chat(["n": 3])), status: 400, code: "unsupported_parameter", param: "n"),
                Case(name: "top_logprobs without logprobs", bytes: json(chat(["top_logprobs": 2])), status: 400, code: "invalid_value", param: "top_logprobs"),
                Case(name: "top_logprobs over 20", bytes: json(chat(["logprobs": true, "top_logprobs": 21])), status: 400, code: "invalid_value", param: "top_logprobs"),
                Case(name: "unknown field", bytes: json(chat(["frobnicate": 1])), status: 400, code: "unknown_parameter", param: "frobnicate"),
                Case(name: "unknown response_format", bytes: json(chat(["response_format": ["type": "yaml"]])), status: 400, code: "invalid_value", param: "response_format.type"),
                Case(name: "json_schema without schema", bytes: json(chat(["response_format": ["type": "json_schema", "json_schema": ["name": "x"]]])),
                     status: 400, code: "missing_field", param: "response_format.json_schema.schema"),
                Case(name: "logit_bias on no token", bytes: json(chat(["logit_bias": ["banana": 5]])), status: 400, code: "invalid_value", param: "logit_bias"),
                Case(name: "too many stop sequences", bytes: json(chat(["stop": .array((0..<20).map { .string("s\($0)") })])), status: 400, code: "invalid_value", param: "stop"),
                Case(name: "prompt longer than a slot", bytes: json(chat(["messages": [["role": "user", "content": .string(longPrompt)]]])),
                     status: 400, code: "context_length_exceeded"),
                Case(name: "completion without prompt", path: "/v1/completions", bytes: json(["max_tokens": 4]), status: 400, code: "missing_field", param: "prompt"),
                Case(name: "two prompts", path: "/v1/completions", bytes: json(["prompt": ["a", "b"]]), status: 400, code: "unsupported_parameter", param: "prompt"),
                Case(name: "embedding of an empty text", path: "/v1/embeddings", bytes: json(["input": [""]]), status: 400, code: "invalid_value", param: "input[0]"),
                Case(name: "unknown encoding_format", path: "/v1/embeddings", bytes: json(["input": "a", "encoding_format": "hex"]), status: 400, code: "invalid_value", param: "encoding_format"),
                Case(name: "tokenize without content", path: "/tokenize", bytes: json([:]), status: 400, code: "missing_field", param: "content"),
                Case(name: "detokenize a token out of range", path: "/detokenize", bytes: json(["tokens": [1, -4]]), status: 400, code: "invalid_value", param: "tokens[1]"),
                Case(name: "rerank with a model that is no reranker", path: "/v1/rerank", bytes: json(["query": "q", "documents": ["a"]]),
                     status: 400, code: "model_not_reranker", param: "model"),
                Case(name: "GET on a POST endpoint", method: "GET", bytes: [], status: 405, code: "method_not_allowed"),
                Case(name: "unknown path", path: "/v1/nothing", bytes: json([:]), status: 404, code: "not_found"),
            ]
            #expect(cases.count == 46)
            for c in cases {
                let reply = try await client.send(c.method == "GET" ? .GET : .POST, c.path, bytes: c.method == "GET" ? nil : c.bytes,
                                                  headers: c.headers ?? auth)
                #expect(reply.status == c.status, "\(c.name): \(reply.status) \(reply.body)")
                let error = reply.json?["error"]
                #expect(error?["message"]?.stringValue?.isEmpty == false, "\(c.name): \(reply.body)")
                #expect(error?["type"]?.stringValue != nil, "\(c.name)")
                #expect(error?["code"]?.stringValue == c.code, "\(c.name): \(reply.body)")
                if let param = c.param { #expect(error?["param"]?.stringValue == param, "\(c.name): \(reply.body)") }
                if c.status == 401 { #expect(reply.headers["WWW-Authenticate"].first == "Bearer", "\(c.name)") }
            }
            // /health is open; everything else asks for the key.
            let health = try await client.send(.GET, "/health", headers: [])
            #expect(health.status == 200)
            let good = try await client.post("/v1/chat/completions", chat(["temperature": 0]), headers: auth)
            #expect(good.status == 200, "\(good.body)")
            #expect(good.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue?.isEmpty == false)
            let stats = try #require(await server.statistics(model: ServerFixture.modelID))
            #expect(stats.busySlots == 0 && stats.queued == 0)
        }
    }

    @Test("a client that goes away mid-stream frees its slot within a few steps, as /metrics shows")
    func disconnectFreesSlot() async throws {
        try await withServer { server, client in
            let id = ServerFixture.modelID
            let request: JSONValue = ["messages": [["role": "user", "content": "Tell me a long story about the sea."]],
                                      "temperature": 0, "max_tokens": 400, "stream": true]
            let busyWhileStreaming = Arrival<Double>()
            var contentEvents = 0
            let streamed = try await client.stream("/v1/chat/completions", request) { payload in
                guard (try? JSONValue(parsing: payload))?["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue?.isEmpty == false
                else { return true }
                contentEvents += 1
                if contentEvents == 3 {
                    let metrics = try await client.get("/metrics").body
                    busyWhileStreaming.deliver(metric(metrics, "llamaswift_busy_slots") ?? -1)
                    return false   // the client goes away
                }
                return true
            }
            #expect(streamed.status == 200)
            #expect(streamed.events.last != "[DONE]")
            #expect(try await busyWhileStreaming.value(within: .seconds(1), "the metrics read") == 1)
            // The engine's steps are the clock: at most a few go by before the slot is free.
            var stats = try #require(await server.statistics(model: id))
            var steps = 0
            while stats.busySlots > 0, steps < 50 {
                stats = try #require(await server.waitForStep(model: id, after: stats.steps))
                steps += 1
            }
            #expect(stats.busySlots == 0, "still busy after \(steps) steps")
            #expect(stats.generatedTokens < 400, "the abandoned request ran to its end")
            let metrics = try await client.get("/metrics")
            #expect(metric(metrics.body, "llamaswift_busy_slots") == 0, "\(metrics.body)")
            #expect(metric(metrics.body, "llamaswift_requests_total") != nil)
            #expect((metric(metrics.body, "llamaswift_time_to_first_token_seconds_count") ?? 0) >= 1)
            // The slot serves the next request.
            let next = try await client.post("/v1/completions", ["prompt": "Hello", "temperature": 0, "max_tokens": 4])
            #expect(next.status == 200, "\(next.body)")
        }
    }

    @Test("a client that goes away while its non-streaming reply is generated frees the slot within a few steps")
    func nonStreamingDisconnectFreesSlot() async throws {
        try await withServer { server, client in
            let id = ServerFixture.modelID
            // Long for certain: the end-of-text and end-of-turn tokens are banned.
            let request: JSONValue = ["prompt": "Once upon a time", "temperature": 0, "max_tokens": 1000,
                                      "logit_bias": ["0": -100, "2": -100]]
            let abandoned = Task { try await client.post("/v1/completions", request) }
            // Wait, by engine steps, until the request generates, then let the client go away.
            var stats = try #require(await server.statistics(model: id))
            var waited = 0
            while stats.generatedTokens < 5, waited < 3000 {
                // Until the request reaches the engine there is no step to wait for (bounded: 30 s).
                if stats.busySlots == 0 { try await Task.sleep(for: .milliseconds(10)) }
                stats = try #require(await server.waitForStep(model: id, after: stats.steps))
                waited += 1
            }
            #expect(stats.busySlots == 1 && stats.generatedTokens >= 5, "the request never generated: \(stats)")
            abandoned.cancel()
            let ended = await abandoned.result
            #expect((try? ended.get()) == nil, "the cancelled request still got a reply")
            let atCancel = stats.generatedTokens
            var steps = 0
            while stats.busySlots > 0, steps < 50 {
                stats = try #require(await server.waitForStep(model: id, after: stats.steps))
                steps += 1
            }
            #expect(stats.busySlots == 0, "still busy after \(steps) steps")
            #expect(stats.generatedTokens < atCancel + 200, "the abandoned request ran on: \(stats.generatedTokens) tokens")
            // A good request right after still works.
            let next = try await client.post("/v1/completions", ["prompt": "Hello", "temperature": 0, "max_tokens": 4])
            #expect(next.status == 200, "\(next.body)")
        }
    }

    @Test("models on demand: files load on their first request, --models-max 1 unloads the least recently used, /v1/models shows states, a bad file is a 500 that names it")
    func modelsOnDemand() async throws {
        let runtime = try ServerFixture.runtime.get()
        let path = try TestEnvironment.model().path
        let dir = try TestEnvironment.temporaryDirectory()
        let bad = dir.appendingPathComponent("bad.gguf")
        try Data("GGUF this is not a model".utf8).write(to: bad)
        let models = [ServedModel(id: "a", paths: [path], runtime: runtime), ServedModel(id: "b", paths: [path], runtime: runtime),
                      ServedModel(id: "broken", paths: [bad.path], runtime: runtime)]
        try await withServer(models: models, { $0.maxLoadedModels = 1 }) { server, client in
            #expect(await server.loadedModels() == [])
            func states() async throws -> [String: String] {
                let list = try await client.get("/v1/models").json?["data"]?.arrayValue ?? []
                return Dictionary(uniqueKeysWithValues: list.map { ($0["id"]?.stringValue ?? "?", $0["status"]?["value"]?.stringValue ?? "?") })
            }
            #expect(try await states() == ["a": "unloaded", "b": "unloaded", "broken": "unloaded"])
            func complete(_ model: String) async throws -> Reply {
                try await client.post("/v1/completions", ["model": .string(model), "prompt": "The sea is", "temperature": 0, "max_tokens": 8])
            }
            let first = try await complete("a")
            #expect(first.status == 200, "\(first.body)")
            #expect(await server.loadedModels() == ["a"])
            let second = try await complete("b")
            #expect(second.status == 200, "\(second.body)")
            #expect(await server.loadedModels() == ["b"])
            #expect(try await states() == ["a": "unloaded", "b": "loaded", "broken": "unloaded"])
            // Reloaded on demand, the same greedy text.
            let again = try await complete("a")
            #expect(again.json?["choices"]?.arrayValue?.first?["text"] == first.json?["choices"]?.arrayValue?.first?["text"])
            #expect(first.json?["choices"]?.arrayValue?.first?["text"] == second.json?["choices"]?.arrayValue?.first?["text"])
            let metrics = try await client.get("/metrics").body
            #expect(metric(metrics, "llamaswift_model_loads") == 3 && metric(metrics, "llamaswift_model_unloads") == 2, "\(metrics)")
            let broken = try await complete("broken")
            #expect(broken.status == 500 && broken.json?["error"]?["code"]?.stringValue == "model_load_failed", "\(broken.body)")
            #expect(broken.json?["error"]?["message"]?.stringValue?.contains("broken") == true)
            #expect(try await states()["broken"] == "failed")
            let unknown = try await complete("nope")
            #expect(unknown.status == 404 && unknown.json?["error"]?["code"]?.stringValue == "model_not_found")
            // After the failure the loaded model still serves.
            #expect(try await complete("a").status == 200)
        }
    }

    @Test("--models-dir layout: NAME.gguf files and one folder per model (first part of a split one); projector and draft files skipped")
    func modelsFolder() throws {
        let runtime = try ServerFixture.runtime.get()
        let dir = try TestEnvironment.temporaryDirectory().appendingPathComponent("models")
        let fm = FileManager.default
        for file in ["alpha.gguf", "mmproj-alpha.gguf", "mtp-alpha.gguf", "notes.txt", "beta/model.gguf", "beta/mmproj-f16.gguf",
                     "gamma/g-00002-of-00002.gguf", "gamma/g-00001-of-00002.gguf", "empty/readme.md"] {
            let url = dir.appendingPathComponent(file)
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data().write(to: url)
        }
        let found = try ServedModel.folder(dir.path, runtime: runtime)
        #expect(found.map(\.id) == ["alpha", "beta", "gamma"])
        let paths = found.map { m -> String in
            if case .file(let paths, _, _) = m.source { return paths.first.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "" }
            return ""
        }
        #expect(paths == ["alpha.gguf", "model.gguf", "g-00001-of-00002.gguf"])
        #expect(throws: LlamaError.self) { try ServedModel.folder(dir.appendingPathComponent("empty").path, runtime: runtime) }
        #expect(throws: LlamaError.self) { try ServedModel.folder(dir.appendingPathComponent("missing").path, runtime: runtime) }
    }

    @Test("queue full: one slot, no queue, a second request while the first generates gets 503 with Retry-After")
    func queueFull() async throws {
        try await withServer({ $0.slots = 1; $0.queueSize = 0 }) { server, client in
            // The end-of-generation tokens banned: the first request holds its slot for all 300 tokens.
            let vocab = try ServerFixture.model.get().vocab
            var bias: JSONObject = [:]
            for t in [vocab.eos, vocab.eot].compactMap({ $0 }) { bias[String(t)] = -100 }
            let request: JSONValue = ["prompt": "Once upon a time", "temperature": 0, "max_tokens": 300, "stream": true,
                                      "logit_bias": .object(bias)]
            let refused = Arrival<Reply>()
            var tokens = 0
            _ = try await client.stream("/v1/completions", request) { _ in
                tokens += 1
                if tokens == 2 {
                    refused.deliver(try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 4]))
                    return false
                }
                return true
            }
            let reply = try await refused.value(within: .seconds(1), "the second request's answer")
            #expect(reply.status == 503, "\(reply.body)")
            #expect(reply.headers["Retry-After"].first == "1")
            #expect(reply.json?["error"]?["code"]?.stringValue == "queue_full")
            let stats = try #require(await server.statistics(model: ServerFixture.modelID))
            #expect(stats.rejectedRequests == 1)
        }
    }

    @Test("--cache-ram: a chat whose slot went to another request gets its conversation restored for the next turn; off, it is evaluated again",
          arguments: [8 << 30, 0])
    func promptCacheRestores(limit: Int) async throws {
        try await withServer({ $0.slots = 1; $0.promptCacheBytes = limit }) { server, client in
            let question: JSONValue = ["role": "user", "content": "Name three colours of the rainbow."]
            let first = try await client.post("/v1/chat/completions", ["messages": [question], "temperature": 0, "max_tokens": 16])
            #expect(first.status == 200, "\(first.body)")
            let answer = try #require(first.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue)
            guard case .int(let firstPrompt)? = first.json?["usage"]?["prompt_tokens"] else {
                Issue.record("no prompt_tokens in \(first.body)")
                return
            }
            // Another conversation takes the only slot.
            let other = try await client.post("/v1/chat/completions", ["messages": [["role": "user", "content": "What is 2+2?"]],
                                                                       "temperature": 0, "max_tokens": 4])
            #expect(other.status == 200, "\(other.body)")
            let next = try await client.post("/v1/chat/completions", [
                "messages": [question, ["role": "assistant", "content": .string(answer)], ["role": "user", "content": "And two more?"]],
                "temperature": 0, "max_tokens": 4])
            #expect(next.status == 200, "\(next.body)")
            guard case .int(let cached)? = next.json?["usage"]?["prompt_tokens_details"]?["cached_tokens"] else {
                Issue.record("no cached_tokens in \(next.body)")
                return
            }
            let metrics = try await client.get("/metrics").body
            let restores = metric(metrics, "llamaswift_prompt_cache_restores")
            // On: the first turn's prompt and its answer come back from the cache. Off: only the prefix
            // (the system message) shared with the other conversation, which held the slot.
            #expect(limit > 0 ? cached >= firstPrompt + 8 : cached < firstPrompt,
                    "cached \(cached) tokens; the first turn's prompt has \(firstPrompt)")
            #expect(restores == (limit > 0 ? 1 : 0), "\(metrics)")
            let stats = try #require(await server.statistics(model: ServerFixture.modelID))
            #expect(stats.restoredPrompts == (limit > 0 ? 1 : 0))
        }
    }

    @Test("logprobs: the chosen token's and the top alternatives' log-probabilities equal a log-softmax of the library's logits, in both APIs")
    func logprobs() async throws {
        let model = try ServerFixture.model.get()
        let prompt = "The three primary colours are"
        let steps = 8, top = 3
        // Reference: the raw logits of each position through the library, log-softmax computed here in Double.
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 1024, threads: 2))
        let tokens = try model.vocab.tokenize(prompt, addSpecial: true, parseSpecial: true)
        var batch = LlamaBatch()
        batch.add(prompt: tokens, startingAt: 0, outputLast: true)
        try await context.decode(batch)
        var expected: [(token: LlamaToken, logprob: Double, top: [(LlamaToken, Double)])] = []
        for step in 0..<steps {
            let logits = try await context.logits().map(Double.init)
            let high = logits.max()!
            let logSum = log(logits.reduce(0) { $0 + exp($1 - high) })
            let ranked = logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }.prefix(top)
            let alternatives = ranked.map { (LlamaToken($0), logits[$0] - high - logSum) }
            expected.append((alternatives[0].0, alternatives[0].1, alternatives))
            var next = LlamaBatch()
            next.add(alternatives[0].0, position: Int32(tokens.count + step), sequences: [0], output: true)
            try await context.decode(next)
        }
        func text(_ t: LlamaToken) throws -> String { String(decoding: try model.vocab.piece(t, special: true), as: UTF8.self) }
        struct Row: Sendable {
            var text: String
            var logprob: Double
            var top: [String: Double]
        }
        let rows = try expected.map { e in
            Row(text: try text(e.token), logprob: e.logprob,
                top: Dictionary(try e.top.map { (try text($0.0), $0.1) }, uniquingKeysWith: { a, _ in a }))
        }

        try await withServer { _, client in
            let completion = try await client.post("/v1/completions", [
                "prompt": .string(prompt), "temperature": 0, "max_tokens": .int(steps), "logprobs": .int(top)])
            #expect(completion.status == 200, "\(completion.body)")
            let lp = completion.json?["choices"]?.arrayValue?.first?["logprobs"]
            let texts = lp?["tokens"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let values = lp?["token_logprobs"]?.arrayValue?.compactMap(\.number) ?? []
            let tops = lp?["top_logprobs"]?.arrayValue ?? []
            #expect(texts.count == steps && values.count == steps && tops.count == steps, "\(completion.body)")
            var agreeing = 0
            for (i, row) in rows.enumerated() where i < min(texts.count, values.count, tops.count) {
                let alternatives = tops[i].objectValue
                let sameTop = Set(alternatives?.keys ?? []) == Set(row.top.keys)
                let close = abs(values[i] - row.logprob) < 1e-3
                    && row.top.allSatisfy { abs((alternatives?[$0.key]?.number ?? 0) - $0.value) < 1e-3 }
                if texts[i] == row.text, sameTop, close { agreeing += 1 }
            }
            #expect(agreeing == steps, "\(agreeing)/\(steps) positions agree: \(completion.body)")

            let chat = try await client.post("/v1/chat/completions", [
                "messages": [["role": "user", "content": "Name a colour."]], "temperature": 0, "max_tokens": 6,
                "logprobs": true, "top_logprobs": 2])
            #expect(chat.status == 200, "\(chat.body)")
            let content = chat.json?["choices"]?.arrayValue?.first?["logprobs"]?["content"]?.arrayValue ?? []
            let answer = chat.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue ?? ""
            #expect(!content.isEmpty)
            // Greedy: each chosen token is the most probable one, and its bytes spell the answer.
            #expect(content.allSatisfy { $0["top_logprobs"]?.arrayValue?.count == 2
                && $0["top_logprobs"]?.arrayValue?.first?["logprob"] == $0["logprob"] })
            let bytes = content.flatMap { $0["bytes"]?.arrayValue?.compactMap { $0.integer.map(UInt8.init) } ?? [] }
            #expect(String(decoding: bytes, as: UTF8.self) == answer)

            let streamed = try await client.stream("/v1/chat/completions", [
                "messages": [["role": "user", "content": "Name a colour."]], "temperature": 0, "max_tokens": 6,
                "logprobs": true, "stream": true])
            let chunks = streamed.events.dropLast().compactMap { try? JSONValue(parsing: $0) }
            let streamedEntries = chunks.flatMap { $0["choices"]?.arrayValue?.first?["logprobs"]?["content"]?.arrayValue ?? [] }
            #expect(streamedEntries.map { $0["token"] } == content.map { $0["token"] })
            #expect(streamedEntries.allSatisfy { $0["top_logprobs"] == .array([]) })

            let bad = try await client.post("/v1/chat/completions", [
                "messages": [["role": "user", "content": "Hi"]], "top_logprobs": 2])
            #expect(bad.status == 400 && bad.json?["error"]?["param"]?.stringValue == "top_logprobs", "\(bad.body)")
            let tooMany = try await client.post("/v1/completions", ["prompt": "Hi", "logprobs": 6])
            #expect(tooMany.status == 400 && tooMany.json?["error"]?["param"]?.stringValue == "logprobs", "\(tooMany.body)")
        }
    }

    @Test("tokenize, detokenize, models, embeddings, health")
    func smallEndpoints() async throws {
        try await withServer { _, client in
            let model = try ServerFixture.model.get()
            let tokens = try await client.post("/tokenize", ["content": "Hello world"])
            let expected = try model.vocab.tokenize("Hello world", addSpecial: false, parseSpecial: true)
            #expect(tokens.json?["tokens"] == .array(expected.map { .int(Int($0)) }))
            let text = try await client.post("/detokenize", ["tokens": .array(expected.map { .int(Int($0)) })])
            #expect(text.json?["content"]?.stringValue == "Hello world")
            let models = try await client.get("/v1/models")
            #expect(models.json?["data"]?.arrayValue?.first?["id"]?.stringValue == ServerFixture.modelID)
            let embeddings = try await client.post("/v1/embeddings", ["input": ["a cat", "a dog"]])
            let vectors = embeddings.json?["data"]?.arrayValue ?? []
            #expect(vectors.count == 2)
            #expect(vectors.first?["embedding"]?.arrayValue?.count == Int(model.embeddingLength))
            let health = try await client.get("/health")
            #expect(health.json?["status"]?.stringValue == "ok")
            #expect(health.headers["Access-Control-Allow-Origin"].isEmpty, "CORS headers without --cors")
        }
    }

    @Test("request timeout: a generation past it ends with 504 request_timeout and frees its slot")
    func requestTimeout() async throws {
        try await withServer({ $0.requestTimeout = .milliseconds(500) }) { server, client in
            let vocab = try ServerFixture.model.get().vocab
            var bias: JSONObject = [:]
            for t in [vocab.eos, vocab.eot].compactMap({ $0 }) { bias[String(t)] = -100 }
            let reply = try await client.post("/v1/completions", ["prompt": "Once upon a time", "temperature": 0,
                                                                   "max_tokens": 1000, "logit_bias": .object(bias)])
            #expect(reply.status == 504, "\(reply.body)")
            #expect(reply.json?["error"]?["code"]?.stringValue == "request_timeout")
            var stats = try #require(await server.statistics(model: ServerFixture.modelID))
            var steps = 0
            while stats.busySlots > 0, steps < 50 {
                stats = try #require(await server.waitForStep(model: ServerFixture.modelID, after: stats.steps))
                steps += 1
            }
            #expect(stats.busySlots == 0)
            #expect(stats.generatedTokens < 1000)
        }
    }

    @Test("CORS only with an origin: preflight answered, the origin on responses")
    func cors() async throws {
        try await withServer({ $0.corsOrigin = "https://app.example" }) { _, client in
            let preflight = try await client.send(.OPTIONS, "/v1/chat/completions")
            #expect(preflight.status == 204)
            #expect(preflight.headers["Access-Control-Allow-Origin"].first == "https://app.example")
            #expect(preflight.headers["Access-Control-Allow-Headers"].first?.contains("Authorization") == true)
            let models = try await client.get("/v1/models")
            #expect(models.headers["Access-Control-Allow-Origin"].first == "https://app.example")
        }
    }
}
