// The one way this package starts a child process.
//
// Underneath is swiftlang/swift-subprocess (1.0.2): it spawns (posix_spawn with
// POSIX_SPAWN_SETSIGMASK to an empty mask and SETSIGDEF for every signal, or a fork path that
// clears the mask), puts the child in its own process group (`processGroupID = 0`), closes every
// inherited descriptor beyond 0-2, reads the pipes through its own epoll thread, watches the child
// through a pidfd, runs a teardown sequence when the calling task is cancelled, and reaps.
//
// What we keep on top of it, and why (swift-subprocess 1.0.2 has no such API):
// - Deadlines (`timeout`, `idleTimeout`): a timer task races the child; on expiry it runs the
//   library's teardown (SIGTERM to the group, SIGKILL after `grace`).
// - A last SIGKILL to the whole group after every teardown, sent while the leader is not yet reaped
//   (so its group id cannot have been reused): the library's teardown stops at the point where the
//   leader has exited, which leaves a grandchild that ignores SIGTERM running.
// - Waiting for the child's exit inside the run: the library waits only after the body returns,
//   and a deadline must cover a child that closed its output but keeps running. One dedicated
//   thread per child blocks in `waitid(WEXITED | WNOWAIT)` (no reaping: the library reaps) and
//   resumes one continuation exactly once.
// - Lines: the library's line splitter (`strings()`) keeps no stream label and no idle clock; we
//   split its byte buffers ourselves, keep a last line without newline, and label the stream.
// - Preflight of an explicit path (not found / not executable), for error codes callers can switch on.
// - `start` (a child that runs alongside the caller, such as a test server): a Task around the same
//   run, with stdin a pipe held open until the child ends (the library's `.inputWriter`, never
//   written), so a child that stops at end of input stops when this process does.
//
// swift-subprocess itself wakes once a second per running child while it watches for the calling
// task's cancellation (`withAsyncTaskCleanupHandler`); that loop is in the library, not here.

public import Foundation
import Subprocess
import Synchronization

#if canImport(System)
import System
#else
import SystemPackage
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs child processes: one `run` with deadlines, process-group teardown and line callbacks, and `start` for a child that runs alongside the caller.
public enum ChildProcess {
    /// Where a stream of the child goes.
    public enum Output: Sendable {
        /// Into the `Termination`'s `standardOutput` / `standardError`, and to `onLine` line by line.
        case capture
        /// Nowhere (to `onLine` still, when one is given or an idle timeout needs the lines).
        case discard
        /// This process's own stream (a terminal stays a terminal for the child).
        case inherit
        /// A file, created or truncated.
        case file(URL)
        /// For stderr only: into the same pipe as stdout, in the order the child wrote them. Lines
        /// then come as `.output`.
        case mergeIntoOutput
    }

    /// One line the child wrote (without its newline; a last line without newline is delivered too).
    public struct Line: Sendable, Equatable, CustomStringConvertible {
        /// The line's text, without its newline.
        public var text: String
        /// The stream it came from.
        public var stream: Stream

        /// A line of a stream.
        public init(text: String, stream: Stream) {
            self.text = text
            self.stream = stream
        }

        public var description: String { "\(stream): \(text)" }
    }

    /// The child's standard output or standard error.
    public enum Stream: Sendable, Hashable {
        /// Standard output, and standard error.
        case output, error
    }

    /// How the run ended.
    public struct Termination: Sendable, Equatable, CustomStringConvertible {
        /// running → exited | signalled | timed out | cancelled.
        public enum State: Sendable, Equatable {
            /// Ended by itself with this exit status.
            case exited(Int32)
            /// Ended by this signal, not sent by the run.
            case signalled(Int32)
            /// Stopped by the run after `timeout` or `idleTimeout`.
            case timedOut
            /// Stopped because the calling task was cancelled.
            case cancelled
        }

        /// How the child ended.
        public var state: State
        /// What was captured (`.capture`), else empty.
        public var standardOutput: Data
        /// What was captured of stderr (`.capture`), else empty.
        public var standardError: Data

        /// A termination; every parameter is the property of the same name.
        public init(state: State, standardOutput: Data = Data(), standardError: Data = Data()) {
            self.state = state
            self.standardOutput = standardOutput
            self.standardError = standardError
        }

        /// `state == .exited(0)`.
        public var succeeded: Bool { state == .exited(0) }
        /// The captured stdout as UTF-8 (invalid sequences replaced).
        public var outputText: String { String(decoding: standardOutput, as: UTF8.self) }
        /// The captured stderr as UTF-8 (invalid sequences replaced).
        public var errorText: String { String(decoding: standardError, as: UTF8.self) }

        /// The state, then the last lines of stderr (or of stdout, where stderr was merged into it).
        public var description: String {
            let state: String
            switch self.state {
            case .exited(let status): state = "exited with status \(status)"
            case .signalled(let signal): state = "ended by signal \(signal)"
            case .timedOut: state = "timed out and was stopped"
            case .cancelled: state = "cancelled"
            }
            let text = standardError.isEmpty ? outputText : errorText
            let tail = text.split(separator: "\n", omittingEmptySubsequences: true).suffix(20)
            return tail.isEmpty ? state : state + ":\n" + tail.joined(separator: "\n")
        }
    }

    /// Failed to start (not found, not executable, spawn failed).
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// Why the child could not start; open: new codes may be added.
        public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
            public var rawValue: String
            public init(rawValue: String) { self.rawValue = rawValue }
            /// No such file, or the bare name is on no PATH entry.
            public static let notFound = Code(rawValue: "notFound")
            /// The file exists but this user may not execute it.
            public static let notExecutable = Code(rawValue: "notExecutable")
            /// Anything else: the spawn, a pipe, an output file, the working directory.
            public static let spawnFailed = Code(rawValue: "spawnFailed")
            public var description: String { rawValue }
        }

        /// Why it could not start, to switch on.
        public var code: Code
        /// What went wrong, for people.
        public var message: String
        /// What the layer underneath reported, when there is one.
        public var underlying: (any Error & Sendable)?

        /// A failure with its code, message and the error underneath.
        public init(code: Code, message: String, underlying: (any Error & Sendable)? = nil) {
            self.code = code
            self.message = message
            self.underlying = underlying
        }

        public var description: String { message }
    }

    /// Runs `executable` (a path, or a bare name looked up on PATH) to its end.
    ///
    /// timeout: for the whole run; idleTimeout: longest time without a line; on either, or when the
    /// calling Task is cancelled: SIGTERM to the child's process group, SIGKILL after `grace`; state
    /// `.timedOut` / `.cancelled`. The child starts with an empty signal mask, default dispositions,
    /// its own process group, stdin /dev/null unless `input` is given, and no inherited descriptors
    /// beyond 0-2. `onLine` is called from a background task, in order within each stream.
    ///
    /// `inheritInput`: the child reads this process's stdin (a terminal too). It then stays in this
    /// process's group — a background group cannot read the terminal — and signals on a deadline or
    /// cancellation go to the child alone, not to what it started.
    public static func run(
        _ executable: String, _ arguments: [String] = [],
        environment: [String: String?] = [:],
        workingDirectory: URL? = nil, input: Data? = nil, inheritInput: Bool = false,
        standardOutput: Output = .capture, standardError: Output = .capture,
        timeout: Duration? = nil, idleTimeout: Duration? = nil, grace: Duration = .seconds(2),
        onLine: (@Sendable (Line) -> Void)? = nil
    ) async throws(Failure) -> Termination {
        try await perform(
            executable, arguments, environment: environment, workingDirectory: workingDirectory,
            input: inheritInput ? .inherit : input.map(InputMode.data) ?? .none, standardOutput: standardOutput, standardError: standardError,
            timeout: timeout, idleTimeout: idleTimeout, grace: grace, onLine: onLine)
    }

    /// A child that runs alongside the caller (a server, say), from `start`.
    public final class Running: Sendable {
        let task: Task<Termination, any Error>

        init(task: Task<Termination, any Error>) { self.task = task }

        /// SIGTERM to the child's process group, SIGKILL after the grace; its termination is `.cancelled`.
        public func stop() { task.cancel() }

        /// Waits for the end of the child.
        public func termination() async throws(Failure) -> Termination {
            do {
                return try await task.value
            } catch let failure as Failure {
                throw failure
            } catch {
                throw Failure(code: .spawnFailed, message: "\(error)", underlying: error)
            }
        }

        /// Dropping the handle stops the child.
        deinit { task.cancel() }
    }

    /// Starts `executable` like `run`, and returns at once. Its stdin is a pipe that stays open
    /// until it ends, so a child that ends at end of input ends with this process. `onLine`
    /// is how its output is seen while it runs (its first line might be the port it listens on).
    public static func start(
        _ executable: String, _ arguments: [String] = [],
        environment: [String: String?] = [:], workingDirectory: URL? = nil,
        standardOutput: Output = .capture, standardError: Output = .capture,
        timeout: Duration? = nil, idleTimeout: Duration? = nil, grace: Duration = .seconds(2),
        onLine: (@Sendable (Line) -> Void)? = nil
    ) -> Running {
        Running(task: Task { () async throws -> Termination in
            try await perform(
                executable, arguments, environment: environment, workingDirectory: workingDirectory,
                input: .heldOpen, standardOutput: standardOutput, standardError: standardError,
                timeout: timeout, idleTimeout: idleTimeout, grace: grace, onLine: onLine)
        })
    }

    enum InputMode: Sendable {
        case none, data(Data), heldOpen, inherit
    }

    static func perform(
        _ executable: String, _ arguments: [String], environment: [String: String?], workingDirectory: URL?,
        input: InputMode, standardOutput: Output, standardError: Output,
        timeout: Duration?, idleTimeout: Duration?, grace: Duration, onLine: (@Sendable (Line) -> Void)?
    ) async throws(Failure) -> Termination {
        try preflight(executable, workingDirectory: workingDirectory)
        var options = PlatformOptions()
        let ownGroup: Bool
        if case .inherit = input { ownGroup = false } else { ownGroup = true }
        if ownGroup { options.processGroupID = 0 }
        // The library's own teardown, when the calling task is cancelled (ours runs too; both are idempotent).
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: ownGroup, allowedDurationToNextStep: grace)]
        var overrides: [Environment.Key: String?] = [:]
        for (name, value) in environment { overrides[Environment.Key(stringLiteral: name)] = value }
        let configuration = Configuration(
            executable: executable.contains("/") ? .path(FilePath(executable)) : .name(executable),
            arguments: Arguments(arguments),
            environment: .inherit.updating(overrides),
            workingDirectory: workingDirectory.map { FilePath($0.path) },
            platformOptions: options
        )
        let wantsLines = onLine != nil || idleTimeout != nil
        let plan = Plan(
            executable: executable,
            keepOutput: standardOutput.isCapture, keepError: standardError.isCapture,
            timeout: timeout, idleTimeout: idleTimeout, grace: grace, onLine: onLine, ownGroup: ownGroup
        )
        // Descriptors we open are handed over with closeAfterSpawningProcess: the library closes them once.
        let outputSink = try Sink(standardOutput, stream: .output, wantsLines: wantsLines)
        let errorSink: Sink
        do { errorSink = try Sink(standardError, stream: .error, wantsLines: wantsLines) } catch {
            if case .descriptor(let fd, close: true) = outputSink { try? fd.close() }
            throw error
        }
        let run = Runner(configuration: configuration, plan: plan, outputSink: outputSink, errorSink: errorSink)
        do {
            switch input {
            case .none: return try await run.withOutput(input: .none)
            // Not the library's `.data`: when the child ends without reading all of it, the
            // library's writer is dropped with its descriptor open, and that is a fatal error in
            // swift-subprocess 1.0.2. A file holding the bytes cannot fail that way (nor raise SIGPIPE).
            case .data(let data):
                return try await run.withOutput(input: .fileDescriptor(try inputFile(data), closeAfterSpawningProcess: true))
            // The writer is left alone: the library closes it when the child has ended.
            case .heldOpen: return try await run.withOutput(input: .inputWriter)
            case .inherit:
                return try await run.withOutput(input: .fileDescriptor(.standardInput, closeAfterSpawningProcess: false))
            }
        } catch let failure as Failure {
            throw failure
        } catch let error as SubprocessError {
            throw Failure(subprocess: error, executable: executable)
        } catch {
            throw Failure(code: .spawnFailed, message: "\(executable): \(error)", underlying: error)
        }
    }

    /// An unlinked temporary file holding `data`, open for reading at its start: the child's stdin.
    static func inputFile(_ data: Data) throws(Failure) -> FileDescriptor {
        var template = Array((FileManager.default.temporaryDirectory.path + "/llama-process-input-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw Failure(code: .spawnFailed, message: "could not create a file for the child's input: \(String(cString: strerror(errno)))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        var written = 0
        let ok = data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> Bool in
            while written < bytes.count {
                let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
                if n < 0 { if errno == EINTR { continue }; return false }
                written += n
            }
            return true
        }
        guard ok, lseek(fd, 0, SEEK_SET) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(code: .spawnFailed, message: "could not write the child's input to a temporary file: \(reason)")
        }
        return FileDescriptor(rawValue: fd)
    }

    static func preflight(_ executable: String, workingDirectory: URL?) throws(Failure) {
        // Relative paths are resolved by the spawn against the working directory: checked there.
        guard executable.hasPrefix("/") else {
            guard !executable.isEmpty else {
                throw Failure(code: .notFound, message: "no executable given (an empty name)")
            }
            return
        }
        var info = stat()
        guard stat(executable, &info) == 0 else {
            throw Failure(code: .notFound, message: "\(executable) does not exist: check the path, or install it")
        }
        guard (info.st_mode & S_IFMT) != S_IFDIR, access(executable, X_OK) == 0 else {
            throw Failure(
                code: .notExecutable,
                message: "\(executable) is not an executable file (chmod +x it, or pass the right path)"
            )
        }
    }
}

extension ChildProcess.Output {
    var isCapture: Bool {
        if case .capture = self { return true }
        return false
    }
}

extension ChildProcess.Failure {
    init(subprocess error: SubprocessError, executable: String) {
        switch error.code {
        case .executableNotFound:
            self.init(
                code: .notFound,
                message: "\(executable) was not found on PATH: install it, or pass its full path",
                underlying: error
            )
        case .failedToChangeWorkingDirectory:
            self.init(
                code: .spawnFailed,
                message: "\(executable) could not start: \(error) (check the working directory)",
                underlying: error
            )
        default:
            #if os(Windows)
            let denied = false
            #else
            let denied = error.underlyingError == .permissionDenied
            #endif
            self.init(
                code: denied ? .notExecutable : .spawnFailed,
                message: "\(executable) could not start: \(error)",
                underlying: error
            )
        }
    }
}

// MARK: - Implementation

/// What one run needs besides the library's configuration.
private struct Plan: Sendable {
    var executable: String
    var keepOutput: Bool
    var keepError: Bool
    var timeout: Duration?
    var idleTimeout: Duration?
    var grace: Duration
    var onLine: (@Sendable (ChildProcess.Line) -> Void)?
    /// The child leads its own process group (not when it shares this process's stdin).
    var ownGroup: Bool
}

/// Where one of the child's output streams goes, as the library sees it.
private enum Sink: Sendable {
    /// A pipe we read (`.sequence`).
    case pipe
    /// A descriptor handed to the child.
    case descriptor(FileDescriptor, close: Bool)
    /// stderr into stdout's pipe or descriptor.
    case merge

    init(_ output: ChildProcess.Output, stream: ChildProcess.Stream, wantsLines: Bool) throws(ChildProcess.Failure) {
        switch output {
        case .capture:
            self = .pipe
        case .discard:
            if wantsLines {
                self = .pipe
            } else {
                self = .descriptor(try Sink.openForWriting("/dev/null", flags: O_WRONLY), close: true)
            }
        case .inherit:
            self = .descriptor(stream == .output ? .standardOutput : .standardError, close: false)
        case .file(let url):
            self = .descriptor(try Sink.openForWriting(url.path, flags: O_WRONLY | O_CREAT | O_TRUNC), close: true)
        case .mergeIntoOutput:
            guard stream == .error else {
                throw ChildProcess.Failure(
                    code: .spawnFailed,
                    message: "mergeIntoOutput applies to standardError only (standardOutput was given it)"
                )
            }
            self = .merge
        }
    }

    static func openForWriting(_ path: String, flags: Int32) throws(ChildProcess.Failure) -> FileDescriptor {
        #if canImport(Darwin)
        let fd = Darwin.open(path, flags | O_CLOEXEC, 0o644)
        #else
        let fd = Glibc.open(path, flags | O_CLOEXEC, 0o644)
        #endif
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw ChildProcess.Failure(
                code: .spawnFailed,
                message: "cannot open \(path) for a child's output: \(reason) (check the folder exists and is writable)"
            )
        }
        return FileDescriptor(rawValue: fd)
    }
}

/// Why the run stopped the child; the first reason wins.
private enum StopReason: Sendable {
    case timedOut, cancelled
}

/// The state of one run that its tasks share.
private final class RunState: Sendable {
    struct Values {
        var lastLine: ContinuousClock.Instant
        var stop: StopReason?
        var exited = false
        var output = Data()
        var error = Data()
    }

    let start: ContinuousClock.Instant
    let values: Mutex<Values>

    init() {
        let now = ContinuousClock.now
        start = now
        values = Mutex(Values(lastLine: now))
    }
}

private struct Runner: Sendable {
    let configuration: Configuration
    let plan: Plan
    let outputSink: Sink
    let errorSink: Sink

    init(configuration: Configuration, plan: Plan, outputSink: Sink, errorSink: Sink) {
        self.configuration = configuration
        self.plan = plan
        self.outputSink = outputSink
        self.errorSink = errorSink
    }

    func withOutput<I: InputProtocol>(input: I) async throws -> ChildProcess.Termination {
        switch outputSink {
        case .pipe, .merge:
            return try await withError(input: input, output: .sequence)
        case .descriptor(let fd, let close):
            return try await withError(input: input, output: .fileDescriptor(fd, closeAfterSpawningProcess: close))
        }
    }

    func withError<I: InputProtocol, O: OutputProtocol>(input: I, output: O) async throws -> ChildProcess.Termination {
        switch errorSink {
        case .pipe:
            return try await execute(input: input, output: output, error: .sequence)
        case .descriptor(let fd, let close):
            return try await execute(
                input: input, output: output, error: .fileDescriptor(fd, closeAfterSpawningProcess: close))
        case .merge:
            return try await execute(input: input, output: output, error: .combinedWithOutput)
        }
    }

    func execute<I: InputProtocol, O: OutputProtocol, E: ErrorOutputProtocol>(
        input: I, output: O, error: E
    ) async throws -> ChildProcess.Termination {
        let state = RunState()
        let plan = self.plan
        let result = try await Subprocess.run(
            configuration, input: input, output: output, error: error
        ) { execution in
            let outputSequence = (execution as Any as? Execution<I, SequenceOutput, E>)?.standardOutput
            let errorSequence = (execution as Any as? Execution<I, O, SequenceOutput>)?.standardError
            let pid = execution.processIdentifier.value
            await withTaskGroup(of: Void.self) { group in
                if let outputSequence {
                    group.addTask { await pump(outputSequence, .output, keep: plan.keepOutput, plan: plan, state: state) }
                }
                if let errorSequence {
                    group.addTask { await pump(errorSequence, .error, keep: plan.keepError, plan: plan, state: state) }
                }
                group.addTask {
                    // Deadlines and stops are kept by a thread of their own, not by a task: the
                    // cooperative pool may be held by the caller's blocking work, and a deadline
                    // must not wait for it.
                    let watchdog = Watchdog(pid: pid, plan: plan, state: state)
                    await withTaskCancellationHandler {
                        await waitForExit(pid, state: state, plan: plan, watchdog: watchdog)
                    } onCancel: {
                        state.values.withLock { $0.stop = $0.stop ?? .cancelled }
                        watchdog.poke()
                    }
                }
            }
        }
        let values = state.values.withLock { $0 }
        let status: ChildProcess.Termination.State
        if let stop = values.stop {
            status = stop == .timedOut ? .timedOut : .cancelled
        } else if Task.isCancelled {
            status = .cancelled
        } else {
            switch result.terminationStatus {
            case .exited(let code): status = .exited(code)
            case .signaled(let signal): status = .signalled(signal)
            }
        }
        return ChildProcess.Termination(state: status, standardOutput: values.output, standardError: values.error)
    }
}

/// Reads one pipe to its end: keeps the bytes if asked, hands out each line, moves the idle clock.
private func pump(
    _ sequence: SubprocessOutputSequence, _ stream: ChildProcess.Stream, keep: Bool, plan: Plan, state: RunState
) async {
    var pending = [UInt8]()
    func deliver(_ bytes: ArraySlice<UInt8>) {
        state.values.withLock { $0.lastLine = .now }
        plan.onLine?(ChildProcess.Line(text: String(decoding: bytes, as: UTF8.self), stream: stream))
    }
    do {
        for try await buffer in sequence {
            let bytes = buffer.withUnsafeBytes { Array($0) }
            if keep {
                state.values.withLock { values in
                    if stream == .output { values.output.append(contentsOf: bytes) } else { values.error.append(contentsOf: bytes) }
                }
            }
            pending.append(contentsOf: bytes)
            var start = pending.startIndex
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                deliver(pending[start..<newline])
                start = newline + 1
            }
            pending.removeSubrange(pending.startIndex..<start)
        }
    } catch {
        // Cancelled, or the pipe failed: what was read so far stands.
    }
    if !pending.isEmpty { deliver(pending[...]) }
}

/// Waits, without reaping, until the child has ended: one thread blocked in waitid, one resume.
/// The exit is recorded before the library can reap, so a signal sent while `exited` is false
/// (under the same lock) reaches our child, never a process that took its pid.
private func waitForExit(_ pid: pid_t, state: RunState, plan: Plan, watchdog: Watchdog) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let thread = Thread {
            var info = siginfo_t()
            while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
            state.values.withLock { values in
                values.exited = true
                // The leader is a zombie until the library reaps it after the body, so its group
                // id is still ours: after a stop, anything left in the group goes too.
                if values.stop != nil && plan.ownGroup { _ = kill(-pid, SIGKILL) }
            }
            watchdog.poke()
            continuation.resume()
        }
        thread.name = "llama-process-wait-\(pid)"
        thread.stackSize = 256 * 1024
        thread.start()
        watchdog.start()
    }
}

/// Stops the child on a deadline (`timeout`, `idleTimeout`) or when the caller cancels: SIGTERM,
/// then SIGKILL after the grace, to the child's group. One thread per child, asleep on a condition
/// until the next deadline or a poke (the exit, a cancellation).
private final class Watchdog: @unchecked Sendable {
    let pid: pid_t
    let plan: Plan
    let state: RunState
    /// Guards `poked`; the thread sleeps on it.
    let condition = NSCondition()
    var poked = false

    init(pid: pid_t, plan: Plan, state: RunState) {
        self.pid = pid
        self.plan = plan
        self.state = state
    }

    func start() {
        let thread = Thread { self.watch() }
        thread.name = "llama-process-watch-\(pid)"
        thread.stackSize = 256 * 1024
        thread.start()
    }

    func poke() {
        condition.lock()
        poked = true
        condition.signal()
        condition.unlock()
    }

    /// Sends a signal unless the child has ended (then its pid may be another process's soon).
    func send(_ signal: Int32) {
        state.values.withLock { values in
            guard !values.exited else { return }
            _ = plan.ownGroup ? kill(-pid, signal) : kill(pid, signal)
        }
    }

    func watch() {
        var terminatedAt: ContinuousClock.Instant?
        var killed = false
        condition.lock()
        defer { condition.unlock() }
        while true {
            let (exited, stop, lastLine) = state.values.withLock { ($0.exited, $0.stop, $0.lastLine) }
            if exited { return }
            let now = ContinuousClock.now
            var next: ContinuousClock.Instant?
            if killed {
                next = nil
            } else if let sent = terminatedAt {
                if now >= sent + plan.grace {
                    send(SIGKILL)
                    killed = true
                } else {
                    next = sent + plan.grace
                }
            } else {
                var due = stop != nil
                if let timeout = plan.timeout {
                    if now >= state.start + timeout { due = true } else { next = state.start + timeout }
                }
                if let idle = plan.idleTimeout {
                    if now >= lastLine + idle { due = true } else if next.map({ lastLine + idle < $0 }) ?? true { next = lastLine + idle }
                }
                if due {
                    state.values.withLock { $0.stop = $0.stop ?? .timedOut }
                    send(SIGTERM)
                    terminatedAt = now
                    next = now + plan.grace
                }
            }
            if poked {
                poked = false
                continue
            }
            if let next {
                let seconds = Double((next - .now).components.seconds) + Double((next - .now).components.attoseconds) / 1e18
                _ = condition.wait(until: Date(timeIntervalSinceNow: max(seconds, 0.001)))
            } else {
                condition.wait()
            }
        }
    }
}
