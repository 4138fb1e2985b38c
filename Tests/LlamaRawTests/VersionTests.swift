import Foundation
import LlamaTestSupport
import LlamaRaw
import Testing

/// Libraries of another llama.cpp version are refused unless the user says otherwise.
@Suite("Version compatibility")
struct VersionTests {
    @Test("the tag of a release folder comes from its llama-<tag> folder")
    func releaseTag() {
        #expect(LlamaLibraries.releaseTag(of: URL(fileURLWithPath: "/x/llama-b11401")) == "b11401")
        #expect(LlamaLibraries.releaseTag(of: URL(fileURLWithPath: "/cache/lib/b11434/cpu/llama-b11434/")) == "b11434")
        #expect(LlamaLibraries.releaseTag(of: URL(fileURLWithPath: "/opt/llama-v1.2.3/lib")) == "v1.2.3")
        #expect(LlamaLibraries.releaseTag(of: URL(fileURLWithPath: "/opt/llama-cpp/build/bin")) == nil)
        #expect(LlamaLibraries.releaseTag(of: URL(fileURLWithPath: "/tmp/llama-raw-tests-1")) == nil)
    }

    @Test("only the pinned tag and the tags that share its API are accepted")
    func accepts() {
        #expect(LlamaLibraries.accepts(tag: LlamaPin.tag))
        #expect(!LlamaLibraries.accepts(tag: "b1"))
        #expect(!LlamaLibraries.accepts(tag: nil))
        #expect(LlamaLibraries.accepts(tag: "b11400", pinned: "b11434", compatible: ["b11399", "b11400"]))
        #expect(!LlamaLibraries.accepts(tag: "b11398", pinned: "b11434", compatible: ["b11399", "b11400"]))
    }

    var rawGenerate: URL { TestEnvironment.productsDirectory.appendingPathComponent("raw-generate") }

    @Test("another version is refused with what to do, and loads when the user allows it")
    func otherVersion() async throws {
        let dir = try TestEnvironment.linkedReleaseFolder(tag: "b11401")
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let arguments = ["--lib-dir", dir.path, "--model", try TestEnvironment.model().path, "-n", "8", "--ids"]

        let refused = try await runProcess(rawGenerate, arguments, environment: [LlamaLibraries.allowMismatchVariable: "0"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("are llama.cpp b11401, but the bindings were generated from \(LlamaPin.tag)"))
        #expect(refused.stderr.contains("make bump TAG="))
        #expect(refused.stderr.contains(LlamaLibraries.allowMismatchVariable))

        let allowed = try await runProcess(rawGenerate, arguments, environment: [LlamaLibraries.allowMismatchVariable: "1"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout.contains("generated: "))
    }

    @Test("a folder of unknown version is refused")
    func unknownVersion() throws {
        #expect {
            _ = try LlamaLibraries.load(from: URL(fileURLWithPath: "/opt/llama-cpp/build/bin"), allowVersionMismatch: false)
        } throws: { error in
            (error as? LlamaLoadError)?.code == .directoryNotFound
        }
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect {
            _ = try LlamaLibraries.load(from: dir, allowVersionMismatch: false)
        } throws: { error in
            (error as? LlamaLoadError)?.code == .versionMismatch && (error as? LlamaLoadError)?.foundTag == nil
                && "\(error)".contains("unknown llama.cpp version")
        }
    }
}
