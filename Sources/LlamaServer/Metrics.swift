import Foundation
import Llama
import Prometheus
import Synchronization

/// The server's Prometheus metrics (`GET /metrics`): requests by status, tokens, throughput,
/// queue depth, busy slots, time to first token and inter-token latency.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let promptTokens: Counter
    let generatedTokens: Counter
    let reusedTokens: Counter
    let tokensPerSecond: Gauge
    let timeToFirstToken: DurationHistogram
    let interToken: DurationHistogram
    let requestDuration: DurationHistogram
    private let statusCounters = Mutex<[String: Counter]>([:])

    init() {
        promptTokens = registry.makeCounter(name: "llamaswift_prompt_tokens_total",
                                            help: "Prompt tokens of finished generations (reused ones included).")
        generatedTokens = registry.makeCounter(name: "llamaswift_generated_tokens_total", help: "Tokens generated.")
        reusedTokens = registry.makeCounter(name: "llamaswift_prompt_tokens_reused_total",
                                            help: "Prompt tokens found in a slot's cache and not evaluated again.")
        tokensPerSecond = registry.makeGauge(name: "llamaswift_tokens_per_second",
                                             help: "Generation speed of the last finished request, tokens per second.")
        let latency: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                   .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                   .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30)]
        timeToFirstToken = registry.makeDurationHistogram(name: "llamaswift_time_to_first_token_seconds", buckets: latency,
                                                          help: "From the request's arrival to its first generated token.")
        interToken = registry.makeDurationHistogram(name: "llamaswift_inter_token_seconds", buckets: latency,
                                                    help: "Between two generated tokens of one request.")
        requestDuration = registry.makeDurationHistogram(name: "llamaswift_request_duration_seconds", buckets: latency,
                                                         help: "From a request's arrival to its response's end.")
    }

    /// Counts a response by its status.
    func count(status: Int) {
        let key = String(status)
        let counter = statusCounters.withLock { counters in
            if let c = counters[key] { return c }
            let c = registry.makeCounter(name: "llamaswift_requests_total", labels: [("status", key)],
                                         help: "HTTP requests answered, by status.")
            counters[key] = c
            return c
        }
        counter.increment()
    }

    /// The text exposition, with the engines' gauges read now.
    func exposition(models: ModelRegistry) async -> String {
        let hosts = await models.loaded
        registry.makeGauge(name: "llamaswift_loaded_models", help: "Models loaded now.").set(Double(hosts.count))
        registry.makeGauge(name: "llamaswift_model_loads", help: "Models loaded since the start (on a request).").set(Double(await models.loads))
        registry.makeGauge(name: "llamaswift_model_unloads", help: "Models unloaded past --models-max.").set(Double(await models.unloads))
        for host in hosts {
            let s = await host.slots.statistics
            let labels = [("model", host.id)]
            registry.makeGauge(name: "llamaswift_busy_slots", labels: labels, help: "Slots running a request.").set(Double(s.busySlots))
            registry.makeGauge(name: "llamaswift_slots", labels: labels, help: "Slots in all.").set(Double(s.slots))
            registry.makeGauge(name: "llamaswift_queue_depth", labels: labels, help: "Requests waiting for a slot.").set(Double(s.queued))
            registry.makeGauge(name: "llamaswift_decode_steps", labels: labels, help: "Decode steps the engine ran.").set(Double(s.steps))
            registry.makeGauge(name: "llamaswift_rejected_requests", labels: labels,
                               help: "Requests refused because the queue was full.").set(Double(s.rejectedRequests))
            registry.makeGauge(name: "llamaswift_prompt_cache_entries", labels: labels,
                               help: "Conversations held in host memory (--cache-ram).").set(Double(s.cachedPrompts))
            registry.makeGauge(name: "llamaswift_prompt_cache_bytes", labels: labels,
                               help: "Bytes of state the prompt cache holds.").set(Double(s.cachedPromptBytes))
            registry.makeGauge(name: "llamaswift_prompt_cache_restores", labels: labels,
                               help: "Conversations restored from the prompt cache into a slot.").set(Double(s.restoredPrompts))
        }
        return registry.emitToString()
    }

    /// Records what a finished generation did.
    func record(summary: GenerationSummary) {
        promptTokens.increment(by: Int64(summary.promptTokens))
        reusedTokens.increment(by: Int64(summary.reusedPromptTokens))
        let rate = summary.tokensPerSecond
        if rate > 0 { tokensPerSecond.set(rate) }
    }
}
