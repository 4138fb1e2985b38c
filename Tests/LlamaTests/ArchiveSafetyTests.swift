import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// Hostile archives served as release assets are refused, write nothing outside the cache and
/// leave no entry; a well-formed zip (the Windows assets' format) installs.
@Suite("archive safety", .timeLimit(.minutes(5)))
struct ArchiveSafetyTests {
    /// Writes an archive with Python's tarfile/zipfile: each member is (name, kind, payload), kind
    /// being file, dir, symlink (payload: target) or hardlink.
    static func makeArchive(_ name: String, _ members: [(String, String, String)]) async throws -> URL {
        let out = try TestEnvironment.temporaryDirectory().appendingPathComponent(name)
        let spec = try JSONSerialization.data(withJSONObject: members.map { [$0.0, $0.1, $0.2] })
        let script = """
            import io, json, sys, tarfile, zipfile
            out, members = sys.argv[1], json.loads(sys.argv[2])
            if out.endswith(".zip"):
                with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
                    for name, kind, payload in members:
                        info = zipfile.ZipInfo(name)
                        if kind == "symlink":
                            info.external_attr = (0o120777 << 16)
                        elif kind == "dir":
                            info.external_attr = (0o40755 << 16)
                        else:
                            info.external_attr = (0o100644 << 16)
                        z.writestr(info, payload if kind != "dir" else "")
            else:
                with tarfile.open(out, "w:gz") as t:
                    for name, kind, payload in members:
                        info = tarfile.TarInfo(name)
                        data = payload.encode()
                        if kind == "file":
                            info.size = len(data)
                            t.addfile(info, io.BytesIO(data))
                            continue
                        info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
                        info.linkname = payload
                        t.addfile(info)
            """
        let r = try await runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, out.path, String(decoding: spec, as: UTF8.self)])
        guard r.status == 0 else { throw TestEnvironment.Missing(description: "could not write \(name): \(r.stderr)") }
        return out
    }

    /// Installs `archive` as the cpu asset of linux-x64 from a loopback mirror.
    static func install(_ archive: URL) async throws -> (LlamaInstallOptions, Result<LlamaInstallation, LlamaError>) {
        let server = try await MirrorServer(files: ["r/\(LlamaPin.tag)/\(archive.lastPathComponent)": archive])
        var o = try ProvisioningTests.options(server, mirrors: ["r"], asset: archive.lastPathComponent)
        o.platform = ProvisioningTests.linux
        do {
            return (o, .success(try await LlamaInstaller(options: o).install()))
        } catch let error as LlamaError {
            return (o, .failure(error))
        }
    }

    static let hostile: [(String, [(String, String, String)], String)] = [
        ("dotdot.tar.gz", [("llama-x/ok.txt", "file", "ok"), ("llama-x/../../escaped.txt", "file", "evil")], "leaves the archive"),
        ("absolute.tar.gz", [("/tmp/llama-swift-absolute-escape.txt", "file", "evil")], "absolute path"),
        ("escaping-link.tar.gz", [("llama-x/lib", "symlink", "../../../etc")], "points outside"),
        ("absolute-link.tar.gz", [("llama-x/passwd", "symlink", "/etc/passwd")], "absolute path /etc/passwd"),
        ("through-link.tar.gz", [("llama-x/here", "symlink", "."), ("llama-x/here/x.txt", "file", "x")], "through a link"),
        ("hardlink.tar.gz", [("llama-x/h", "hardlink", "/etc/passwd")], "hard link"),
        ("dotdot.zip", [("llama-x/../../escaped.txt", "file", "evil")], "leaves the archive"),
        ("escaping-link.zip", [("llama-x/lib", "symlink", "../../..")], "points outside"),
    ]

    @Test("hostile archives are refused", arguments: 0..<hostile.count)
    func refused(_ index: Int) async throws {
        let (name, members, why) = Self.hostile[index]
        let archive = try await Self.makeArchive(name, members)
        let (o, result) = try await Self.install(archive)
        guard case .failure(let error) = result else {
            Issue.record("\(name) was installed")
            return
        }
        #expect(error.code == .unsafeArchive, "\(error)")
        #expect(error.message.contains(why), "\(error.message)")
        ProvisioningTests.expectNothingInstalled(o)
        let cacheParent = o.cacheDirectory.deletingLastPathComponent()
        #expect(!FileManager.default.fileExists(atPath: cacheParent.appendingPathComponent("escaped.txt").path))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/llama-swift-absolute-escape.txt"))
    }

    @Test("a truncated archive is refused")
    func truncated() async throws {
        let real = try Data(contentsOf: try TestEnvironment.releaseArchive())
        let archive = try TestEnvironment.temporaryDirectory().appendingPathComponent("truncated.tar.gz")
        try real.prefix(real.count / 2).write(to: archive)
        let (o, result) = try await Self.install(archive)
        guard case .failure(let error) = result else { Issue.record("installed"); return }
        #expect(error.code == .unsafeArchive)
        #expect(error.message.contains("truncated"), "\(error.message)")
        ProvisioningTests.expectNothingInstalled(o)
    }

    @Test("a zip with a top folder, links inside it and nested folders installs like a tar.gz")
    func zipInstalls() async throws {
        let archive = try await Self.makeArchive("release.zip", [
            ("llama-x/", "dir", ""), ("llama-x/libfoo.so.1", "file", String(repeating: "payload ", count: 1000)),
            ("llama-x/libfoo.so", "symlink", "libfoo.so.1"), ("llama-x/sub/deep.txt", "file", "deep"),
        ])
        let (_, result) = try await Self.install(archive)
        let installation = try result.get()
        let dir = try #require(installation.directory)
        #expect(try String(contentsOf: dir.appendingPathComponent("sub/deep.txt"), encoding: .utf8) == "deep")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir.appendingPathComponent("libfoo.so").path) == "libfoo.so.1")
        #expect(try Data(contentsOf: dir.appendingPathComponent("libfoo.so")).count == 8000)
        #expect(installation.files["libfoo.so"] == "-> libfoo.so.1")
    }
}
