import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// Variant selection on fixture machines (a filesystem root and a description of the driver
/// libraries each), and the real CPU path on this machine.
@Suite("variant selection", .timeLimit(.minutes(5)))
struct SelectionTests {
    static let machines = TestEnvironment.packageRoot.appendingPathComponent("Tests/LlamaTests/Fixtures/machines")
    /// Every fixture machine, by name: a folder added or removed without changing this list fails `listed`.
    static let names = [
        "amd-rocm", "amd-without-hip", "intel-sycl", "intel-vulkan-only", "macos-arm64", "no-gpu", "no-gpu-asks-cuda",
        "nvidia-and-amd", "nvidia-broken-libcuda", "nvidia-cuda-12.8", "nvidia-cuda-13.0", "nvidia-cuda-13.4-vulkan",
        "nvidia-hung-driver", "nvidia-no-libcuda", "nvidia-old-driver", "two-nvidia", "vulkan-software-only",
    ]

    struct Expected: Decodable {
        var platform: String?
        var request: String?
        var candidates: [String]
        var rejected: [String: String]
        var reasons: [String: String]?
        var notes: [String]?
        /// NVIDIA GPUs the probe reports (0 when it finds no NVIDIA driver).
        var gpus: Int
    }

    @Test("the fixture folder holds exactly the listed machines")
    func listed() throws {
        let found = Set(try FileManager.default.contentsOfDirectory(atPath: Self.machines.path).filter { !$0.hasPrefix(".") })
        let listed = Set(Self.names)
        #expect(listed.count == Self.names.count, "SelectionTests.names lists a machine twice")
        #expect(found.subtracting(listed).isEmpty,
                "fixture machines not listed in SelectionTests.names (add them): \(found.subtracting(listed).sorted())")
        #expect(listed.subtracting(found).isEmpty,
                "listed fixture machines missing from \(Self.machines.path): \(listed.subtracting(found).sorted())")
    }

    @Test("each fixture machine gets its expected candidates, in order, and the reasons", arguments: names)
    func fixture(_ name: String) async throws {
        let folder = Self.machines.appendingPathComponent(name)
        let file = folder.appendingPathComponent("expected.json")
        try #require(FileManager.default.fileExists(atPath: file.path), "the fixture machine \(name) has no expected.json at \(file.path)")
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: file))
        let platform = try expected.platform.map { try #require(LlamaPlatform($0), "\(name): unknown platform \($0)") }
            ?? LlamaPlatform(os: "linux", arch: "x64")
        var probe = try LlamaHardwareProbe(fixture: folder, platform: platform)
        probe.timeout = .milliseconds(500)
        let report = await probe.run()
        let selection = LlamaVariantSelection.plan(LlamaVariant(rawValue: expected.request ?? "auto"), hardware: report,
                                                   release: .pinned, platform: platform)
        #expect(selection.candidates.map(\.variant.rawValue) == expected.candidates, "\(selection.summary)")
        for (variant, reason) in expected.rejected {
            // `description`: the variant's name, whether `Rejection.variant` is a String or a LlamaVariant.
            let found = selection.rejected.first { $0.variant.description == variant }
            #expect(found?.reason.contains(reason) == true, "\(variant): \(selection.summary)")
        }
        for (variant, reason) in expected.reasons ?? [:] {
            #expect(selection.candidates.first { $0.variant.rawValue == variant }?.reason.contains(reason) == true, "\(selection.summary)")
        }
        for note in expected.notes ?? [] { #expect(report.notes.contains { $0.contains(note) }, "\(report.notes)") }
        #expect((report.nvidia?.gpus.count ?? 0) == expected.gpus, "\(String(describing: report.nvidia))")
        #expect(report.cpu.features.contains("avx2") || platform.os == "macos")
    }

    static func mirror() async throws -> MirrorServer {
        let archive = try TestEnvironment.releaseArchive()
        let path = "\(ProvisioningTests.releasePath)/\(LlamaPin.tag)"
        return try await MirrorServer(files: [
            "\(path)/\(archive.lastPathComponent)": archive,
            // A "Vulkan build" that is really the CPU build: it loads, but registers no GPU.
            "\(path)/llama-\(LlamaPin.tag)-bin-ubuntu-vulkan-x64.tar.gz": archive,
        ])
    }

    static func options(_ server: MirrorServer) throws -> LlamaInstallOptions {
        var o = LlamaInstallOptions(variant: .auto, environment: [:])
        o.cacheDirectory = try TestEnvironment.temporaryDirectory()
        o.mirrors = [server.url(ProvisioningTests.releasePath)]
        o.buildFromSource = .never
        o.helper = TestEnvironment.productsDirectory.appendingPathComponent("llama-helper")
        return o
    }

    @Test("this machine end to end: .auto probes, chooses the CPU build, installs and loads it")
    func realCPU() async throws {
        let server = try await Self.mirror()
        let runtime = try await LlamaRuntime.load(options: try Self.options(server))
        let selection = try #require(runtime.selection)
        #expect(selection.chosen == .cpu, "\(selection.summary)")
        #expect(runtime.installation?.variant == .cpu)
        #expect(runtime.devices.contains { $0.kind == .cpu })
        #expect(!selection.hardware.cpu.features.isEmpty)
    }

    @Test("a GPU build that registers no GPU device in the child check is rejected, the CPU build is used, and the verdict is kept")
    func fallbackWithReason() async throws {
        let server = try await Self.mirror()
        var o = try Self.options(server)
        o.probe = try LlamaHardwareProbe(fixture: Self.machines.appendingPathComponent("intel-vulkan-only"), platform: o.platform)
        let runtime = try await LlamaRuntime.load(options: o)
        let selection = try #require(runtime.selection)
        #expect(selection.candidates.map(\.variant) == [.vulkan, .cpu])
        #expect(selection.chosen == .cpu)
        let rejection = try #require(selection.rejected.first { $0.variant == "vulkan" })
        #expect(rejection.reason.contains("no GPU device"), "\(rejection.reason)")
        #expect(rejection.code == .backendRejected, "\(rejection)")
        let verdicts = o.cacheDirectory.appendingPathComponent("llama.cpp/\(LlamaPin.tag)/verdicts.json")
        #expect(FileManager.default.fileExists(atPath: verdicts.path))

        // The second time the verdict is read, not checked again.
        var again = o
        again.helper = URL(fileURLWithPath: "/nonexistent/helper")
        let second = try await LlamaRuntime.load(options: again)
        #expect(second.selection?.chosen == .cpu)
        #expect(second.selection?.rejected.first { $0.variant == "vulkan" }?.reason.contains("verdict of") == true)
    }

    @Test("asking for a family the machine cannot run is an error that says why, not a silent CPU run")
    func explicitFamily() async throws {
        let server = try await Self.mirror()
        var o = try Self.options(server)
        o.variant = .cuda
        o.probe = try LlamaHardwareProbe(fixture: Self.machines.appendingPathComponent("no-gpu"), platform: o.platform)
        let error = await expectLlamaError(.noAsset) { try await LlamaRuntime.load(options: o) }
        #expect(error?.message.contains("no NVIDIA GPU") == true, "\(String(describing: error))")
    }

    @Test("devices --fixture --no-load --json reports the plan of a fixture machine")
    func devicesCommand() async throws {
        let r = try await CLITests.cli(["devices", "--no-load", "--json", "--fixture", Self.machines.appendingPathComponent("nvidia-old-driver").path],
                                 env: ["LLAMA_SWIFT_LIB_DIR": ""])
        try #require(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let selection = try #require(doc["selection"] as? [String: Any])
        let candidates = try #require(selection["candidates"] as? [[String: Any]])
        #expect(candidates.compactMap { $0["variant"] as? String } == ["vulkan", "cpu"])
        let hardware = try #require(selection["hardware"] as? [String: Any])
        #expect((hardware["nvidia"] as? [String: Any])?["driverVersion"] as? String == "535.183.01")
    }
}
