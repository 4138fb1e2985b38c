import Foundation
import LlamaRaw
import LlamaTestSupport
import Testing

/// `llama-swift bench` runs end to end (one short run) and its JSON parses.
@Suite("llama-swift bench")
struct BenchCommandTests {
    @Test("a short benchmark writes its figures")
    func shortRun() async throws {
        let worker = TestEnvironment.productsDirectory.appendingPathComponent("llama-bench-worker")
        try #require(FileManager.default.isExecutableFile(atPath: worker.path),
                     "\(worker.path) is missing: `make test` builds it (swift build --product llama-bench-worker)")
        let json = try TestEnvironment.temporaryDirectory().appendingPathComponent("bench.json")
        let result = try await runProcess(TestEnvironment.productsDirectory.appendingPathComponent("llama-swift"), [
            "bench", "--lib-dir", try TestEnvironment.libraryDirectory().path, "--model", try TestEnvironment.model().path,
            "--package-root", TestEnvironment.packageRoot.path, "--runs", "1", "--generate", "8", "--json", json.path,
        ], timeout: 600)
        try #require(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("gen_tps"))
        #expect(result.stdout.contains("same greedy output in every variant: yes"))
        let document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let ratios = try #require(document["ratios"] as? [String: [String: Double]])
        // Figures, not verdicts: speed is judged by `make bench`, never by a timed test.
        for key in ["raw.gen_tps", "stream.gen_tps", "stream.prompt_tps", "stream.peak_rss_kb"] {
            #expect((ratios[key]?["median"] ?? 0) > 0, "\(key)")
        }
        let symbols = try #require(document["symbol_table"] as? [String: Double])
        #expect(symbols["symbols"] == Double(LlamaSymbols.specs.count))
    }

    @Test("bad flags are one-line errors with a non-zero exit")
    func badFlags() async throws {
        let result = try await runProcess(TestEnvironment.productsDirectory.appendingPathComponent("llama-swift"),
                                    ["bench", "--runs", "0"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("must be positive"))
        #expect(result.stdout.isEmpty)
    }
}
