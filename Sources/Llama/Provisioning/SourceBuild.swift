import Foundation
import Logging
import LlamaProcess
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

    /// The cmake flags of a build of `variant`: laid out like the official release archive
    /// (backends loaded at run time, every CPU variant), or tuned for this machine's CPU
    /// (GGML_NATIVE, which llama.cpp allows only with the backends linked in).
    static func flags(_ layout: LlamaInstallOptions.BuildLayout, variant: LlamaVariant) -> [String] {
        switch layout {
        case .release: LlamaPin.cmake.releaseLayout + LlamaPin.cmake.flags(forVariant: variant.rawValue)
        case .native: LlamaPin.cmake.native(variant: variant.rawValue)
        }
    }

    /// Configures and builds the source tree `tree` with `flags`, and copies the libraries into `release`.
    func build(tree: URL, flags: [String], into release: URL, progress: LlamaProgressHandler?) async throws(LlamaError) {
        guard Self.toolsPresent() else {
            throw LlamaError(.buildFailed, "building llama.cpp from source needs cmake and a C++ compiler on the PATH "
                + "(Debian/Ubuntu: apt-get install cmake g++; macOS: xcode-select --install and brew install cmake)")
        }
        let work = installer.tagFolder.appendingPathComponent(".build-\(options.platform)-\(options.variant.rawValue)")
        try? FileManager.default.removeItem(at: work)
        let out = work.appendingPathComponent("build")
        try LlamaInstaller.makeFolder(out)
        let log = work.appendingPathComponent("build.log")
        let item = "llama.cpp \(tag) \(options.variant)"
        options.logger.info("building \(item) from source with \(options.buildJobs) jobs (log: \(log.path)); this takes minutes")
        let cmake = Self.find("cmake")!.path
        try await Self.run(cmake, ["-S", tree.path, "-B", out.path] + flags,
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

    /// Runs a tool, appending its output (stdout and stderr in order) to `log`; each output line
    /// goes to `line`. A failure throws with the last lines of the output. Cancelling the task
    /// terminates the tool and all it started; so does 30 minutes without a line of output.
    static func run(_ executable: String, _ arguments: [String], log: URL, step: String,
                    line: @escaping @Sendable (String) -> Void = { _ in }) async throws(LlamaError) {
        if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        guard let logHandle = try? FileHandle(forWritingTo: log) else { throw LlamaError(.buildFailed, "cannot write \(log.path)") }
        defer { try? logHandle.close() }
        _ = try? logHandle.seekToEnd()
        let tail = Mutex([String]())
        let idle: Duration = .seconds(30 * 60)
        let termination: ChildProcess.Termination
        do {
            termination = try await ChildProcess.run(
                executable, arguments, standardOutput: .discard, standardError: .mergeIntoOutput, idleTimeout: idle
            ) { output in
                try? logHandle.write(contentsOf: Data((output.text + "\n").utf8))
                line(output.text)
                tail.withLock { $0.append(output.text); if $0.count > 25 { $0.removeFirst() } }
            }
        } catch {
            throw LlamaError(.buildFailed, "\(step) could not start \(executable): \(error.message)")
        }
        let lines = tail.withLock { $0 }.joined(separator: "\n")
        switch termination.state {
        case .exited(0):
            return
        case .cancelled:
            throw LlamaError(.cancelled, "\(step) was cancelled")
        case .timedOut:
            throw LlamaError(.buildFailed, "\(step) printed nothing for \(idle) and was stopped (full log: \(log.path)):\n\(lines)")
        case .exited, .signalled:
            throw LlamaError(.buildFailed, "\(step) failed: \(termination) (full log: \(log.path)):\n\(lines)")
        }
    }
}
