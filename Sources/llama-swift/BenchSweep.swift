import Foundation
import Llama

/// The sweeps of `llama-swift bench --html`: prompt processing tokens/s against the prompt's
/// length, and generation and prompt processing tokens/s against the thread count, the native C
/// program against the streaming API, each point its own process, runs alternating.
struct SweepBench {
    var libraryDirectory: String
    var model: String
    /// The text the prompts are cut from (repeated as needed).
    var promptFile: String
    var promptLengths: [Int]
    var threadCounts: [Int]
    /// Threads of the prompt-length sweep.
    var threads: Int
    /// Tokens generated per run of the thread sweep.
    var generate: Int
    var runs: Int
    /// The variants: a name and the program with its mode (`native_bench gen`, `llama-bench-worker stream`).
    var variants: [(name: String, program: String, mode: String)]

    /// The figures: one series per variant and metric, a point per x value with each run's value.
    struct Figures: Codable {
        struct Point: Codable {
            var x: Int
            var values: [Double]
            var median: Double { Bench.median(values) }
        }
        struct Series: Codable {
            /// `native`, `stream`...
            var variant: String
            /// `prompt_tps` or `gen_tps`.
            var metric: String
            var points: [Point]
        }
        /// Prompt processing tokens/s against prompt tokens.
        var promptLength: [Series]
        /// Generation and prompt processing tokens/s against threads.
        var threads: [Series]
        var runs: Int
        /// The prompt of the thread sweep, in tokens, and the tokens generated.
        var threadsPromptTokens: Int
        var threadsGenerate: Int
        /// Threads of the prompt-length sweep.
        var promptLengthThreads: Int
        var loadAverage: Double
    }

    /// Writes one prompt file per length into `folder`: the text's tokens cut to the length, less
    /// the special tokens the programs add themselves.
    func promptFiles(in folder: URL) throws -> [(length: Int, file: String)] {
        let runtime = try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: libraryDirectory))
        var options = ModelOptions()
        options.vocabularyOnly = true
        // The vocabulary points into the model: keep the model alive while it is used.
        let vocabularyModel = try LlamaModel(runtime: runtime, path: model, options: options)
        let vocab = vocabularyModel.vocab
        defer { withExtendedLifetime(vocabularyModel) {} }
        let text = try String(contentsOfFile: promptFile, encoding: .utf8)
        var tokens = try vocab.tokenize(text, addSpecial: false)
        let longest = promptLengths.max() ?? 0
        while tokens.count < longest { tokens += try vocab.tokenize(" " + text, addSpecial: false) }
        // The tokens the programs add (a beginning-of-text token, for models that have one).
        let added = try vocab.tokenize("a", addSpecial: true).count - vocab.tokenize("a", addSpecial: false).count
        return try promptLengths.map { length in
            let file = folder.appendingPathComponent("prompt-\(length).txt")
            try vocab.detokenize(Array(tokens.prefix(max(1, length - added)))).write(to: file, atomically: true, encoding: .utf8)
            return (length, file.path)
        }
    }

    func run(measure: (String, [String]) async throws -> [String: Double], in folder: URL,
             log: (String) -> Void) async throws -> Figures {
        let load = SpeculationBench.loadAverage()
        let files = try promptFiles(in: folder)
        var byLength: [String: [Int: [Double]]] = [:], lengthTokens: [Int: Int] = [:]
        var byThreads: [String: [Int: [Double]]] = [:]
        var threadsPromptTokens = 0
        for run in 1...runs {
            for (length, file) in files {
                for v in variants {
                    let r = try await measure(v.program, [v.mode, libraryDirectory, model, file, "2", "\(threads)"])
                    let tokens = Int(r["prompt_tokens"] ?? 0)
                    lengthTokens[length] = tokens
                    byLength[v.name, default: [:]][length, default: []].append(tps(r, "prompt"))
                    log("sweep run \(run)/\(runs) \(v.name) prompt \(tokens) tokens: "
                        + String(format: "%.0f tokens/s", tps(r, "prompt")))
                }
            }
            for count in threadCounts {
                for v in variants {
                    let r = try await measure(v.program, [v.mode, libraryDirectory, model, promptFile, "\(generate)", "\(count)"])
                    threadsPromptTokens = Int(r["prompt_tokens"] ?? 0)
                    byThreads["\(v.name) gen_tps", default: [:]][count, default: []].append(tps(r, "gen"))
                    byThreads["\(v.name) prompt_tps", default: [:]][count, default: []].append(tps(r, "prompt"))
                    log("sweep run \(run)/\(runs) \(v.name) \(count) threads: "
                        + String(format: "%.1f gen, %.0f prompt tokens/s", tps(r, "gen"), tps(r, "prompt")))
                }
            }
        }
        let promptSeries = variants.map { v in
            Figures.Series(variant: v.name, metric: "prompt_tps", points: promptLengths.map {
                Figures.Point(x: lengthTokens[$0] ?? $0, values: byLength[v.name]?[$0] ?? [])
            })
        }
        let threadSeries = ["gen_tps", "prompt_tps"].flatMap { metric in
            variants.map { v in
                Figures.Series(variant: v.name, metric: metric, points: threadCounts.map {
                    Figures.Point(x: $0, values: byThreads["\(v.name) \(metric)"]?[$0] ?? [])
                })
            }
        }
        return Figures(promptLength: promptSeries, threads: threadSeries, runs: runs, threadsPromptTokens: threadsPromptTokens,
                       threadsGenerate: generate, promptLengthThreads: threads, loadAverage: load)
    }

    /// Tokens per second of a worker's phase ("prompt" or "gen").
    func tps(_ r: [String: Double], _ phase: String) -> Double {
        let ms = r["\(phase)_ms"] ?? 0
        return ms > 0 ? (r["\(phase)_tokens"] ?? 0) / ms * 1e3 : 0
    }
}
