import Foundation
import LlamaTestSupport
import LlamaRaw
import Testing

/// Greedy generation through the generated bindings gives, token for token, what a C program
/// linked against the same libraries gives.
@Suite("Swift bindings against native C", .serialized)
struct InferenceTests {
    static let prompts = [
        "The capital of France is",
        "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    ]

    func tokens(in output: String, label: String) -> [Int32]? {
        output.split(separator: "\n").first { $0.hasPrefix(label + ":") }.map {
            $0.dropFirst(label.count + 1).split(separator: " ").compactMap { Int32($0) }
        }
    }

    @Test("64 greedy tokens are identical", arguments: prompts)
    func greedyTokensMatchNative(prompt: String) async throws {
        let native = try await buildNativeReference()
        let libs = try TestEnvironment.libraryDirectory().path
        let model = try TestEnvironment.model().path
        let c = try await runProcess(native, [libs, model, prompt, "64", "2"])
        try #require(c.status == 0, "native reference failed: \(c.stderr)")
        let swift = try await runProcess(TestEnvironment.productsDirectory.appendingPathComponent("raw-generate"),
                                   ["--lib-dir", libs, "--model", model, "--prompt", prompt, "-n", "64",
                                    "--threads", "2", "--ids"])
        try #require(swift.status == 0, "raw-generate failed: \(swift.stderr)")

        let cPrompt = try #require(tokens(in: c.stdout, label: "prompt"))
        let cGenerated = try #require(tokens(in: c.stdout, label: "generated"))
        #expect(cPrompt.count > 3)
        #expect(cGenerated.count > 8, "the model should say more than a few tokens")
        #expect(tokens(in: swift.stdout, label: "prompt") == cPrompt)
        #expect(tokens(in: swift.stdout, label: "generated") == cGenerated)
    }

    @Test("raw-generate writes text and nothing else to stdout")
    func rawGenerateText() async throws {
        let result = try await runProcess(TestEnvironment.productsDirectory.appendingPathComponent("raw-generate"),
                                    ["--lib-dir", try TestEnvironment.libraryDirectory().path,
                                     "--model", try TestEnvironment.model().path,
                                     "--prompt", "The capital of France is", "-n", "16"])
        try #require(result.status == 0, "raw-generate failed: \(result.stderr)")
        #expect(result.stdout.contains("Paris"))
    }

    @Test("a missing model is a clear error, not a crash")
    func missingModel() async throws {
        let result = try await runProcess(TestEnvironment.productsDirectory.appendingPathComponent("raw-generate"),
                                    ["--lib-dir", try TestEnvironment.libraryDirectory().path,
                                     "--model", "/nonexistent/model.gguf"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot read the model /nonexistent/model.gguf"))
    }
}
