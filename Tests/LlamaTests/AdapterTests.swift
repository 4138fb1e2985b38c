import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// LoRA adapters, with adapters written by the test itself through the bound gguf API.
@Suite("LoRA adapters", .serialized)
struct AdapterTests {
    /// Writes a rank-`rank` LoRA adapter for the `attn_q` weights of some layers. `aWidth`
    /// other than the model's width gives an adapter of the wrong shape.
    static func writeAdapter(to url: URL, model: LlamaModel, rank: Int64 = 4, layers: Range<Int32> = 0..<4,
                             aWidth: Int64? = nil) throws {
        let c = model.runtime.raw
        let width = Int64(model.embeddingLength)
        let gguf = try #require(c.gguf_init_empty())
        defer { c.gguf_free(gguf) }
        c.gguf_set_val_str(gguf, "general.type", "adapter")
        c.gguf_set_val_str(gguf, "general.architecture", try #require(model.architecture))
        c.gguf_set_val_str(gguf, "adapter.type", "lora")
        c.gguf_set_val_f32(gguf, "adapter.lora.alpha", Float(rank))
        let ctx = try #require(c.ggml_init(ggml_init_params(mem_size: 32 << 20, mem_buffer: nil, no_alloc: false)))
        defer { c.ggml_free(ctx) }
        for layer in layers {
            let a = try #require(c.ggml_new_tensor_2d(ctx, GGML_TYPE_F32, aWidth ?? width, rank))
            let b = try #require(c.ggml_new_tensor_2d(ctx, GGML_TYPE_F32, rank, width))
            for (tensor, count) in [(a, (aWidth ?? width) * rank), (b, rank * width)] {
                let values = tensor.pointee.data.bindMemory(to: Float.self, capacity: Int(count))
                for i in 0..<Int(count) {
                    let step: Int = (i * 7 + Int(layer) * 13) % 17 - 8
                    values[i] = Float(step) * 0.02
                }
            }
            _ = c.ggml_set_name(a, "blk.\(layer).attn_q.weight.lora_a")
            _ = c.ggml_set_name(b, "blk.\(layer).attn_q.weight.lora_b")
            c.gguf_add_tensor(gguf, a)
            c.gguf_add_tensor(gguf, b)
        }
        try #require(c.gguf_write_to_file(gguf, url.path, false))
    }

    @Test("an adapter changes the output; scale 0 and removal restore it")
    func applyAndRemove() async throws {
        let model = try Fixture.model.get()
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("lora.gguf")
        try Self.writeAdapter(to: file, model: model)
        let adapter = try LoRAAdapter(model: model, path: file.path)

        let context = try Fixture.context()
        func run() async throws -> [LlamaToken] {
            await context.clearMemory()
            return try await context.generate(prompt: "The capital of France is",
                                              options: GenerationOptions(maxTokens: 12)).summary().generatedTokens
        }
        let plain = try await run()
        try await context.setAdapters([(adapter, 1.0)])
        let adapted = try await run()
        #expect(adapted != plain)
        try await context.setAdapters([(adapter, 0.0)])
        #expect(try await run() == plain)
        try await context.setAdapters([(adapter, 1.0)])
        #expect(try await run() == adapted)
        try await context.setAdapters([])
        #expect(try await run() == plain)
    }

    @Test("an adapter of the wrong shape is refused")
    func wrongShape() async throws {
        let model = try Fixture.model.get()
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bad-lora.gguf")
        try Self.writeAdapter(to: file, model: model, aWidth: Int64(model.embeddingLength) + 1)
        let error = await expectLlamaError(.invalidModel) { try LoRAAdapter(model: model, path: file.path) }
        #expect(error != nil)
    }
}
