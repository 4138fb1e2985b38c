import Prometheus
import HTTPTypes
import Foundation
import Llama

/// One request's generation on the engine, watched: metrics as tokens come, the request
/// timeout, and an explicit end. The engine keeps a stream going until its consumer's task is
/// cancelled, so whoever reads `events` calls ``cancel()`` when done (a `defer`): that ends the
/// pump reading the engine, and the engine frees the slot within one step.
final class GenerationRun: Sendable {
    let events: AsyncThrowingStream<GenerationEvent, any Error>
    private let continuation: AsyncThrowingStream<GenerationEvent, any Error>.Continuation

    init(_ inner: AsyncThrowingStream<GenerationEvent, any Error>, arrival: ContinuousClock.Instant,
         timeout: Duration?, metrics: ServerMetrics) {
        let (events, continuation) = AsyncThrowingStream<GenerationEvent, any Error>.makeStream()
        self.events = events
        self.continuation = continuation
        let pump = Task {
            var last: ContinuousClock.Instant?
            do {
                for try await event in inner {
                    switch event {
                    case .token:
                        let now = ContinuousClock.now
                        if let last { metrics.interToken.record(now - last) } else { metrics.timeToFirstToken.record(now - arrival) }
                        last = now
                        metrics.generatedTokens.increment()
                    case .finished(let summary):
                        metrics.record(summary: summary)
                    case .text, .probabilities:
                        break
                    }
                    continuation.yield(event)
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        let deadline = timeout.map { limit in
            Task {
                // A deadline, not a poll: it sleeps once and is cancelled when the run ends first.
                do { try await Task.sleep(for: limit) } catch { return }
                continuation.finish(throwing: APIError(.gatewayTimeout, "the generation ran past the server's request timeout "
                    + "(\(limit)); ask for fewer tokens", type: "server_error", code: "request_timeout"))
            }
        }
        continuation.onTermination = { _ in
            pump.cancel()
            deadline?.cancel()
        }
    }

    /// Ends the run (idempotent): the engine's slot is freed within one step.
    func cancel() { continuation.finish() }

    deinit { continuation.finish() }
}
