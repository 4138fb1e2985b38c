public import Foundation
import LlamaProcess
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Generation in the `llama-helper` program (request `generate`), for work whose failure ggml
/// cannot survive: when an RPC server stops in the middle of a computation, ggml ends the
/// process that was computing. Here that is the helper; this process gets a typed error
/// (`.remoteFailed`, `.timeout` when no token came for `idleTimeout`, `.cancelled` when the
/// consumer stops) and goes on. Without a helper the stream fails with `.helperNotFound`.
public struct LlamaIsolatedGeneration: Sendable {
    /// What the helper generates: model, prompt, sampling, RPC servers, libraries...
    public var request: HelperRequest.Generate
    /// The `llama-helper` to use (nil: found as ``LlamaHelper/locate(_:purpose:environment:executableDirectory:)`` does).
    public var helper: URL?
    /// The longest wait for the helper's next line before it is stopped.
    public var idleTimeout: Duration

    /// A generation to run in a helper process.
    ///
    /// - Parameters:
    ///   - request: what to generate.
    ///   - helper: the `llama-helper` program (nil: found beside the executable, on PATH or through `LLAMA_SWIFT_HELPER`).
    ///   - idleTimeout: the longest silence of the helper before it is ended and the stream fails.
    public init(_ request: HelperRequest.Generate, helper: URL? = nil, idleTimeout: Duration = .seconds(30)) {
        self.request = request
        self.helper = helper
        self.idleTimeout = idleTimeout
    }

    /// Greedy (temperature 0) or sampled generation over RPC servers in the helper.
    ///
    /// - Parameters:
    ///   - model: the GGUF file.
    ///   - servers: `host:port` of the RPC servers whose devices take the layers.
    ///   - prompt: the user's prompt, rendered with the model's chat template unless `raw`.
    ///   - maxTokens: the most tokens to generate.
    ///   - temperature: 0 for greedy generation.
    ///   - seed: the sampling seed (nil: random).
    ///   - contextLength: the context length.
    ///   - threads: CPU threads (nil: llama.cpp's default).
    ///   - raw: use the prompt as it is, without the chat template.
    ///   - libraryDirectory: the llama.cpp release folder the helper loads (nil: as
    ///     ``LlamaRuntime/load(libraryDirectory:options:allowVersionMismatch:logger:progress:)``
    ///     finds it in the helper's environment).
    ///   - helper: the `llama-helper` program (nil: found beside the executable, on PATH or through `LLAMA_SWIFT_HELPER`).
    ///   - idleTimeout: the longest silence of the helper before it is ended and the stream fails.
    public init(model: String, servers: [String], prompt: String, maxTokens: Int = 256, temperature: Float = 0,
                seed: UInt32? = nil, contextLength: UInt32 = 2048, threads: Int32? = nil, raw: Bool = false,
                libraryDirectory: URL? = nil, helper: URL? = nil, idleTimeout: Duration = .seconds(30)) {
        self.init(.init(directory: libraryDirectory?.path, model: model, prompt: prompt, raw: raw, maxTokens: maxTokens,
                        sampling: .init(temperature: temperature, seed: seed), rpcServers: servers,
                        contextLength: contextLength, threads: threads),
                  helper: helper, idleTimeout: idleTimeout)
    }

    /// Starts the helper and streams its events; the helper's failures and its death are thrown as ``LlamaError``s.
    public func stream() -> AsyncThrowingStream<GenerationEvent, any Error> {
        let request = request, helper = helper, idleTimeout = idleTimeout
        return AsyncThrowingStream { continuation in
            let task = Task {
                do throws(LlamaError) {
                    try await Self.run(request, helper: helper, idleTimeout: idleTimeout) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    static func run(_ request: HelperRequest.Generate, helper explicit: URL?, idleTimeout: Duration,
                    yield: @escaping @Sendable (GenerationEvent) -> Void) async throws(LlamaError) {
        let helper = try LlamaHelper.locate(explicit, purpose: "to generate in a child process")
        let badSummary = Mutex<LlamaHelperProtocol.Violation?>(nil)
        let exchange = try await LlamaHelper.exchange(HelperRequest(.generate(request)), helper: helper,
                                                      idleTimeout: idleTimeout) { message in
            switch message {
            case .token(let token): yield(.token(token.id, text: token.text))
            case .text(let text): yield(.text(text))
            case .finished(let summary):
                do throws(LlamaHelperProtocol.Violation) { yield(.finished(try summary.summary())) } catch {
                    badSummary.withLock { $0 = error }
                }
            case .devices, .failure, .validated: break
            }
        }
        var result = exchange
        if result.violation == nil, let violation = badSummary.withLock({ $0 }) { result.violation = violation }
        if result.violation == nil, case .devices? = result.final {
            result.violation = LlamaHelperProtocol.Violation(foundVersion: LlamaHelperProtocol.version, description: "a device list in answer to generate")
        }
        switch result.final {
        case .finished? where result.violation == nil:
            return
        case .failure(let failure)? where result.violation == nil:
            throw failure.error
        default:
            throw LlamaHelper.unanswered(result, helper: helper, crashCode: .remoteFailed, crashed: { signal in
                "the generation ended in its helper process (signal \(signal)): an RPC server stopped or failed during the computation"
            }, timedOut: {
                LlamaError(.timeout, "no token came for \(idleTimeout): the helper process was stopped (an RPC server hangs or "
                    + "is unreachable)")
            })
        }
    }
}

/// Runs a program that shares this process's terminal and output streams, and waits for it:
/// what `llama-swift` uses to run a command again in a child.
public enum LlamaHelperProcess {
    /// The exit status, or 128 + the signal that ended it. The child shares this process's
    /// standard streams, a terminal included.
    public static func run(_ executable: URL, _ arguments: [String]) async throws(LlamaError) -> Int32 {
        let termination: ChildProcess.Termination
        do {
            termination = try await ChildProcess.run(executable.path, arguments, inheritInput: true,
                                                     standardOutput: .inherit, standardError: .inherit)
        } catch {
            throw LlamaError(.remoteFailed, "\(executable.path) could not start: \(error.message)", underlying: error)
        }
        switch termination.state {
        case .exited(let status): return status
        case .signalled(let signal): return 128 + signal
        case .cancelled: throw LlamaError(.cancelled, "\(executable.path) was stopped: the task was cancelled")
        case .timedOut: throw LlamaError(.timeout, "\(executable.path) was stopped: it ran too long")
        }
    }
}
