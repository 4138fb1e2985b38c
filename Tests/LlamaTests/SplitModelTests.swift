import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// A model split in two GGUF files (written by the test through the bound gguf API, in the
/// layout of llama.cpp's gguf-split) loads and generates like the single file.
@Suite("Split models")
struct SplitModelTests {
    static func split(_ source: URL, into dir: URL, runtime: LlamaRuntime) throws -> [String] {
        let c = runtime.raw
        var data: OpaquePointer?
        let src = try withUnsafeMutablePointer(to: &data) { ctx in
            try #require(c.gguf_init_from_file(source.path, gguf_init_params(no_alloc: false, ctx: ctx)))
        }
        defer {
            c.gguf_free(src)
            c.ggml_free(data)
        }
        let count = c.gguf_get_n_tensors(src)
        let half = count / 2
        var paths: [String] = []
        for part in 0..<2 {
            let out = try #require(c.gguf_init_empty())
            defer { c.gguf_free(out) }
            c.gguf_set_kv(out, src)
            c.gguf_set_val_u16(out, "split.no", UInt16(part))
            c.gguf_set_val_u16(out, "split.count", 2)
            c.gguf_set_val_i32(out, "split.tensors.count", Int32(count))
            for i in (part == 0 ? 0..<half : half..<count) {
                let name = try #require(c.gguf_get_tensor_name(src, i))
                c.gguf_add_tensor(out, try #require(c.ggml_get_tensor(data, name)))
            }
            let path = dir.appendingPathComponent("model-0000\(part + 1)-of-00002.gguf").path
            try #require(c.gguf_write_to_file(out, path, false))
            paths.append(path)
        }
        return paths
    }

    @Test("two parts load and generate the same tokens as one file")
    func splitModel() async throws {
        let runtime = try Fixture.runtime.get()
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let parts = try Self.split(try TestEnvironment.model(), into: dir, runtime: runtime)
        let model = try LlamaModel(runtime: runtime, paths: parts)
        let split = try LlamaContext(model: model, options: ContextOptions(contextLength: 512, threads: 2))
        let whole = try Fixture.context()
        let a = try await split.generate(prompt: "The capital of France is", options: GenerationOptions(maxTokens: 16)).summary()
        let b = try await whole.generate(prompt: "The capital of France is", options: GenerationOptions(maxTokens: 16)).summary()
        #expect(a.generatedTokens == b.generatedTokens)
        // llama.cpp finds the other parts beside the first by their names; alone, it is no model.
        let alone = try TestEnvironment.temporaryDirectory().appendingPathComponent("model-00001-of-00002.gguf")
        try FileManager.default.copyItem(atPath: parts[0], toPath: alone.path)
        defer { try? FileManager.default.removeItem(at: alone.deletingLastPathComponent()) }
        let missing = await expectLlamaError(.invalidModel) { try LlamaModel(runtime: runtime, path: alone.path) }
        #expect(missing != nil, "the first part alone is not a model")
    }
}
