import Foundation

/// The log-probability of a sampled token and of the most probable tokens at its position:
/// the softmax of the model's raw logits (before any sampler stage), as llama.cpp's server reports
/// `logprobs` / `n_probs`. Sent as a ``GenerationEvent/probabilities(_:)`` event just before the
/// token's ``GenerationEvent/token(_:text:)`` when ``GenerationOptions/probabilities`` asks for it.
public struct TokenProbabilities: Sendable, Equatable {
    /// A token and its natural-log probability.
    public struct Candidate: Sendable, Equatable {
        /// The token.
        public var token: LlamaToken
        /// Its natural-log probability.
        public var logprob: Float

        /// A token and its log-probability.
        public init(token: LlamaToken, logprob: Float) {
            self.token = token
            self.logprob = logprob
        }
    }

    /// The token sampled.
    public var token: LlamaToken
    /// Its natural-log probability.
    public var logprob: Float
    /// The most probable tokens, most probable first (ties by lower token id); as many as asked.
    public var top: [Candidate]

    /// The probabilities at one position; every parameter is the property of the same name.
    public init(token: LlamaToken, logprob: Float, top: [Candidate]) {
        self.token = token
        self.logprob = logprob
        self.top = top
    }

    /// The most alternatives one position reports (OpenAI's `top_logprobs` limit).
    public static let maxAlternatives = 20

    /// Log-softmax over `logits` (one per vocabulary token), for `chosen` and the `alternatives`
    /// most probable tokens. Computed in Double; the sum is over every token.
    static func compute(logits: UnsafePointer<Float>, count: Int, chosen: LlamaToken, alternatives: Int) -> TokenProbabilities {
        let values = UnsafeBufferPointer(start: logits, count: count)
        var high = -Float.infinity
        for v in values where v > high { high = v }
        var sum = 0.0
        for v in values { sum += exp(Double(v - high)) }
        let logSum = log(sum)
        func logprob(_ v: Float) -> Float { Float(Double(v - high) - logSum) }

        // The best `alternatives` by a bounded insertion (alternatives is at most 20).
        let wanted = max(0, min(alternatives, count))
        var best: [(token: LlamaToken, logit: Float)] = []
        best.reserveCapacity(wanted + 1)
        if wanted > 0 {
            for (i, v) in values.enumerated() {
                if best.count == wanted, let last = best.last, v <= last.logit { continue }
                var at = best.count
                while at > 0 && best[at - 1].logit < v { at -= 1 }
                best.insert((LlamaToken(i), v), at: at)
                if best.count > wanted { best.removeLast() }
            }
        }
        let chosenLogit = chosen >= 0 && Int(chosen) < count ? values[Int(chosen)] : -Float.infinity
        return TokenProbabilities(token: chosen, logprob: logprob(chosenLogit),
                                  top: best.map { Candidate(token: $0.token, logprob: logprob($0.logit)) })
    }
}

extension GenerationOptions {
    /// Refuses a ``probabilities`` count out of range.
    func checkProbabilities() throws(LlamaError) {
        guard let n = probabilities else { return }
        guard (0...TokenProbabilities.maxAlternatives).contains(n) else {
            throw LlamaError(.invalidArgument, "probabilities must be within 0...\(TokenProbabilities.maxAlternatives), not \(n)")
        }
        guard speculation == nil else {
            throw LlamaError(.unsupported, "log-probabilities are not reported with speculative decoding: leave one of "
                + "probabilities and speculation unset")
        }
    }
}
