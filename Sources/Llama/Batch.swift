/// Tokens to evaluate in one decode call, possibly from several sequences at once.
///
/// The corresponding C type is `llama_batch`; this is its Swift value, copied into the
/// context's own `llama_batch` when decoded.
public struct LlamaBatch: Sendable, Equatable {
    /// The tokens to evaluate, in order.
    public private(set) var tokens: [LlamaToken] = []
    /// Each token's position in its sequence.
    public private(set) var positions: [Int32] = []
    /// The sequences each token belongs to.
    public private(set) var sequences: [[Int32]] = []
    /// Whether logits (or embeddings) are computed for each token.
    public private(set) var outputs: [Bool] = []

    /// An empty batch.
    public init() {}

    /// The number of tokens in the batch.
    public var count: Int { tokens.count }
    /// Whether the batch holds no token.
    public var isEmpty: Bool { tokens.isEmpty }

    /// Adds a token at `position` of each sequence in `sequences`.
    public mutating func add(_ token: LlamaToken, position: Int32, sequences: [Int32] = [0], output: Bool = false) {
        tokens.append(token)
        positions.append(position)
        self.sequences.append(sequences)
        outputs.append(output)
    }

    /// Adds a prompt to one sequence, with output for its last token only.
    public mutating func add(prompt: [LlamaToken], startingAt start: Int32 = 0, sequence: Int32 = 0,
                             outputLast: Bool = true) {
        for (i, t) in prompt.enumerated() {
            add(t, position: start + Int32(i), sequences: [sequence], output: outputLast && i == prompt.count - 1)
        }
    }

    /// Removes every token, to fill the batch again.
    public mutating func removeAll() {
        tokens.removeAll(keepingCapacity: true)
        positions.removeAll(keepingCapacity: true)
        sequences.removeAll(keepingCapacity: true)
        outputs.removeAll(keepingCapacity: true)
    }

    /// The indexes of tokens with output, in the order logits are stored.
    public var outputIndexes: [Int32] { outputs.indices.filter { outputs[$0] }.map { Int32($0) } }
}
