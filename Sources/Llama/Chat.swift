import Foundation
import LlamaRaw

/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

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
    /// Formats a conversation with a chat template (`llama_chat_apply_template`).
    ///
    /// - Parameters:
    ///   - addAssistantPrompt: end with the start of an assistant turn, for generating the reply.
    ///   - template: a built-in template's name or a template; by default the model's own.
    public func formatChat(_ messages: [ChatMessage], addAssistantPrompt: Bool = true,
                           template: String? = nil) throws(LlamaError) -> String {
        guard let template = template ?? chatTemplate() else {
            throw LlamaError(.unsupported, "the model has no chat template: pass one (a built-in name such as "
                + "\"chatml\", see LlamaRuntime.builtinChatTemplates)")
        }
        var cStrings: [UnsafeMutablePointer<CChar>?] = []
        defer { cStrings.forEach { free($0) } }
        let chat = messages.map { m -> llama_chat_message in
            let role = strdup(m.role), content = strdup(m.content)
            cStrings += [role, content]
            return llama_chat_message(role: role, content: content)
        }
        let total = messages.reduce(0) { $0 + $1.role.utf8.count + $1.content.utf8.count }
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
public actor ChatSession {
    public let context: LlamaContext
    public private(set) var messages: [ChatMessage]
    let template: String?

    public init(model: LlamaModel, systemPrompt: String? = nil, template: String? = nil,
                options: ContextOptions = ContextOptions(contextLength: 4096)) throws(LlamaError) {
        context = try LlamaContext(model: model, options: options)
        messages = systemPrompt.map { [.system($0)] } ?? []
        self.template = template
    }

    /// Adds the user's message and streams the reply, which joins the history when it ends
    /// (as far as it got, when the stream is abandoned or cancelled).
    public func respond(to text: String, sampling: SamplerChain = .greedy,
                        options: GenerationOptions = GenerationOptions()) throws(LlamaError)
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        let prompt = try context.model.formatChat(messages + [.user(text)], addAssistantPrompt: true, template: template)
        messages.append(.user(text))
        let inner = context.generate(prompt: prompt, sampling: sampling, options: options)
        return AsyncThrowingStream { continuation in
            let task = Task {
                // What was said so far joins the history even when the reply is abandoned.
                var partial = ""
                var recorded = false
                do {
                    for try await event in inner {
                        switch event {
                        case .token(_, let text), .text(let text): partial += text
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
        await context.clearMemory()
    }
}
