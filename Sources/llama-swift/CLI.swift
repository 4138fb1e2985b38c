import ArgumentParser
import Foundation
import Llama
import Logging

/// What every subcommand shares: logs on stderr, Llama errors as one line and exit status 1.
enum CLI {
    static let logger: Logger = {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["LLAMA_SWIFT_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            return handler
        }
        return Logger(label: "llama-swift")
    }()

    nonisolated(unsafe) static var signalSources: [any DispatchSourceSignal] = []

    /// Runs `body` as `run` does, in a task that Ctrl-C and SIGTERM cancel instead of ending the
    /// process at once, so that the work removes what it had begun (its error, `.cancelled`, is the
    /// one-line error). `what` names the work in the message of an error that is no LlamaError.
    static func runCancellable<T: Sendable>(_ what: String, _ body: sending @escaping () async throws -> T) async throws -> T {
        let work = Task { try await body() }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { work.cancel() }
            source.resume()
            signalSources.append(source)
        }
        return try await run { () async throws(LlamaError) -> T in
            do { return try await work.value } catch let error as LlamaError { throw error } catch {
                throw LlamaError(.cancelled, "\(what) stopped: \(error)")
            }
        }
    }

    /// This program, to run a command again in a child (`rerunIsolated`).
    static var helper: URL? {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        if FileManager.default.isExecutableFile(atPath: me.path) { return me }
        return URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    }

    /// Runs this command again with `--in-process` in a child sharing the terminal: ggml ends
    /// the process that computes when an RPC server stops mid-computation, and that must be the
    /// child. Its end by a signal becomes a one-line error here.
    static func rerunIsolated() async throws {
        guard let helper else { throw Failure(description: "cannot find this program's executable") }
        let status = try await run { () async throws(LlamaError) in
            try await LlamaHelperProcess.run(helper, Array(CommandLine.arguments.dropFirst()) + ["--in-process"])
        }
        if status > 128 {
            note("error: the computation ended by signal \(status - 128): an RPC server stopped or failed during it")
            throw ExitCode(1)
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// The runtime of a command: the folder of `--lib-dir`, else as `LlamaRuntime.load` finds or
    /// installs it, with progress on stderr.
    static func loadRuntime(libDir: String?, options: LlamaInstallOptions) async throws -> LlamaRuntime {
        try await run { () async throws(LlamaError) in
            try await LlamaRuntime.load(libraryDirectory: libDir.map { URL(fileURLWithPath: $0) }, options: options,
                                        progress: ProgressPrinter().handler)
        }
    }

    /// The devices that `--device` indices name; an unknown index is an error listing the devices.
    static func devices(_ indices: [Int], of runtime: LlamaRuntime) throws -> [LlamaDevice] {
        let all = runtime.devices
        return try indices.map { i in
            guard let d = all.first(where: { $0.index == i }) else {
                throw Failure(description: "--device \(i): no such device (\(all.map { "\($0.index) \($0.name)" }.joined(separator: ", ")))")
            }
            return d
        }
    }

    /// Adds the RPC servers of `--rpc` (each first contacted by the llama-helper program) and
    /// returns their devices.
    static func addRPC(_ servers: [String], to runtime: LlamaRuntime) async throws -> [LlamaDevice] {
        var remote: [LlamaDevice] = []
        for server in servers {
            remote += try await run { () async throws(LlamaError) in try await runtime.addRPCServer(server) }
        }
        return remote
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `body`; a LlamaError becomes `error: <message>` on stderr and exit status 1.
    static func run<T>(_ body: () async throws(LlamaError) -> T) async throws -> T {
        _ = logger
        do {
            return try await body()
        } catch {
            note("error: \(error.description)")
            throw ExitCode(1)
        }
    }

    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func printJSON<T: Encodable>(_ value: T) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try e.encode(value), as: UTF8.self))
    }
}
