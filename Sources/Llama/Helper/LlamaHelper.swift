public import Foundation
import LlamaProcess
import Synchronization

/// The `llama-helper` program: what runs, in a child process, the work whose failure ggml cannot
/// survive — loading a GPU build first (a broken driver crashes the loader), the first contact
/// with an RPC server (ggml ends the process on a failed handshake), generation over RPC (ggml
/// ends the process when a server stops mid-computation). It is the `llama-helper` product of
/// this package; ship it with your program.
///
/// Found, in this order: an explicit path (``LlamaInstallOptions/helper``, or a `helper:`
/// argument), the `LLAMA_SWIFT_HELPER` environment variable, `llama-helper` beside this
/// program's executable, then `llama-helper` on `PATH`. When none is found, the operations
/// that need it fail with `.helperNotFound`; they never run in this process instead.
public enum LlamaHelper {
    /// The executable's name.
    public static let executableName = "llama-helper"
    /// The environment variable naming the helper's path.
    public static let environmentVariable = "LLAMA_SWIFT_HELPER"

    /// The helper to use: `explicit` when given, else the first found by the rules above.
    ///
    /// - Parameters:
    ///   - explicit: a helper given by the caller: used when it is an executable file, an error otherwise (nil: search by the rules above).
    ///   - purpose: what the helper is needed for, for the error message ("to check the RPC server at ...").
    ///   - environment: where `LLAMA_SWIFT_HELPER` and `PATH` are read.
    ///   - executableDirectory: the folder to look beside (default: this program's executable's).
    public static func locate(_ explicit: URL? = nil, purpose: String = "to run llama.cpp in a child process",
                              environment: [String: String] = ProcessInfo.processInfo.environment,
                              executableDirectory: URL? = Bundle.main.executableURL?.deletingLastPathComponent())
        throws(LlamaError) -> URL {
        let how = "Build the `\(executableName)` product of swift-llama-cpp (swift build --product \(executableName)) and "
            + "ship it beside your executable or on PATH, set \(environmentVariable) to its path, or pass it as "
            + "LlamaInstallOptions.helper."
        func usable(_ url: URL) -> Bool {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && FileManager.default.isExecutableFile(atPath: url.path)
        }
        if let explicit {
            guard usable(explicit) else {
                throw LlamaError(.helperNotFound, "no helper program \(purpose): the helper given, \(explicit.path), is not an "
                    + "executable file. \(how)")
            }
            return explicit
        }
        if let named = environment[environmentVariable], !named.isEmpty {
            let url = URL(fileURLWithPath: named)
            guard usable(url) else {
                throw LlamaError(.helperNotFound, "no helper program \(purpose): \(environmentVariable) names \(named), which "
                    + "is not an executable file. \(how)")
            }
            return url
        }
        var tried: [String] = []
        if let dir = executableDirectory {
            let beside = dir.appendingPathComponent(executableName)
            if usable(beside) { return beside }
            tried.append(beside.path)
        }
        for entry in (environment["PATH"] ?? "").split(separator: ":") where !entry.isEmpty {
            let candidate = URL(fileURLWithPath: String(entry)).appendingPathComponent(executableName)
            if usable(candidate) { return candidate }
        }
        tried.append("\(executableName) on PATH")
        throw LlamaError(.helperNotFound, "no helper program \(purpose) (\(environmentVariable) is not set; looked for "
            + "\(tried.joined(separator: ", "))). \(how)")
    }

    /// How one request went: the termination, the messages' outcome, and the last message.
    struct Exchange: Sendable {
        var termination: ChildProcess.Termination
        /// A line outside the protocol, when one came (the helper was then stopped).
        var violation: LlamaHelperProtocol.Violation?
        /// The last message (`devices`, `finished` or `failure`), when one came.
        var final: HelperResponse.Message?

        /// The last lines of the helper's stderr, for a person reading an error.
        var errorTail: String {
            let lines = termination.errorText.split(separator: "\n", omittingEmptySubsequences: true).suffix(3)
            return lines.isEmpty ? "" : " (its last words: \(lines.joined(separator: " | ")))"
        }
    }

    /// Sends `request` to the helper and delivers each message in order; returns when the helper
    /// has ended. A line outside the protocol stops the helper (``Exchange/violation``).
    /// Cancelling the calling task stops it too.
    static func exchange(_ request: HelperRequest, helper: URL, timeout: Duration? = nil, idleTimeout: Duration? = nil,
                         onMessage: (@Sendable (HelperResponse.Message) -> Void)? = nil) async throws(LlamaError) -> Exchange {
        var input = try LlamaHelperProtocol.encode(request)
        input.append(UInt8(ascii: "\n"))
        struct Seen { var violation: LlamaHelperProtocol.Violation?; var final: HelperResponse.Message? }
        let seen = Mutex(Seen())
        let stop = Mutex<(@Sendable () -> Void)?>(nil)
        let run = Task { () async throws(ChildProcess.Failure) -> ChildProcess.Termination in
            try await ChildProcess.run(helper.path, [], input: input, standardOutput: .discard, standardError: .capture,
                                       timeout: timeout, idleTimeout: idleTimeout) { line in
                guard line.stream == .output else { return }
                let decoded: Result<HelperResponse, LlamaHelperProtocol.Violation> = Result { () throws(LlamaHelperProtocol.Violation) in
                    try LlamaHelperProtocol.decode(HelperResponse.self, from: Data(line.text.utf8))
                }
                let deliver: HelperResponse.Message? = seen.withLock { s in
                    guard s.violation == nil else { return nil }
                    switch decoded {
                    case .failure(let violation):
                        s.violation = violation
                    case .success(let response) where s.final != nil:
                        s.violation = .init(foundVersion: response.protocolVersion, description: "a message after the last one")
                    case .success(let response):
                        switch response.message {
                        case .devices, .finished, .failure, .validated: s.final = response.message
                        case .token, .text: break
                        }
                        return response.message
                    }
                    return nil
                }
                if let deliver { onMessage?(deliver) } else { stop.withLock { $0 }?() }
            }
        }
        stop.withLock { $0 = { run.cancel() } }
        // A violation seen before `stop` was set found nothing to call.
        if seen.withLock({ $0.violation != nil }) { run.cancel() }
        let result = await withTaskCancellationHandler { await run.result } onCancel: { run.cancel() }
        let termination: ChildProcess.Termination
        switch result {
        case .success(let t): termination = t
        case .failure(let error):
            guard let failure = error as? ChildProcess.Failure else {
                throw LlamaError(.cancelled, "the helper \(helper.path) was not started: the task was cancelled", underlying: error)
            }
            switch failure.code {
            case .notFound, .notExecutable:
                throw LlamaError(.helperNotFound, "the helper \(helper.path) cannot be run: \(failure.message)", underlying: failure)
            default:
                throw LlamaError(.remoteFailed, "the helper \(helper.path) could not start: \(failure.message)", underlying: failure)
            }
        }
        let s = seen.withLock { $0 }
        return Exchange(termination: termination, violation: s.violation, final: s.final)
    }

    /// The error for a helper that ended without its last message (or broke the protocol).
    /// `crashed` says what a signal means for this request.
    static func unanswered(_ exchange: Exchange, helper: URL, crashCode: LlamaError.Code,
                           crashed: (Int32) -> String, timedOut: () -> LlamaError) -> LlamaError {
        if let violation = exchange.violation {
            let versions = violation.foundVersion.map { $0 == LlamaHelperProtocol.version ? "" : " (it speaks protocol \($0))" } ?? ""
            return LlamaError(.helperProtocol, "the helper \(helper.path) answered outside the helper protocol \(LlamaHelperProtocol.version)"
                + "\(versions): \(violation.description). Use the \(executableName) built with this version of the library.",
                underlying: violation)
        }
        switch exchange.termination.state {
        case .signalled(let signal):
            return LlamaError(crashCode, crashed(signal) + exchange.errorTail, underlying: Ended(signal: signal))
        case .timedOut:
            return timedOut()
        case .cancelled:
            return LlamaError(.cancelled, "the work in the helper \(helper.path) was cancelled")
        case .exited(0):
            return LlamaError(.helperProtocol, "the helper \(helper.path) ended without answering\(exchange.errorTail). "
                + "Use the \(executableName) built with this version of the library.")
        case .exited(let status):
            return LlamaError(crashCode, "the helper \(helper.path) failed (exit status \(status)) without answering"
                + exchange.errorTail, underlying: Ended(exitStatus: status))
        }
    }

    /// How a helper process ended without answering, as an underlying error.
    public struct Ended: Error, Sendable, Equatable, CustomStringConvertible {
        /// The signal that ended it (a crash), or nil.
        public var signal: Int32?
        /// Its exit status, when it exited by itself.
        public var exitStatus: Int32?
        /// How a helper ended: the signal that ended it, or its exit status.
        public init(signal: Int32? = nil, exitStatus: Int32? = nil) {
            self.signal = signal
            self.exitStatus = exitStatus
        }
        public var description: String { signal.map { "ended by signal \($0)" } ?? "exited with status \(exitStatus ?? -1)" }
    }
}

extension LlamaModel {
    /// Loads a model file you do not trust in the `llama-helper` process: our checks
    /// (``GGUFFile/validate(path:runtime:vocabularyOnly:)``), then llama.cpp's whole loader, where
    /// an abort on a damaged file (an assertion our checks do not cover: an architecture's tensor
    /// shapes, say) ends the helper, not this process. Load the file in this process afterwards
    /// when it passes.
    ///
    /// - Parameters:
    ///   - path: the GGUF file (the first part of a split model).
    ///   - runtime: the libraries the helper loads (their folder is passed to it).
    ///   - helper: the helper program (default: as ``LlamaHelper/locate(_:purpose:environment:executableDirectory:)`` finds it).
    ///   - vocabularyOnly: load only the vocabulary (llama.cpp reads no hyperparameters or tensors then).
    ///   - timeout: the longest the load may take.
    /// - Returns: what the file is, when it loaded.
    /// - Throws: `.invalidModel` when the file is refused or llama.cpp fails or aborts on it (the
    ///   underlying ``LlamaHelper/Ended`` has the signal), `.fileNotFound`, `.timeout`,
    ///   `.helperNotFound`, `.helperProtocol`, `.cancelled`.
    public static func validate(at path: String, runtime: LlamaRuntime, helper: URL? = nil, vocabularyOnly: Bool = false,
                                timeout: Duration = .seconds(300)) async throws(LlamaError) -> HelperResponse.ModelReport {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw LlamaError(.fileNotFound, "cannot read the model \(path): no such file, or no permission")
        }
        let helper = try LlamaHelper.locate(helper, purpose: "to load \(path) in a child process")
        let request = HelperRequest(.validateModel(.init(directory: runtime.libraryDirectory.path, path: path,
                                                         vocabularyOnly: vocabularyOnly)))
        let exchange = try await LlamaHelper.exchange(request, helper: helper, timeout: timeout)
        switch exchange.final {
        case .validated(let report)? where exchange.violation == nil:
            return report
        case .failure(let failure)? where exchange.violation == nil:
            throw LlamaError(failure.code, failure.message, underlying: failure)
        default:
            throw LlamaHelper.unanswered(exchange, helper: helper, crashCode: .invalidModel, crashed: { signal in
                "llama.cpp ended the process loading \(path) (signal \(signal)): the file is damaged in a way llama.cpp "
                    + "does not report; do not load it"
            }, timedOut: {
                LlamaError(.timeout, "loading \(path) in a child process took longer than \(timeout)")
            })
        }
    }
}
