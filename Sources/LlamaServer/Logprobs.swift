import Llama

/// `logprobs` as OpenAI's two APIs ask for and return them, from the engine's
/// ``TokenProbabilities`` (the softmax of the raw logits, as llama-server reports them).
enum Logprobs {
    /// Chat: `logprobs: true` and `top_logprobs` 0...20 (which needs `logprobs`). nil: off.
    static func chatRequest(_ b: JSONBody) throws(APIError) -> Int? {
        let on = try b.bool("logprobs") ?? false
        let top = try b.int("top_logprobs", in: 0...TokenProbabilities.maxAlternatives)
        if top != nil && !on {
            throw APIError.invalid("top_logprobs", "`top_logprobs` needs `logprobs: true`")
        }
        return on ? (top ?? 0) : nil
    }

    /// Completions: `logprobs` 0...5, the alternatives per position. nil: off.
    static func completionsRequest(_ b: JSONBody) throws(APIError) -> Int? {
        try b.int("logprobs", in: 0...5)
    }

    /// A token's text and bytes (its piece; a piece may be part of a character, so `bytes` is exact
    /// and `token` is the bytes read as UTF-8 with replacement characters).
    static func piece(_ token: LlamaToken, vocab: LlamaVocab) -> (text: String, bytes: [UInt8]) {
        let bytes = (try? vocab.piece(token, special: true)) ?? []
        return (String(decoding: bytes, as: UTF8.self), bytes)
    }

    /// One entry of a chat choice's `logprobs.content`.
    static func chatEntry(_ p: TokenProbabilities, vocab: LlamaVocab) -> JSONValue {
        func item(_ token: LlamaToken, _ logprob: Float) -> JSONObject {
            let (text, bytes) = piece(token, vocab: vocab)
            return ["token": .string(text), "logprob": JSONValue.number(Double(logprob)),
                    "bytes": .array(bytes.map { .int(Int($0)) })]
        }
        var entry = item(p.token, p.logprob)
        entry["top_logprobs"] = .array(p.top.map { .object(item($0.token, $0.logprob)) })
        return .object(entry)
    }

    /// A chat choice's `logprobs` object for these entries (null when logprobs were not asked for).
    static func chatChoice(_ entries: [JSONValue]?) -> JSONValue {
        guard let entries else { return .null }
        return ["content": .array(entries), "refusal": .null]
    }

    /// The legacy completions shape: parallel arrays, `top_logprobs` as text → logprob maps,
    /// `text_offset` counting characters of the completion text before each token.
    struct Completions {
        var tokens: [JSONValue] = []
        var tokenLogprobs: [JSONValue] = []
        var top: [JSONValue] = []
        var offsets: [JSONValue] = []
        var offset: Int

        init(offset: Int = 0) { self.offset = offset }

        mutating func add(_ p: TokenProbabilities, vocab: LlamaVocab) {
            let text = piece(p.token, vocab: vocab).text
            tokens.append(.string(text))
            tokenLogprobs.append(JSONValue.number(Double(p.logprob)))
            var alternatives = JSONObject()
            for c in p.top where alternatives[piece(c.token, vocab: vocab).text] == nil {
                alternatives[piece(c.token, vocab: vocab).text] = JSONValue.number(Double(c.logprob))
            }
            top.append(.object(alternatives))
            offsets.append(.int(offset))
            offset += text.count
        }

        /// The object, and an empty record continuing at the same offset (for the next stream chunk).
        mutating func take() -> JSONValue {
            let value: JSONValue = ["tokens": .array(tokens), "token_logprobs": .array(tokenLogprobs),
                                    "top_logprobs": .array(top), "text_offset": .array(offsets)]
            self = Completions(offset: offset)
            return value
        }
    }
}
