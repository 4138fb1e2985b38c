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
            throw LlamaError(.libraryNotFound, "no llama.cpp libraries given: pass libraryDirectory or set "
                + "\(Self.libraryDirectoryVariable) to the folder of an unpacked llama.cpp \(LlamaPin.tag) release")
        }
        LlamaLog.state.withLock { s in
            if let logger { s.logger = logger } else if s.logger == nil { s.logger = Logger(label: "llama.cpp") }
        }
        do {
            libraries = try LlamaLibraries.load(from: dir, allowVersionMismatch: allowVersionMismatch, log: LlamaLog.callback)
        } catch {
            throw LlamaError(Self.code(of: error), error.description, underlying: error)
        }
        LlamaLog.install(on: libraries.symbols)
        Self.retainBackend(libraries)
    }

    deinit {
        Self.releaseBackend(libraries)
    }

    /// The code of a load error: each ``LlamaLoadError/Code`` has its own (a missing folder and a
    /// missing library are both `.libraryNotFound`; the underlying error tells them apart).
    static func code(of error: LlamaLoadError) -> LlamaError.Code {
        switch error.code {
        case .directoryNotFound, .libraryNotFound: return .libraryNotFound
        case .versionMismatch: return .versionMismatch
        case .missingSymbols: return .missingSymbols
        case .noBackend: return .noBackend
        default: return .libraryLoad
        }
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
    public internal(set) var installation: LlamaInstallation? {
        get { provenance.withLock { $0.installation } }
        set { provenance.withLock { $0.installation = newValue } }
    }
    /// Why this llama.cpp build was chosen, when ``load(libraryDirectory:options:allowVersionMismatch:logger:progress:)``
    /// chose it (`.auto` or a family); nil when a folder or an exact variant was given.
    public internal(set) var selection: LlamaVariantSelection? {
        get { provenance.withLock { $0.selection } }
        set { provenance.withLock { $0.selection = newValue } }
    }
    private let provenance = Mutex<(installation: LlamaInstallation?, selection: LlamaVariantSelection?)>((nil, nil))

    /// Finds, installs when needed, and loads the libraries, in this order: `libraryDirectory`,
    /// the folder `LLAMA_SWIFT_LIB_DIR` names, then for the variant of `options` (chosen from
    /// the hardware for `.auto` or a family, each candidate tried in turn) its bundle entry, its
    /// cache entry, or a download (or a source build) into the cache — unless `options.offline`.
    ///
    /// A GPU build is first loaded by the `llama-helper` program in a child process (see
    /// ``LlamaHelper``; without it the load fails with `.helperNotFound`) and must then show a GPU
    /// device in ggml's registry; otherwise the next candidate is tried, and ``selection`` says why.
    ///
    /// - Parameters:
    ///   - libraryDirectory: a release folder to load as it is (nil: `LLAMA_SWIFT_LIB_DIR`, else as described above).
    ///   - options: variant, mirrors, cache, bundle, offline and digest policy.
    ///   - allowVersionMismatch: load libraries of another llama.cpp version anyway (nil: `LLAMA_SWIFT_ALLOW_VERSION_MISMATCH=1`).
    ///   - logger: where llama.cpp's and ggml's logs go (nil keeps the current destination).
    ///   - progress: downloads, unpacking and source builds report here.
    public static func load(libraryDirectory: URL? = nil, options: LlamaInstallOptions = LlamaInstallOptions(),
                            allowVersionMismatch: Bool? = nil, logger: Logger? = nil,
                            progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> LlamaRuntime {
        if let dir = libraryDirectory ?? environmentLibraryDirectory {
            return try LlamaRuntime(libraryDirectory: dir, allowVersionMismatch: allowVersionMismatch, logger: logger)
        }
        if !LlamaVariantSelection.choosesFromHardware(options.variant, release: options.release, platform: options.platform) {
            return try await loadVariant(options.variant, options: options, verifyGPU: false,
                                         allowVersionMismatch: allowVersionMismatch, logger: logger, progress: progress)
        }
        var selection = LlamaVariantSelection.plan(options.variant, hardware: await options.probe.run(),
                                                   release: options.release, platform: options.platform)
        for candidate in selection.candidates {
            do {
                let runtime = try await loadVariant(candidate.variant, options: options, verifyGPU: candidate.variant != .cpu,
                                                    hardware: selection.hardware, allowVersionMismatch: allowVersionMismatch,
                                                    logger: logger, progress: progress)
                selection.chosen = candidate.variant
                runtime.selection = selection
                // So that `libs path`, `libs verify`... find this build for the same request.
                if runtime.installation != nil { LlamaInstaller(options: options).recordChoice(candidate.variant) }
                options.logger.info("llama.cpp \(options.release.tag) \(candidate.variant): \(candidate.reason)")
                return runtime
            } catch {
                // A helper that is missing or of another version is the caller's to fix, not a reason to fall back.
                if [.cancelled, .offline, .helperNotFound, .helperProtocol].contains(error.code) { throw error }
                selection.rejected.append(.init(variant: candidate.variant, reason: error.message, code: error.code))
                options.logger.warning("not using llama.cpp \(candidate.variant): \(error.message)")
            }
        }
        throw LlamaError(.noAsset, "no llama.cpp build could be loaded for this machine (\(options.variant) requested):\n"
            + selection.summary)
    }

    /// Loads one variant: from the bundle, else installed into the cache.
    static func loadVariant(_ variant: LlamaVariant, options: LlamaInstallOptions, verifyGPU: Bool,
                            hardware: LlamaHardwareReport? = nil, allowVersionMismatch: Bool?, logger: Logger?,
                            progress: LlamaProgressHandler?) async throws(LlamaError) -> LlamaRuntime {
        var o = options
        o.variant = variant
        var installation: LlamaInstallation?
        let dir: URL
        if let bundle = o.bundleDirectory,
           let found = try LlamaBundle.locate(in: bundle, tag: o.release.tag, platform: o.platform, variant: variant) {
            dir = found
        } else {
            let installed = try await LlamaInstaller(options: o).install(progress: progress)
            guard let folder = installed.directory else {
                throw LlamaError(.cacheFailed, "the installation of llama.cpp \(installed.tag) has no folder")
            }
            installation = installed
            dir = folder
        }
        if verifyGPU { try await LlamaBackendCheck(options: o, hardware: hardware).verify(dir, variant: variant) }
        let runtime = try LlamaRuntime(libraryDirectory: dir, allowVersionMismatch: allowVersionMismatch, logger: logger)
        if verifyGPU && !runtime.devices.contains(where: \.isGPU) {
            throw LlamaError(.backendRejected, "the \(variant) build loaded, but ggml registered no GPU device "
                + "(devices: \(runtime.devices.map(\.name).joined(separator: ", ")))")
        }
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
        /// Between the first and the last line llama.cpp logs for an aborted (cancelled) decode.
        var aborting = false
    }

    /// Logs a warning of this library through the same logger.
    static func note(_ message: String) {
        state.withLock { s in
            guard Logger.Level.warning >= s.threshold else { return }
            s.logger?.warning("\(message)")
        }
    }

    /// The lines llama.cpp logs when a decode is aborted through the abort callback, i.e. when
    /// the task was cancelled: logged at error level there, they are debug lines here (the
    /// caller gets a `.cancelled` error). `GGML_STATUS_ABORTED` is 1; `llama_decode` returns 2.
    static func isCancellationLine(_ text: String, aborting: Bool) -> (demote: Bool, aborting: Bool) {
        if text.contains("failed with error 1") || text.contains("compute status: 1") { return (true, true) }
        if aborting && text.contains("removing memory module entries") { return (true, true) }
        if text.contains("failed to decode, ret = 2") || text.contains("failed to encode, ret = 2") { return (true, false) }
        return (false, aborting)
    }
    static let state = Mutex(State())

    static let callback: ggml_log_callback = { level, text, _ in
        guard let text else { return }
        LlamaQuantizer.Job.observe(level: level, text: text)
        LlamaLog.receive(level: level, text: text)
    }

    static func install(on c: LlamaSymbols) {
        c.llama_log_set(callback, nil)
    }

    /// Handles one call of the C callback; below the threshold nothing is copied.
    static func receive(level: ggml_log_level, text: UnsafePointer<CChar>) {
        state.withLock { s in
            var mapped: Logger.Level
            switch level {
            case GGML_LOG_LEVEL_ERROR: mapped = .error
            case GGML_LOG_LEVEL_WARN: mapped = .warning
            case GGML_LOG_LEVEL_INFO: mapped = .info
            case GGML_LOG_LEVEL_DEBUG: mapped = .debug
            default: mapped = s.lastLevel  // a continuation of the previous message
            }
            if mapped >= .warning, level != GGML_LOG_LEVEL_CONT {
                let (demote, aborting) = isCancellationLine(String(cString: text), aborting: s.aborting)
                s.aborting = aborting
                if demote { mapped = .debug }
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
