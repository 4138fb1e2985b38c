import Foundation
import Llama
import LlamaTestSupport
import Testing

/// LlamaProfiler against llama.cpp's own account of the graph: the native program
/// (Tests/LlamaRawTests/Native/graph_nodes.c) decodes the same prompt and token over the same
/// libraries, with the scheduler's debug print (one line per node) and the same eval callback.
@Suite("Profiling", .timeLimit(.minutes(10)))
struct ProfilingTests {
    static let prompt = "The lighthouse keeper climbs the spiral stairs every evening and writes a line in the logbook."
    /// Operations that compute nothing: the scheduler's print leaves them out.
    static let views: Set<String> = ["NONE", "VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE"]

    /// "OP=N OP=N" as a dictionary.
    static func counts(_ line: String?) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for pair in try #require(line, "no such line").split(separator: " ") {
            let parts = pair.split(separator: "=")
            try #require(parts.count == 2, "\(pair)")
            out[String(parts[0])] = try #require(Int(parts[1]))
        }
        return out
    }

    static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
    }

    @Test("one decode's profile has the graph's nodes, op by op, and fits in the decode's wall time")
    func nodeCounts() async throws {
        let native = try await ShiftNative.run(try await buildNativeReference("graph_nodes", timeout: 120), [
            try TestEnvironment.libraryDirectory().path, try TestEnvironment.model().path, Self.prompt, "512", "2",
        ])
        let profiler = LlamaProfiler()
        let model = try Fixture.model.get()
        let context = try LlamaContext(model: model,
                                       options: ContextOptions(contextLength: 512, batchSize: 512, threads: 2), profiler: profiler)
        #expect(context.profiler === profiler)
        let tokens = try model.vocab.tokenize(Self.prompt, addSpecial: true, parseSpecial: true)
        let nativeTokens = try ShiftNative.tokens(native["tokens"])
        try #require(nativeTokens.first == LlamaToken(tokens.count), "the two sides tokenized the prompt differently")

        var profiles: [String: LlamaProfile] = [:]
        var walls: [String: Double] = [:]
        var batch = LlamaBatch()
        batch.add(prompt: tokens)
        let clock = ContinuousClock()
        var start = clock.now
        try await context.decode(batch)
        walls["prompt"] = Self.milliseconds(clock.now - start)
        profiles["prompt"] = profiler.profile()
        profiler.reset()
        #expect(profiler.profile().nodes == 0)

        let next = try await context.withLogits { logits in LlamaToken(logits.indices.max { logits[$0] < logits[$1] }!) }
        #expect(next == nativeTokens.last, "greedy next token: ours \(next), native \(nativeTokens.last ?? -1)")
        batch.removeAll()
        batch.add(next, position: Int32(tokens.count), output: true)
        start = clock.now
        try await context.decode(batch)
        walls["generation"] = Self.milliseconds(clock.now - start)
        profiles["generation"] = profiler.profile()

        for phase in ["prompt", "generation"] {
            let profile = try #require(profiles[phase])
            let printed = try Self.counts(native["print \(phase)"])
            let asked = try Self.counts(native["callback \(phase)"])
            var ours: [String: Int] = [:], oursComputed: [String: Int] = [:]
            for entry in profile.entries {
                ours[entry.operation, default: 0] += entry.calls
                // The scheduler's print cuts names to 10 characters (FLASH_ATTN_EXT: FLASH_ATTN).
                if !Self.views.contains(entry.operation) { oursComputed[String(entry.operation.prefix(10)), default: 0] += entry.calls }
                #expect(entry.device == "CPU", "\(phase) \(entry.operation) on \(entry.device)")
            }
            #expect(profile.calls(of: "MUL_MAT") > 0, "\(phase): no MUL_MAT in \(ours)")
            for op in ["GET_ROWS", "RMS_NORM", "ROPE", "ADD"] { #expect(ours[op, default: 0] > 0, "\(phase): no \(op) in \(ours)") }
            #expect(oursComputed == printed, "\(phase): ours \(oursComputed), llama.cpp's graph print \(printed)")
            #expect(ours == asked, "\(phase): ours \(ours), the native callback's \(asked)")
            #expect(profile.nodes == Int(native["nodes \(phase)"] ?? ""), "\(phase): \(profile.nodes) nodes")
            #expect(profile.nodes == (Int(native["last \(phase)"] ?? "") ?? -2) + 1, "\(phase): the graph's last node")
            let wall = try #require(walls[phase])
            #expect(profile.milliseconds > 0)
            #expect(profile.milliseconds <= wall, "\(phase): \(profile.milliseconds) ms of nodes in a \(wall) ms decode")
            #expect(profile.entries.filter { Self.views.contains($0.operation) }.allSatisfy { $0.milliseconds == 0 && $0.bytes == 0 })
            #expect(abs((profile.deviceMilliseconds["CPU"] ?? 0) - profile.milliseconds) < 1e-9)
        }
    }

    @Test("a disabled profiler records nothing and the graph still runs; a profiler serves one context")
    func disabledAndShared() async throws {
        let model = try Fixture.model.get()
        let profiler = LlamaProfiler(enabled: false)
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 256, threads: 2), profiler: profiler)
        var batch = LlamaBatch()
        batch.add(prompt: try model.vocab.tokenize(Self.prompt))
        try await context.decode(batch)
        #expect(profiler.profile() == LlamaProfile(entries: [], nodes: 0))
        profiler.isEnabled = true
        try #require(await context.removeTokens())
        try await context.decode(batch)
        let once = profiler.profile()
        #expect(once.calls(of: "MUL_MAT") > 0)
        // Adding profiles sums them entry by entry.
        let twice = once + once
        #expect(twice.nodes == 2 * once.nodes)
        #expect(twice.calls(of: "MUL_MAT") == 2 * once.calls(of: "MUL_MAT"))
        #expect(twice.entries.count == once.entries.count)

        let error = await expectLlamaError(.invalidArgument) {
            try LlamaContext(model: model, options: ContextOptions(contextLength: 256, threads: 2), profiler: profiler)
        }
        #expect(error?.message.contains("one per context") == true, "\(String(describing: error))")
    }

    @Test("llama-swift bench --profile prints both phases' tables and writes them as figures and as a report")
    func benchProfile() async throws {
        let dir = try TestEnvironment.temporaryDirectory()
        let json = dir.appendingPathComponent("profile.json"), html = dir.appendingPathComponent("profile.html")
        let result = try await runProcess(TestEnvironment.productsDirectory.appendingPathComponent("llama-swift"), [
            "bench", "--profile", "--lib-dir", try TestEnvironment.libraryDirectory().path, "--model", try TestEnvironment.model().path,
            "--package-root", TestEnvironment.packageRoot.path, "--runs", "1", "--generate", "4",
            "--json", json.path, "--html", html.path,
        ], timeout: 600)
        try #require(result.status == 0, "\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("prompt processing: "))
        #expect(result.stdout.contains("generation: 4 tokens in 4 decodes per run"))
        #expect(result.stdout.components(separatedBy: "MUL_MAT").count == 3, "\(result.stdout)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let profile = try #require(document["profile"] as? [String: Any])
        let phases = try #require(profile["phases"] as? [[String: Any]])
        #expect(phases.map { $0["name"] as? String } == ["prompt", "generation"])
        for phase in phases {
            #expect((phase["profiledMilliseconds"] as? [Double])?.count == 1)
            #expect((phase["plainMilliseconds"] as? [Double])?.count == 1)
        }
        let report = try await parseReport(html)
        #expect(report.charts.isEmpty)
        #expect(report.tables["profile-prompt"]?.contains { $0.first == "MUL_MAT" } == true)
        #expect(report.tables["profile-generation"]?.contains { $0.first == "MUL_MAT" } == true)
    }
}
