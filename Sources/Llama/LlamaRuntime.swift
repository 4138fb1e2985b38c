public import Foundation
public import Logging
public import LlamaRaw
import Synchronization

/// The loaded llama.cpp libraries: what every model and context is created from.
///
/// Hold one and pass it around; it is not a hidden global. Loading the same folder twice
/// returns the same libraries (the dynamic loader is process-wide).
public final class LlamaRuntime: Sendable {
    let libraries: LlamaLibraries

    /// Every bound C function, for what the Swift API does not cover.
    public var raw: LlamaSymbols { libraries.symbols }
    /// The folder the libraries were loaded from.
    public var libraryDirectory: URL { libraries.directory }
    /// The llama.cpp tag the bindings were generated from.
    public static var llamaCppTag: String { LlamaPin.tag }

    /// The environment variable naming the folder of an unpacked llama.cpp release.
    public static let libraryDirectoryVariable = "LLAMA_SWIFT_LIB_DIR"

    /// Loads the libraries of an unpacked llama.cpp release.
    ///
    /// - Parameters:
    ///   - libraryDirectory: the release folder (`.../llama-b11434`); by default the folder that
    ///     `LLAMA_SWIFT_LIB_DIR` names.
    ///   - allowVersionMismatch: load libraries of another llama.cpp version anyway.
    ///   - logger: where llama.cpp's and ggml's logs go (quiet by default: warnings and errors).
    ///     llama.cpp has one log callback per process, so this destination is process-wide:
    ///     passing a logger replaces it; nil keeps the current one (at first `llama.cpp`).
    public init(libraryDirectory: URL? = nil, allowVersionMismatch: Bool? = nil,
                logger: Logger? = nil) throws(LlamaError) {
        guard let dir = libraryDirectory
            ?? ProcessInfo.processInfo.environment[Self.libraryDirectoryVariable].map({ URL(fileURLWithPath: $0) })
        else {
            throw LlamaError(.libraryLoad, "no llama.cpp libraries given: pass libraryDirectory or set "
                + "\(Self.libraryDirectoryVariable) to the folder of an unpacked llama.cpp \(LlamaPin.tag) release")
        }
        LlamaLog.state.withLock { s in
            if let logger { s.logger = logger } else if s.logger == nil { s.logger = Logger(label: "llama.cpp") }
        }
        do {
            libraries = try LlamaLibraries.load(from: dir, allowVersionMismatch: allowVersionMismatch, log: LlamaLog.callback)
        } catch {
            throw LlamaError(.libraryLoad, error.description)
        }
        LlamaLog.install(on: libraries.symbols)
    }

    /// The least severe llama.cpp log level that reaches the logger (default `.warning`).
    public var logLevel: Logger.Level {
        get { LlamaLog.state.withLock { $0.threshold } }
        set { LlamaLog.state.withLock { $0.threshold = newValue } }
    }
}

/// Routes llama.cpp's and ggml's log callback to swift-log. The callback is process-wide in
/// llama.cpp, so its destination is too.
enum LlamaLog {
    struct State {
        var logger: Logger?
        var threshold: Logger.Level = .warning
        var lastLevel: Logger.Level = .info
        var pending = ""
    }
    static let state = Mutex(State())

    static let callback: ggml_log_callback = { level, text, _ in
        guard let text else { return }
        LlamaLog.receive(level: level, text: text)
    }

    static func install(on c: LlamaSymbols) {
        c.llama_log_set(callback, nil)
    }

    /// Handles one call of the C callback; below the threshold nothing is copied.
    static func receive(level: ggml_log_level, text: UnsafePointer<CChar>) {
        state.withLock { s in
            let mapped: Logger.Level
            switch level {
            case GGML_LOG_LEVEL_ERROR: mapped = .error
            case GGML_LOG_LEVEL_WARN: mapped = .warning
            case GGML_LOG_LEVEL_INFO: mapped = .info
            case GGML_LOG_LEVEL_DEBUG: mapped = .debug
            default: mapped = s.lastLevel  // a continuation of the previous message
            }
            s.lastLevel = mapped
            guard mapped >= s.threshold, s.logger != nil else {
                s.pending = ""
                return
            }
            s.pending += String(cString: text)
            guard s.pending.hasSuffix("\n") else { return }
            let message = s.pending.trimmingCharacters(in: .whitespacesAndNewlines)
            s.pending = ""
            guard !message.isEmpty else { return }
            s.logger?.log(level: mapped, "\(message)")
        }
    }
}
