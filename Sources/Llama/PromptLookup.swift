/// Prompt lookup's state through one generation: where in the sequence the guesses are copied from.
///
/// A plain n-gram lookup guesses from the latest earlier occurrence of the last few tokens, and
/// after every divergence (a word changed, a comma added) it looks again: often it lands on another
/// occurrence of a common pair of tokens far from the passage being copied, and a long guess from
/// there is thrown away. Verifying a guess costs compute for each guessed token (on a CPU nearly
/// half a decode each), so that waste is what limits the speed-up. This keeps an *anchor*, the
/// place in the sequence the newest token was copied from:
/// - while the newest token is the anchor's token, copying goes on from there, as far as the
///   caller's limit; so it does after one token left out, added or changed (the newest token is
///   the one after the anchor's, or comes one token late). Later the anchor only says which
///   occurrence of a match is nearest;
/// - otherwise the n-gram is looked up (longest first), taking of its occurrences the one nearest
///   the anchor, and the guess is short (two tokens at first, twice as many after each guess
///   accepted whole, half after a miss), since a fresh match is a weaker sign than an alignment;
/// - an alignment whose guess is rejected outright is dropped;
/// - fresh guesses go into the batch only while they pay (at least half of their tokens accepted,
///   counting from one of two): otherwise the guess's first token is checked for free against the
///   token the model produces next, and the record kept, so that guessing resumes when such
///   guesses start to agree. (One agreeing token is no alignment: it sets no anchor.) Output that
///   hardly repeats its input then costs almost nothing.
struct PromptLookup: Sendable {
    let n: Int
    let minN: Int
    let maxDraft: Int
    /// The index in the sequence the token at `anchoredAt` was copied from (or would have been,
    /// had it agreed): the next guess continues after it if the newest token is that token.
    private(set) var anchor: Int?
    /// Where the token that corresponds to the anchor is: alignment is looked for only in the
    /// token there and the one after it; later the anchor only says which occurrence is nearest.
    private var anchoredAt = 0
    /// The sequence's length when the pending guess was made.
    private var guessedAt = 0
    /// Where the pending guess was copied from, and whether it continued an alignment.
    private var source: Int?
    private var aligned = false
    /// The most tokens guessed from a fresh match.
    private(set) var freshLimit = 2
    /// Fresh guesses' tokens accepted and checked (in the batch or for free), from one of two;
    /// recent ones count most (``record(_:of:)``).
    private(set) var freshAccepted = 1, freshChecked = 2
    /// A fresh guess held back: the token guessed for index `at`.
    private var heldBack: (token: LlamaToken, at: Int)?

    init(n: Int, minN: Int, maxDraft: Int) {
        self.n = n
        self.minN = minN
        self.maxDraft = maxDraft
    }

    /// Guesses up to `limit` tokens after `tokens` (the prompt and every token generated).
    mutating func propose(_ tokens: [LlamaToken], limit: Int) -> [LlamaToken] {
        source = nil
        aligned = false
        let last = tokens.count - 1
        if let guess = heldBack, guess.at < tokens.count {
            heldBack = nil
            record(tokens[guess.at] == guess.token ? 1 : 0, of: 1)
        }
        guard limit > 0, last >= 1 else { return [] }
        guessedAt = tokens.count
        if let a = anchor, last - anchoredAt <= 1 {
            // The newest token is the anchor's token or the next one: copying goes on, or goes on
            // after a token left out, added or changed.
            for k in 0...1 where a + k < last && tokens[a + k] == tokens[last] {
                let from = a + k + 1
                source = from
                aligned = true
                return Array(tokens[from..<min(tokens.count, from + limit)])
            }
        }
        guard let from = Self.match(tokens, n: n, minN: minN, near: anchor.map { $0 + 1 }) else { return [] }
        guard 2 * freshAccepted >= freshChecked else {
            heldBack = (tokens[from], tokens.count)
            return []
        }
        source = from
        return Array(tokens[from..<min(tokens.count, from + min(limit, freshLimit))])
    }

    /// After the model checked the guess: `accepted` of its first `drafted` tokens agreed.
    mutating func accepted(_ accepted: Int, of drafted: Int) {
        guard let from = source, drafted > 0 else { return }
        source = nil
        if aligned, accepted == 0 {
            anchor = nil
            return
        }
        anchor = from + accepted
        anchoredAt = guessedAt + accepted
        if !aligned {
            freshLimit = accepted == drafted ? min(maxDraft, freshLimit * 2) : max(1, freshLimit / 2)
            record(accepted, of: drafted)
        }
    }

    /// Counts fresh guesses' tokens: a recent record, older guesses counting half each time
    /// more than 16 tokens are on it, so that a long stretch of new text does not keep guessing
    /// off once the output starts quoting.
    mutating func record(_ accepted: Int, of checked: Int) {
        freshAccepted += accepted
        freshChecked += checked
        if freshChecked > 16 {
            freshAccepted = (freshAccepted + 1) / 2
            freshChecked = (freshChecked + 1) / 2
        }
    }

    /// Where the tokens after an earlier occurrence of the sequence's last `n` tokens start
    /// (trying `n`, `n - 1`, ... `minN`): the latest occurrence, or with `near`, the one whose
    /// continuation starts nearest to it (the later one of two as near).
    static func match(_ tokens: [LlamaToken], n: Int, minN: Int, near: Int? = nil) -> Int? {
        let count = tokens.count
        guard count >= 2 else { return nil }
        for size in stride(from: min(n, count - 1), through: minN, by: -1) {
            let patternStart = count - size
            var best: Int?
            // Occurrences that start before the pattern itself and have a token after them, latest first.
            var j = patternStart - 1
            while j >= 0 {
                let from = j + size
                if let near, let best, from < near, near - from >= abs(best - near) { break }
                if tokens[j] == tokens[patternStart] {
                    var k = 1
                    while k < size, tokens[j + k] == tokens[patternStart + k] { k += 1 }
                    if k == size {
                        guard let near else { return from }
                        if best == nil || abs(from - near) < abs(best! - near) { best = from }
                    }
                }
                j -= 1
            }
            if let best { return best }
        }
        return nil
    }
}
