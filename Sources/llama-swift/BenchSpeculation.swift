import Foundation
import Llama

/// The speculation section of `llama-swift bench`: plain greedy generation against prompt
/// lookup (and, when a draft model is given, a draft model) on a repetition-heavy task, a
/// paragraph rewritten with small changes. Runs alternate in this process, each on a fresh
/// context; the outputs must be the same tokens.
struct SpeculationBench {
    var libraryDirectory: String
    var model: String
    var promptFile: String
    var draftModel: String?
    var threads: Int32
    var runs: Int
    var maxTokens = 400

    struct Run: Sendable {
        var tokensPerSecond: Double
        var tokens: [LlamaToken]
        var statistics: SpeculationStatistics?
    }

    struct Result {
        var variants: [(name: String, runs: [Run])]
        var load: Double

        func median(_ values: [Double]) -> Double { Bench.median(values) }

        var plain: [Run] { variants[0].runs }

        /// Each variant's tokens/s over plain's, run by run (the runs were interleaved).
        func speedups(_ runs: [Run]) -> [Double] {
            zip(runs, plain).map { $1.tokensPerSecond > 0 ? $0.tokensPerSecond / $1.tokensPerSecond : 0 }
        }

        var lines: [String] {
            var out = ["speculation (rewrite a paragraph with small changes, greedy, \(plain.first?.tokens.count ?? 0) tokens, "
                       + String(format: "load average %.2f at the start):", load)]
            for (name, runs) in variants {
                var line = "  " + name.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + String(format: "%7.1f gen tokens/s (median of %d)", median(runs.map(\.tokensPerSecond)), runs.count)
                if let s = runs.last?.statistics {
                    let sp = speedups(runs)
                    line += String(format: ", %.2f× plain (%.2f-%.2f), acceptance %.1f%% (%d of %d guesses), %d decodes",
                                   median(sp), sp.min() ?? 0, sp.max() ?? 0, s.acceptanceRate * 100, s.acceptedTokens,
                                   s.draftedTokens, s.decodes)
                }
                out.append(line)
            }
            let same = Set(variants.flatMap { $0.runs.map(\.tokens) }).count == 1
            out.append("  same tokens in every run and variant: \(same ? "yes" : "NO")")
            if let lookup = variants.first(where: { $0.name == "lookup" }) {
                let s = median(speedups(lookup.runs))
                out.append("  target: prompt lookup ≥ 1.5× plain: \(s >= 1.5 ? "met" : "missed") (\(String(format: "%.2f", s)))")
            }
            return out
        }

        var json: [String: Any] {
            var document: [String: Any] = ["load_average": load,
                                           "same_tokens": Set(variants.flatMap { $0.runs.map(\.tokens) }).count == 1]
            for (name, runs) in variants {
                var v: [String: Any] = ["tokens_per_s": runs.map(\.tokensPerSecond), "tokens": plain.first?.tokens.count ?? 0,
                                        "median_tokens_per_s": median(runs.map(\.tokensPerSecond))]
                if let s = runs.last?.statistics {
                    v["speedup_over_plain"] = speedups(runs)
                    v["median_speedup"] = median(speedups(runs))
                    v["drafted"] = s.draftedTokens
                    v["accepted"] = s.acceptedTokens
                    v["acceptance_rate"] = s.acceptanceRate
                    v["decodes"] = s.decodes
                }
                document[name] = v
            }
            return document
        }
    }

    static func loadAverage() -> Double {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return Double(text.split(separator: " ").first ?? "") ?? -1
    }

    func run(log: (String) -> Void) async throws -> Result {
        let load = Self.loadAverage()
        let runtime = try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: libraryDirectory))
        let target = try LlamaModel(runtime: runtime, path: model)
        let request = try String(contentsOfFile: promptFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let prompt = target.chatTemplate() == nil ? request : try target.formatChat([.user(request)])
        var variants: [(String, Speculation?)] = [("plain", nil), ("lookup", .lookup())]
        if let draftModel {
            variants.append(("draft", .draft(model: try LlamaModel(runtime: runtime, path: draftModel))))
        }
        var results = variants.map { (name: $0.0, runs: [Run]()) }
        // One warm-up of each (page cache, thread pool), not counted.
        for index in 0...runs {
            for (v, (name, speculation)) in variants.enumerated() {
                let context = try LlamaContext(model: target, options: ContextOptions(contextLength: 2048, batchSize: 512,
                                                                                       threads: threads))
                var options = GenerationOptions(maxTokens: maxTokens)
                options.addSpecial = target.chatTemplate() == nil
                options.speculation = speculation
                let summary = try await context.generate(prompt: prompt, options: options).summary()
                guard index > 0 else { continue }
                results[v].runs.append(Run(tokensPerSecond: summary.tokensPerSecond, tokens: summary.generatedTokens,
                                           statistics: summary.speculation))
                log("speculation run \(index)/\(runs) \(name): \(String(format: "%.1f", summary.tokensPerSecond)) gen tokens/s"
                    + (summary.speculation.map { String(format: ", acceptance %.2f", $0.acceptanceRate) } ?? ""))
            }
        }
        return Result(variants: results, load: load)
    }
}
