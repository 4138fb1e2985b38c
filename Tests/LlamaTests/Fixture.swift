import Foundation
import Llama
import LlamaTestSupport

/// The runtime and SmolLM2, loaded once for the test run.
enum Fixture {
    static let runtime: Result<LlamaRuntime, any Error> = Result {
        try LlamaRuntime(libraryDirectory: try TestEnvironment.libraryDirectory())
    }
    static let model: Result<LlamaModel, any Error> = Result {
        try LlamaModel(runtime: try runtime.get(), path: try TestEnvironment.model().path)
    }

    static func context(_ options: ContextOptions = ContextOptions(contextLength: 512, batchSize: 512, threads: 2))
        throws -> LlamaContext {
        try LlamaContext(model: try model.get(), options: options)
    }

    static let chatPrompt = "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n"
}

/// Expects a LlamaError with a code.
func expectLlamaError<T>(_ code: LlamaError.Code, _ body: () async throws -> T) async -> LlamaError? {
    do {
        _ = try await body()
        return nil
    } catch let error as LlamaError {
        return error.code == code ? error : nil
    } catch {
        return nil
    }
}
