public import Foundation
public import LlamaRaw

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

    public static var devCache: URL {
        let env = ProcessInfo.processInfo.environment
        if let explicit = env["LLAMA_DEV_CACHE"] { return URL(fileURLWithPath: explicit) }
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("swift-llama-cpp/dev")
    }

    public static func existing(_ variable: String, default path: URL, make target: String) throws -> URL {
        let url = ProcessInfo.processInfo.environment[variable].map { URL(fileURLWithPath: $0) } ?? path
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw Missing(description: "\(url.path) does not exist (from \(variable) or its default): run `\(target)`, or `make test`, which runs it")
        }
        return url
    }

    public static func libraryDirectory() throws -> URL {
        try existing("LLAMA_LIB_DIR", default: devCache.appendingPathComponent("lib/\(LlamaPin.tag)/cpu/llama-\(LlamaPin.tag)"),
                     make: "make llama")
    }

    public static func model() throws -> URL {
        try existing("LLAMA_MODEL", default: devCache.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
                     make: "make model")
    }

    /// The release archive `make llama` packed like the official one.
    public static func releaseArchive() throws -> URL {
        try existing("LLAMA_ARCHIVE", default: devCache.appendingPathComponent("dist/\(LlamaPin.tag)/llama-\(LlamaPin.tag)-bin-ubuntu-x64.tar.gz"),
                     make: "make llama")
    }

    /// The pinned source archive (the PyPI sdist) that `make headers` downloaded.
    public static func sourceArchive() throws -> URL {
        guard let file = LlamaPin.sources.first(where: { $0.kind == "pypi-sdist" })?.file else {
            throw Missing(description: "the manifest pins no PyPI source archive")
        }
        return try existing("LLAMA_SOURCE_ARCHIVE", default: devCache.appendingPathComponent("downloads/\(file)"), make: "make headers")
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

    public static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llama-raw-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program to completion, killing it after `timeout` seconds.
/// `stdin`, when given, is written to the program's standard input (then closed); otherwise it reads nothing.
public func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
                       stdin: String? = nil, timeout: TimeInterval = 300) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let out = Pipe()
    let err = Pipe()
    let input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    let text = Data((stdin ?? "").utf8)
    DispatchQueue.global().async {
        try? input.fileHandleForWriting.write(contentsOf: text)
        try? input.fileHandleForWriting.close()
    }
    // Read both pipes while the process runs, so that neither fills up.
    nonisolated(unsafe) var stdoutData = Data()
    nonisolated(unsafe) var stderrData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { stdoutData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { stderrData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let deadline = DispatchTime.now() + timeout
    if group.wait(timeout: deadline) == .timedOut {
        process.terminate()
        group.wait()
    }
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: stdoutData, as: UTF8.self),
                         stderr: String(decoding: stderrData, as: UTF8.self))
}

/// Compiles the native reference program against the pinned headers and the libraries.
public func buildNativeReference() throws -> URL {
    let libs = try TestEnvironment.libraryDirectory()
    let headers = try TestEnvironment.headers()
    let source = TestEnvironment.packageRoot.appendingPathComponent("Tests/LlamaRawTests/Native/greedy.c")
    let output = try TestEnvironment.temporaryDirectory().appendingPathComponent("greedy")
    let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [
        "cc", "-std=c11", "-O2", "-Wall", "-Werror",
        "-I", headers.appendingPathComponent("include").path,
        "-I", headers.appendingPathComponent("ggml/include").path,
        source.path, "-o", output.path,
        "-L", libs.path, "-lllama", "-lggml", "-lggml-base", "-Wl,-rpath," + libs.path,
    ])
    guard result.status == 0 else {
        throw TestEnvironment.Missing(description: "the native reference did not compile:\n\(result.stderr)")
    }
    return output
}

/// The loopback server of `mirror_server.py`, serving a folder laid out like the remote it
/// stands for; fault prefixes (`/404/`, `/cut/`, `/stall/`, `/corrupt/`, `/slow/`) break it per request.
public final class MirrorServer: @unchecked Sendable {
    public let root: URL
    public let port: Int
    private let process: Process
    private let stdin: Pipe

    /// Starts a server over a new folder; `files` maps paths in it to the files to copy there.
    public init(files: [String: URL], headers: [String: [String: String]] = [:]) throws {
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
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let out = Pipe()
        stdin = Pipe()
        process.standardOutput = out
        process.standardInput = stdin
        try process.run()
        // The first line is the port.
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            throw TestEnvironment.Missing(description: "the loopback mirror did not start (python3 Tests/Support/mirror_server.py)")
        }
        self.port = port
    }

    /// A server answering like a PyPI simple index (PEP 691 JSON pages at `/simple/<project>/`),
    /// serving each file under `/packages/`, plus any `extra` files.
    public static func pypiIndex(_ files: [(project: String, file: URL, sha256: String?)],
                                 extra: [String: URL] = [:]) throws -> MirrorServer {
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
        return try MirrorServer(files: served)
    }

    deinit {
        try? stdin.fileHandleForWriting.close()
        process.terminate()
    }

    /// `http://127.0.0.1:<port>/<path>`.
    public func url(_ path: String) -> URL {
        URL(string: "http://127.0.0.1:\(port)/\(path)")!
    }

    /// The requests served so far ("<path>[ bytes=N-]"), from the server's log.
    public func requests() throws -> [String] {
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["curl", "-sf", url("_log").absoluteString], timeout: 10)
        guard result.status == 0 else { throw TestEnvironment.Missing(description: "curl could not read the mirror's log") }
        return result.stdout.split(separator: "\n").map(String.init)
    }
}
