import Foundation
import Llama
import LlamaTestSupport
import Synchronization
import Testing

/// LlamaQuantizer and `llama-swift quantize` against llama.cpp's own `llama-quantize`, built from
/// the pinned source by `make reference`: the same input (SmolLM2 Q4_1, so every case
/// requantizes), options and thread count give byte-identical files. Bad inputs give typed
/// errors and leave nothing in the output folder.
@Suite("Quantize", .serialized, .timeLimit(.minutes(10)))
struct QuantizeTests {
    static func reference() throws -> URL {
        let dir = ProcessInfo.processInfo.environment["LLAMA_REFERENCE_DIR"].map { URL(fileURLWithPath: $0) }
            ?? TestEnvironment.pinnedTagFolder.appendingPathComponent("reference")
        let program = dir.appendingPathComponent("llama-quantize")
        guard FileManager.default.isExecutableFile(atPath: program.path) else {
            throw TestEnvironment.Missing(description: "\(program.path) is not there (from LLAMA_REFERENCE_DIR or its default): "
                + "run `make reference`, or `make test-package`, which runs it")
        }
        return program
    }

    /// The files of a folder, hidden ones included (a leftover temporary file is hidden).
    static func contents(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }

    static func firstDifference(_ a: Data, _ b: Data) -> String {
        zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }.map { "\($0.offset)" } ?? "\(min(a.count, b.count)) (one is a prefix)"
    }

    struct Case: Sendable, CustomStringConvertible {
        var type: LlamaQuantizer.FileType
        /// llama-quantize's flags, before the positional arguments.
        var flags: [String]
        var apply: @Sendable (inout LlamaQuantizer.Options) -> Void
        var description: String { ([type.name] + flags).joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(type: .q8_0, flags: [], apply: { _ in }),
        Case(type: .q4_K_M, flags: [], apply: { _ in }),
        Case(type: .q5_1, flags: ["--pure", "--output-tensor-type", "q8_0"], apply: { $0.pure = true; $0.outputTensorType = "q8_0" }),
        Case(type: .q6_K, flags: ["--token-embedding-type", "q5_0", "--leave-output-tensor"],
             apply: { $0.tokenEmbeddingType = "q5_0"; $0.quantizeOutputTensor = false }),
    ]

    @Test("the library's output is byte-identical to llama-quantize's (same input, options, 2 threads)", arguments: cases)
    func referenceEquality(_ c: Case) async throws {
        let runtime = try Fixture.runtime.get()
        let input = try TestEnvironment.model().path
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let theirs = dir.appendingPathComponent("theirs.gguf"), ours = dir.appendingPathComponent("ours.gguf")
        let ref = try await runProcess(try Self.reference(), ["--allow-requantize"] + c.flags + [input, theirs.path, c.type.name, "2"],
                                       timeout: 300)
        #expect(ref.status == 0, "llama-quantize: \(ref.stderr.suffix(2000))")

        var options = LlamaQuantizer.Options(fileType: c.type)
        options.threads = 2
        options.allowRequantize = true
        c.apply(&options)
        let seen = Mutex<[Int]>([])
        let report = try await LlamaQuantizer(runtime: runtime).quantize(input: input, output: ours.path, options: options) { p in
            seen.withLock { $0.append(p.tensorIndex) }
        }
        #expect(report.outputs == [ours.path])
        let a = try Data(contentsOf: theirs), b = try Data(contentsOf: ours)
        #expect(a.count > 1_000_000)
        // The message (a byte loop, slow in a debug build) is computed only on a failure.
        #expect(a == b, "\(c): \(b.count) bytes vs llama-quantize's \(a.count); first difference at byte \(Self.firstDifference(a, b))")
        // One progress report per tensor, in order, and the sizes llama.cpp logged.
        let gguf = try GGUFFile(path: input, runtime: runtime)
        #expect(seen.withLock { $0 } == Array(1...gguf.tensors.count))
        #expect(report.tensorCount == gguf.tensors.count)
        let mib = try #require(report.quantizedMiB)
        #expect(abs(mib * 1024 * 1024 - Double(b.count)) < 0.02 * Double(b.count))
        // Nothing else left in the folder.
        #expect(try Self.contents(dir) == ["ours.gguf", "theirs.gguf"])
    }

    @Test("keepSplit names its outputs as llama-quantize --keep-split does, with the same bytes")
    func keepSplit() async throws {
        let runtime = try Fixture.runtime.get()
        let input = try TestEnvironment.model().path
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ref = try await runProcess(try Self.reference(), ["--allow-requantize", "--keep-split", input,
                                                              dir.appendingPathComponent("theirs.gguf").path, "Q4_0", "2"],
                                       timeout: 300)
        #expect(ref.status == 0, "llama-quantize: \(ref.stderr.suffix(2000))")
        var options = LlamaQuantizer.Options(fileType: .q4_0)
        options.allowRequantize = true
        options.keepSplit = true
        options.threads = 2
        let report = try await LlamaQuantizer(runtime: runtime).quantize(input: input, output: dir.appendingPathComponent("ours.gguf").path,
                                                                         options: options)
        #expect(report.outputs == [dir.appendingPathComponent("ours-00001-of-00001.gguf").path])
        #expect(try Self.contents(dir) == ["ours-00001-of-00001.gguf", "theirs-00001-of-00001.gguf"])
        #expect(try Data(contentsOf: dir.appendingPathComponent("ours-00001-of-00001.gguf"))
                == Data(contentsOf: dir.appendingPathComponent("theirs-00001-of-00001.gguf")))
    }

    @Test("llama-swift quantize with llama-quantize's arguments writes llama-quantize's bytes; --dry-run writes nothing")
    func commandLine() async throws {
        let input = try TestEnvironment.model().path
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let flags = ["--allow-requantize", "--pure", "--tensor-type", "attn_v=q8_0"]
        let theirs = dir.appendingPathComponent("theirs.gguf").path, ours = dir.appendingPathComponent("ours.gguf").path
        let ref = try await runProcess(try Self.reference(), flags + [input, theirs, "q4_0", "2"], timeout: 300)
        #expect(ref.status == 0, "llama-quantize: \(ref.stderr.suffix(2000))")
        let r = try await CLITests.cli(["quantize"] + flags + [input, ours, "q4_0", "2"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("as Q4_0"), "stdout: \(r.stdout)")
        #expect(r.stderr.contains("quantize [1/"), "progress on stderr: \(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: theirs)) == Data(contentsOf: URL(fileURLWithPath: ours)))

        let dry = try await CLITests.cli(["quantize", "--dry-run", "--allow-requantize", "--json", input, "Q4_K_M"])
        #expect(dry.status == 0, "stderr: \(dry.stderr)")
        struct Report: Decodable { var outputs: [String]; var quantized_mib: Double?; var dry_run: Bool }
        let report = try JSONDecoder().decode(Report.self, from: Data(dry.stdout.utf8))
        #expect(report.dry_run && report.outputs.isEmpty)
        #expect((report.quantized_mib ?? 0) > 50)
        #expect(try Self.contents(dir) == ["ours.gguf", "theirs.gguf"])
        // No ggml-model-Q4_K_M.gguf beside the input either.
        #expect(!FileManager.default.fileExists(atPath: URL(fileURLWithPath: input).deletingLastPathComponent()
            .appendingPathComponent("ggml-model-Q4_K_M.gguf").path))

        let unknown = try await CLITests.cli(["quantize", input, dir.appendingPathComponent("x.gguf").path, "Q9_9"])
        CLITests.expectFailure(unknown, mentioning: "unknown type Q9_9")
        let refused = try await CLITests.cli(["quantize", input, dir.appendingPathComponent("x.gguf").path, "Q8_0"])
        CLITests.expectFailure(refused, mentioning: "--allow-requantize")
        #expect(try Self.contents(dir) == ["ours.gguf", "theirs.gguf"])
    }

    @Test("bad inputs: typed errors, and no output or temporary file left")
    func badInputs() async throws {
        let runtime = try Fixture.runtime.get()
        let quantizer = LlamaQuantizer(runtime: runtime)
        let model = try TestEnvironment.model()
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let output = out.appendingPathComponent("model.gguf").path
        var requantize = LlamaQuantizer.Options(fileType: .q8_0)
        requantize.allowRequantize = true

        #expect(LlamaQuantizer.FileType("Q9_9") == nil)
        #expect(LlamaQuantizer.FileType("q4_k") == .q4_K_M)
        #expect(LlamaQuantizer.FileType("7") == .q8_0)

        func refusal(_ e: LlamaError?) -> LlamaQuantizer.Refusal.Kind? { (e?.underlying as? LlamaQuantizer.Refusal)?.kind }

        // Already quantized, without allowRequantize: refused by llama.cpp, reported as such.
        let requantized = await expectLlamaError(.invalidArgument) {
            try await quantizer.quantize(input: model.path, output: output, options: .init(fileType: .q8_0))
        }
        #expect(refusal(requantized) == .requantize)
        #expect(requantized?.message.contains("allowRequantize") == true)

        // A type that needs an importance matrix.
        let imatrix = await expectLlamaError(.unsupported) {
            var o = requantize
            o.fileType = .iq2_XS
            return try await quantizer.quantize(input: model.path, output: output, options: o)
        }
        #expect(refusal(imatrix) == .importanceMatrix)

        // An unknown tensor type.
        let unknown = await expectLlamaError(.invalidArgument) {
            var o = requantize
            o.outputTensorType = "q9_9"
            return try await quantizer.quantize(input: model.path, output: output, options: o)
        }
        #expect(refusal(unknown) == .unknownTensorType)

        // Not GGUF.
        let text = dir.appendingPathComponent("notes.gguf")
        try Data("just some text, not a model\n".utf8).write(to: text)
        #expect(await expectLlamaError(.invalidModel) {
            try await quantizer.quantize(input: text.path, output: output, options: requantize)
        } != nil)

        // Truncated: the first half of the model.
        let truncated = dir.appendingPathComponent("truncated.gguf")
        let whole = try Data(contentsOf: model)
        try whole.prefix(whole.count / 2).write(to: truncated)
        let cut = await expectLlamaError(.invalidModel) {
            try await quantizer.quantize(input: truncated.path, output: output, options: requantize)
        }
        #expect(cut?.message.contains("truncated") == true, "\(String(describing: cut))")

        // Missing input.
        #expect(await expectLlamaError(.fileNotFound) {
            try await quantizer.quantize(input: dir.appendingPathComponent("none.gguf").path, output: output, options: requantize)
        } != nil)

        // Unwritable output: a folder that does not exist, and a "folder" that is a file.
        #expect(await expectLlamaError(.fileNotWritable) {
            try await quantizer.quantize(input: model.path, output: dir.appendingPathComponent("no/such/dir/m.gguf").path,
                                         options: requantize)
        } != nil)
        #expect(await expectLlamaError(.fileNotWritable) {
            try await quantizer.quantize(input: model.path, output: text.appendingPathComponent("m.gguf").path, options: requantize)
        } != nil)

        // The output is the input.
        let copy = out.appendingPathComponent("copy.gguf")
        try FileManager.default.copyItem(at: model, to: copy)
        #expect(await expectLlamaError(.invalidArgument) {
            try await quantizer.quantize(input: copy.path, output: copy.path, options: requantize)
        } != nil)
        try FileManager.default.removeItem(at: copy)

        #expect(try Self.contents(out) == [], "left in the output folder")
        #expect(try Self.contents(dir) == ["notes.gguf", "out", "truncated.gguf"])
    }

    @Test("cancelling the task stops llama.cpp at the next tensor: .cancelled, nothing left")
    func cancellation() async throws {
        let runtime = try Fixture.runtime.get()
        let model = try TestEnvironment.model().path
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = LlamaQuantizer.Options(fileType: .q8_0)
        options.allowRequantize = true
        options.threads = 2
        let seen = Mutex<[Int]>([])
        let task = Mutex<Task<LlamaQuantizer.Report, any Error>?>(nil)
        let started = Task {
            try await LlamaQuantizer(runtime: runtime).quantize(input: model, output: dir.appendingPathComponent("m.gguf").path,
                                                                options: options) { p in
                seen.withLock { $0.append(p.tensorIndex) }
                if p.tensorIndex == 5 { task.withLock { $0 }?.cancel() }
            }
        }
        task.withLock { $0 = started }
        // The progress callback may run before the task is stored: cancel then too.
        if seen.withLock({ $0.count }) >= 5 { started.cancel() }
        let result = await started.result
        guard case .failure(let failure) = result, let error = failure as? LlamaError else {
            Issue.record("expected .cancelled, got \(result)")
            return
        }
        #expect(error.code == .cancelled)
        let indexes = seen.withLock { $0 }
        let total = try GGUFFile(path: model, runtime: runtime).tensors.count
        #expect(indexes.count >= 5)
        #if os(Linux)
        // Stopped within a few tensors, not after all of them.
        #expect((indexes.last ?? total) < 20, "llama.cpp went on to tensor \(indexes.last ?? 0) of \(total)")
        #endif
        #expect(try Self.contents(dir) == [])
    }
}
