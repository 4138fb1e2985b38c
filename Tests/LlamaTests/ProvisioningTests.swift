import Foundation
import Llama
import LlamaProcess
import LlamaRaw
import LlamaTestSupport
import Testing

/// Provisioning against a loopback server laid out like GitHub's release downloads, serving the
/// archive `make llama` packed like the official one.
@Suite("provisioning", .timeLimit(.minutes(10)))
struct ProvisioningTests {
    static let releasePath = "ggml-org/llama.cpp/releases/download"
    static var assetName: String { "llama-\(LlamaPin.tag)-bin-ubuntu-x64.tar.gz" }
    static let linux = LlamaPlatform(os: "linux", arch: "x64")

    /// A mirror serving the release archive (and any further files).
    static func mirror(_ extra: [String: URL] = [:]) async throws -> MirrorServer {
        var files = extra
        files["\(releasePath)/\(LlamaPin.tag)/\(assetName)"] = try TestEnvironment.releaseArchive()
        return try await MirrorServer(files: files)
    }

    /// Options for a fresh cache and the given mirrors (paths on the server); no real network,
    /// no source builds unless asked.
    static func options(_ server: MirrorServer, mirrors: [String] = [releasePath], sha256: String? = nil,
                        asset: String? = nil) throws -> LlamaInstallOptions {
        var o = LlamaInstallOptions(variant: .cpu, environment: [:])
        o.platform = linux
        o.cacheDirectory = try TestEnvironment.temporaryDirectory().appendingPathComponent("cache")
        o.mirrors = mirrors.map { server.url($0) }
        o.githubURL = server.url("404")
        o.pypiURL = server.url("404")
        o.buildFromSource = .never
        o.retryDelay = .milliseconds(20)
        o.release = LlamaRelease(tag: LlamaPin.tag, entries: [
            .init(platform: linux, variant: .cpu, assets: [LlamaReleaseAsset(name: asset ?? assetName, sha256: sha256)]),
        ])
        return o
    }

    static func sha256(_ url: URL) async throws -> String {
        let r = try await runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["sha256sum", url.path])
        return String(r.stdout.prefix(64))
    }

    static func assetRequests(_ server: MirrorServer) throws -> [String] {
        try server.requests().filter { $0.contains(assetName) }
    }

    /// Nothing of an entry is left: no installation, no download, no staging folder.
    static func expectNothingInstalled(_ o: LlamaInstallOptions) {
        let installer = LlamaInstaller(options: o)
        #expect(installer.installed() == nil)
        #expect(!FileManager.default.fileExists(atPath: installer.entry.path))
        let tagFolder = installer.root.appendingPathComponent(LlamaPin.tag)
        let leftovers = ((try? FileManager.default.subpathsOfDirectory(atPath: tagFolder.path)) ?? [])
            .filter { !$0.hasSuffix(".lock") && $0 != "downloads" && $0 != "digests.json" }
        #expect(leftovers.isEmpty, "left in the cache: \(leftovers)")
    }

    @Test("install, then a cached start without network; the runtime generates what the test libraries generate")
    func happyPathThenCached() async throws {
        let server = try await Self.mirror()
        let o = try Self.options(server)
        let progress = ProgressLog()
        let installation = try await LlamaInstaller(options: o).install(progress: progress.handler)
        let dir = try #require(installation.directory)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("libllama.so").path))
        #expect(installation.origin == .download)
        await #expect(installation.assets.first?.sha256 == (try Self.sha256(try TestEnvironment.releaseArchive())))
        #expect(installation.assets.first?.pinned == false)
        #expect(installation.damagedFiles().isEmpty)
        #expect(progress.downloadedBytes() == Int64(try Data(contentsOf: try TestEnvironment.releaseArchive()).count))
        // The digest of the unpinned asset is recorded for later downloads.
        #expect(LlamaInstaller(options: o).recordedDigests()[Self.assetName] == installation.assets.first?.sha256)

        // Cached: no server at all, and offline mode, both find it.
        var cached = o
        cached.mirrors = [URL(string: "http://127.0.0.1:9/nothing")!]
        cached.offline = true
        let again = try await LlamaInstaller(options: cached).install()
        #expect(again.directory == installation.directory)
        #expect(try Self.assetRequests(server).count == 1)

        let runtime = try await LlamaRuntime.load(options: cached)
        #expect(runtime.installation?.directory == installation.directory)
        #expect(runtime.libraryDirectory.standardizedFileURL.path == dir.standardizedFileURL.path)
        let options = ContextOptions(contextLength: 256, batchSize: 256, threads: 2)
        let model = try LlamaModel(runtime: runtime, path: try TestEnvironment.model().path)
        let text = try await LlamaContext(model: model, options: options)
            .generate(prompt: Fixture.chatPrompt, options: GenerationOptions(maxTokens: 16)).summary()
        let reference = try await Fixture.context(options)
            .generate(prompt: Fixture.chatPrompt, options: GenerationOptions(maxTokens: 16)).summary()
        #expect(!text.generatedTokens.isEmpty)
        #expect(text.generatedTokens == reference.generatedTokens)
    }

    @Test("a download cut mid-body resumes with a Range request")
    func resumeAfterCut() async throws {
        let server = try await Self.mirror()
        let o = try Self.options(server, mirrors: ["cut/\(Self.releasePath)"])
        let installation = try await LlamaInstaller(options: o).install()
        await #expect(installation.assets.first?.sha256 == (try Self.sha256(try TestEnvironment.releaseArchive())))
        let requests = try Self.assetRequests(server)
        #expect(requests.count == 2, "\(requests)")
        #expect(requests.last?.contains("bytes=") == true, "the second request resumes: \(requests)")
        #expect(requests.last?.hasSuffix("bytes=0-") == false)
    }

    @Test("a corrupt archive fails the pinned digest and leaves nothing in the cache")
    func corruptPinned() async throws {
        let server = try await Self.mirror()
        let real = try await Self.sha256(try TestEnvironment.releaseArchive())
        let o = try Self.options(server, mirrors: ["corrupt/\(Self.releasePath)"], sha256: real)
        let error = await expectLlamaError(.checksumMismatch) { try await LlamaInstaller(options: o).install() }
        #expect(error != nil)
        #expect(error?.message.contains(real) == true)
        Self.expectNothingInstalled(o)
        let downloads = LlamaInstaller(options: o).root.appendingPathComponent("\(LlamaPin.tag)/downloads")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: downloads.path)) ?? []).isEmpty)
    }

    @Test("an unpinned asset must match the digest its first download recorded")
    func recordedDigest() async throws {
        let server = try await Self.mirror()
        var o = try Self.options(server)
        let first = try await LlamaInstaller(options: o).install()
        // The entry goes, the recorded digest stays; a corrupt mirror is now caught.
        try FileManager.default.removeItem(at: LlamaInstaller(options: o).entry)
        o.mirrors = [server.url("corrupt/\(Self.releasePath)")]
        let error = await expectLlamaError(.checksumMismatch) { try await LlamaInstaller(options: o).install() }
        #expect(error != nil)
        #expect(error?.message.contains(first.assets[0].sha256) == true)
        Self.expectNothingInstalled(o)
    }

    @Test("strict digests refuse an unpinned asset before downloading it")
    func strictDigests() async throws {
        let server = try await Self.mirror()
        var o = try Self.options(server)
        o.requirePinnedDigests = true
        let error = await expectLlamaError(.unpinnedDigest) { try await LlamaInstaller(options: o).install() }
        #expect(error?.message.contains(LlamaInstallOptions.strictDigestsVariable) == true)
        #expect(try Self.assetRequests(server).isEmpty)
        // With the digest pinned, strict mode installs.
        o.release.entries[0].assets[0].sha256 = try await Self.sha256(try TestEnvironment.releaseArchive())
        #expect(try await LlamaInstaller(options: o).install().assets[0].pinned)
    }

    @Test("a 404 on the first mirror falls through to the second; a 503 is retried")
    func mirrorFallback() async throws {
        let server = try await Self.mirror()
        let o = try Self.options(server, mirrors: ["404/\(Self.releasePath)", "500/\(Self.releasePath)", Self.releasePath])
        _ = try await LlamaInstaller(options: o).install()
        let requests = try Self.assetRequests(server)
        #expect(requests.filter { $0.hasPrefix("/404/") }.count == 1, "a 404 is not retried: \(requests)")
        #expect(requests.filter { $0.hasPrefix("/500/") }.count == o.retries + 1, "a 503 is retried: \(requests)")
        #expect(requests.last?.hasPrefix("/\(Self.releasePath)") == true)
    }

    @Test("a server that stalls mid-body gives a timeout error")
    func stall() async throws {
        let server = try await Self.mirror()
        var o = try Self.options(server, mirrors: ["stall/\(Self.releasePath)"])
        o.idleTimeout = .seconds(1)
        o.retries = 1
        let error = await expectLlamaError(.timeout) { try await LlamaInstaller(options: o).install() }
        #expect(error != nil)
        #expect(LlamaInstaller(options: o).installed() == nil)
        #expect(try Self.assetRequests(server).count == 2)
        // What arrived is kept as a .part and resumed by the next install.
        let part = LlamaInstaller(options: o).root.appendingPathComponent("\(LlamaPin.tag)/downloads/\(Self.assetName).part")
        let kept = try #require(try FileManager.default.attributesOfItem(atPath: part.path)[.size] as? Int)
        #expect(kept >= 1024)
        o.mirrors = [server.url(Self.releasePath)]
        o.idleTimeout = .seconds(30)
        let before = try Self.assetRequests(server).count
        _ = try await LlamaInstaller(options: o).install()
        let resumed = try Self.assetRequests(server).dropFirst(before).first
        #expect(resumed == "/\(Self.releasePath)/\(LlamaPin.tag)/\(Self.assetName) bytes=\(kept)-")
        #expect(!FileManager.default.fileExists(atPath: part.path))
    }

    @Test("every mirror failing is a downloadFailed error naming each mirror")
    func allMirrorsFail() async throws {
        let server = try await Self.mirror()
        let o = try Self.options(server, mirrors: ["404/a", "404/b"])
        let error = await expectLlamaError(.downloadFailed) { try await LlamaInstaller(options: o).install() }
        #expect(error?.message.contains("/404/a/") == true)
        #expect(error?.message.contains("/404/b/") == true)
    }

    @Test("offline with an empty cache says what is missing and how to get it")
    func offlineEmpty() async throws {
        let server = try await Self.mirror()
        var o = try Self.options(server)
        o.offline = true
        let error = await expectLlamaError(.offline) { try await LlamaInstaller(options: o).install() }
        let message = try #require(error?.message)
        #expect(message.contains(LlamaPin.tag))
        #expect(message.contains(LlamaInstaller(options: o).entry.path))
        #expect(message.contains("libs install"))
        #expect(try server.requests().isEmpty)
        // LlamaRuntime.load says the same.
        let runtimeError = await expectLlamaError(.offline) { try await LlamaRuntime.load(options: o) }
        #expect(runtimeError != nil)
    }

    @Test("no asset for the variant, and no source build allowed: noAsset naming the released variants")
    func noAsset() async throws {
        let server = try await Self.mirror()
        var o = try Self.options(server)
        o.variant = "quantum"
        let error = await expectLlamaError(.noAsset) { try await LlamaInstaller(options: o).install() }
        #expect(error?.message.contains("released variants: cpu") == true)
    }

    @Test("two processes installing at once download once")
    func twoProcesses() async throws {
        let server = try await Self.mirror()
        let cache = try TestEnvironment.temporaryDirectory()
        let cli = TestEnvironment.productsDirectory.appendingPathComponent("llama-swift")
        // A slow mirror keeps the first download going while the second process starts.
        let arguments = ["libs", "install", "--cache-dir", cache.path, "--mirror", server.url("slow/\(Self.releasePath)").absoluteString,
                         "--build-from-source", "never"]
        // The test holds the install lock while both start, so both must wait for it; each says so
        // on stderr, and once both have, the test lets go: then one downloads and the other finds
        // the installation.
        let lockFile = cache.appendingPathComponent("llama.cpp/\(LlamaPin.tag)/.linux-x64-cpu.lock")
        try FileManager.default.createDirectory(at: lockFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = open(lockFile.path, O_RDWR | O_CREAT, 0o644)
        try #require(fd >= 0 && flock(fd, LOCK_EX) == 0)
        let (waiting, waiter) = AsyncStream<String>.makeStream()
        func install(_ name: String) async throws -> ChildProcess.Termination {
            try await ChildProcess.run(cli.path, arguments, timeout: .seconds(300)) { line in
                if line.stream == .error, line.text.contains("another process is installing") { waiter.yield(name) }
            }
        }
        async let a = install("a")
        async let b = install("b")
        let bothWaited = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                var seen = Set<String>()
                for await name in waiting {
                    seen.insert(name)
                    if seen.count == 2 { return true }
                }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(120))  // the bound, for processes that never report waiting
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        flock(fd, LOCK_UN)
        close(fd)
        let (ra, rb) = try await (a, b)
        #expect(bothWaited, "both processes should have reported waiting for the lock within 120 s:\n\(ra.errorText)\n\(rb.errorText)")
        #expect(ra.succeeded, "\(ra)\n\(ra.errorText)")
        #expect(rb.succeeded, "\(rb)\n\(rb.errorText)")
        #expect(ra.outputText == rb.outputText)
        #expect(ra.outputText.hasSuffix("llama-\(LlamaPin.tag)\n"))
        let requests = try Self.assetRequests(server)
        #expect(requests.count == 1, "\(requests)")
    }

    @Test("a damaged installed file is reported by verify")
    func verifyFindsDamage() async throws {
        let server = try await Self.mirror()
        let o = try Self.options(server)
        let installation = try await LlamaInstaller(options: o).install()
        let lib = try #require(installation.directory).appendingPathComponent("libggml-base.so.0.26.0")
        #expect(LlamaInstaller(options: o).verify().allSatisfy { $0.damaged.isEmpty })
        let handle = try FileHandle(forWritingTo: lib)
        try handle.seek(toOffset: 100)
        try handle.write(contentsOf: Data([0x42]))
        try handle.close()
        #expect(LlamaInstaller(options: o).verify().first?.damaged == ["libggml-base.so.0.26.0"])
    }

    @Test("prune removes other tags, interrupted downloads and incomplete entries")
    func prune() async throws {
        let server = try await Self.mirror()
        let o = try Self.options(server)
        _ = try await LlamaInstaller(options: o).install()
        let root = LlamaInstaller(options: o).root
        let old = root.appendingPathComponent("b1/linux-x64-cpu/llama-b1")
        try FileManager.default.createDirectory(at: old, withIntermediateDirectories: true)
        let part = root.appendingPathComponent("\(LlamaPin.tag)/downloads/x.tar.gz.part")
        try Data("x".utf8).write(to: part)
        let half = root.appendingPathComponent("\(LlamaPin.tag)/linux-x64-vulkan")
        try FileManager.default.createDirectory(at: half, withIntermediateDirectories: true)
        let removed = try LlamaInstaller(options: o).prune()
        #expect(Set(removed) == [root.appendingPathComponent("b1").path, part.deletingLastPathComponent().path, half.path])
        #expect(LlamaInstaller(options: o).installed() != nil)
        #expect(LlamaInstaller(options: o).list().count == 1)
    }

    @Test("a bundle is verified before loading; a tampered bundle is refused")
    func bundle() async throws {
        let server = try await Self.mirror()
        var o = try Self.options(server)
        o.platform = .current
        o.release.entries[0].platform = .current
        let folder = try TestEnvironment.temporaryDirectory().appendingPathComponent("app-bundle")
        let manifest = try await LlamaBundle.create(at: folder, targets: [(.current, .cpu)], options: o)
        #expect(manifest.entries.count == 1)
        let dir = try #require(try LlamaBundle.locate(in: folder, tag: LlamaPin.tag, variant: .cpu))
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("libllama.so").path))
        #expect(try LlamaBundle.locate(in: folder, tag: LlamaPin.tag, variant: "vulkan") == nil)

        // Loading goes to the bundle before the cache (offline, with an empty cache).
        var fromBundle = o
        fromBundle.cacheDirectory = try TestEnvironment.temporaryDirectory()
        fromBundle.offline = true
        fromBundle.bundleDirectory = folder
        let runtime = try await LlamaRuntime.load(options: fromBundle)
        #expect(runtime.libraryDirectory.standardizedFileURL.path == dir.standardizedFileURL.path)
        #expect(runtime.installation == nil)

        // A new file in its place (the loaded one stays mapped).
        try Data("not a library".utf8).write(to: dir.appendingPathComponent("libllama.so.0.6.0"), options: .atomic)
        let error = await expectLlamaError(.checksumMismatch) {
            try LlamaBundle.locate(in: folder, tag: LlamaPin.tag, variant: .cpu)
        }
        #expect(error?.message.contains("libllama.so.0.6.0") == true)
    }
}

/// Runs blocking work on a thread of its own.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Collects progress reports.
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [LlamaProgress] = []
    var handler: LlamaProgressHandler { { p in self.lock.withLock { self.reports.append(p) } } }
    func downloadedBytes() -> Int64? {
        lock.withLock { reports.last { $0.phase == .download }?.completed }
    }
    var all: [LlamaProgress] { lock.withLock { reports } }
}
