import Foundation
import Llama

/// The per-operation section of `llama-swift bench` (`--profile` alone): where a decode's time
/// goes, by graph operation and device, for prompt processing and for generation, from
/// ``LlamaProfiler``. Runs alternate between a profiled and an unprofiled context, in this
/// process, so that the profiler's own cost is stated beside its figures.
struct ProfileBench {
    var libraryDirectory: String
    var model: String
    var promptFile: String
    var threads: Int32
    var generate: Int
    var runs: Int

    /// One phase (prompt processing or generation) over every counted run.
    struct Phase: Codable {
        /// "prompt" or "generation".
        var name: String
        /// Tokens evaluated per run, and the decodes that took them.
        var tokens: Int
        var decodes: Int
        /// Wall time of the phase per run, profiled and not, in milliseconds.
        var profiledMilliseconds: [Double]
        var plainMilliseconds: [Double]
        /// Every profiled run's nodes, added together.
        var profile: LlamaProfile

        var runs: Int { profiledMilliseconds.count }
        /// Profiled wall time over unprofiled, run by run (the runs were interleaved).
        var overheads: [Double] { zip(profiledMilliseconds, plainMilliseconds).map { $1 > 0 ? $0 / $1 : 0 } }
        /// The time of the profiled decodes, all runs.
        var profiledTotal: Double { profiledMilliseconds.reduce(0, +) }
    }

    struct Result: Codable {
        var model: String
        var threads: Int
        var loadAverage: Double
        var phases: [Phase]
    }

    func run(log: (String) -> Void) async throws -> Result {
        let load = SpeculationBench.loadAverage()
        let runtime = try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: libraryDirectory))
        let target = try LlamaModel(runtime: runtime, path: model)
        let text = try String(contentsOfFile: promptFile, encoding: .utf8)
        let prompt = try target.vocab.tokenize(text, addSpecial: true, parseSpecial: true)
        var phases = ["prompt", "generation"].map {
            Phase(name: $0, tokens: 0, decodes: 0, profiledMilliseconds: [], plainMilliseconds: [],
                  profile: LlamaProfile(entries: [], nodes: 0))
        }
        // One warm-up of each (page cache, thread pool), not counted.
        for index in 0...runs {
            for profiled in [false, true] {
                let profiler = profiled ? LlamaProfiler() : nil
                let context = try LlamaContext(
                    model: target, options: ContextOptions(contextLength: UInt32((prompt.count + generate) / 256 + 1) * 256,
                                                           batchSize: 512, threads: threads),
                    profiler: profiler)
                let measured = try await Self.greedy(context, prompt: prompt, generate: generate)
                guard index > 0 else { continue }
                for (p, phase) in measured.enumerated() {
                    phases[p].tokens = phase.tokens
                    phases[p].decodes = phase.decodes
                    if let profile = phase.profile {
                        phases[p].profiledMilliseconds.append(phase.milliseconds)
                        phases[p].profile = phases[p].profile + profile
                    } else {
                        phases[p].plainMilliseconds.append(phase.milliseconds)
                    }
                }
                log("profile run \(index)/\(runs) \(profiled ? "profiled" : "unprofiled"): "
                    + measured.map { "\($0.name) " + String(format: "%.1f ms", $0.milliseconds) }.joined(separator: ", "))
            }
        }
        return Result(model: model, threads: Int(threads), loadAverage: load, phases: phases)
    }

    struct Measured {
        var name: String
        var tokens: Int
        var decodes: Int
        var milliseconds: Double
        var profile: LlamaProfile?
    }

    /// The prompt in batches, then `generate` greedy tokens one decode each (end of generation
    /// ignored), each phase timed, and profiled when the context has a profiler.
    static func greedy(_ context: LlamaContext, prompt: [LlamaToken], generate: Int) async throws -> [Measured] {
        let clock = ContinuousClock()
        func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }
        let profiler = context.profiler
        profiler?.reset()
        var batch = LlamaBatch()
        var start = clock.now
        var decodes = 0
        for offset in stride(from: 0, to: prompt.count, by: context.batchCapacity) {
            batch.removeAll()
            let chunk = Array(prompt[offset..<min(prompt.count, offset + context.batchCapacity)])
            batch.add(prompt: chunk, startingAt: Int32(offset), outputLast: offset + chunk.count == prompt.count)
            try await context.decode(batch)
            decodes += 1
        }
        func argmax() async throws -> LlamaToken {
            try await context.withLogits { l in LlamaToken(l.indices.max { l[$0] < l[$1] } ?? 0) }
        }
        var token = try await argmax()
        let promptPhase = Measured(name: "prompt", tokens: prompt.count, decodes: decodes, milliseconds: ms(clock.now - start),
                                   profile: profiler?.profile())
        profiler?.reset()
        start = clock.now
        for i in 0..<generate {
            batch.removeAll()
            batch.add(token, position: Int32(prompt.count + i), output: true)
            try await context.decode(batch)
            token = try await argmax()
        }
        let generation = Measured(name: "generation", tokens: generate, decodes: generate, milliseconds: ms(clock.now - start),
                                  profile: profiler?.profile())
        return [promptPhase, generation]
    }
}

extension ProfileBench.Result {
    /// One table row per operation and device: calls per decode, milliseconds per run, share of
    /// the profiled phase, bytes written per decode.
    static func rows(_ phase: ProfileBench.Phase) -> [[String]] {
        let decodes = max(1, phase.runs * phase.decodes), total = max(phase.profiledTotal, 1e-9)
        return phase.profile.entries.map { e in
            [e.operation, e.device, "\(e.calls / decodes)", String(format: "%.2f", e.milliseconds / Double(max(1, phase.runs))),
             String(format: "%.1f%%", e.milliseconds / total * 100),
             String(format: "%.3f", Double(e.bytes) / Double(decodes) / 1e6)]
        }
    }

    static let columns = ["op", "device", "calls", "total ms", "% of decode", "MB written"]

    /// What one phase's table says above it.
    static func summary(_ phase: ProfileBench.Phase) -> String {
        let overheads = phase.overheads
        let label = phase.name == "prompt" ? "prompt processing" : "generation"
        return "\(label): \(phase.tokens) tokens in \(phase.decodes) decode\(phase.decodes == 1 ? "" : "s") per run, "
            + "median of \(phase.runs) runs; "
            + String(format: "profiled %.1f ms against %.1f ms unprofiled (%.2f×, %.2f-%.2f: the callback computes one node "
                     + "at a time); the nodes take %.1f%% of the profiled time",
                     Bench.median(phase.profiledMilliseconds), Bench.median(phase.plainMilliseconds), Bench.median(overheads),
                     overheads.min() ?? 0, overheads.max() ?? 0,
                     phase.profile.milliseconds / max(phase.profiledTotal, 1e-9) * 100)
    }

    var lines: [String] {
        var out = ["per-op breakdown (\(URL(fileURLWithPath: model).lastPathComponent), \(threads) threads, "
                   + String(format: "load average %.2f at the start):", loadAverage)]
        for phase in phases {
            out.append("  " + Self.summary(phase))
            let rows = [Self.columns] + Self.rows(phase)
            let widths = Self.columns.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
            for row in rows {
                out.append("    " + row.enumerated().map { c, cell in
                    c < 2 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) : cell.leftPad(widths[c])
                }.joined(separator: "  "))
            }
        }
        return out
    }
}
