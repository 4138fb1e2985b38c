import LlamaRaw

/// A model's tokenizer. It keeps its model alive, so it stays valid however long it is kept.
public struct LlamaVocab: @unchecked Sendable {
    /// The model whose tokenizer this is: llama.cpp frees the vocabulary with it.
    let model: LlamaModel
    let pointer: OpaquePointer
    var runtime: LlamaRuntime { model.runtime }
    var c: LlamaSymbols { runtime.raw }

    init(model: LlamaModel, pointer: OpaquePointer) {
        self.model = model
        self.pointer = pointer
    }

    /// The number of tokens.
    public var count: Int32 { c.llama_vocab_n_tokens(pointer) }

    /// Special tokens (nil when the model has none).
    public var bos: LlamaToken? { valid(c.llama_vocab_bos(pointer)) }
    /// End of sequence.
    public var eos: LlamaToken? { valid(c.llama_vocab_eos(pointer)) }
    /// End of turn.
    public var eot: LlamaToken? { valid(c.llama_vocab_eot(pointer)) }
    /// Separator.
    public var sep: LlamaToken? { valid(c.llama_vocab_sep(pointer)) }
    /// Newline.
    public var newline: LlamaToken? { valid(c.llama_vocab_nl(pointer)) }
    /// Padding.
    public var pad: LlamaToken? { valid(c.llama_vocab_pad(pointer)) }
    /// Fill-in-the-middle: the prefix marker.
    public var fillInMiddlePrefix: LlamaToken? { valid(c.llama_vocab_fim_pre(pointer)) }
    /// Fill-in-the-middle: the suffix marker.
    public var fillInMiddleSuffix: LlamaToken? { valid(c.llama_vocab_fim_suf(pointer)) }
    /// Fill-in-the-middle: the middle marker.
    public var fillInMiddleMiddle: LlamaToken? { valid(c.llama_vocab_fim_mid(pointer)) }
    /// Whether tokenizing with `addSpecial` puts BOS in front.
    public var addsBOS: Bool { c.llama_vocab_get_add_bos(pointer) }
    /// Whether tokenizing with `addSpecial` puts EOS at the end.
    public var addsEOS: Bool { c.llama_vocab_get_add_eos(pointer) }
    /// Whether the model's inputs put SEP between two texts (rerankers, BERT-style models).
    public var addsSEP: Bool { c.llama_vocab_get_add_sep(pointer) }

    private func valid(_ t: LlamaToken) -> LlamaToken? { t == LLAMA_TOKEN_NULL ? nil : t }

    /// Whether a token ends generation (EOS, EOT, ...).
    public func isEndOfGeneration(_ token: LlamaToken) -> Bool { c.llama_vocab_is_eog(pointer, token) }
    /// Whether a token is a control token.
    public func isControl(_ token: LlamaToken) -> Bool { c.llama_vocab_is_control(pointer, token) }

    /// The texts of the tokens that tokenizing with `parseSpecial` turns into control tokens
    /// (control and unknown tokens; user-defined tokens are matched either way), longest first.
    public var controlTokenTexts: [String] {
        var texts: [String] = []
        let mask = LLAMA_TOKEN_ATTR_CONTROL.rawValue | LLAMA_TOKEN_ATTR_UNKNOWN.rawValue
        for t in 0..<count where c.llama_vocab_get_attr(pointer, t).rawValue & mask != 0 {
            guard let text = c.llama_vocab_get_text(pointer, t) else { continue }
            let s = String(cString: text)
            if !s.isEmpty { texts.append(s) }
        }
        return Array(Set(texts)).sorted { $0.utf8.count != $1.utf8.count ? $0.utf8.count > $1.utf8.count : $0 < $1 }
    }

    func check(_ token: LlamaToken) throws(LlamaError) {
        guard token >= 0, token < count else {
            throw LlamaError(.invalidArgument, "token \(token) is not in the vocabulary (0..<\(count))")
        }
    }

    /// Turns text into tokens.
    ///
    /// - Parameters:
    ///   - text: the text to tokenize.
    ///   - addSpecial: add the model's BOS/EOS as it wants them.
    ///   - parseSpecial: read special-token text (`<|im_start|>`) as the special token.
    public func tokenize(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = false) throws(LlamaError) -> [LlamaToken] {
        var utf8 = Array(text.utf8)
        return try tokenize(utf8: &utf8, addSpecial: addSpecial, parseSpecial: parseSpecial)
    }

    /// Turns UTF-8 bytes into tokens; bytes that are not valid UTF-8 are an error.
    public func tokenize(bytes: [UInt8], addSpecial: Bool = true, parseSpecial: Bool = false) throws(LlamaError) -> [LlamaToken] {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw LlamaError(.invalidUTF8, "the text to tokenize is not valid UTF-8")
        }
        var utf8 = bytes
        return try tokenize(utf8: &utf8, addSpecial: addSpecial, parseSpecial: parseSpecial)
    }

    private func tokenize(utf8: inout [UInt8], addSpecial: Bool, parseSpecial: Bool) throws(LlamaError) -> [LlamaToken] {
        guard utf8.count < Int32.max else { throw LlamaError(.invalidArgument, "the text is too long to tokenize") }
        let length = Int32(utf8.count)
        var tokens = [LlamaToken](repeating: 0, count: utf8.count + 2)
        func run(_ tokens: inout [LlamaToken]) -> Int32 {
            utf8.withUnsafeBufferPointer { text in
                text.withMemoryRebound(to: CChar.self) { chars in
                    tokens.withUnsafeMutableBufferPointer {
                        c.llama_tokenize(pointer, chars.baseAddress, length, $0.baseAddress, Int32($0.count),
                                         addSpecial, parseSpecial)
                    }
                }
            }
        }
        var n = run(&tokens)
        if n < 0 {  // the buffer was too small; -n is the size needed
            tokens = [LlamaToken](repeating: 0, count: Int(-n))
            n = run(&tokens)
        }
        guard n >= 0 else { throw LlamaError(.invalidArgument, "llama.cpp could not tokenize the text", status: n) }
        return Array(tokens.prefix(Int(n)))
    }

    /// The bytes of one token's text (a token may hold part of a UTF-8 character).
    ///
    /// - Parameters:
    ///   - token: the token.
    ///   - special: render special tokens as their text instead of nothing.
    public func piece(_ token: LlamaToken, special: Bool = false) throws(LlamaError) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: 64)
        return try withPiece(token, special: special, buffer: &buffer) { Array($0) }
    }

    /// Calls `body` with the bytes of a token's text, rendered into a reusable buffer.
    func withPiece<R>(_ token: LlamaToken, special: Bool, buffer: inout [CChar],
                      _ body: (UnsafeBufferPointer<UInt8>) -> R) throws(LlamaError) -> R {
        try check(token)
        var n = c.llama_token_to_piece(pointer, token, &buffer, Int32(buffer.count), 0, special)
        if n < 0 {
            buffer = [CChar](repeating: 0, count: Int(-n))
            n = c.llama_token_to_piece(pointer, token, &buffer, Int32(buffer.count), 0, special)
        }
        let count = Int(max(n, 0))
        return buffer.withUnsafeBufferPointer { chars in
            chars.withMemoryRebound(to: UInt8.self) { body(UnsafeBufferPointer(rebasing: $0.prefix(count))) }
        }
    }

    /// Turns tokens back into text; bytes that do not form UTF-8 become U+FFFD.
    public func detokenize(_ tokens: [LlamaToken], removeSpecial: Bool = false, unparseSpecial: Bool = false) throws(LlamaError) -> String {
        for t in tokens { try check(t) }
        var buffer = [CChar](repeating: 0, count: tokens.count * 8 + 16)
        func run(_ buffer: inout [CChar]) -> Int32 {
            tokens.withUnsafeBufferPointer { t in
                buffer.withUnsafeMutableBufferPointer {
                    c.llama_detokenize(pointer, t.baseAddress, Int32(t.count), $0.baseAddress, Int32($0.count),
                                       removeSpecial, unparseSpecial)
                }
            }
        }
        var n = run(&buffer)
        if n < 0 {
            buffer = [CChar](repeating: 0, count: Int(-n))
            n = run(&buffer)
        }
        return String(decoding: buffer.prefix(Int(max(n, 0))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Turns a stream of byte chunks into text without ever splitting a UTF-8 character: a
/// character whose bytes span two tokens comes out whole with the second one.
public struct UTF8StreamDecoder: Sendable {
    private var pending: [UInt8] = []

    /// A decoder with nothing held back.
    public init() {}

    /// Adds bytes and returns the text that is now complete.
    public mutating func append(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { append($0) }
    }

    /// Adds bytes and returns the text that is now complete.
    public mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if pending.isEmpty {
            let complete = Self.completePrefixLength(bytes)
            if complete < bytes.count { pending.append(contentsOf: bytes[complete...]) }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[..<complete]), as: UTF8.self)
        }
        pending.append(contentsOf: bytes)
        let complete = Self.completePrefixLength(pending)
        let text = String(decoding: pending.prefix(complete), as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Returns what is left; an unfinished character becomes U+FFFD.
    public mutating func finish() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The length of the prefix that does not end inside a character that more bytes could complete.
    static func completePrefixLength<C: RandomAccessCollection<UInt8>>(_ bytes: C) -> Int where C.Index == Int {
        // Look back over at most 3 bytes for the start of the last character.
        var i = bytes.count - 1
        var back = 0
        while i >= 0, back < 4 {
            let b = bytes[i]
            if b & 0xC0 != 0x80 {  // not a continuation byte: a character starts here
                let needed = b < 0x80 ? 1 : b & 0xE0 == 0xC0 ? 2 : b & 0xF0 == 0xE0 ? 3 : b & 0xF8 == 0xF0 ? 4 : 1
                return bytes.count - i < needed ? i : bytes.count
            }
            i -= 1
            back += 1
        }
        return bytes.count
    }
}
