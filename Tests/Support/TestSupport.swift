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
public func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
                timeout: TimeInterval = 300) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
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
