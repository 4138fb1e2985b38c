import Foundation

/// Conversations of slots that were handed to other requests, kept in host memory as sequence
/// states so that a later request continuing one of them does not evaluate it again (llama.cpp
/// server's prompt cache, `--cache-ram`).
///
/// The rules are llama-server's: a slot's content is saved when a new request would discard
/// most of it (the request shares less than half of what the slot holds, or shares almost
/// nothing with it); an entry replaces the slot's content when it keeps a larger share of both
/// the entry and the new prompt than the slot's own content does, and keeps at least a quarter
/// of the entry. One difference: llama-server looks for such an entry only when it saves, and
/// so misses one when the slot's own content is mostly kept; here an entry that serves the
/// prompt better is always taken (the slot's content saved first). A restored entry leaves the
/// cache (the slot holds it now); saving a prompt drops the entries it extends; past the byte
/// limit the oldest entries go first.
struct SlotPromptCache {
    struct Entry {
        var tokens: [LlamaToken]
        var state: Data
    }

    /// Oldest first.
    private(set) var entries: [Entry] = []
    /// The most bytes of state kept; nil: no limit.
    let limit: Int?

    init(limit: Int?) { self.limit = limit }

    /// The bytes of state held.
    var bytes: Int { entries.reduce(0) { $0 + $1.state.count } }

    static func sharedPrefix(_ a: [LlamaToken], _ b: [LlamaToken]) -> Int {
        zip(a, b).prefix { $0 == $1 }.count
    }

    /// Whether a slot holding `slotTokens`, of which a new prompt shares `shared`, should be
    /// saved before the prompt replaces it.
    static func shouldSave(slotTokens: [LlamaToken], shared: Int, promptCount: Int) -> Bool {
        guard !slotTokens.isEmpty else { return false }
        // llama-server: picked as the least recently used slot (similarity at most 0.1), or a
        // pick that would lose more than half of the slot's content.
        return Double(shared) / Double(promptCount) <= 0.1 || Double(shared) / Double(slotTokens.count) < 0.5
    }

    /// Whether an entry already holds all of `tokens` (saving them again adds nothing).
    func contains(_ tokens: [LlamaToken]) -> Bool {
        entries.contains { Self.sharedPrefix($0.tokens, tokens) == tokens.count }
    }

    /// Keeps a saved conversation; returns false when it is larger than the whole limit.
    mutating func insert(tokens: [LlamaToken], state: Data) -> Bool {
        if let limit, state.count > limit { return false }
        entries.removeAll { Self.sharedPrefix($0.tokens, tokens) == $0.tokens.count }
        if let limit {
            var held = bytes
            while !entries.isEmpty && held + state.count > limit { held -= entries.removeFirst().state.count }
        }
        entries.append(Entry(tokens: tokens, state: state))
        return true
    }

    /// Removes and returns the entry that serves `prompt` better than the slot's own content
    /// (`slotTokens`, sharing `shared` tokens with the prompt), if one does.
    mutating func take(for prompt: [LlamaToken], slotTokens: [LlamaToken], shared: Int) -> Entry? {
        best(for: prompt, slotTokens: slotTokens, shared: shared).map { entries.remove(at: $0) }
    }

    /// The index of the entry ``take(for:slotTokens:shared:)`` would take.
    func best(for prompt: [LlamaToken], slotTokens: [LlamaToken], shared: Int) -> Int? {
        var keepBest = slotTokens.isEmpty ? -1 : Double(shared) / Double(slotTokens.count)
        var similarityBest = Double(shared) / Double(prompt.count)
        var best: Int?
        for (i, entry) in entries.enumerated() {
            let common = Self.sharedPrefix(entry.tokens, prompt)
            let keep = Double(common) / Double(entry.tokens.count)
            let similarity = Double(common) / Double(prompt.count)
            if keep < 0.25 { continue }
            if keepBest < keep && similarityBest < similarity {
                keepBest = keep
                similarityBest = similarity
                best = i
            }
        }
        return best
    }
}
