import Foundation
@testable import Llama
import LlamaTestSupport
import Testing

/// `models pull --mmproj` against a loopback Hub whose repository holds a model and two projectors.
@Suite("model store: projectors", .timeLimit(.minutes(10)))
struct ModelStoreProjectorTests {
    static let repo = "tests/tiny-vlm-GGUF"
    static let modelFile = "tiny-vlm-Q4_1.gguf"

    /// A Hub serving `files` (name in the repository → local file) with their LFS sha256.
    static func hub(_ files: [String: URL]) async throws -> MirrorServer {
        var tree: [[String: Any]] = [["type": "file", "path": "README.md", "oid": "0123", "size": 10]]
        var served: [String: URL] = [:]
        for (name, url) in files.sorted(by: { $0.key < $1.key }) {
            let size = try Data(contentsOf: url).count
            tree.append(["type": "file", "path": name, "oid": "abcd", "size": size,
                         "lfs": ["oid": try await ModelStoreTests.sha256(url), "size": size, "pointerSize": 134]])
            served["\(repo)/resolve/main/\(name)"] = url
        }
        let listing = try TestEnvironment.temporaryDirectory().appendingPathComponent("tree.json")
        try JSONSerialization.data(withJSONObject: tree).write(to: listing)
        served["api/models/\(repo)/tree/main"] = listing
        return try await MirrorServer(files: served)
    }

    static func projector(seed: UInt64) throws -> URL {
        let url = try TestEnvironment.temporaryDirectory().appendingPathComponent("mmproj-\(seed).gguf")
        try SyntheticProjector.write(.llava, output: 576, to: url.path, seed: seed, symbols: try Fixture.runtime.get().raw)
        return url
    }

    @Test("the quantization in a file name, and which projector goes with a model")
    func choosing() throws {
        #expect(LlamaModelStore.quantization("SmolVLM-256M-Instruct-Q8_0.gguf") == "Q8_0")
        #expect(LlamaModelStore.quantization("org/gemma-3-4b-it-IQ3_XXS.gguf") == "IQ3_XXS")
        #expect(LlamaModelStore.quantization("mmproj-model-f16.gguf") == "F16")
        #expect(LlamaModelStore.quantization("Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf") == "Q4_K_M")
        #expect(LlamaModelStore.quantization("model.gguf") == nil)
        let model = LlamaModelReference(repo: "a/b", file: "m-Q4_K_M.gguf")
        let both = ["mmproj-m-F16.gguf", "mmproj-m-Q4_K_M.gguf", "mmproj-m-Q8_0.gguf"]
        #expect(try LlamaModelStore.chooseProjector(both, model: model) == "mmproj-m-Q4_K_M.gguf")
        #expect(try LlamaModelStore.chooseProjector([both[0], both[2]], model: model) == "mmproj-m-F16.gguf")
        #expect(try LlamaModelStore.chooseProjector([both[2]], model: model) == "mmproj-m-Q8_0.gguf")
        let several = #expect(throws: LlamaError.self) { try LlamaModelStore.chooseProjector(["mmproj-a.gguf", "mmproj-b.gguf"], model: model) }
        #expect(several?.code == .invalidArgument)
        #expect(several?.message.contains("mmproj-a.gguf, mmproj-b.gguf") == true)
        let none = #expect(throws: LlamaError.self) { try LlamaModelStore.chooseProjector([], model: model) }
        #expect(none?.code == .fileNotFound)
    }

    @Test("models pull --mmproj auto fetches the projector of the model's quantization beside it; --mmproj FILE names one; run --mmproj auto finds it")
    func pullProjector() async throws {
        let quantized = try Self.projector(seed: 11), f16 = try Self.projector(seed: 12)
        let hub = try await Self.hub([Self.modelFile: try TestEnvironment.model(), "mmproj-tiny-vlm-Q4_1.gguf": quantized,
                                      "mmproj-tiny-vlm-F16.gguf": f16])
        let env = ["HF_ENDPOINT": "http://127.0.0.1:\(hub.port)", "LLAMA_SWIFT_CACHE": try TestEnvironment.temporaryDirectory().path]
        let ref = "\(Self.repo)/\(Self.modelFile)"
        let pull = try await CLITests.cli(["models", "pull", ref, "--mmproj", "auto"], env: env)
        try #require(pull.status == 0, "\(pull.stderr)")
        let lines = pull.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 2, "\(pull.stdout)")
        #expect(lines[0].hasSuffix("/\(Self.modelFile)"))
        #expect(lines[1] == (lines[0] as NSString).deletingLastPathComponent + "/mmproj-tiny-vlm-Q4_1.gguf")
        #expect(try Data(contentsOf: URL(fileURLWithPath: lines[1])) == Data(contentsOf: quantized))

        let named = try await CLITests.cli(["models", "pull", ref, "--mmproj", "mmproj-tiny-vlm-F16.gguf"], env: env)
        #expect(named.status == 0, "\(named.stderr)")
        #expect(named.stdout.split(separator: "\n").last.map(String.init)?.hasSuffix("/mmproj-tiny-vlm-F16.gguf") == true)

        // run --mmproj auto takes the stored projector of the model's quantization, without asking the Hub again.
        let trees = try hub.requests().filter { $0.contains("/tree/") }.count
        let image = try TestEnvironment.temporaryDirectory().appendingPathComponent("gradient.png")
        try pngImage(rgb: gradientRGB(width: 32, height: 32), width: 32, height: 32).write(to: image)
        let run = try await CLITests.cli(["run", "-m", ref, "--mmproj", "auto", "--no-mmproj-offload", "--image", image.path,
                                          "-p", "What is it?", "--temp", "0", "-n", "4", "-t", "2"], env: env)
        #expect(run.status == 0, "\(run.stderr.suffix(2000))")
        #expect(try hub.requests().filter { $0.contains("/tree/") }.count == trees)

        CLITests.expectFailure(try await CLITests.cli(["models", "pull", "default", "--mmproj", "auto"], env: env), mentioning: "--mmproj")
        CLITests.expectFailure(try await CLITests.cli(["run", "-m", try TestEnvironment.model().path, "--mmproj", "auto", "-p", "x"],
                                                               env: env), mentioning: "Hugging Face")
    }

    @Test("a repository without a projector: pull --mmproj auto says so")
    func noProjector() async throws {
        let hub = try await Self.hub([Self.modelFile: try TestEnvironment.model()])
        let env = ["HF_ENDPOINT": "http://127.0.0.1:\(hub.port)", "LLAMA_SWIFT_CACHE": try TestEnvironment.temporaryDirectory().path]
        CLITests.expectFailure(try await CLITests.cli(["models", "pull", "\(Self.repo)/\(Self.modelFile)", "--mmproj", "auto"], env: env),
                               mentioning: "has no mmproj GGUF file")
    }
}
