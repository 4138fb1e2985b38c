public import Foundation
import CFuzzer
public import Llama
import Logging

/// What every fuzz target shares: the pinned libraries ($LLAMA_LIB_DIR), SmolLM2 ($LLAMA_MODEL),
/// llama.cpp's log silenced, a way to run async library calls from libFuzzer's synchronous
/// callback, the seed-writing mode, and the rule for findings.
///
/// A finding is reported by ending the process (`abort()`), which libFuzzer records as a crash
/// and keeps the input of: an untyped error, a typed error whose code the target does not
/// allow, or a context left unusable. llama.cpp's own aborts end the process the same way.
public enum Fuzz {
    /// Set to a folder: the target writes its seed corpus there (from the real inputs of this
    /// machine: the pinned source, the model, states of a real context) and exits.
    public static let seedsVariable = "LLAMA_FUZZ_SEEDS"

    /// Set (to anything): targets describe each input on stderr (to read a kept input: run the target on its file).
    public static let verbose = ProcessInfo.processInfo.environment["LLAMA_FUZZ_VERBOSE"] != nil

    /// Describes an input on stderr when ``verbose``.
    public static func describe(_ text: @autoclosure () -> String) {
        if verbose { FileHandle.standardError.write(Data("input: \(text())\n".utf8)) }
    }

    /// A required environment variable, or a message and exit status 2 (a set-up error, not a finding).
    public static func environment(_ names: String...) -> String {
        let env = ProcessInfo.processInfo.environment
        for name in names { if let value = env[name], !value.isEmpty { return value } }
        FileHandle.standardError.write(Data("fuzz: set \(names.joined(separator: " or ")) (make paths prints them; make fuzz sets them)\n".utf8))
        exit(2)
    }

    /// The pinned llama.cpp libraries, loaded once, with llama.cpp's log going nowhere.
    public static let runtime: LlamaRuntime = {
        let dir = environment("LLAMA_LIB_DIR", LlamaRuntime.libraryDirectoryVariable)
        do {
            let silent = Logger(label: "llama.cpp") { _ in SwiftLogNoOpLogHandler() }
            let runtime = try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: dir), logger: silent)
            runtime.logLevel = .critical
            return runtime
        } catch {
            setupFailure("cannot load the llama.cpp libraries of \(dir): \(error)")
        }
    }()

    /// The model file (SmolLM2-135M-Instruct).
    public static var modelPath: String { environment("LLAMA_MODEL") }

    /// SmolLM2, loaded once.
    public static let model: LlamaModel = {
        do { return try LlamaModel(runtime: runtime, path: modelPath) } catch {
            setupFailure("cannot load the model \(modelPath): \(error)")
        }
    }()

    /// A small context of the model: 256 tokens, one thread (the fuzzer is one process per core).
    public static func context(sequences: UInt32 = 1) -> LlamaContext {
        do {
            return try LlamaContext(model: model, options: ContextOptions(contextLength: 256, batchSize: 256, maxSequences: sequences,
                                                                          threads: 1))
        } catch {
            setupFailure("cannot create a context: \(error)")
        }
    }

    /// The pinned llama.cpp source tree (grammars, templates, vocabularies for seeds).
    public static var source: URL { URL(fileURLWithPath: environment("LLAMA_SOURCE")) }

    public static func setupFailure(_ message: String) -> Never {
        FileHandle.standardError.write(Data("fuzz: \(message)\n".utf8))
        exit(2)
    }

    /// A finding: the message on stderr, then `abort()` so that libFuzzer keeps the input.
    public static func finding(_ message: String) -> Never {
        FileHandle.standardError.write(Data("FUZZ FINDING: \(message)\n".utf8))
        abort()
    }

    /// Hands the process to libFuzzer's driver (`LLVMFuzzerRunDriver`, with the command line's
    /// flags and corpus folders), which calls `body` with each input; exits with its status.
    public static func run(_ body: @escaping (UnsafeBufferPointer<UInt8>) -> Void) -> Never {
        currentBody = body
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            currentBody?(UnsafeBufferPointer(start: data, count: size))
            return 0
        }
        exit(status)
    }

    /// Runs async work to its end from a synchronous caller (libFuzzer's callback).
    public static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return box.result!
    }

    /// Checks an outcome: success, or a LlamaError whose code is allowed; anything else is a finding.
    @discardableResult
    public static func expect<T>(_ result: Result<T, any Error>, allowed: Set<LlamaError.Code>, _ what: @autoclosure () -> String) -> T? {
        switch result {
        case .success(let value): return value
        case .failure(let error as LlamaError) where allowed.contains(error.code): return nil
        case .failure(let error as LlamaError): finding("\(what()): unexpected error code \(error.code): \(error.message)")
        case .failure(let error): finding("\(what()): an untyped error \(type(of: error)): \(error)")
        }
    }

    /// Handles the seed-writing mode; call from `LLVMFuzzerInitialize`. `write` puts the seeds in
    /// the folder (created); the process then exits.
    public static func initialize(seeds write: (URL) throws -> Void) {
        guard let dir = ProcessInfo.processInfo.environment[seedsVariable], !dir.isEmpty else { return }
        let url = URL(fileURLWithPath: dir)
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            try write(url)
            let count = (try? FileManager.default.contentsOfDirectory(atPath: dir).count) ?? 0
            FileHandle.standardError.write(Data("fuzz: \(count) seeds in \(dir)\n".utf8))
            exit(0)
        } catch {
            setupFailure("writing the seeds into \(dir) failed: \(error)")
        }
    }

    /// Writes one seed, named by its number.
    public static func seed(_ data: Data, _ index: Int, in dir: URL, name: String = "seed") throws {
        try data.write(to: dir.appendingPathComponent(String(format: "%@-%03d", name, index)))
    }

    /// A file for this process's inputs that must be files (state files, GGUF files).
    public static func scratchFile(_ name: String) -> URL {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("llama-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name)
    }
}

/// The target's body, for the C callback that libFuzzer calls (set once, before fuzzing starts).
nonisolated(unsafe) private var currentBody: ((UnsafeBufferPointer<UInt8>) -> Void)?

/// The result of a task, handed to the thread that waited for it (written before the semaphore is signalled).
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// Reads structured values from fuzzer bytes; past the end every read is 0, so any input decodes.
public struct ByteReader {
    let bytes: [UInt8]
    var index = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { index >= bytes.count }
    public var remaining: [UInt8] { index < bytes.count ? Array(bytes[index...]) : [] }

    public mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    public mutating func uint32() -> UInt32 {
        (0..<4).reduce(UInt32(0)) { acc, i in acc | UInt32(byte()) << (8 * UInt32(i)) }
    }

    public mutating func int32(in range: ClosedRange<Int32>) -> Int32 {
        let span = UInt32(truncatingIfNeeded: Int64(range.upperBound) - Int64(range.lowerBound) + 1)
        let raw = uint32()
        return span == 0 ? Int32(bitPattern: raw) : Int32(truncatingIfNeeded: Int64(range.lowerBound) + Int64(raw % span))
    }

    /// Mostly numbers in -2...2 and 0...1 by steps, sometimes raw bits (NaN, infinities, huge).
    public mutating func float() -> Float {
        switch byte() % 8 {
        case 0: return Float(bitPattern: uint32())
        case 1: return Float(byte()) / 255
        case 2: return Float(Int(byte()) - 128) / 64
        case 3: return [Float.nan, .infinity, -.infinity, 0, -0.0, 1, Float.greatestFiniteMagnitude, -1][Int(byte() % 8)]
        default: return Float(byte()) / 255
        }
    }

    /// A short string from the bytes (lossy UTF-8).
    public mutating func string(maxLength: Int = 16) -> String {
        let n = Int(byte()) % (maxLength + 1)
        return String(decoding: (0..<n).map { _ in byte() }, as: UTF8.self)
    }
}
