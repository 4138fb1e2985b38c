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

    /// This program, as the helper that contacts RPC servers and loads GPU builds first.
    static var helper: URL? {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        if FileManager.default.isExecutableFile(atPath: me.path) { return me }
        return URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
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
