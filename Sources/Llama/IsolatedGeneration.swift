public import Foundation
import Synchronization

/// Generation in a helper process (`llama-swift run --events`), for work whose failure ggml
/// cannot survive: when an RPC server stops in the middle of a computation, ggml ends the
/// process that was computing. Here that is the helper; this process gets a typed error
/// (`.remoteFailed`, or `.timeout` when no token came for `idleTimeout`) and goes on.
public struct LlamaIsolatedGeneration: Sendable {
    /// The `llama-swift` executable (default: ``LlamaInstallOptions/helper``).
    public var helper: URL
    /// The `run` arguments: model, prompt, sampling, `--rpc` servers...
    public var arguments: [String]
    /// The longest wait for the next event before the helper is stopped.
    public var idleTimeout: Duration

    public init(helper: URL, arguments: [String], idleTimeout: Duration = .seconds(30)) {
        self.helper = helper
        self.arguments = arguments
        self.idleTimeout = idleTimeout
    }

    /// Greedy or sampled generation over RPC servers in a helper process.
    public init?(model: String, servers: [String], prompt: String, maxTokens: Int = 256, temperature: Float = 0,
                 seed: UInt32? = nil, contextLength: UInt32 = 2048, threads: Int32? = nil, raw: Bool = false,
                 helper: URL? = LlamaInstallOptions().helper, idleTimeout: Duration = .seconds(30)) {
        guard let helper else { return nil }
        var args = ["-m", model, "-p", prompt, "-n", "\(maxTokens)", "--temp", "\(temperature)", "-c", "\(contextLength)"]
        if !servers.isEmpty { args += ["--rpc", servers.joined(separator: ",")] }
        if let seed { args += ["--seed", "\(seed)"] }
        if let threads { args += ["-t", "\(threads)"] }
        if raw { args.append("--raw") }
        self.init(helper: helper, arguments: args, idleTimeout: idleTimeout)
    }

    /// One event line of `run --events`.
    struct Event: Codable {
        var token: Int32?
        var text: String?
        var done: Done?
        struct Done: Codable {
            var promptTokens: Int
            var reusedPromptTokens: Int
            var generatedTokens: [Int32]
            var text: String
            var stopReason: String
            var promptSeconds: Double
            var generationSeconds: Double
        }
    }

    public func stream() -> AsyncThrowingStream<GenerationEvent, any Error> {
        let helper = helper, arguments = arguments, idleTimeout = idleTimeout
        return AsyncThrowingStream { continuation in
            let errors = FileManager.default.temporaryDirectory.appendingPathComponent("llama-swift-\(UUID().uuidString).stderr")
            let child: ChildProcess
            do { child = try ChildProcess(helper.path, ["run", "--events"] + arguments, errorFile: errors) } catch {
                continuation.finish(throwing: LlamaError(.remoteFailed, "the helper \(helper.path) could not start: \(error)"))
                return
            }
            let lastEvent = Mutex(ContinuousClock.now)
            let timedOut = Atomic<Bool>(false)
            let watchdog = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(200))
                    if ContinuousClock.now - lastEvent.withLock({ $0 }) > idleTimeout {
                        timedOut.store(true, ordering: .relaxed)
                        child.terminate()
                        try? await Task.sleep(for: .seconds(2))
                        child.forceKill()
                        return
                    }
                }
            }
            continuation.onTermination = { reason in
                if case .cancelled = reason { child.terminate() }
            }
            Thread.detachNewThread {
                var finished = false
                child.readLines { line in
                    lastEvent.withLock { $0 = .now }
                    guard let event = try? JSONDecoder().decode(Event.self, from: line) else { return }
                    if let done = event.done {
                        continuation.yield(.finished(Self.summary(done)))
                        finished = true
                    } else if let token = event.token {
                        continuation.yield(.token(token, text: event.text ?? ""))
                    } else if let text = event.text {
                        continuation.yield(.text(text))
                    }
                }
                let status = child.wait()
                watchdog.cancel()
                let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
                try? FileManager.default.removeItem(at: errors)
                let reason = stderr.split(separator: "\n").filter { $0.hasPrefix("error:") || $0.contains("ggml is ending") }
                    .last.map(String.init) ?? stderr.split(separator: "\n").last.map(String.init) ?? ""
                if finished && status == 0 {
                    continuation.finish()
                } else if timedOut.load(ordering: .relaxed) {
                    continuation.finish(throwing: LlamaError(.timeout, "no token came for \(idleTimeout): the helper process was "
                        + "stopped (an RPC server hangs or is unreachable)"))
                } else if status > 128 {
                    continuation.finish(throwing: LlamaError(.remoteFailed, "the generation ended in its helper process (signal "
                        + "\(status - 128)): an RPC server stopped or failed during the computation. \(reason)"))
                } else {
                    continuation.finish(throwing: LlamaError(.remoteFailed, "the helper process failed (exit \(status)): \(reason)"))
                }
            }
        }
    }

    static func summary(_ d: Event.Done) -> GenerationSummary {
        let stop: StopReason
        switch d.stopReason {
        case "maxTokens": stop = .maxTokens
        case "contextFull": stop = .contextFull
        case "cancelled": stop = .cancelled
        default: stop = d.stopReason.hasPrefix("stop:") ? .stopSequence(String(d.stopReason.dropFirst(5))) : .endOfGeneration(-1)
        }
        func duration(_ s: Double) -> Duration { .milliseconds(Int64(s * 1000)) }
        return GenerationSummary(promptTokens: d.promptTokens, reusedPromptTokens: d.reusedPromptTokens,
                                 generatedTokens: d.generatedTokens, text: d.text, stopReason: stop,
                                 promptDuration: duration(d.promptSeconds), generationDuration: duration(d.generationSeconds),
                                 timeToFirstToken: nil)
    }

    /// The event line of a summary (what `run --events` prints last).
    public static func doneLine(_ s: GenerationSummary) -> String {
        let stop: String
        switch s.stopReason {
        case .maxTokens: stop = "maxTokens"
        case .contextFull: stop = "contextFull"
        case .cancelled: stop = "cancelled"
        case .endOfGeneration: stop = "endOfGeneration"
        case .stopSequence(let t): stop = "stop:" + t
        }
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        let done = Event.Done(promptTokens: s.promptTokens, reusedPromptTokens: s.reusedPromptTokens, generatedTokens: s.generatedTokens,
                              text: s.text, stopReason: stop, promptSeconds: seconds(s.promptDuration),
                              generationSeconds: seconds(s.generationDuration))
        return String(decoding: (try? JSONEncoder().encode(Event(done: done))) ?? Data(), as: UTF8.self)
    }

    /// The event line of a token or text.
    public static func eventLine(_ event: GenerationEvent) -> String? {
        let e: Event
        switch event {
        case .token(let t, let text): e = Event(token: t, text: text)
        case .text(let text): e = Event(text: text)
        case .finished(let s): return doneLine(s)
        }
        return (try? JSONEncoder().encode(e)).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Runs a helper that shares this process's terminal and standard streams, and waits for it.
public enum LlamaHelperProcess {
    /// The exit status, or 128 + the signal that ended it.
    public static func run(_ executable: URL, _ arguments: [String]) async throws(LlamaError) -> Int32 {
        let child: ChildProcess
        do { child = try ChildProcess(executable.path, arguments, attached: true) } catch {
            throw LlamaError(.remoteFailed, "the helper \(executable.path) could not start: \(error)")
        }
        return await withCheckedContinuation { (done: CheckedContinuation<Int32, Never>) in
            Thread.detachNewThread { done.resume(returning: child.wait()) }
        }
    }
}
