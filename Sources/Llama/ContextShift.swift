import LlamaRaw

/// What generation does when the sequence fills its share of the context window
/// (``LlamaContext/sequenceLength``): stop, or make room and go on, as llama.cpp's
/// `--context-shift` does.
public enum ContextShift: Sendable, Hashable {
    /// Stop with ``StopReason/contextFull`` (llama.cpp's default, `--no-context-shift`).
    case off
    /// Keep the first `keep` tokens of the prompt (llama.cpp's `--keep N`; the prompt's BOS token
    /// is kept too; -1 or more than the prompt: the whole prompt), remove the older half of the
    /// tokens after them, move the newer half down to close the gap and go on generating. The
    /// model then no longer sees the removed text.
    case on(keep: Int)

    /// How many tokens at the start of the sequence stay, for this prompt, as llama.cpp's
    /// tools/completion counts them (`--keep N` plus the BOS token), and at most the window less 4.
    func keptTokens(prompt: [LlamaToken], bos: LlamaToken?, sequenceLength: Int) -> Int {
        guard case .on(let keep) = self else { return 0 }
        var n = keep
        if keep < 0 || keep > prompt.count {
            n = prompt.count
        } else if let bos, prompt.first == bos {
            n += 1
        }
        return max(0, min(n, sequenceLength - 4))
    }
}

extension LlamaContext {
    /// Makes room at the end of sequence 0, which holds `position` tokens and is full: with
    /// shifting on, removes positions `keep..<keep + n_discard` (n_discard = (position - keep) / 2,
    /// llama.cpp's rule), moves the later ones down by n_discard, and returns n_discard. Returns
    /// nil, with the reason in `why`, when shifting is off or the cache cannot do it.
    /// The corresponding C functions are `llama_memory_can_shift`, `llama_memory_seq_rm` and
    /// `llama_memory_seq_add`.
    func shiftWhenFull(_ setting: ContextShift, prompt: [LlamaToken], position: Int, why: inout String?) -> Int? {
        guard setting != .off else {
            why = "the context window (\(capacityDescription)) is full and context shift is off: "
                + "set GenerationOptions.contextShift (--context-shift), or create the context with a larger contextLength"
            return nil
        }
        guard c.llama_memory_can_shift(memory) else {
            why = "the context window is full and this model's cache cannot shift positions (llama_memory_can_shift is false: "
                + "its positions have more than one dimension, as with M-RoPE, or its architecture forbids it); "
                + "create the context with a larger contextLength"
            return nil
        }
        let keep = setting.keptTokens(prompt: prompt, bos: model.vocab.bos, sequenceLength: sequenceLength)
        let left = position - keep
        let discard = min(left / 2, max(0, left - 1))
        guard discard > 0 else {
            why = "the context window is full and keeping \(keep) tokens leaves nothing to shift: keep fewer tokens"
            return nil
        }
        guard c.llama_memory_seq_rm(memory, 0, Int32(keep), Int32(keep + discard)) else {
            why = "the context window is full and this model's cache cannot remove part of a sequence (a recurrent state): "
                + "create the context with a larger contextLength"
            return nil
        }
        c.llama_memory_seq_add(memory, 0, Int32(keep + discard), Int32(position), Int32(-discard))
        if var h = history, h.count >= keep + discard {
            h.removeSubrange(keep..<(keep + discard))
            history = h
        } else {
            history = nil
        }
        return discard
    }
}

extension ChatSession {
    /// The conversation as a prompt. With context shift on and a conversation longer than the
    /// window, the oldest turns after the leading system messages are left out of the prompt (they
    /// stay in ``messages``) until it takes at most half the window, leaving the reply room before
    /// the first shift; the newest user message always stays.
    func fittingPrompt(_ conversation: [ChatMessage], options: GenerationOptions) throws(LlamaError) -> String {
        let model = context.model
        var kept = conversation
        var prompt = try model.formatChat(kept, addAssistantPrompt: true, template: template)
        guard options.contextShift != .off else { return prompt }
        func tokens(_ text: String) throws(LlamaError) -> Int {
            try model.vocab.tokenize(text, addSpecial: options.addSpecial, parseSpecial: options.parseSpecial).count
        }
        guard try tokens(prompt) >= context.sequenceLength else { return prompt }
        let system = kept.prefix { $0.role == "system" }.count
        while kept.count - system > 1, try tokens(prompt) > context.sequenceLength / 2 {
            kept.remove(at: system)
            // A conversation resumes with a user turn.
            while kept.count - system > 1, kept[system].role != "user" { kept.remove(at: system) }
            prompt = try model.formatChat(kept, addAssistantPrompt: true, template: template)
        }
        return prompt
    }
}
