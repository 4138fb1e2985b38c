import Foundation
@testable import Llama
import LlamaTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Damaged model files (issue 15, item 7) and what the fuzz targets (Fuzz/, `make fuzz`) found:
/// the checks before llama.cpp's loader (`GGUFFile.validate`, run by every load), and the
/// validating load in the helper process (`LlamaModel.validate(at:...)`), where an abort is a
/// reported failure, never the end of this process.
@Suite("fuzz regressions and model validation", .timeLimit(.minutes(10)))
struct FuzzRegressionTests {
    static var helper: URL { HelperTests.helper }

    /// A copy of SmolLM2 with `llama.block_count` (a uint32) set to `value`.
    static func blockCountModel(_ value: UInt32) throws -> URL {
        var bytes = try Data(contentsOf: try TestEnvironment.model())
        let key = try #require(bytes.range(of: Data("llama.block_count".utf8)))
        let type = bytes.subdata(in: key.upperBound..<key.upperBound + 4)
        #expect(type == Data([4, 0, 0, 0]), "llama.block_count is a uint32 (GGUF type 4)")
        withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(key.upperBound + 4..<key.upperBound + 8, with: $0) }
        let copy = try TestEnvironment.temporaryDirectory().appendingPathComponent("block-count-\(value).gguf")
        try bytes.write(to: copy)
        return copy
    }

    /// The pinned source's BERT vocabulary (`models/ggml-vocab-bert-bge.gguf`), read at test time.
    static func bertVocabulary() throws -> URL {
        let source = try TestEnvironment.existing("LLAMA_SOURCE", default: TestEnvironment.pinnedTagFolder
            .appendingPathComponent("source/llama.cpp"), make: "make headers")
        return source.appendingPathComponent("models/ggml-vocab-bert-bge.gguf")
    }

    /// A copy of the BERT vocabulary whose token 1000 is marked as a byte token (type 6).
    static func bertWithByteToken() throws -> URL {
        var bytes = try Data(contentsOf: try bertVocabulary())
        // The key with its u64 length in front (`tokenizer.ggml.token_type_count` comes first).
        let name = Data("tokenizer.ggml.token_type".utf8)
        let key = try #require(bytes.range(of: Data([UInt8(name.count), 0, 0, 0, 0, 0, 0, 0]) + name))
        // The value: array type (9), element type int32 (5), a u64 count, then the types.
        #expect(bytes.subdata(in: key.upperBound..<key.upperBound + 8) == Data([9, 0, 0, 0, 5, 0, 0, 0]))
        let first = key.upperBound + 16
        bytes.replaceSubrange(first + 4 * 1000..<first + 4 * 1001, with: [6, 0, 0, 0])
        let copy = try TestEnvironment.temporaryDirectory().appendingPathComponent("bert-byte-token.gguf")
        try bytes.write(to: copy)
        return copy
    }

    static func error(_ body: () throws -> Void) -> LlamaError? {
        do {
            try body()
            return nil
        } catch {
            return error as? LlamaError
        }
    }

    @Test("a duplicate vocabulary entry: the check names it, the in-process load is a typed error, the helper's load too")
    func duplicateVocabulary() async throws {
        let runtime = try Fixture.runtime.get()
        let copy = try RobustnessTests.duplicateVocabularyModel()
        let checked = try #require(Self.error { try GGUFFile.validate(path: copy.path, runtime: runtime) },
                                   "the check must refuse the file before anything loads it in this process")
        #expect(checked.code == .invalidModel)
        #expect(checked.message.contains("appears twice"), "\(checked.message)")
        // The check refused it, so this load cannot reach llama.cpp's assertion.
        let loaded = Self.error { _ = try LlamaModel(runtime: runtime, path: copy.path) }
        #expect(loaded?.code == .invalidModel && loaded?.message.contains("appears twice") == true, "\(String(describing: loaded))")
        for vocabularyOnly in [false, true] {
            let inHelper = await caughtLlamaError {
                try await LlamaModel.validate(at: copy.path, runtime: runtime, helper: Self.helper, vocabularyOnly: vocabularyOnly)
            }
            #expect(inHelper?.code == .invalidModel && inHelper?.message.contains("appears twice") == true, "\(String(describing: inHelper))")
            #expect(inHelper?.underlying is HelperResponse.Failure, "a failure the helper reported, not a crash")
        }
    }

    @Test("a block count of 0 or 4096 (llama.cpp asserts 1...512) is refused before llama.cpp; a vocabulary-only load does not read it")
    func blockCount() async throws {
        let runtime = try Fixture.runtime.get()
        for value: UInt32 in [0, 4096] {
            let copy = try Self.blockCountModel(value)
            let checked = Self.error { try GGUFFile.validate(path: copy.path, runtime: runtime) }
            #expect(checked?.code == .invalidModel && checked?.message.contains("llama.block_count is \(value)") == true,
                    "\(String(describing: checked))")
            try GGUFFile.validate(path: copy.path, runtime: runtime, vocabularyOnly: true)
            let inHelper = await caughtLlamaError { try await LlamaModel.validate(at: copy.path, runtime: runtime, helper: Self.helper) }
            #expect(inHelper?.code == .invalidModel && inHelper?.message.contains("block_count") == true, "\(String(describing: inHelper))")
            let vocabulary = try await LlamaModel.validate(at: copy.path, runtime: runtime, helper: Self.helper, vocabularyOnly: true)
            #expect(vocabulary.vocabularySize == 49152)
        }
    }

    @Test("fuzz finding: a byte token in a WordPiece (BERT) vocabulary is refused, not llama.cpp's abort in token_to_byte")
    func bertByteToken() async throws {
        let runtime = try Fixture.runtime.get()
        var vocabularyOnly = ModelOptions()
        vocabularyOnly.vocabularyOnly = true
        // The intact vocabulary passes and loads.
        let intact = try Self.bertVocabulary().path
        try GGUFFile.validate(path: intact, runtime: runtime, vocabularyOnly: true)
        #expect(try LlamaModel(runtime: runtime, path: intact, options: vocabularyOnly).vocab.count > 30_000)
        let copy = try Self.bertWithByteToken().path
        let checked = try #require(Self.error { try GGUFFile.validate(path: copy, runtime: runtime, vocabularyOnly: true) },
                                   "the check must refuse the file before anything loads it in this process")
        #expect(checked.code == .invalidModel && checked.message.contains("token 1000") && checked.message.contains("byte token"),
                "\(checked.message)")
        // The check refused it, so this load cannot reach llama.cpp's abort.
        let loaded = Self.error { _ = try LlamaModel(runtime: runtime, path: copy, options: vocabularyOnly) }
        #expect(loaded?.code == .invalidModel, "\(String(describing: loaded))")
        let inHelper = await caughtLlamaError {
            try await LlamaModel.validate(at: copy, runtime: runtime, helper: Self.helper, vocabularyOnly: true)
        }
        #expect(inHelper?.code == .invalidModel && inHelper?.message.contains("byte token") == true, "\(String(describing: inHelper))")
    }

    @Test("llama-swift models validate: valid prints what the file is; a damaged file exits 1 with the problem (--json too)")
    func validateCommand() async throws {
        let binary = TestEnvironment.productsDirectory.appendingPathComponent("llama-swift")
        let env = ["LLAMA_SWIFT_LIB_DIR": try TestEnvironment.libraryDirectory().path, "LLAMA_SWIFT_HELPER": Self.helper.path]
        let intact = try await runProcess(binary, ["models", "validate", try TestEnvironment.model().path], environment: env, timeout: 120)
        #expect(intact.status == 0, "\(intact.stderr)")
        #expect(intact.stdout.hasPrefix("valid\t") && intact.stdout.contains("llama\t49152 tokens"), "\(intact.stdout)")
        let copy = try RobustnessTests.duplicateVocabularyModel().path
        for arguments in [["models", "validate", copy], ["models", "validate", "--checks-only", copy]] {
            let damaged = try await runProcess(binary, arguments, environment: env, timeout: 120)
            #expect(damaged.status == 1 && damaged.stderr.contains("appears twice"), "\(arguments): \(damaged.stderr)")
        }
        let json = try await runProcess(binary, ["models", "validate", "--json", "--vocab-only", copy], environment: env, timeout: 120)
        #expect(json.status == 1)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["valid"] as? Bool == false && object?["code"] as? String == "invalidModel", "\(json.stdout)")
    }

    @Test("the intact model validates in the helper, whole and vocabulary only; a missing file is .fileNotFound")
    func intactModel() async throws {
        let runtime = try Fixture.runtime.get()
        let path = try TestEnvironment.model().path
        let whole = try await LlamaModel.validate(at: path, runtime: runtime, helper: Self.helper)
        #expect(whole.architecture == "llama")
        #expect(whole.vocabularySize == 49152)
        #expect(!whole.vocabularyOnly && whole.description.contains("llama"), "\(whole)")
        let vocabulary = try await LlamaModel.validate(at: path, runtime: runtime, helper: Self.helper, vocabularyOnly: true)
        #expect(vocabulary.vocabularyOnly && vocabulary.vocabularySize == 49152)
        let missing = await caughtLlamaError {
            try await LlamaModel.validate(at: "/nonexistent/model.gguf", runtime: runtime, helper: Self.helper)
        }
        #expect(missing?.code == .fileNotFound, "\(String(describing: missing))")
    }

    @Test("a helper that aborts while loading is .invalidModel with the signal; one that hangs is .timeout")
    func helperAbortAndHang() async throws {
        let runtime = try Fixture.runtime.get()
        let path = try TestEnvironment.model().path
        let aborting = try HelperTests.script("read line\nkill -ABRT $$")
        let crashed = await caughtLlamaError { try await LlamaModel.validate(at: path, runtime: runtime, helper: aborting) }
        #expect(crashed?.code == .invalidModel, "\(String(describing: crashed))")
        #expect((crashed?.underlying as? LlamaHelper.Ended)?.signal == SIGABRT)
        #expect(crashed?.message.contains("do not load it") == true)
        let hanging = try HelperTests.script("read line\nsleep 60")
        let hung = await caughtLlamaError {
            try await LlamaModel.validate(at: path, runtime: runtime, helper: hanging, timeout: .seconds(1))
        }
        #expect(hung?.code == .timeout, "\(String(describing: hung))")
    }

    @Test("the check before every load is cheap on SmolLM2 (measured; bounded for a loaded 2-core machine)")
    func validationCost() throws {
        let runtime = try Fixture.runtime.get()
        let path = try TestEnvironment.model().path
        var times: [Duration] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            try GGUFFile.validate(path: path, runtime: runtime)
            times.append(ContinuousClock.now - start)
        }
        let median = times.sorted()[2]
        print("GGUFFile.validate on SmolLM2 (49,152 tokens): median \(median) of \(times)")
        #expect(median < .milliseconds(500))
    }

    /// The issue's experiment: copies of SmolLM2 with 1 to 8 random bytes changed in the first
    /// MiB, each loaded whole through the validating path (our checks, then llama.cpp in the
    /// helper). `LLAMA_FUZZ_MODEL_COPIES` sets the count (40 here; `make fuzz-models` runs 120),
    /// `LLAMA_FUZZ_MODEL_SEED` the seed.
    @Test("damaged copies of SmolLM2 (1-8 random bytes in the first MiB) loaded through the validating path: 0 aborts")
    func damagedCopies() async throws {
        let env = ProcessInfo.processInfo.environment
        let copies = Int(env["LLAMA_FUZZ_MODEL_COPIES"] ?? "") ?? 40
        let seed = UInt64(env["LLAMA_FUZZ_MODEL_SEED"] ?? "") ?? 15
        let runtime = try Fixture.runtime.get()
        let original = try Data(contentsOf: try TestEnvironment.model())
        let file = try TestEnvironment.temporaryDirectory().appendingPathComponent("damaged.gguf")
        var random = SplitMix64(state: seed)
        var outcomes: [String: Int] = [:]
        var signals: [String] = []
        var refusedByCheck = 0
        for i in 0..<copies {
            var bytes = original
            let changes = Int.random(in: 1...8, using: &random)
            var changed: [Int] = []
            for _ in 0..<changes {
                let offset = Int.random(in: 0..<min(1 << 20, bytes.count), using: &random)
                bytes[offset] = UInt8.random(in: 0...255, using: &random)
                changed.append(offset)
            }
            try bytes.write(to: file)
            if Self.error({ try GGUFFile.validate(path: file.path, runtime: runtime) }) != nil { refusedByCheck += 1 }
            do {
                _ = try await LlamaModel.validate(at: file.path, runtime: runtime, helper: Self.helper, timeout: .seconds(120))
                outcomes["ok", default: 0] += 1
            } catch {
                if let signal = (error.underlying as? LlamaHelper.Ended)?.signal {
                    signals.append("copy \(i) (seed \(seed), bytes at \(changed)): signal \(signal): \(error.message)")
                    outcomes["signal", default: 0] += 1
                } else {
                    outcomes[error.code.rawValue, default: 0] += 1
                }
            }
        }
        print("damaged copies: \(copies), seed \(seed): \(outcomes.sorted { $0.key < $1.key }); refused by the check in this process: \(refusedByCheck)")
        #expect(signals.isEmpty, "\(signals.joined(separator: "\n"))")
        #expect(outcomes.values.reduce(0, +) == copies)
    }

    // MARK: Sampler fuzz findings (Fuzz/Sources/fuzz-sampler): grammar text and trigger patterns
    // checked before llama.cpp sees them (`GrammarPrecheck`, run by `SamplerChain.validate()`).
    // Each test asserts the check first (`#require`), so the generation after it can only reach
    // llama.cpp with input the check refused — this process cannot die on it.

    static func precheck(_ chain: SamplerChain) -> LlamaError? { error { try chain.validate() } }

    @Test("fuzz finding: trigger patterns std::regex cannot compile (llama.cpp's std::regex_error ended the process) are .invalidGrammar",
          arguments: ["[a-", "(", "\\{(", "a{2,1}", "[z-a]"])
    func invalidTriggerPatterns(pattern: String) async throws {
        let chain = SamplerChain([.lazyGrammar(#"root ::= [a-z ]+"#, triggerPatterns: ["\\{", pattern]), .greedy])
        let checked = try #require(Self.precheck(chain), "the check must refuse \(pattern.debugDescription)")
        #expect(checked.code == .invalidGrammar)
        #expect(checked.message.contains("std::regex"), "\(checked.message)")
        let context = try Fixture.context()
        let failed = await expectLlamaError(.invalidGrammar) {
            try await context.generate(prompt: "Hi", sampling: chain, options: GenerationOptions(maxTokens: 3)).summary()
        }
        #expect(failed != nil)
    }

    @Test("a valid ECMAScript trigger pattern passes the check; a lazy grammar with one generates")
    func validTriggerPatterns() async throws {
        for pattern in ["\\{", "yes|no", "<tool_call>", "[\\s\\S]*?\\{", "^a$", ""] {
            try GrammarPrecheck.checkTriggerPattern(pattern)
        }
        let context = try Fixture.context()
        let chain = SamplerChain([.lazyGrammar(#"root ::= [a-z ]+"#, triggerPatterns: ["\\{"]), .greedy])
        _ = try await context.generate(prompt: "Hi", sampling: chain, options: GenerationOptions(maxTokens: 3)).summary()
    }

    @Test("fuzz finding: a NUL in a trigger pattern (cut by the C API to the empty pattern, which fired into a grammar rejecting the text) is .invalidGrammar")
    func nulInTriggerPattern() async throws {
        let chain = SamplerChain([.distribution(seed: 50_790_912), .lazyGrammar(#"root ::= "\u0000""#, triggerPatterns: ["\0"]),
                                  .topK(65_541)])
        let checked = try #require(Self.precheck(chain))
        #expect(checked.code == .invalidGrammar)
        #expect(checked.message.contains("NUL"), "\(checked.message)")
        #expect(Self.precheck(SamplerChain([.grammar("root ::= \"a\"\0 junk"), .greedy]))?.code == .invalidGrammar)
    }

    @Test("a trigger that fires into a grammar that rejects its text: another token, then .grammarDeadEnd, never llama.cpp's exception")
    func triggerIntoRejectingGrammar() async throws {
        // The empty pattern fires on the first token; no text satisfies the grammar.
        let chain = SamplerChain([.lazyGrammar(#"root ::= "\u0000""#, triggerPatterns: [""]), .greedy])
        #expect(Self.precheck(chain) == nil)
        let context = try Fixture.context()
        let failed = await expectLlamaError(.grammarDeadEnd) {
            try await context.generate(prompt: "Hi", sampling: chain, options: GenerationOptions(maxTokens: 3)).summary()
        }
        #expect(failed != nil)
        // The context is usable right after.
        _ = try await context.generate(prompt: "Hi", sampling: .greedy, options: GenerationOptions(maxTokens: 2)).summary()
    }

    @Test("fuzz finding: a GBNF repetition with min > max (llama.cpp allocated without bound) or a minimum past 2000 is .invalidGrammar",
          arguments: [#"root ::= "a"{5,2}"#, #"root ::= ("a" [b-c]){3,0} "x""#, "root ::= x{ 9 , 1 }\nx ::= \"y\"",
                      #"root ::= "a"{2001}"#, #"root ::= "a"{99999999999999999999999,}"#])
    func repetitionCounts(grammar: String) async throws {
        let chain = SamplerChain([.grammar(grammar), .greedy])
        let checked = try #require(Self.precheck(chain), "the check must refuse \(grammar)")
        #expect(checked.code == .invalidGrammar)
        #expect(checked.message.contains("repetition"), "\(checked.message)")
        let context = try Fixture.context()
        let failed = await expectLlamaError(.invalidGrammar) {
            try await context.generate(prompt: "Hi", sampling: chain, options: GenerationOptions(maxTokens: 2)).summary()
        }
        #expect(failed != nil)
    }

    @Test("repetitions inside literals, classes and comments are not counts; valid counts pass")
    func repetitionLookalikes() throws {
        for grammar in [#"root ::= "{5,2}" [{] "a"{2,5} # {9,1}"#, #"root ::= "\"{5,2}" [\]{] x{0,}"# + "\nx ::= \"b\"",
                        #"root ::= "a"{2000}"#, #"root ::= [0-9]{1,3} "." "a"{3} "b"{0,5000}"#] {
            try GrammarPrecheck.check(grammar, root: "root")
        }
    }
}
