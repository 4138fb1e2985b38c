public import Foundation
@_exported public import LlamaChat
@_exported public import LlamaJinja
@_exported public import LlamaSchema
import LlamaRaw
import Synchronization

extension LlamaRuntime {
    /// The names of the chat templates llama.cpp knows (`llama_chat_builtin_templates`).
    public var builtinChatTemplates: [String] {
        let n = raw.llama_chat_builtin_templates(nil, 0)
        guard n > 0 else { return [] }
        var names = [UnsafePointer<CChar>?](repeating: nil, count: Int(n))
        _ = raw.llama_chat_builtin_templates(&names, names.count)
        return names.compactMap { $0.map { String(cString: $0) } }
    }
}

extension LlamaModel {
    /// The model's Jinja chat template as a `ChatTemplate`: `name` selects a named variant
    /// (`tokenizer.chat_template.<name>`, e.g. `tool_use`); nil when the model has none.
    public func jinjaChatTemplate(named name: String? = nil) throws(LlamaError) -> ChatTemplate? {
        guard let source = chatTemplate(named: name) else { return nil }
        do { return try ChatTemplate(source) } catch {
            throw LlamaError(.template, "the model's chat template does not parse: \(error.description)")
        }
    }

    /// The texts of the beginning- and end-of-sequence tokens, as templates read them.
    public var specialTokenTexts: (bos: String, eos: String) {
        let v = vocab
        func text(_ t: LlamaToken?) -> String {
            guard let t, let bytes = try? v.piece(t, special: true) else { return "" }
            return String(decoding: bytes, as: UTF8.self)
        }
        return (text(v.bos), text(v.eos))
    }

    /// Formats a conversation into prompt text with a chat template.
    ///
    /// By default the model's own Jinja template renders it (with the `tool_use` variant when
    /// tools are given and the model has one), with jinja2's semantics. A `template` that names
    /// one of llama.cpp's built-in formats (`LlamaRuntime.builtinChatTemplates`, e.g. "chatml")
    /// goes through `llama_chat_apply_template` instead; any other `template` is Jinja source.
    ///
    /// The result is meant to be tokenized with `parseSpecial` (``GenerationOptions/parseSpecial``,
    /// on by default), so that the template's own special tokens (`<|im_start|>`) become tokens.
    /// Text of a control token inside a message (content, text parts, reasoning) would become one
    /// too, letting whoever wrote the message end a turn or forge another role's: by default
    /// such text is neutralised, with a zero-width space (U+200B) after its first character, so
    /// that it reaches the model as plain text.
    ///
    /// - Parameters:
    ///   - messages: the conversation, in order.
    ///   - addAssistantPrompt: end with the start of an assistant turn, for generating the reply.
    ///   - template: Jinja source, or the name of one of llama.cpp's built-in formats; nil: the model's own template.
    ///   - tools: tools the model may call, rendered by the template.
    ///   - variables: more template variables (`enable_thinking`, `reasoning_effort`, ...).
    ///   - now: the time the template's `strftime_now` reads (nil: the current time).
    ///   - parseSpecialInContent: leave control-token text in messages as it is (trusted messages only).
    ///   - mediaMarker: the projector's ``LlamaProjector/marker``, written where each image or
    ///     audio part goes (`ChatMessage/templateValue(mediaMarker:)`); nil: libmtmd's default.
    ///     Given, the marker's text inside messages is neutralised too, so that only media parts
    ///     make markers.
    public func formatChat(_ messages: [ChatMessage], addAssistantPrompt: Bool = true, template: String? = nil,
                           tools: [ToolDefinition] = [], variables: [String: JSONValue] = [:],
                           now: Date? = nil, parseSpecialInContent: Bool = false,
                           mediaMarker: String? = nil) throws(LlamaError) -> String {
        let messages = parseSpecialInContent ? messages : neutralisingControlTokens(in: messages, marker: mediaMarker)
        let marker = mediaMarker ?? ChatMedia.defaultMarker
        if let template, runtime.builtinChatTemplates.contains(template) {
            return try applyBuiltinTemplate(template, messages, addAssistantPrompt: addAssistantPrompt, mediaMarker: marker)
        }
        let chosen: ChatTemplate
        if let template {
            do { chosen = try ChatTemplate(template) } catch {
                throw LlamaError(.template, "the chat template does not parse: \(error.description)")
            }
        } else if !tools.isEmpty, let t = try jinjaChatTemplate(named: "tool_use") {
            chosen = t
        } else if let t = try jinjaChatTemplate() {
            chosen = t
        } else {
            throw LlamaError(.unsupported, "the model has no chat template: pass one (Jinja source, or a built-in name such as "
                + "\"chatml\", see LlamaRuntime.builtinChatTemplates), or use plain completion")
        }
        let (bos, eos) = specialTokenTexts
        do {
            return try chosen.render(messages: messages, tools: tools, addGenerationPrompt: addAssistantPrompt,
                                     bosToken: bos, eosToken: eos, variables: variables, now: now, mediaMarker: marker)
        } catch {
            throw LlamaError(.template, "the chat template failed: \(error.description)")
        }
    }

    /// The texts of control tokens, read once from the vocabulary.
    var controlTokenTexts: [String] {
        if let cached = controlTokenTextsCache.withLock({ $0 }) { return cached }
        let texts = vocab.controlTokenTexts
        controlTokenTextsCache.withLock { $0 = texts }
        return texts
    }

    /// `text` with every control-token text broken by a zero-width space after its first character.
    public func neutralisingControlTokens(in text: String) -> String {
        let texts = controlTokenTexts
        // Most text holds none of the characters control tokens start with.
        guard text.unicodeScalars.contains(where: { scalar in texts.contains { $0.unicodeScalars.first == scalar } }) else {
            return text
        }
        var result = text
        for special in texts where result.contains(special) {
            let first = special.prefix(1)
            result = result.replacingOccurrences(of: special, with: first + "\u{200B}" + special.dropFirst())
        }
        return result
    }

    /// The messages with control-token text (and the media marker's, when given) neutralised.
    func neutralisingControlTokens(in messages: [ChatMessage], marker: String? = nil) -> [ChatMessage] {
        func clean(_ text: String) -> String {
            let t = neutralisingControlTokens(in: text)
            guard let marker, !marker.isEmpty, t.contains(marker) else { return t }
            return t.replacingOccurrences(of: marker, with: marker.prefix(1) + "\u{200B}" + marker.dropFirst())
        }
        return messages.map { message in
            var m = message
            switch m.content {
            case .text(let t): m.content = .text(clean(t))
            case .parts(let parts):
                m.content = .parts(parts.map { part in
                    if case .text(let t) = part { return .text(clean(t)) }
                    return part
                })
            case .none: break
            }
            m.reasoning = m.reasoning.map { neutralisingControlTokens(in: $0) }
            return m
        }
    }

    /// llama.cpp's built-in formats (`llama_chat_apply_template`), for models without a Jinja template.
    func applyBuiltinTemplate(_ template: String, _ messages: [ChatMessage], addAssistantPrompt: Bool,
                              mediaMarker: String = ChatMedia.defaultMarker) throws(LlamaError) -> String {
        var cStrings: [UnsafeMutablePointer<CChar>?] = []
        defer { cStrings.forEach { free($0) } }
        let texts = messages.map { $0.content.hasMedia ? $0.content.text(mediaMarker: mediaMarker) : $0.text }
        let chat = zip(messages, texts).map { m, text -> llama_chat_message in
            let role = strdup(m.role), content = strdup(text)
            cStrings += [role, content]
            return llama_chat_message(role: role, content: content)
        }
        let total = zip(messages, texts).reduce(0) { $0 + $1.0.role.utf8.count + $1.1.utf8.count }
        var buffer = [CChar](repeating: 0, count: total * 2 + 256)
        var n = c.llama_chat_apply_template(template, chat, chat.count, addAssistantPrompt, &buffer, Int32(buffer.count))
        if n > Int32(buffer.count) {
            buffer = [CChar](repeating: 0, count: Int(n) + 1)
            n = c.llama_chat_apply_template(template, chat, chat.count, addAssistantPrompt, &buffer, Int32(buffer.count))
        }
        guard n >= 0 else {
            throw LlamaError(.unsupported, "llama.cpp does not support this chat template; pass a built-in name "
                + "(LlamaRuntime.builtinChatTemplates)", status: n)
        }
        return String(decoding: buffer.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A conversation with a model that keeps its KV cache across turns: each reply evaluates
/// only the new messages, not the whole history again.
///
/// With a projector (an `mmproj` loaded for the model), messages may carry images and audio
/// (`ChatContentPart/image(_:)`, `ChatContentPart/audio(_:)`): they are decoded once, encoded
/// once (the projector keeps their embeddings), and the cache is kept across turns that carry
/// them too.
public actor ChatSession {
    /// The context the conversation is evaluated in; its KV cache holds the conversation so far.
    public let context: LlamaContext
    /// The projector that reads the conversation's images and audio (nil: text only).
    public let projector: LlamaProjector?
    /// The conversation so far: the system prompt, then every user and assistant message (and tool results).
    public internal(set) var messages: [ChatMessage]
    let template: String?
    /// What sequence 0 holds, unit by unit, once a turn carried media.
    var record = MultimodalCacheRecord()
    /// The conversation's media, decoded for the projector.
    var decoded: [ChatMedia: LlamaMedia] = [:]

    /// Starts a conversation on a new context of a model.
    ///
    /// - Parameters:
    ///   - model: the model that answers.
    ///   - projector: a projector loaded for `model`, for messages with images or audio (nil: text only).
    ///   - systemPrompt: the first message, from the system role (none when nil).
    ///   - template: a Jinja chat template, or the name of one of llama.cpp's built-in formats; nil: the model's own.
    ///   - options: the context's options (a 4096-token context by default).
    public init(model: LlamaModel, projector: LlamaProjector? = nil, systemPrompt: String? = nil, template: String? = nil,
                options: ContextOptions = ContextOptions(contextLength: 4096)) throws(LlamaError) {
        if let projector, projector.model !== model {
            throw LlamaError(.invalidArgument, "the projector \(projector.path) was loaded for another model "
                + "(\(projector.model.path)) than the session's (\(model.path))")
        }
        context = try LlamaContext(model: model, options: options)
        self.projector = projector
        messages = systemPrompt.map { [.system($0)] } ?? []
        self.template = template
    }

    /// Starts a conversation with the projector's model, whose messages may carry images and audio.
    public init(projector: LlamaProjector, systemPrompt: String? = nil, template: String? = nil,
                options: ContextOptions = ContextOptions(contextLength: 4096)) throws(LlamaError) {
        try self.init(model: projector.model, projector: projector, systemPrompt: systemPrompt, template: template,
                      options: options)
    }

    /// Adds the user's message and streams the reply, which joins the history when it ends
    /// (as far as it got, when the stream is abandoned or cancelled).
    public func respond(to text: String, sampling: SamplerChain = .greedy,
                        options: GenerationOptions = GenerationOptions()) throws(LlamaError)
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        try respond(to: .user(text), sampling: sampling, options: options)
    }

    /// Adds a message (the user's, with images or audio as parts when the session has a
    /// projector) and streams the reply, which joins the history when it ends (as far as it
    /// got, when the stream is abandoned or cancelled).
    ///
    /// - Throws: `.projectorRequired` for media in a session without a projector; `.invalidMedia`
    ///   for media that do not decode; `.unsupported` for media at a URL other than `file://`.
    public func respond(to message: ChatMessage, sampling: SamplerChain = .greedy,
                        options: GenerationOptions = GenerationOptions()) throws(LlamaError)
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        let inner = try generate(messages + [message], sampling: sampling, options: options)
        messages.append(message)
        return AsyncThrowingStream { continuation in
            let task = Task {
                // What was said so far joins the history even when the reply is abandoned.
                var partial = ""
                var recorded = false
                do {
                    for try await event in inner {
                        switch event {
                        case .token(_, let text), .text(let text): partial += text
                        case .probabilities: break
                        case .finished(let summary):
                            await self.record(reply: summary.text)
                            recorded = true
                        }
                        continuation.yield(event)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
                if !recorded { await self.record(reply: partial) }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func record(reply: String) { messages.append(.assistant(reply)) }

    /// Forgets the conversation (keeping the system prompt) and empties the cache.
    public func reset() async {
        messages = messages.filter { $0.role == "system" }
        record = MultimodalCacheRecord()
        decoded = [:]
        await context.clearMemory()
    }
}
