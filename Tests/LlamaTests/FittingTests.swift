import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// The layer-fitting estimate, checked against what llama.cpp really allocates on the CPU.
@Suite("memory estimate and placement")
struct FittingTests {
    static func estimate() throws -> LlamaMemoryEstimate {
        try LlamaMemoryEstimate(gguf: try GGUFFile(path: try TestEnvironment.model().path, runtime: try Fixture.runtime.get()))
    }

    @Test("weights: the tensor table's total is llama.cpp's model size; every layer is counted")
    func weights() throws {
        let model = try Fixture.model.get()
        let e = try Self.estimate()
        #expect(e.layerCount == Int(model.layerCount))
        #expect(UInt64(e.weightBytes) == model.sizeInBytes, "estimate \(e.weightBytes), llama.cpp \(model.sizeInBytes)")
        #expect(e.layerBytes.allSatisfy { $0 > 0 })
    }

    @Test("KV cache: the estimate per token matches the state llama.cpp saves for a sequence, within 5%")
    func kvCache() async throws {
        let model = try Fixture.model.get()
        let e = try Self.estimate()
        let context = try Fixture.context(ContextOptions(contextLength: 512, batchSize: 512, threads: 2))
        let tokens = try model.vocab.tokenize(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 20),
                                              addSpecial: true, parseSpecial: false)
        var batch = LlamaBatch()
        batch.add(prompt: tokens)
        try await context.decode(batch)
        let measured = await context.state(sequence: 0).count
        let estimated = e.kvBytesPerTokenPerLayer * e.layerCount * tokens.count
        let ratio = Double(measured) / Double(estimated)
        #expect(ratio > 0.95 && ratio < 1.05, "state \(measured) bytes vs estimate \(estimated) (×\(ratio)) for \(tokens.count) tokens")
    }

    @Test("fitting: all layers fit in plenty of memory, about half in half of it, none in too little")
    func fitting() throws {
        let e = try Self.estimate()
        let all = UInt64(e.weightBytes * 4 + (512 << 20))
        #expect(e.layersFitting(in: all, contextLength: 4096) == e.layerCount)
        let half = UInt64(max(64 << 20, e.otherBytes / 4) + (e.layerBytes.reduce(0, +) + e.kvBytesPerTokenPerLayer * 4096 * e.layerCount) / 2)
        let n = e.layersFitting(in: half, contextLength: 4096)
        #expect(abs(n - e.layerCount / 2) <= 1, "\(n) of \(e.layerCount)")
        #expect(e.layersFitting(in: 1 << 20, contextLength: 4096) == 0)
    }

    @Test("a placement on the CPU device loads and generates like the default")
    func placementOnCPU() async throws {
        let runtime = try Fixture.runtime.get()
        var options = ModelOptions()
        options.placement = LlamaPlacement(devices: runtime.devices.filter { $0.kind == .cpu })
        options.placement?.splitMode = .none
        let model = try LlamaModel(runtime: runtime, path: try TestEnvironment.model().path, options: options)
        let placed = try await LlamaContext(model: model, options: ContextOptions(contextLength: 256, threads: 2))
            .generate(prompt: Fixture.chatPrompt, options: GenerationOptions(maxTokens: 8)).summary()
        let reference = try await Fixture.context(ContextOptions(contextLength: 256, threads: 2))
            .generate(prompt: Fixture.chatPrompt, options: GenerationOptions(maxTokens: 8)).summary()
        #expect(placed.generatedTokens == reference.generatedTokens)
    }
}
