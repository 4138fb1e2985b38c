import Foundation
import FuzzSupport
import Llama
import LlamaJinja
@_spi(Testing) import LlamaServer

// Request bodies through LlamaServer's handlers, as the HTTP server runs them (routing, JSON,
// validation, templates, grammars, generation), without a socket. The first byte picks the
// endpoint; the rest is the body. Generation is clamped to 2 tokens where a body asks for more (so
// that each input is fast); everything else is the fuzzer's. Findings: a crash; a status outside
// 200/400/404/503/504; a 5xx other than those; a body that is not JSON (or, for a stream, an event
// that is not); a slot still busy after the request ended.

let endpoints = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize", "/detokenize", "/v1/rerank"]

nonisolated(unsafe) var server: LlamaServer!

@main
enum FuzzServer {
    static func main() {
        Fuzz.initialize { dir in
            let seeds: [(Int, String)] = [
                (0, #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"temperature":0}"#),
                (0, #"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Name a colour."}]}],"stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2}"#),
                (0, #"{"messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"required"}"#),
                (0, #"{"messages":[{"role":"user","content":"JSON"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"integer"}}}}}}"#),
                (0, #"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}],"stop":["."],"seed":1,"top_k":5,"min_p":0.1,"logit_bias":{"42":-100}}"#),
                (1, #"{"prompt":"The sea is","max_tokens":2,"logprobs":2,"temperature":0.5,"presence_penalty":0.5}"#),
                (1, #"{"prompt":[1,2,3],"stream":true,"response_format":{"type":"json_object"}}"#),
                (2, #"{"input":["a cat","a dog"],"encoding_format":"base64"}"#),
                (3, #"{"content":"Hello <|im_start|>","with_pieces":true,"add_special":true}"#),
                (4, #"{"tokens":[1,2,3,49151]}"#),
                (5, #"{"query":"cats","documents":["a cat","a dog"],"top_n":1}"#),
            ]
            for (i, seed) in seeds.enumerated() {
                try Fuzz.seed(Data([UInt8(seed.0)] + Array(seed.1.utf8)), i, in: dir, name: "request")
            }
        }
        var configuration = LlamaServerConfiguration()
        configuration.slots = 2
        configuration.contextLength = 1024
        configuration.threads = 1
        configuration.queueSize = 4
        configuration.requestTimeout = .seconds(8)
        do {
            server = try LlamaServer(models: [ServedModel(id: "smol", model: Fuzz.model)], configuration: configuration)
        } catch {
            Fuzz.setupFailure("the server did not start: \(error)")
        }
        Fuzz.run(test)
    }
}

/// The body with its generation length clamped to 2 tokens (a body that is not a JSON object is left as it is).
func clamped(_ bytes: [UInt8]) -> [UInt8] {
    guard let text = String(validating: bytes, as: UTF8.self), case .object(var object)? = try? JSONValue(parsing: text) else {
        return bytes
    }
    var lengthGiven = false
    for key in ["max_tokens", "max_completion_tokens", "n_predict"] {
        guard let value = object[key] else { continue }
        lengthGiven = true
        if case .int(let n) = value, n > 2 { object[key] = .int(2) }
        if case .double(let d) = value, d > 2 { object[key] = .int(2) }
    }
    if !lengthGiven { object["max_tokens"] = .int(2) }
    return Array(JSONValue.object(object).jsonText.utf8)
}

func test(_ input: UnsafeBufferPointer<UInt8>) {
    guard let first = input.first else { return }
    let path = endpoints[Int(first) % endpoints.count]
    let body = clamped(Array(input.dropFirst()))
    let server = server!
    let outcome = Fuzz.blocking { () async -> (Int, String, LlamaSlots.Statistics?) in
        let (status, text) = await server.respond(path: path, body: body)
        // The slot of a finished request is free within a few engine steps.
        var stats = await server.statistics(model: "smol")
        var steps = 0
        while let s = stats, s.busySlots + s.queued > 0, steps < 20 {
            stats = await server.waitForStep(model: "smol", after: s.steps)
            steps += 1
        }
        return (status, text, stats)
    }
    guard case .success(let (status, text, stats)) = outcome else { Fuzz.finding("the request did not complete") }
    let request = String(decoding: body.prefix(2000), as: UTF8.self)
    guard [200, 400, 404, 503, 504].contains(status) else {
        Fuzz.finding("\(path) answered \(status) to \(request):\n\(text.prefix(2000))")
    }
    if text.hasPrefix("data: ") {
        for line in text.split(separator: "\n") where line.hasPrefix("data: ") && line != "data: [DONE]" {
            if (try? JSONValue(parsing: String(line.dropFirst(6)))) == nil {
                Fuzz.finding("\(path) streamed an event that is not JSON: \(line.prefix(500)) for \(request)")
            }
        }
    } else if (try? JSONValue(parsing: text)) == nil {
        Fuzz.finding("\(path) answered \(status) with a body that is not JSON: \(text.prefix(500)) for \(request)")
    }
    if let stats, stats.busySlots + stats.queued > 0 {
        Fuzz.finding("a slot is still busy after \(path) ended: \(stats) for \(request)")
    }
}
