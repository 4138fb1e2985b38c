import Foundation
import LlamaProcess
import LlamaTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every child here is bounded: a `timeout` far above what the command needs, so a hang fails the
/// test instead of blocking the run. Durations are checked one way only where load could stretch them
/// (a stopped child ends "well before" its own sleep; a KILL comes "not before" the grace).
@Suite("ChildProcess")
struct ChildProcessTests {
    static let bound: Duration = .seconds(400)
    /// Children that must be stopped sleep 600 s; "stopped" is an end well before that, however
    /// loaded the machine (in the full suite, other tests can hold both threads of the pool for a minute).
    static let wellBefore: Duration = .seconds(300)

    /// Lines collected from `onLine`, and an event for the first one.
    final class Lines: Sendable {
        let lines = Mutex<[ChildProcess.Line]>([])
        let first: AsyncStream<Void>
        let firstContinuation: AsyncStream<Void>.Continuation

        init() {
            (first, firstContinuation) = AsyncStream.makeStream(of: Void.self)
        }

        var callback: @Sendable (ChildProcess.Line) -> Void {
            { line in
                self.lines.withLock { $0.append(line) }
                self.firstContinuation.yield()
            }
        }

        var all: [ChildProcess.Line] { lines.withLock { $0 } }
        var texts: [String] { all.map(\.text) }
    }

    static func sh(
        _ script: String, timeout: Duration = bound, idleTimeout: Duration? = nil, grace: Duration = .seconds(2),
        standardError: ChildProcess.Output = .capture, lines: Lines? = nil
    ) async throws -> ChildProcess.Termination {
        try await ChildProcess.run(
            "/bin/sh", ["-c", script], standardError: standardError,
            timeout: timeout, idleTimeout: idleTimeout, grace: grace, onLine: lines?.callback
        )
    }

    /// A child that shares stdin stays in this process's group (a background group could not read
    /// a terminal); any other child leads its own group.
    @Test func inheritedInputKeepsTheProcessGroup() async throws {
        let ours = getpgrp()
        let shared = try await ChildProcess.run("/bin/sh", ["-c", "ps -o pgid= -p $$"], inheritInput: true,
                                                timeout: Self.bound)
        #expect(shared.state == .exited(0))
        #expect(Int32(shared.outputText.trimmingCharacters(in: .whitespacesAndNewlines)) == ours)
        let own = try await Self.sh("ps -o pgid= -p $$; echo $$")
        let fields = own.outputText.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
        #expect(fields.count == 2)
        #expect(fields.first == fields.last)
        #expect(fields.first != ours)
    }

    // MARK: Ends

    @Test func exitCodesAndCapture() async throws {
        let ok = try await Self.sh("echo hi")
        #expect(ok.state == .exited(0))
        #expect(ok.succeeded)
        #expect(ok.outputText == "hi\n")
        let failed = try await Self.sh("echo bad >&2; exit 3")
        #expect(failed.state == .exited(3))
        #expect(!failed.succeeded)
        #expect(failed.errorText == "bad\n")
        #expect(failed.description.contains("exited with status 3"))
        #expect(failed.description.contains("bad"))
    }

    @Test func signalled() async throws {
        let end = try await Self.sh("kill -KILL $$")
        #expect(end.state == .signalled(SIGKILL))
    }

    @Test func timeoutWhereTermIsHonoured() async throws {
        let start = ContinuousClock.now
        let end = try await ChildProcess.run("sleep", ["600"], timeout: .seconds(1))
        #expect(end.state == .timedOut)
        #expect(ContinuousClock.now - start < Self.wellBefore)
    }

    @Test func timeoutWhereTermIsIgnoredEndsWithKillAfterGrace() async throws {
        let lines = Lines()
        let start = ContinuousClock.now
        // The trap is set before the line: once it is seen, TERM cannot end the child.
        let end = try await Self.sh(
            "trap '' TERM; echo ready; sleep 600", timeout: .seconds(1), grace: .seconds(1), lines: lines)
        let elapsed = ContinuousClock.now - start
        #expect(end.state == .timedOut)
        #expect(lines.texts == ["ready"])
        #expect(elapsed >= .seconds(2), "KILL came before timeout + grace: \(elapsed)")
        #expect(elapsed < Self.wellBefore)
    }

    @Test func idleTimeoutStopsASilentChild() async throws {
        let lines = Lines()
        let start = ContinuousClock.now
        let end = try await Self.sh("echo a; sleep 600", idleTimeout: .seconds(1), lines: lines)
        #expect(end.state == .timedOut)
        #expect(lines.texts == ["a"])
        #expect(ContinuousClock.now - start < Self.wellBefore)
    }

    @Test func idleTimeoutIsResetByEachLine() async throws {
        // 4 s of output at 0.4 s gaps, against an idle timeout of 3 s: each line resets it.
        let lines = Lines()
        let end = try await Self.sh(
            "i=0; while [ $i -lt 10 ]; do echo $i; sleep 0.4; i=$((i+1)); done",
            idleTimeout: .seconds(3), lines: lines)
        #expect(end.state == .exited(0))
        #expect(lines.texts == (0..<10).map(String.init))
    }

    @Test func cancellingTheCallingTaskStopsTheChild() async throws {
        let lines = Lines()
        let start = ContinuousClock.now
        let run = Task { try await Self.sh("echo started; sleep 600", lines: lines) }
        var events = lines.first.makeAsyncIterator()
        _ = await events.next()
        run.cancel()
        let end = try await run.value
        #expect(end.state == .cancelled)
        #expect(ContinuousClock.now - start < Self.wellBefore)
    }

    @Test func alreadyCancelledTaskReportsCancelled() async throws {
        let run = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await Self.sh("sleep 600")
        }
        #expect(try await run.value.state == .cancelled)
    }

    // MARK: Output

    @Test func lastLineWithoutNewlineIsKept() async throws {
        let lines = Lines()
        let end = try await Self.sh("printf 'a\\n\\nb'", lines: lines)
        #expect(end.outputText == "a\n\nb")
        #expect(lines.texts == ["a", "", "b"])
    }

    @Test func standardErrorSeparate() async throws {
        let lines = Lines()
        let end = try await Self.sh("echo out; echo err >&2", lines: lines)
        #expect(end.outputText == "out\n")
        #expect(end.errorText == "err\n")
        #expect(Set(lines.all.map(\.description)) == ["output: out", "error: err"])
    }

    @Test func standardErrorMergedKeepsTheOrder() async throws {
        let lines = Lines()
        let end = try await Self.sh(
            "echo 1; echo 2 >&2; echo 3; echo 4 >&2", standardError: .mergeIntoOutput, lines: lines)
        #expect(end.outputText == "1\n2\n3\n4\n")
        #expect(end.standardError.isEmpty)
        #expect(lines.all == ["1", "2", "3", "4"].map { ChildProcess.Line(text: $0, stream: .output) })
    }

    @Test func standardErrorToFile() async throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("err.log")
        try Data("old content, longer than the new\n".utf8).write(to: file)
        let end = try await Self.sh("echo out; echo err >&2", standardError: .file(file))
        #expect(end.outputText == "out\n")
        #expect(end.standardError.isEmpty)
        #expect(try String(contentsOf: file, encoding: .utf8) == "err\n")
    }

    @Test func discardedOutputStillGivesLines() async throws {
        let lines = Lines()
        let end = try await ChildProcess.run(
            "/bin/sh", ["-c", "echo a; echo b >&2"], standardOutput: .discard, standardError: .discard,
            timeout: Self.bound, onLine: lines.callback)
        #expect(end.standardOutput.isEmpty && end.standardError.isEmpty)
        #expect(Set(lines.texts) == ["a", "b"])
    }

    @Test func largeOutputArrivesWhole() async throws {
        let lines = Lines()
        let end = try await ChildProcess.run("seq", ["1", "200000"], timeout: Self.bound, onLine: lines.callback)
        #expect(end.succeeded)
        #expect(end.outputText.split(separator: "\n").count == 200000)
        #expect(lines.all.count == 200000)
        #expect(lines.all.last?.text == "200000")
    }

    @Test func aGrandchildHoldingThePipeDoesNotDelayTheEnd() async throws {
        let start = ContinuousClock.now
        let end = try await Self.sh("sleep 600 & echo $!")
        #expect(end.succeeded)
        #expect(ContinuousClock.now - start < Self.wellBefore)
        let pid = try #require(pid_t(end.outputText.trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(pid, SIGKILL)
    }

    // MARK: Input, environment, directory

    /// A child that ends without reading its input (a crashed helper, a harness that fails early):
    /// the run ends normally, whatever the size of the input (swift-subprocess's own data input
    /// is a fatal error then).
    @Test func inputTheChildNeverReads() async throws {
        for size in [0, 1, 1 << 20] {
            let end = try await ChildProcess.run("/bin/sh", ["-c", "exit 3"], input: Data(count: size), timeout: Self.bound)
            #expect(end.state == .exited(3))
        }
        let partial = try await ChildProcess.run("/bin/sh", ["-c", "head -c 10"], input: Data(count: 1 << 22),
                                                 timeout: Self.bound)
        #expect(partial.state == .exited(0))
        #expect(partial.standardOutput.count == 10)
    }

    @Test func inputData() async throws {
        let end = try await ChildProcess.run("cat", input: Data("hello\nworld".utf8), timeout: Self.bound)
        #expect(end.outputText == "hello\nworld")
    }

    @Test func standardInputIsDevNullWithoutInput() async throws {
        let end = try await ChildProcess.run("cat", timeout: Self.bound)
        #expect(end.state == .exited(0))
        #expect(end.standardOutput.isEmpty)
    }

    @Test func environmentOverrideAndRemoval() async throws {
        let home = ProcessInfo.processInfo.environment["HOME"]
        try #require(home != nil, "the test needs HOME set in its own environment")
        let end = try await ChildProcess.run(
            "/bin/sh", ["-c", "echo ${LLAMA_PROCESS_TEST-unset} ${HOME-unset}"],
            environment: ["LLAMA_PROCESS_TEST": "set", "HOME": nil], timeout: Self.bound)
        #expect(end.outputText == "set unset\n")
        let inherited = try await ChildProcess.run("/bin/sh", ["-c", "echo $HOME"], timeout: Self.bound)
        #expect(inherited.outputText == "\(home!)\n")
    }

    @Test func workingDirectory() async throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let end = try await ChildProcess.run("/bin/pwd", ["-P"], workingDirectory: directory, timeout: Self.bound)
        #expect(end.outputText == directory.resolvingSymlinksInPath().path + "\n")
    }

    // MARK: Failures to start

    @Test func notFound() async throws {
        let path = await #expect(throws: ChildProcess.Failure.self) {
            try await ChildProcess.run("/nonexistent/llama-process-test")
        }
        #expect(path?.code == .notFound)
        let name = await #expect(throws: ChildProcess.Failure.self) {
            try await ChildProcess.run("llama-process-test-no-such-tool")
        }
        #expect(name?.code == .notFound)
        #expect(name?.message.contains("PATH") == true)
    }

    @Test func notExecutable() async throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("script")
        try Data("#!/bin/sh\necho hi\n".utf8).write(to: file)
        let failure = await #expect(throws: ChildProcess.Failure.self) {
            try await ChildProcess.run(file.path)
        }
        #expect(failure?.code == .notExecutable)
    }

    @Test func missingWorkingDirectoryFailsToStart() async throws {
        let failure = await #expect(throws: ChildProcess.Failure.self) {
            try await ChildProcess.run("/bin/true", workingDirectory: URL(fileURLWithPath: "/nonexistent/dir"))
        }
        #expect(failure?.code == .spawnFailed)
    }

    // MARK: What the child starts with

    #if os(Linux)
    @Test func childStartsWithACleanSignalStateEvenWhenTheCallerBlocksSignals() async throws {
        // Block every signal on this thread, as the concurrency pool and NIO threads do.
        var all = sigset_t(), previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, &previous)
        let end = try await ChildProcess.run(
            "/bin/grep", ["-E", "^(SigBlk|SigIgn):", "/proc/self/status"], timeout: Self.bound)
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        let masks = Dictionary(
            uniqueKeysWithValues: end.outputText.split(separator: "\n").map { line in
                let parts = line.split(separator: ":\t")
                return (String(parts[0]), UInt64(parts[1], radix: 16))
            })
        #expect(masks["SigBlk"] == 0)
        // No standard signal (1-31) ignored. glibc's sigfillset leaves out its own internal
        // real-time signals (32, 33), so the spawn's reset to default dispositions cannot reach those; glibc
        // installs its handlers for them again in every program it starts.
        let ignored = try #require(masks["SigIgn"] ?? nil)
        #expect(ignored & 0x7FFF_FFFF == 0, "ignored: \(String(ignored, radix: 16))")
    }

    @Test func noInheritedDescriptorsBeyondTheStandardThree() async throws {
        // A pipe without close-on-exec, as C code in the same process may leave one.
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let end = try await ChildProcess.run("/bin/ls", ["/proc/self/fd"], timeout: Self.bound)
        // 3 is the directory ls itself reads.
        #expect(end.outputText.split(separator: "\n") == ["0", "1", "2", "3"])
    }
    #endif

    @Test func childHasItsOwnProcessGroup() async throws {
        let end = try await Self.sh("ps -o pgid= -p $$; echo $$")
        let fields = end.outputText.split(whereSeparator: \.isWhitespace)
        #expect(fields.count == 2)
        #expect(fields.first == fields.last)
        #expect(fields.first.map(String.init) != String(getpgrp()))
    }

    @Test func timeoutKillsTheWholeGroupEvenAGrandchildThatIgnoresTerm() async throws {
        let lines = Lines()
        // The leader dies on TERM; the grandchild ignores it and is left to the final group KILL.
        let end = try await Self.sh(
            "(trap '' TERM; exec sleep 600) & echo $!; wait", timeout: .seconds(1), grace: .seconds(1), lines: lines)
        #expect(end.state == .timedOut)
        let pid = try #require(lines.texts.first.flatMap { pid_t($0) })
        #expect(isGone(pid), "grandchild \(pid) survived the teardown")
    }

    @Test func cancellationKillsTheWholeGroup() async throws {
        let lines = Lines()
        let run = Task { try await Self.sh("sleep 600 & echo $!; wait", lines: lines) }
        var events = lines.first.makeAsyncIterator()
        _ = await events.next()
        run.cancel()
        #expect(try await run.value.state == .cancelled)
        let pid = try #require(lines.texts.first.flatMap { pid_t($0) })
        #expect(isGone(pid), "grandchild \(pid) survived the cancellation")
    }

    // MARK: Long-running children

    @Test func startedChildKeepsItsInputOpenUntilStopped() async throws {
        let lines = Lines()
        // `read` returns at end of input: with stdin held open it waits until the child is stopped.
        let child = ChildProcess.start(
            "/bin/sh", ["-c", "echo ready; read line; echo input-ended"], timeout: Self.bound, onLine: lines.callback)
        var events = lines.first.makeAsyncIterator()
        _ = await events.next()
        child.stop()
        let end = try await child.termination()
        #expect(end.state == .cancelled)
        #expect(lines.texts == ["ready"])
    }

    @Test func startedChildThatFailsToStartReportsTheFailure() async throws {
        let child = ChildProcess.start("/nonexistent/llama-process-test")
        let failure = await #expect(throws: ChildProcess.Failure.self) { try await child.termination() }
        #expect(failure?.code == .notFound)
    }

    // MARK: Many at once

    @Test func manyConcurrentRunsEachEndOnce() async throws {
        let outputs = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<50 {
                group.addTask {
                    let end = try await Self.sh("echo \(i)", timeout: .seconds(120))
                    #expect(end.succeeded)
                    return (i, end.outputText)
                }
            }
            var all: [Int: String] = [:]
            for try await (i, text) in group { all[i] = text }
            return all
        }
        #expect(outputs.count == 50)
        #expect(outputs.allSatisfy { $0.value == "\($0.key)\n" })
    }
}

/// Waits (on the kernel's event, not by polling) until the process has ended; true if it did
/// within `seconds`. A zombie left to a reaper that does not reap counts as ended.
func isGone(_ pid: pid_t, within seconds: Int32 = 20) -> Bool {
    #if os(Linux)
    typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
    if let symbol = dlsym(dlopen(nil, RTLD_NOW), "pidfd_open") {
        let fd = unsafeBitCast(symbol, to: PidfdOpen.self)(pid, 0)
        if fd < 0 { return errno == ESRCH }
        defer { close(fd) }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&entry, 1, seconds * 1000)
            if ready < 0 && errno == EINTR { continue }
            return ready == 1
        }
    }
    #endif
    return kill(pid, 0) != 0 && errno == ESRCH
}
