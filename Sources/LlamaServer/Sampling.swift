import HTTPTypes
import Foundation
import Llama

/// The sampling fields of a request (OpenAI's, and llama.cpp's `top_k`, `min_p`,
/// `repeat_penalty`) as a sampler chain. Absent fields take llama-server's defaults:
/// temperature 0.8, top_k 40, top_p 0.95, min_p 0.05; temperature 0 is greedy.
enum SamplingRequest {
    static func chain(_ b: JSONBody, vocabCount: Int32) throws(APIError) -> SamplerChain {
        let temperature = try b.number("temperature", in: 0...2) ?? 0.8
        let topP = try b.number("top_p", in: 0...1) ?? 0.95
        let topK = try b.int("top_k", in: 0...Int(Int32.max)) ?? 40
        let minP = try b.number("min_p", in: 0...1) ?? 0.05
        let presence = try b.number("presence_penalty", in: -2...2) ?? 0
        let frequency = try b.number("frequency_penalty", in: -2...2) ?? 0
        let repeatPenalty = try b.number("repeat_penalty", in: 0...10) ?? 1
        let seed = try b.int("seed", in: Int(Int64.min)...Int(Int64.max))
        var stages: [SamplerStage] = []
        if let bias = try b.object("logit_bias") {
            var biases: [LlamaToken: Float] = [:]
            for (key, _) in bias.object {
                guard let token = Int32(key), token >= 0, token < vocabCount else {
                    throw APIError.invalid("logit_bias", "`logit_bias` keys must be token ids of the model (0..<\(vocabCount)), not \"\(key)\"")
                }
                guard let value = try bias.number(key, in: -100...100) else { continue }
                biases[token] = value <= -100 ? -Float.infinity : Float(value)
            }
            if !biases.isEmpty { stages.append(.logitBias(biases)) }
        }
        if presence != 0 || frequency != 0 || repeatPenalty != 1 {
            stages.append(.penalties(lastN: 64, repeat: Float(repeatPenalty), frequency: Float(frequency), presence: Float(presence)))
        }
        if temperature == 0 {
            stages.append(.greedy)
            return SamplerChain(stages)
        }
        if topK > 0 { stages.append(.topK(Int32(topK))) }
        if topP < 1 { stages.append(.topP(Float(topP))) }
        if minP > 0 { stages.append(.minP(Float(minP))) }
        stages.append(.temperature(Float(temperature)))
        let seedValue = seed.map { $0 < 0 ? SamplerChain.randomSeed : UInt32(truncatingIfNeeded: $0) } ?? SamplerChain.randomSeed
        stages.append(.distribution(seed: seedValue))
        return SamplerChain(stages)
    }

    /// `stop`: a string or up to 16 strings.
    static func stops(_ b: JSONBody) throws(APIError) -> [String] {
        let stops = try b.strings("stop") ?? []
        guard stops.count <= 16 else { throw APIError.invalid("stop", "`stop` holds at most 16 sequences, not \(stops.count)") }
        if stops.contains(where: \.isEmpty) { throw APIError.invalid("stop", "`stop` sequences must not be empty") }
        return stops
    }

    /// `max_tokens` (or `max_completion_tokens`; llama.cpp's `n_predict`): positive and at most
    /// a slot's context; absent: what the context leaves after the prompt.
    static func maxTokens(_ b: JSONBody, sequenceLength: Int) throws(APIError) -> Int? {
        for key in ["max_completion_tokens", "max_tokens", "n_predict"] {
            guard let n = try b.int(key) else { continue }
            guard n > 0 else { throw APIError.invalid(key, "`\(key)` must be positive, not \(n)") }
            guard n <= sequenceLength else {
                throw APIError.invalid(key, "`\(key)` is \(n), more than a request can hold here (\(sequenceLength) tokens "
                    + "of context per slot, prompt included)", code: "context_length_exceeded")
            }
            return n
        }
        return nil
    }

    /// Fields OpenAI documents that this server does not implement: a 400 naming the field
    /// (`n` > 1).
    static func rejectUnsupported(_ b: JSONBody) throws(APIError) {
        if let n = try b.int("n"), n != 1 {
            throw APIError.unsupported("n", "`n` must be 1: this server returns one choice per request (send several requests)")
        }
    }

    /// Rejects a field outside `known`, naming it.
    static func rejectUnknown(_ b: JSONBody, known: Set<String>) throws(APIError) {
        for key in b.object.keys where !known.contains(key) {
            throw APIError.invalid(key, "unrecognized request field `\(key)`", code: "unknown_parameter")
        }
    }

    /// Fields OpenAI documents as optional hints: accepted and ignored.
    static let ignoredHints: Set<String> = [
        "user", "store", "metadata", "service_tier", "prompt_cache_key", "safety_identifier", "reasoning_effort",
        "verbosity", "modalities", "prediction", "web_search_options", "cache_prompt", "stream_options", "echo_prompt",
    ]
    static let samplingFields: Set<String> = [
        "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "repeat_penalty", "seed",
        "logit_bias", "stop", "max_tokens", "max_completion_tokens", "n_predict", "n", "logprobs", "top_logprobs",
        "model", "stream", "stream_options",
    ]
}
