import ArgumentParser
import Foundation
import LlamaProcess

/// `llama-swift bench`: native C, the raw bindings and the streaming API, side by side on the
/// same libraries, model, threads and prompt, alternating runs to cancel drift.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the bindings' overhead against a native C program, run for run.",
        discussion: """
            Each run is its own process (peak RSS is per process): the native C program (built \
            here with cc against the pinned headers), then the same loop through the raw \
            bindings, then through the streaming API, then both again with every token \
            constrained by a JSON Schema grammar; runs alternate. Reports prompt and \
            generation tokens/s, time to first token, load time, peak RSS and heap allocations \
            per token, with the ratio to native (min/median/max); symbol-table resolution time; \
            tokenizer throughput against C; constrained over unconstrained generation tokens/s; \
            where a decode's time goes, per graph operation and device (LlamaProfiler), with the \
            profiler's own cost. With --html, also sweeps prompt length and threads and writes a \
            self-contained HTML report with charts.
            """)

    @Option(help: "The folder of an unpacked llama.cpp release (default: $LLAMA_LIB_DIR).")
    var libDir: String?
    @Option(name: [.short, .long], help: "The GGUF model (default: $LLAMA_MODEL).")
    var model: String?
    @Option(help: "A file with the prompt (default: Bench/prompt.txt).")
    var promptFile: String?
    @Option(help: "Tokens to generate per run.")
    var generate = 128
    @Option(name: [.short, .long], help: "Threads.")
    var threads = 2
    @Option(help: "Runs of each variant.")
    var runs = 5
    @Option(help: "The swift-llama-cpp checkout (the native benchmark's source and the pinned headers).")
    var packageRoot = "."
    @Option(help: "The pinned headers, relative to the package root (make headers).")
    var headers = "headers/pinned"
    @Option(help: "Write every figure to this JSON file.")
    var json: String?
    @Option(help: "Speculation section: the rewrite task (default: Bench/rewrite.txt).")
    var speculationPrompt: String?
    @Option(name: [.customLong("spec-draft-model")], help: "Speculation section: also measure this draft model.")
    var specDraftModel: String?
    @Flag(help: "Run only the speculation section (plain generation against prompt lookup).")
    var speculationOnly = false
    @Flag(help: "Run only the per-operation breakdown: op, device, calls, time and share of the decode, for prompt processing and for generation.")
    var profile = false
    @Option(help: "Write an HTML report with charts (one self-contained file); the full benchmark then also sweeps prompt length and threads.")
    var html: String?
    @Option(help: "Measure nothing: write the --html report of the figures in this JSON file (from --json).")
    var reportFrom: String?
    @Option(help: "Sweep: prompt lengths in tokens, comma-separated.")
    var sweepPromptLengths = "16,32,64,128,256,512"
    @Option(help: "Sweep: thread counts, comma-separated (default: 1 to the cores of this machine).")
    var sweepThreads: String?
    @Option(help: "Sweep: runs of each point.")
    var sweepRuns = 3

    func validate() throws {
        guard generate > 1, threads > 0, runs > 0 else { throw ValidationError("--generate, --threads and --runs must be positive") }
        guard sweepRuns > 0 else { throw ValidationError("--sweep-runs must be positive") }
        guard reportFrom == nil || html != nil else { throw ValidationError("--report-from needs --html FILE to write the report to") }
        guard [profile, speculationOnly, reportFrom != nil].filter({ $0 }).count <= 1 else {
            throw ValidationError("--profile, --speculation-only and --report-from each choose one section: pass one of them")
        }
        _ = try Self.integers(sweepPromptLengths, "--sweep-prompt-lengths")
        _ = try sweepThreads.map { try Self.integers($0, "--sweep-threads") }
    }

    /// A comma-separated list of positive integers.
    static func integers(_ text: String, _ flag: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("\(flag) takes positive integers separated by commas, not \"\(text)\"")
        }
        return values.compactMap { $0 }
    }

    /// An Encodable value as a JSON object for JSONSerialization.
    static func jsonObject(_ value: some Encodable) throws -> Any {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(value))
    }

    /// Writes the figures to --json and the report to --html, whichever were asked for.
    func write(_ document: [String: Any]) throws {
        if let json {
            let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json))
            log("figures written to \(json)")
        }
        if let html {
            try BenchReport(document: document).html().write(toFile: html, atomically: true, encoding: .utf8)
            log("report written to \(html)")
        }
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    func run() async throws {
        if let reportFrom {
            let data = try Data(contentsOf: URL(fileURLWithPath: reportFrom))
            guard let document = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw Failure(description: "\(reportFrom) is not a JSON object of figures (write one with --json)")
            }
            try write(document)
            return
        }
        let env = ProcessInfo.processInfo.environment
        guard let lib = libDir ?? env["LLAMA_LIB_DIR"] else { throw ValidationError("no libraries: pass --lib-dir or set LLAMA_LIB_DIR") }
        guard let modelPath = model ?? env["LLAMA_MODEL"] else { throw ValidationError("no model: pass --model or set LLAMA_MODEL") }
        let root = URL(fileURLWithPath: packageRoot)
        let prompt = promptFile ?? root.appendingPathComponent("Bench/prompt.txt").path
        guard FileManager.default.isReadableFile(atPath: prompt) else { throw Failure(description: "cannot read the prompt file \(prompt)") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("llama-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let speculation = SpeculationBench(
            libraryDirectory: lib, model: modelPath,
            promptFile: speculationPrompt ?? root.appendingPathComponent("Bench/rewrite.txt").path,
            draftModel: specDraftModel, threads: Int32(threads), runs: runs)
        if speculationOnly {
            let result = try await speculation.run(log: log)
            print(result.lines.joined(separator: "\n"))
            try write(["model": modelPath, "speculation": result.json])
            return
        }
        let profiling = ProfileBench(libraryDirectory: lib, model: modelPath, promptFile: prompt, threads: Int32(threads),
                                     generate: generate, runs: runs)
        if profile {
            let result = try await profiling.run(log: log)
            print(result.lines.joined(separator: "\n"))
            try write(["model": modelPath, "threads": threads, "profile": try Self.jsonObject(result)])
            return
        }

        let native = try await buildNative(root: root, lib: lib, into: work)
        let worker = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("llama-bench-worker").path
        guard FileManager.default.isExecutableFile(atPath: worker) else {
            throw Failure(description: "\(worker) is missing: build it with `swift build -c release --product llama-bench-worker`")
        }
        let variants = [("native", native, "gen"), ("raw", worker, "raw"), ("stream", worker, "stream"),
                        ("grammar-raw", worker, "grammar-raw"), ("grammar-stream", worker, "grammar-stream")]
        var results: [String: [[String: Double]]] = [:]
        for run in 1...runs {
            for (name, program, mode) in variants {
                let r = try await measure(program, [mode, lib, modelPath, prompt, "\(generate)", "\(threads)"])
                results[name, default: []].append(r)
                log("run \(run)/\(runs) \(name): \(format(r["gen_tokens"]! / r["gen_ms"]! * 1e3)) gen tokens/s")
            }
        }
        let sameOutput = Set(variants.prefix(3).map { results[$0.0]!.map { $0["last_token"]! } }).count == 1
        // Tokenizer: a long text, alternating native and Swift.
        let longText = work.appendingPathComponent("long.txt")
        try String(repeating: try String(contentsOfFile: prompt, encoding: .utf8), count: 40)
            .write(to: longText, atomically: true, encoding: .utf8)
        var tokenizer: [String: [Double]] = [:]
        for _ in 0..<3 {
            for (name, program) in [("native", native), ("swift", worker)] {
                let r = try await measure(program, ["tokenize", lib, modelPath, longText.path, "20"])
                tokenizer[name, default: []].append(r["tokens"]! / r["ms"]! * 1e3)
            }
        }
        let symbols = try await measure(worker, ["symbols", lib, "200"])

        let speculationResult = try await speculation.run(log: log)
        let profileResult = try await profiling.run(log: log)
        var sweep: SweepBench.Figures?
        if html != nil {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            sweep = try await SweepBench(
                libraryDirectory: lib, model: modelPath, promptFile: prompt,
                promptLengths: try Self.integers(sweepPromptLengths, "--sweep-prompt-lengths"),
                threadCounts: try sweepThreads.map { try Self.integers($0, "--sweep-threads") } ?? Array(1...max(1, cores)),
                threads: threads, generate: min(generate, 64), runs: sweepRuns,
                variants: [("native", native, "gen"), ("stream", worker, "stream")]
            ).run(measure: measure, in: work, log: log)
        }
        report(results, tokenizer: tokenizer, symbols: symbols, sameOutput: sameOutput)
        print(speculationResult.lines.joined(separator: "\n"))
        print(profileResult.lines.joined(separator: "\n"))
        var document: [String: Any] = ["model": modelPath, "threads": threads, "generate": generate, "runs": runs,
                                       "runs_by_variant": results, "tokenizer_tokens_per_s": tokenizer,
                                       "symbol_table": symbols, "same_output": sameOutput,
                                       "speculation": speculationResult.json, "profile": try Self.jsonObject(profileResult)]
        document["ratios"] = ratios(results).mapValues { ["min": $0.min, "median": $0.median, "max": $0.max] }
        document["grammar_ratios"] = grammarRatios(results).mapValues { ["min": $0.min, "median": $0.median, "max": $0.max] }
        if let sweep { document["sweep"] = try Self.jsonObject(sweep) }
        try write(document)
    }

    func log(_ message: String) { FileHandle.standardError.write(Data("bench: \(message)\n".utf8)) }

    func buildNative(root: URL, lib: String, into dir: URL) async throws -> String {
        let output = dir.appendingPathComponent("native_bench").path
        let h = root.appendingPathComponent(headers)
        let result = try await runProgram("/usr/bin/env", [
            "cc", "-std=c11", "-O2", "-I", h.appendingPathComponent("include").path,
            "-I", h.appendingPathComponent("ggml/include").path,
            "-I", root.appendingPathComponent("Sources/CAllocCounter/include").path,
            root.appendingPathComponent("Bench/native_bench.c").path,
            root.appendingPathComponent("Sources/CAllocCounter/alloc_counter.c").path,
            "-o", output, "-L", lib, "-lllama", "-lggml", "-lggml-base", "-Wl,-rpath," + lib,
        ], timeout: .seconds(600))
        guard result.succeeded else {
            throw Failure(description: "the native benchmark did not compile (run from the package root after `make headers`):\n\(result.errorText)")
        }
        return output
    }

    func measure(_ program: String, _ arguments: [String]) async throws -> [String: Double] {
        let result = try await runProgram(program, arguments, timeout: .seconds(1800))
        guard result.succeeded, let line = result.outputText.split(separator: "\n").last,
              let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Double] else {
            throw Failure(description: "\(program) \(arguments.first ?? "") failed: \(result.errorText.suffix(2000))")
        }
        return object
    }

    struct Stats { var min: Double; var median: Double; var max: Double }

    static func stats(_ values: [Double]) -> Stats {
        Stats(min: values.min() ?? 0, median: median(values), max: values.max() ?? 0)
    }

    /// The middle value (the upper one of an even count), 0 when there is none.
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    /// Per-metric values of one variant's runs.
    func series(_ runs: [[String: Double]], _ metric: String) -> [Double] {
        runs.map { r in
            switch metric {
            case "prompt_tps": return r["prompt_tokens"]! / r["prompt_ms"]! * 1e3
            case "gen_tps": return r["gen_tokens"]! / r["gen_ms"]! * 1e3
            default: return r[metric]!
            }
        }
    }

    static let metrics = ["prompt_tps", "gen_tps", "ttft_ms", "load_ms", "peak_rss_kb", "allocs_per_token"]

    /// Each variant's value over native, run by run (the runs were interleaved).
    func ratios(_ results: [String: [[String: Double]]]) -> [String: Stats] {
        var out: [String: Stats] = [:]
        for variant in ["raw", "stream"] {
            for metric in Self.metrics where metric != "allocs_per_token" {
                let mine = series(results[variant]!, metric), base = series(results["native"]!, metric)
                out["\(variant).\(metric)"] = Self.stats(zip(mine, base).map { $1 == 0 ? 0 : $0 / $1 })
            }
        }
        return out
    }

    /// Constrained generation's tokens/s over unconstrained, run by run: the same prompt, greedy,
    /// the same token count (a grammar that never ends against end-of-generation ignored);
    /// `raw` is llama.cpp's grammar sampler alone (the floor), `stream` the library's path.
    func grammarRatios(_ results: [String: [[String: Double]]]) -> [String: Stats] {
        var out: [String: Stats] = [:]
        for variant in ["raw", "stream"] {
            let constrained = series(results["grammar-\(variant)"]!, "gen_tps"), free = series(results[variant]!, "gen_tps")
            out[variant] = Self.stats(zip(constrained, free).map { $1 == 0 ? 0 : $0 / $1 })
        }
        return out
    }

    func format(_ v: Double) -> String { String(format: v >= 100 ? "%.0f" : "%.2f", v) }

    func report(_ results: [String: [[String: Double]]], tokenizer: [String: [Double]], symbols: [String: Double], sameOutput: Bool) {
        let r = ratios(results)
        var lines = ["metric (median of \(runs) runs)      native      raw   stream   raw/native (min-max)   stream/native (min-max)"]
        for metric in Self.metrics {
            let v = ["native", "raw", "stream"].map { Self.stats(series(results[$0]!, metric)).median }
            var line = metric.padding(toLength: 34, withPad: " ", startingAt: 0)
                + v.map { format($0).leftPad(9) }.joined()
            if let a = r["raw.\(metric)"], let b = r["stream.\(metric)"] {
                line += "   \(format(a.median)) (\(format(a.min))-\(format(a.max)))".leftPad(22)
                    + "   \(format(b.median)) (\(format(b.min))-\(format(b.max)))".leftPad(25)
            }
            lines.append(line)
        }
        let tokNative = Self.stats(tokenizer["native"]!).median, tokSwift = Self.stats(tokenizer["swift"]!).median
        lines.append("tokenizer tokens/s: native \(format(tokNative)), Swift \(format(tokSwift)), ratio \(format(tokSwift / tokNative))")
        lines.append("symbol table: \(Int(symbols["symbols"]!)) functions resolved in \(format(symbols["median_ms"]!)) ms (median), "
                     + "\(format(symbols["max_ms"]!)) ms at most")
        lines.append("same greedy output in every variant: \(sameOutput ? "yes" : "NO")")
        let g = grammarRatios(results)
        let gRaw = Self.stats(series(results["grammar-raw"]!, "gen_tps")).median
        let gStream = Self.stats(series(results["grammar-stream"]!, "gen_tps")).median
        lines.append("grammar-constrained gen tokens/s (JSON Schema grammar, same prompt and token count): raw \(format(gRaw)), "
                     + "stream \(format(gStream)); constrained/unconstrained: raw \(format(g["raw"]!.median)) "
                     + "(\(format(g["raw"]!.min))-\(format(g["raw"]!.max))), stream \(format(g["stream"]!.median)) "
                     + "(\(format(g["stream"]!.min))-\(format(g["stream"]!.max)))")
        let gen = r["stream.gen_tps"]!.median, prompt = r["stream.prompt_tps"]!.median
        lines.append("targets: streaming gen ≥ 0.99×native: \(gen >= 0.99 ? "met" : "missed") (\(format(gen))); "
                     + "prompt ≥ 0.99×: \(prompt >= 0.99 ? "met" : "missed") (\(format(prompt))); "
                     + "symbol table ≤ 2 ms: \(symbols["median_ms"]! <= 2 ? "met" : "missed"); "
                     + "tokenizer ≥ 0.95×: \(tokSwift / tokNative >= 0.95 ? "met" : "missed")")
        print(lines.joined(separator: "\n"))
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

/// Runs a program to completion, capturing its output; bounded by `timeout`.
func runProgram(_ path: String, _ arguments: [String], timeout: Duration) async throws -> ChildProcess.Termination {
    let result = try await ChildProcess.run(path, arguments, timeout: timeout)
    guard result.state != .timedOut else {
        throw Bench.Failure(description: "\(path) \(arguments.first ?? "") ran past \(timeout) and was stopped")
    }
    return result
}
