import Foundation
import Llama

/// One served model: its generation context and slots, made at start, and the contexts for
/// embeddings and reranking, made on first use.
final class ModelHost: Sendable {
    let id: String
    let model: LlamaModel
    let slots: LlamaSlots
    /// Tokens one request may hold (prompt and output): the slot's share of the context.
    let sequenceLength: Int
    /// When the model was loaded (seconds since 1970), for `/v1/models`.
    let created: Int
    let chatTemplate: ChatTemplate?
    let toolTemplate: ChatTemplate?
    let embedder: LazyContext
    let reranker: LazyContext
    /// The projector that reads the images and audio of chat requests (nil: text only).
    let projector: LlamaProjector?

    init(id: String, model: LlamaModel, configuration: LlamaServerConfiguration, projectorPath: String? = nil) throws(LlamaError) {
        self.id = id
        self.model = model
        projector = try projectorPath.map { (path) throws(LlamaError) in
            var o = ProjectorOptions()
            o.threads = configuration.threads
            return try LlamaProjector(model: model, path: path, options: o)
        }
        var options = ContextOptions(contextLength: UInt32(configuration.contextLength),
                                     maxSequences: UInt32(configuration.slots), threads: configuration.threads)
        options.batchSize = UInt32(max(configuration.promptChunk, configuration.slots))
        let context = try LlamaContext(model: model, options: options)
        slots = try LlamaSlots(context: context, options: LlamaSlots.Options(
            slots: configuration.slots, queueLimit: configuration.queueSize,
            promptChunk: min(configuration.promptChunk, context.batchCapacity),
            promptCacheBytes: configuration.promptCacheBytes))
        sequenceLength = context.sequenceLength
        created = Int(Date().timeIntervalSince1970)
        // A template that does not parse leaves chat to llama.cpp's built-in formats (formatChat
        // reports it per request); completions and embeddings are served all the same.
        chatTemplate = Self.template(of: model, named: nil)
        toolTemplate = Self.template(of: model, named: "tool_use")
        let threads = configuration.threads
        embedder = LazyContext(model: model) {
            var o = ContextOptions(contextLength: 2048, threads: threads)
            o.embeddings = true
            o.pooling = .mean
            o.batchSize = 2048
            o.microBatchSize = 2048
            return o
        }
        reranker = LazyContext(model: model) {
            var o = ContextOptions(contextLength: 2048, threads: threads)
            o.embeddings = true
            o.pooling = .rank
            o.batchSize = 2048
            o.microBatchSize = 2048
            return o
        }
    }

    static func template(of model: LlamaModel, named name: String?) -> ChatTemplate? {
        do { return try model.jinjaChatTemplate(named: name) } catch { return nil }
    }

    /// Whether the model is a reranker: its GGUF says rank pooling (llama.cpp's `pooling_type` 4).
    var isReranker: Bool {
        guard let arch = model.architecture else { return false }
        return model.metadata["\(arch).pooling_type"] == "4"
    }
}

/// A context made the first time it is needed, then kept.
actor LazyContext {
    let model: LlamaModel
    let options: @Sendable () -> ContextOptions
    private var context: LlamaContext?

    init(model: LlamaModel, options: @escaping @Sendable () -> ContextOptions) {
        self.model = model
        self.options = options
    }

    func get() throws(LlamaError) -> LlamaContext {
        if let context { return context }
        let made = try LlamaContext(model: model, options: options())
        context = made
        return made
    }
}
