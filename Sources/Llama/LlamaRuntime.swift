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

    /// The folder `LLAMA_SWIFT_LIB_DIR` names (unset or empty: none).
    public static var environmentLibraryDirectory: URL? {
        ProcessInfo.processInfo.environment[libraryDirectoryVariable].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
    }

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
        guard let dir = libraryDirectory ?? Self.environmentLibraryDirectory else {
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
        Self.retainBackend(libraries)
    }

    deinit {
        Self.releaseBackend(libraries)
    }

    /// Live runtimes per loaded folder: llama.cpp's backend is initialised when the first runtime
    /// of a folder appears (loading does it the first time) and freed when the last one goes.
    private static let backendUsers = Mutex<[ObjectIdentifier: (count: Int, freed: Bool)]>([:])

    private static func retainBackend(_ libraries: LlamaLibraries) {
        backendUsers.withLock { users in
            var state = users[ObjectIdentifier(libraries)] ?? (0, false)
            if state.count == 0 && state.freed { libraries.symbols.llama_backend_init() }
            state.count += 1
            users[ObjectIdentifier(libraries)] = state
        }
    }

    private static func releaseBackend(_ libraries: LlamaLibraries) {
        backendUsers.withLock { users in
            guard var state = users[ObjectIdentifier(libraries)] else { return }
            state.count -= 1
            if state.count == 0 {
                libraries.symbols.llama_backend_free()
                state.freed = true
            }
            users[ObjectIdentifier(libraries)] = state
        }
    }

    /// Whether llama.cpp's backend is initialised for these libraries (some runtime holds them).
    var backendActive: Bool {
        Self.backendUsers.withLock { ($0[ObjectIdentifier(libraries)]?.count ?? 0) > 0 }
    }

    /// Where the libraries came from when the runtime installed them (nil when a folder was given).
    public private(set) var installation: LlamaInstallation? {
        get { provenance.withLock { $0 } }
        set { provenance.withLock { $0 = newValue } }
    }
    private let provenance = Mutex<LlamaInstallation?>(nil)

    /// Finds, installs when needed, and loads the libraries, in this order: `libraryDirectory`,
    /// the folder `LLAMA_SWIFT_LIB_DIR` names, the bundle of `options.bundleDirectory`, the cache,
    /// and finally a download (or a source build) into the cache — unless `options.offline`.
    ///
    /// - Parameters:
    ///   - options: variant, mirrors, cache, bundle, offline and digest policy.
    ///   - progress: downloads, unpacking and source builds report here.
    public static func load(libraryDirectory: URL? = nil, options: LlamaInstallOptions = LlamaInstallOptions(),
                            allowVersionMismatch: Bool? = nil, logger: Logger? = nil,
                            progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> LlamaRuntime {
        if let dir = libraryDirectory ?? environmentLibraryDirectory {
            return try LlamaRuntime(libraryDirectory: dir, allowVersionMismatch: allowVersionMismatch, logger: logger)
        }
        if let bundle = options.bundleDirectory,
           let dir = try LlamaBundle.locate(in: bundle, tag: options.release.tag, platform: options.platform, variant: options.variant) {
            return try LlamaRuntime(libraryDirectory: dir, allowVersionMismatch: allowVersionMismatch, logger: logger)
        }
        let installation = try await LlamaInstaller(options: options).install(progress: progress)
        guard let dir = installation.directory else {
            throw LlamaError(.cacheFailed, "the installation of llama.cpp \(installation.tag) has no folder")
        }
        let runtime = try LlamaRuntime(libraryDirectory: dir, allowVersionMismatch: allowVersionMismatch, logger: logger)
        runtime.installation = installation
        return runtime
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
