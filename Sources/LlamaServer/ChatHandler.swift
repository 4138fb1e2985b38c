import HTTPTypes
import Foundation
import Hummingbird
import Llama

extension ServerCore {
    /// `POST /v1/chat/completions`.
    func chatCompletions(_ body: JSONValue, arrival: ContinuousClock.Instant) async throws(APIError) -> Response {
        let b = try JSONBody(body)
        let host = try await self.host(for: b)
        let request = try ChatRequest(b, host: host)
        let plan = try ChatPlan(request, host: host)
        let run: GenerationRun
        if request.hasMedia {
            run = try await submitMedia(plan: plan, request: request, host: host, arrival: arrival)
        } else {
            let (prompt, options) = try generationInput(text: plan.prompt, host: host, maxTokens: request.maxTokens,
                                                        stops: request.stops, format: plan.format,
                                                        probabilities: request.probabilities)
            run = try await submit(prompt: prompt, sampling: request.sampling, options: options, host: host, arrival: arrival)
        }
        let id = "chatcmpl-" + Self.randomID()
        let created = Int(Date().timeIntervalSince1970)
        let base: JSONObject = ["id": .string(id), "object": "chat.completion", "created": .int(created),
                                "model": .string(host.id), "system_fingerprint": .string(Self.fingerprint)]
        let parser = plan.parser
        if !request.stream {
            defer { run.cancel() }
            var output = ChatOutputStream(parser: parser)
            var summary: GenerationSummary?
            var logprobs: [JSONValue]? = request.probabilities.map { _ in [] }
            do {
                for try await event in run.events {
                    switch event {
                    case .token(_, let text), .text(let text): _ = output.append(text)
                    case .probabilities(let p): logprobs?.append(Logprobs.chatEntry(p, vocab: host.model.vocab))
                    case .finished(let s): summary = s
                    }
                }
            } catch {
                throw APIError.from(error)
            }
            guard let summary else { throw APIError.from(LlamaError(.cancelled, "the generation ended without a summary")) }
            _ = output.finish()
            let parsed = output.current
            var ids = ToolCallIDs()
            var message: JSONObject = ["role": "assistant"]
            message["content"] = parsed.content.isEmpty && !parsed.toolCalls.isEmpty ? .null : .string(parsed.content)
            if !parsed.reasoning.isEmpty { message["reasoning_content"] = .string(parsed.reasoning) }
            if !parsed.toolCalls.isEmpty {
                message["tool_calls"] = .array(parsed.toolCalls.enumerated().map { i, call in
                    ["id": .string(ids.id(i, call.id)), "type": "function",
                     "function": ["name": .string(call.name), "arguments": .string(call.arguments)]]
                })
            }
            var response = base
            response["choices"] = [["index": 0, "message": .object(message), "logprobs": Logprobs.chatChoice(logprobs),
                                    "finish_reason": .string(Self.finishReason(summary, toolCalls: !parsed.toolCalls.isEmpty))]]
            response["usage"] = Self.usage(summary)
            return Self.json(.object(response))
        }

        let includeUsage = request.includeUsage
        return sse { writer in
            defer { run.cancel() }
            var chunk = base
            chunk["object"] = "chat.completion.chunk"
            // Entries of tokens not yet sent: they ride on the next chunk (the parser may hold text back).
            var pending: [JSONValue]? = request.probabilities.map { _ in [] }
            func send(_ delta: JSONObject, finish: String? = nil) async throws {
                var c = chunk
                c["choices"] = [["index": 0, "delta": .object(delta), "logprobs": Logprobs.chatChoice(pending),
                                 "finish_reason": finish.map(JSONValue.string) ?? .null]]
                if pending != nil { pending = [] }
                try await writer.event(.object(c))
            }
            try await send(["role": "assistant", "content": ""])
            var output = ChatOutputStream(parser: parser)
            var ids = ToolCallIDs()
            var sawCalls = false
            func forward(_ deltas: [ChatOutputDelta]) async throws {
                for d in deltas {
                    if !d.reasoning.isEmpty { try await send(["reasoning_content": .string(d.reasoning)]) }
                    if !d.content.isEmpty { try await send(["content": .string(d.content)]) }
                    if let call = d.toolCall {
                        sawCalls = true
                        var function: JSONObject = ["arguments": .string(call.arguments)]
                        var entry: JSONObject = ["index": .int(call.index)]
                        if let name = call.name {
                            function["name"] = .string(name)
                            entry["id"] = .string(ids.id(call.index, call.id))
                            entry["type"] = "function"
                        }
                        entry["function"] = .object(function)
                        try await send(["tool_calls": [.object(entry)]])
                    }
                }
            }
            var summary: GenerationSummary?
            do {
                for try await event in run.events {
                    switch event {
                    case .token(_, let text), .text(let text): try await forward(output.append(text))
                    case .probabilities(let p): pending?.append(Logprobs.chatEntry(p, vocab: host.model.vocab))
                    case .finished(let s): summary = s
                    }
                }
            } catch let error where !(error is SSEWriteError) {
                try await writer.error(APIError.from(error))
                return
            }
            try await forward(output.finish())
            guard let summary else {
                try await writer.error(APIError.from(LlamaError(.cancelled, "the generation ended without a summary")))
                return
            }
            try await send([:], finish: Self.finishReason(summary, toolCalls: sawCalls))
            if includeUsage {
                var c = chunk
                c["choices"] = []
                c["usage"] = Self.usage(summary)
                try await writer.event(.object(c))
            }
            try await writer.done()
        }
    }
}

/// Ids of the calls of one reply: the model's own, else `call_<random>`, stable per index.
struct ToolCallIDs {
    private var ids: [Int: String] = [:]
    mutating func id(_ index: Int, _ given: String?) -> String {
        if let id = ids[index] { return id }
        let id = given.flatMap { $0.isEmpty ? nil : $0 } ?? "call_" + ServerCore.randomID()
        ids[index] = id
        return id
    }
}
