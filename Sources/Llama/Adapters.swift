import Foundation
import LlamaRaw

/// A LoRA adapter for a model (`llama_adapter_lora_init`). Apply it to contexts with
/// ``LlamaContext/setAdapters(_:)``.
public final class LoRAAdapter: Sendable {
    /// The model the adapter was loaded for; it applies only to contexts of this model.
    public let model: LlamaModel
    nonisolated(unsafe) let pointer: OpaquePointer

    /// Loads a LoRA adapter file (GGUF) for a model (`llama_adapter_lora_init`).
    ///
    /// - Parameters:
    ///   - model: the model the adapter was trained for.
    ///   - path: the adapter's GGUF file.
    public init(model: LlamaModel, path: String) throws(LlamaError) {
        try LlamaModel.checkGGUF(path)
        guard let p = model.c.llama_adapter_lora_init(model.pointer, path) else {
            throw LlamaError(.invalidModel, "\(path) is not a LoRA adapter of this model (llama.cpp refused it: "
                + "wrong architecture, shapes, or not an adapter GGUF)")
        }
        self.model = model
        pointer = p
    }

    deinit { model.c.llama_adapter_lora_free(pointer) }
}

extension LlamaContext {
    /// Applies LoRA adapters with their scales, replacing those applied before; [] removes all.
    public func setAdapters(_ adapters: [(adapter: LoRAAdapter, scale: Float)]) throws(LlamaError) {
        for a in adapters where a.adapter.model !== model {
            throw LlamaError(.invalidArgument, "a LoRA adapter was loaded for another model")
        }
        var pointers: [OpaquePointer?] = adapters.map { $0.adapter.pointer }
        var scales = adapters.map(\.scale)
        let status = c.llama_set_adapters_lora(pointer, &pointers, pointers.count, &scales)
        guard status == 0 else { throw LlamaError(.creationFailed, "llama.cpp could not apply the adapters", status: status) }
        appliedAdapters = adapters.map(\.adapter)
    }

    /// Applies a control vector: `n_embd` floats per layer, for layers `layers` (1-based, as
    /// llama.cpp counts them; the data starts at layer 1).
    public func setControlVector(_ data: [Float], layers: ClosedRange<Int32>) throws(LlamaError) {
        let width = Int(model.embeddingLength)
        guard layers.lowerBound >= 1, layers.upperBound <= model.layerCount else {
            throw LlamaError(.invalidArgument, "control vector layers must be within 1...\(model.layerCount)")
        }
        guard !data.isEmpty, data.count % width == 0, data.count / width >= Int(layers.upperBound) else {
            throw LlamaError(.invalidArgument, "a control vector holds \(width) floats per layer from layer 1 "
                + "through \(layers.upperBound), so at least \(width * Int(layers.upperBound)) floats")
        }
        let status = c.llama_set_adapter_cvec(pointer, data, data.count, Int32(width), layers.lowerBound, layers.upperBound)
        guard status == 0 else { throw LlamaError(.creationFailed, "llama.cpp could not apply the control vector", status: status) }
    }

    /// Removes the control vector.
    public func clearControlVector() {
        _ = c.llama_set_adapter_cvec(pointer, nil, 0, model.embeddingLength, 0, 0)
    }
}
