import Foundation
import Llama
import LlamaTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The native reference of these suites (Tests/LlamaRawTests/Native/shift.c): context shifting,
/// greedy runs with and without weight repacking, and quantizing, through llama.cpp's C API on
/// the same libraries.
enum ShiftNative {
    /// Compiles the program into a new temporary folder.
    static func build() async throws -> URL {
        try await buildNativeReference("shift", timeout: 120)
    }

    /// Runs a mode of the program; its stdout as "label: value" lines.
    static func run(_ program: URL, _ arguments: [String]) async throws -> [String: String] {
        let r = try await runProcess(program, arguments, timeout: 600)
        guard r.status == 0 else {
            throw TestEnvironment.Missing(description: "shift \(arguments.first ?? "") failed (\(r.status)): \(r.stderr.suffix(2000))")
        }
        var lines: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            lines[key] = lines[key].map { "\($0)\n\(value)" } ?? value
        }
        return lines
    }

    static func tokens(_ text: String?) throws -> [LlamaToken] {
        try #require(text, "no such line").split(separator: " ").map { try #require(LlamaToken($0)) }
    }

    /// SmolLM2 requantized to Q4_0 (a type llama.cpp repacks on x86 CPUs with AVX2 and on ARM
    /// with dotprod), in a new temporary folder.
    static func q4_0Model(_ program: URL) async throws -> URL {
        let out = try TestEnvironment.temporaryDirectory().appendingPathComponent("smollm2-q4_0.gguf")
        _ = try await run(program, ["quantize", try TestEnvironment.libraryDirectory().path, try TestEnvironment.model().path,
                                    out.path, "2"])
        return out
    }
}

/// Every field of `llama_model_params` in ModelOptions, each with an effect a test can see.
@Suite("Model parameters", .timeLimit(.minutes(10)))
struct ModelParamsTests {
    static let prompt = "The capital of France is"

    static func load(_ options: ModelOptions, path: String? = nil) throws -> LlamaModel {
        try LlamaModel(runtime: try Fixture.runtime.get(), path: path ?? TestEnvironment.model().path, options: options)
    }

    static func logits(_ model: LlamaModel, _ text: String = prompt) async throws -> [Float] {
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 256, threads: 2))
        var batch = LlamaBatch()
        batch.add(prompt: try model.vocab.tokenize(text, addSpecial: true), outputLast: true)
        try await context.decode(batch)
        return try await context.logits()
    }

    // MARK: Metadata overrides

    @Test("--override-kv int: the model reports the overridden training context length")
    func overrideInt() throws {
        var options = ModelOptions()
        options.metadataOverrides = [try .init(parsing: "llama.context_length=int:1024")]
        let model = try Self.load(options)
        #expect(model.trainingContextLength == 1024)
        #expect(try Fixture.model.get().trainingContextLength == 8192)
        // The file's own metadata is what llama_model_meta reports, unchanged.
        #expect(model.metadata["llama.context_length"] == "8192")
    }

    @Test("--override-kv bool: tokenizer.ggml.add_bos_token=bool:true makes tokenizing add the BOS token")
    func overrideBool() throws {
        var options = ModelOptions()
        options.vocabularyOnly = true
        options.metadataOverrides = [.init(key: "tokenizer.ggml.add_bos_token", value: .bool(true))]
        let model = try Self.load(options)
        let bos = try #require(model.vocab.bos)
        #expect(try model.vocab.tokenize("Hello", addSpecial: true).first == bos)
        #expect(try Fixture.model.get().vocab.tokenize("Hello", addSpecial: true).first != bos)
    }

    @Test("--override-kv str: another pre-tokenizer splits the text differently; an unknown one is a typed error naming the override")
    func overrideString() throws {
        var options = ModelOptions()
        options.vocabularyOnly = true
        options.metadataOverrides = [try .init(parsing: "tokenizer.ggml.pre=str:default")]
        let model = try Self.load(options)
        // llama.cpp's default BPE pre-tokenizer groups punctuation runs apart from the words they follow.
        let text = #"Hello, world!!! (test) In 2024 there were 1234567 people... "quoted" $100+200=300"#
        let ours = try model.vocab.tokenize(text, addSpecial: false)
        let file = try Fixture.model.get().vocab.tokenize(text, addSpecial: false)
        #expect(ours != file)

        options.metadataOverrides = [.init(key: "tokenizer.ggml.pre", value: .string("no-such-pre-tokenizer"))]
        let error = try #require(throws: LlamaError.self) { try Self.load(options) }
        #expect(error.code == .invalidModel)
        #expect(error.message.contains("--override-kv tokenizer.ggml.pre=str:no-such-pre-tokenizer"), "\(error.message)")
    }

    @Test("--override-kv float: a different RMS norm epsilon changes the logits")
    func overrideFloat() async throws {
        var options = ModelOptions()
        options.metadataOverrides = [try .init(parsing: "llama.attention.layer_norm_rms_epsilon=float:0.5")]
        let changed = try await Self.logits(try Self.load(options))
        let base = try await Self.logits(try Fixture.model.get())
        #expect(changed.count == base.count)
        let difference = zip(changed, base).map { abs($0 - $1) }.max() ?? 0
        #expect(difference > 0.1, "largest logit difference \(difference)")
    }

    @Test("malformed metadata overrides are .invalidArgument errors naming --override-kv", arguments: [
        "no-equals-sign", "key=int", "key=int:twelve", "key=float:x", "key=bool:yes", "key=date:2024", "=int:1",
        "key=str:" + String(repeating: "x", count: 128), String(repeating: "k", count: 128) + "=int:1",
    ])
    func malformedOverride(_ text: String) throws {
        let error = try #require(throws: LlamaError.self) { try ModelOptions.MetadataOverride(parsing: text) }
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("--override-kv "), "\(error.message)")
    }

    @Test("an override built in code is checked too: a key over 127 bytes is refused before llama.cpp sees it")
    func longKeyInCode() throws {
        var options = ModelOptions()
        options.metadataOverrides = [.init(key: String(repeating: "k", count: 200), value: .int(1))]
        let error = try #require(throws: LlamaError.self) { try Self.load(options) }
        #expect(error.code == .invalidArgument)
    }

    // MARK: Buffer types: tensor overrides, repacking, host buffers

    @Test("-ot with an unknown buffer type is an .invalidArgument error listing the buffer types; malformed -ot too")
    func unknownBufferType() throws {
        let runtime = try Fixture.runtime.get()
        #expect(runtime.bufferTypeNames.contains("CPU"), "\(runtime.bufferTypeNames)")
        var options = ModelOptions()
        options.tensorBufferOverrides = [try .init(parsing: "exps=NOPE0")]
        let error = try #require(throws: LlamaError.self) { try Self.load(options) }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("--override-tensor exps=NOPE0") && error.message.contains("CPU"), "\(error.message)")
        for text in ["no-equals", "=CPU", "pattern="] {
            let malformed = try #require(throws: LlamaError.self) { try ModelOptions.TensorBufferOverride(parsing: text) }
            #expect(malformed.code == .invalidArgument && malformed.message.hasPrefix("--override-tensor"))
        }
    }

    /// `llama-swift run -v` on the Q4_0 model: the model buffers llama.cpp reports, and its debug lines.
    static func buffers(_ model: URL, _ flags: [String]) async throws -> (buffers: [String], log: String, text: String) {
        let r = try await CLITests.cli(["run", "--raw", "-p", prompt, "--temp", "0", "-n", "8", "-t", "2", "-m", model.path, "-v"] + flags,
                                       env: ["LLAMA_SWIFT_LOG": "debug"])
        try #require(r.status == 0, "\(r.stderr.suffix(3000))")
        let buffers = r.stderr.split(separator: "\n").compactMap { line -> String? in
            guard let end = line.range(of: " model buffer size"), let colon = line[..<end.lowerBound].lastIndex(of: ":") else { return nil }
            return line[line.index(after: colon)..<end.lowerBound].trimmingCharacters(in: .whitespaces)
        }
        return (buffers, r.stderr, r.stdout)
    }

    @Test("--no-repack, -ot, --load-mode and --no-host change the buffers llama.cpp puts the weights in; the text stays")
    func bufferPlacement() async throws {
        let program = try await ShiftNative.build()
        let q4 = try await ShiftNative.q4_0Model(program)
        let repacked = try await Self.buffers(q4, [])
        #expect(repacked.buffers.sorted() == ["CPU_Mapped", "CPU_REPACK"], "\(repacked.log.suffix(3000))")
        let plain = try await Self.buffers(q4, ["--no-repack"])
        #expect(plain.buffers == ["CPU_Mapped"])
        // The tensors of block 0, and only they, are placed by the override (on the CPU device,
        // whose extra buffer type still repacks the Q4_0 ones).
        func overridden(_ log: String) -> [String] {
            log.split(separator: "\n").compactMap { line in
                guard line.contains("buffer type overridden to"), let range = line.range(of: "tensor ") else { return nil }
                return String(line[range.upperBound...].prefix { $0 != " " })
            }
        }
        let pinned = try await Self.buffers(q4, ["-ot", "blk\\.0\\.=CPU"])
        let placed = overridden(pinned.log)
        #expect(placed.count == 9 && placed.allSatisfy { $0.hasPrefix("blk.0.") }, "\(placed)")
        #expect(overridden(repacked.log).isEmpty)
        // Read instead of mapped: a plain CPU buffer; direct I/O reads too.
        let read = try await Self.buffers(q4, ["--load-mode", "none", "--no-repack"])
        #expect(read.buffers == ["CPU"])
        let direct = try await Self.buffers(q4, ["-lm", "dio", "--no-repack"])
        #expect(direct.buffers == ["CPU"])
        // No GPU here: no host buffer to bypass, the placement is the default one.
        let noHost = try await Self.buffers(q4, ["--no-host"])
        #expect(noHost.buffers.sorted() == repacked.buffers.sorted())
        for run in [plain, pinned, read, direct, noHost] { #expect(run.text == repacked.text) }
        #expect(!repacked.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)

        let bad = try await CLITests.cli(["run", "-p", "x", "-n", "1", "--override-kv", "a=int"])
        CLITests.expectFailure(bad, mentioning: "--override-kv a=int")
        let badType = try await CLITests.cli(["run", "-p", "x", "-n", "1", "-ot", "exps=NOPE0"])
        CLITests.expectFailure(badType, mentioning: "no buffer type NOPE0")
        let badMode = try await CLITests.cli(["run", "-p", "x", "-n", "1", "--load-mode", "fast"])
        CLITests.expectFailure(badMode, mentioning: "--load-mode must be")
    }

    @Test("repacked (the default) and not, the Swift runs give the tokens of the native program with use_extra_bufts true and false")
    func repackMatchesNative() async throws {
        let program = try await ShiftNative.build()
        let q4 = try await ShiftNative.q4_0Model(program)
        for repack in [true, false] {
            let native = try await ShiftNative.run(program, ["greedy", repack ? "1" : "0", try TestEnvironment.libraryDirectory().path,
                                                              q4.path, Self.prompt, "48", "2"])
            #expect((native["buffer"] ?? "").contains("CPU_REPACK") == repack, "\(native)")
            var options = ModelOptions()
            options.useExtraBufferTypes = repack
            let model = try Self.load(options, path: q4.path)
            let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 512, batchSize: 512, threads: 2))
            var generation = GenerationOptions(maxTokens: 48)
            generation.parseSpecial = true
            let summary = try await context.generate(prompt: Self.prompt, options: generation).summary()
            #expect(summary.generatedTokens == (try ShiftNative.tokens(native["generated"])), "repack \(repack)")
        }
    }

    @Test("with --no-repack, local and RPC greedy runs of a repacked quant type (Q4_0) agree")
    func rpcAgreesWithoutRepack() async throws {
        let program = try await ShiftNative.build()
        let q4 = try await ShiftNative.q4_0Model(program)
        let server = try await RPCTests.Server()
        let args = ["run", "--raw", "-p", "Once upon a time, in a small village,", "--temp", "0", "-n", "64", "-t", "2", "-m", q4.path]
        let local = try await CLITests.cli(args + ["--no-repack"])
        let remote = try await CLITests.cli(args + ["--rpc", server.endpoint])
        try #require(local.status == 0 && remote.status == 0, "\(local.stderr)\n\(remote.stderr)")
        #expect(remote.stdout == local.stdout)
        #expect(!local.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        withExtendedLifetime(server) {}
    }

    // MARK: Loading

    /// A copy of SmolLM2 whose first F32 tensor holds NaNs.
    static func modelWithNaN() throws -> URL {
        let source = try TestEnvironment.model()
        let gguf = try GGUFFile(path: source.path, runtime: try Fixture.runtime.get(), arrayPreview: 1)
        let tensor = try #require(gguf.tensors.first { $0.type == "f32" })
        let copy = try TestEnvironment.temporaryDirectory().appendingPathComponent("nan.gguf")
        try FileManager.default.copyItem(at: source, to: copy)
        let handle = try FileHandle(forWritingTo: copy)
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(gguf.dataOffset + tensor.offset))
        try handle.write(contentsOf: Data(repeating: 0xff, count: min(tensor.size, 64)))
        return copy
    }

    @Test("noAlloc reads no weights: a model with NaNs that checkTensors refuses loads, and reports its size")
    func noAlloc() throws {
        let path = try Self.modelWithNaN().path
        var options = ModelOptions()
        options.checkTensors = true
        let refused = try #require(throws: LlamaError.self) { try Self.load(options, path: path) }
        #expect(refused.code == .invalidModel)
        options.noAlloc = true
        let measured = try Self.load(options, path: path)
        #expect(measured.sizeInBytes == (try Fixture.model.get().sizeInBytes))
        #expect(measured.layerCount == 30)
        // Nothing is read, so nothing can be mapped: llama.cpp asserts on a mapping mode with no_alloc.
        options.loadMode = .mmap
        let mapped = try #require(throws: LlamaError.self) { try Self.load(options, path: path) }
        #expect(mapped.code == .invalidArgument && mapped.message.contains("noAlloc"), "\(mapped)")
    }

    /// VmLck of this process, in bytes.
    static func lockedBytes() throws -> UInt64 {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmLck:") })
        let kib = try #require(UInt64(line.dropFirst("VmLck:".count).trimmingCharacters(in: .whitespaces).dropLast(3)
            .trimmingCharacters(in: .whitespaces)))
        return kib * 1024
    }

    /// Whether this process may lock `bytes` more: under RLIMIT_MEMLOCK, or with CAP_IPC_LOCK.
    static func mayLock(_ bytes: UInt64) throws -> Bool {
        var limit = rlimit()
        try #require(getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &limit) == 0)
        if limit.rlim_cur == rlim_t.max || UInt64(limit.rlim_cur) >= bytes { return true }
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let caps = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
            .flatMap { UInt64($0.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) } ?? 0
        return caps & (1 << 14) != 0
    }

    @Test("--load-mode mlock and mmap+mlock lock the weights in RAM (VmLck grows by the model), or are .unsupported when RLIMIT_MEMLOCK forbids it")
    func mlock() throws {
        let size = UInt64(try FileManager.default.attributesOfItem(atPath: try TestEnvironment.model().path)[.size] as? Int ?? 0)
        let expected = try Self.mayLock(size)
        // One mode after the other: VmLck is the whole process's.
        for mode in [ModelOptions.LoadMode.mlock, .mmapMlock] {
            var options = ModelOptions()
            options.loadMode = mode
            options.useExtraBufferTypes = false  // every weight in a host buffer, which llama.cpp locks
            let before = Int64(try Self.lockedBytes())
            do {
                let model = try Self.load(options)
                #expect(expected, "\(mode): the load locked although RLIMIT_MEMLOCK is below \(size) bytes")
                let locked = Int64(try Self.lockedBytes()) - before
                #expect(locked >= Int64(model.sizeInBytes * 9 / 10), "\(mode): VmLck grew by \(locked) bytes for \(model.sizeInBytes) bytes of weights")
            } catch let error as LlamaError {
                #expect(!expected, "\(mode): \(error)")
                #expect(error.code == .unsupported && error.message.contains("RLIMIT_MEMLOCK"), "\(error)")
            }
            // Freed, the model unlocks its memory.
            #expect(Int64(try Self.lockedBytes()) <= before + (1 << 20), "\(mode)")
        }
    }

    @Test("the other load settings are accepted and leave the computation as it was: lazy mode, MTP heads (SmolLM2 has none), no host buffer")
    func acceptedSettings() async throws {
        let base = try await Self.logits(try Fixture.model.get())
        for configure in [{ (o: inout ModelOptions) in o.lazyMode = .on }, { $0.lazyMode = .off }, { $0.loadMTP = true },
                          { $0.noHost = true }, { $0.loadMode = .directIO }] as [(inout ModelOptions) -> Void] {
            var options = ModelOptions()
            configure(&options)
            #expect(try await Self.logits(try Self.load(options)) == base)
        }
        #expect(ModelOptions.LoadMode(name: "mmap+mlock") == .mmapMlock && ModelOptions.LoadMode.directIO.description == "dio")
        #expect(ModelOptions.LazyMode(name: "sometimes") == nil)
    }
}
