// The Swift side of `llama-swift bench`: one measurement per process (so that peak RSS is its
// own), printed as one JSON object. Allocations are counted by CAllocCounter, linked in.
//
//   llama-bench-worker raw|stream LIB_DIR MODEL PROMPT_FILE N_GEN THREADS
//   llama-bench-worker grammar-raw|grammar-stream LIB_DIR MODEL PROMPT_FILE N_GEN THREADS
//     (the same, every token constrained by `benchGrammar`, which never lets the text end)
//   llama-bench-worker tokenize LIB_DIR MODEL TEXT_FILE REPEAT
//   llama-bench-worker symbols LIB_DIR REPEAT
import CAllocCounter
import Foundation
import Llama
import LlamaRaw

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("llama-bench-worker: \(message)\n".utf8))
    exit(1)
}

func peakRSSKilobytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss
}

func emit(_ values: [String: Double]) {
    let body = values.keys.sorted().map { "\"\($0)\": \(values[$0]!)" }.joined(separator: ", ")
    print("{\(body)}")
}

func read(_ path: String) -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { fail("cannot read \(path)") }
    return text
}

/// The grammar of the constrained variants: JSON objects of a small schema in an array that
/// never closes, so that every run generates its N tokens under the grammar (no end of text
/// is allowed), as the unconstrained runs do with end-of-generation ignored.
let benchGrammar: String = {
    let schema: JSONValue = [
        "type": "object",
        "properties": [
            "name": ["type": "string", "maxLength": 24],
            "age": ["type": "integer", "minimum": 0, "maximum": 120],
            "email": ["type": "string", "format": "email"],
            "tags": ["type": "array", "items": ["type": "string", "maxLength": 12], "maxItems": 4],
            "active": ["type": "boolean"],
        ],
        "required": ["name", "age", "tags"],
    ]
    guard let item = try? JSONSchemaGrammar(schema: schema) else { fail("the bench schema does not compile") }
    // The schema is not recursive: no rule but the start refers to `root`.
    return item.text.replacingOccurrences(of: "root ::=", with: "item ::=") + "root ::= \"[\" space item (\",\" space item)*\n"
}()

/// The raw loop: the C program's loop, through the generated bindings.
func benchRaw(lib: String, model path: String, prompt: String, generate: Int, threads: Int32, grammar: String? = nil) throws {
    let libraries = try LlamaLibraries.load(from: URL(fileURLWithPath: lib))
    let c = libraries.symbols
    c.llama_log_set({ _, _, _ in }, nil)
    let t0 = c.llama_time_us()
    guard let model = c.llama_model_load_from_file(path, c.llama_model_default_params()) else { fail("cannot load \(path)") }
    let loadUs = c.llama_time_us() - t0
    let vocab = c.llama_model_get_vocab(model)
    let n = -c.llama_tokenize(vocab, prompt, Int32(prompt.utf8.count), nil, 0, true, true)
    var tokens = [llama_token](repeating: 0, count: Int(n))
    _ = c.llama_tokenize(vocab, prompt, Int32(prompt.utf8.count), &tokens, n, true, true)
    var params = c.llama_context_default_params()
    params.n_ctx = 2048
    params.n_batch = 512
    params.n_threads = threads
    params.n_threads_batch = threads
    guard let ctx = c.llama_init_from_model(model, params),
          let sampler = c.llama_sampler_chain_init(c.llama_sampler_chain_default_params()) else { fail("no context") }
    if let grammar {
        guard let g = c.llama_sampler_init_grammar(vocab, grammar, "root") else { fail("the grammar does not parse") }
        c.llama_sampler_chain_add(sampler, g)
    }
    c.llama_sampler_chain_add(sampler, c.llama_sampler_init_greedy())

    let t1 = c.llama_time_us()
    guard tokens.withUnsafeMutableBufferPointer({ c.llama_decode(ctx, c.llama_batch_get_one($0.baseAddress, n)) }) == 0 else {
        fail("decode failed")
    }
    var token = c.llama_sampler_sample(sampler, ctx, -1)
    let t2 = c.llama_time_us()
    let allocs0 = alloc_counter_total()
    var count = 1
    while count < generate {
        guard c.llama_decode(ctx, c.llama_batch_get_one(&token, 1)) == 0 else { fail("decode failed") }
        token = c.llama_sampler_sample(sampler, ctx, -1)
        count += 1
    }
    let t3 = c.llama_time_us()
    let allocs = alloc_counter_total() - allocs0
    emit(["load_ms": Double(loadUs) / 1e3, "prompt_tokens": Double(n), "prompt_ms": Double(t2 - t1) / 1e3,
          "ttft_ms": Double(t2 - t1) / 1e3, "gen_tokens": Double(count - 1), "gen_ms": Double(t3 - t2) / 1e3,
          "allocs_per_token": Double(allocs) / Double(count - 1), "peak_rss_kb": Double(peakRSSKilobytes()),
          "last_token": Double(token)])
}

/// The streaming API: text out, UTF-8 handling and a sampler chain, as users write it.
func benchStream(lib: String, model path: String, prompt: String, generate: Int, threads: Int32, grammar: String? = nil) async throws {
    let runtime = try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: lib))
    let clock = ContinuousClock()
    let loadStart = clock.now
    let model = try LlamaModel(runtime: runtime, path: path)
    let load = clock.now - loadStart
    let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 2048, batchSize: 512, threads: threads))
    var options = GenerationOptions(maxTokens: generate)
    options.stopAtEndOfGeneration = false
    var text = ""
    var firstTokenAllocs: Int64 = 0
    var tokens = 0
    var lastToken: LlamaToken = 0
    var summary: GenerationSummary?
    let chain = grammar.map { SamplerChain([.grammar($0), .greedy]) } ?? .greedy
    for try await event in context.generate(prompt: prompt, sampling: chain, options: options) {
        switch event {
        case .token(let token, let piece):
            tokens += 1
            if tokens == 1 { firstTokenAllocs = alloc_counter_total() }
            lastToken = token
            text += piece
        case .text(let piece):
            text += piece
        case .probabilities:
            break
        case .finished(let s):
            summary = s
        }
    }
    let allocs = alloc_counter_total() - firstTokenAllocs
    guard let summary else { fail("no summary") }
    func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }
    emit(["load_ms": ms(load), "prompt_tokens": Double(summary.promptTokens), "prompt_ms": ms(summary.promptDuration),
          "ttft_ms": ms(summary.timeToFirstToken ?? .zero), "gen_tokens": Double(summary.generatedTokens.count - 1),
          "gen_ms": ms(summary.generationDuration), "allocs_per_token": Double(allocs) / Double(max(1, tokens - 1)),
          "peak_rss_kb": Double(peakRSSKilobytes()), "last_token": Double(lastToken)])
}

func benchTokenize(lib: String, model path: String, text: String, repeat count: Int) throws {
    let runtime = try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: lib))
    let model = try LlamaModel(runtime: runtime, path: path, options: { var o = ModelOptions(); o.vocabularyOnly = true; return o }())
    let c = runtime.raw
    var total = 0
    let t0 = c.llama_time_us()
    for _ in 0..<count { total += try model.vocab.tokenize(text, addSpecial: true, parseSpecial: true).count }
    let t1 = c.llama_time_us()
    emit(["tokens": Double(total), "ms": Double(t1 - t0) / 1e3])
}

func benchSymbols(lib: String, repeat count: Int) throws {
    let libraries = try LlamaLibraries.load(from: URL(fileURLWithPath: lib))
    let c = libraries.symbols
    var times: [Double] = []
    for _ in 0..<count {
        let t0 = c.llama_time_us()
        _ = try libraries.resolveSymbolTable()
        times.append(Double(c.llama_time_us() - t0) / 1e3)
    }
    times.sort()
    emit(["median_ms": times[times.count / 2], "max_ms": times.last!, "symbols": Double(LlamaSymbols.specs.count)])
}

let args = Array(CommandLine.arguments.dropFirst())
do {
    switch (args.first, args.count) {
    case ("raw", 6):
        try benchRaw(lib: args[1], model: args[2], prompt: read(args[3]), generate: Int(args[4])!, threads: Int32(args[5])!)
    case ("stream", 6):
        try await benchStream(lib: args[1], model: args[2], prompt: read(args[3]), generate: Int(args[4])!, threads: Int32(args[5])!)
    case ("grammar-raw", 6):
        try benchRaw(lib: args[1], model: args[2], prompt: read(args[3]), generate: Int(args[4])!, threads: Int32(args[5])!,
                     grammar: benchGrammar)
    case ("grammar-stream", 6):
        try await benchStream(lib: args[1], model: args[2], prompt: read(args[3]), generate: Int(args[4])!, threads: Int32(args[5])!,
                              grammar: benchGrammar)
    case ("tokenize", 5):
        try benchTokenize(lib: args[1], model: args[2], text: read(args[3]), repeat: Int(args[4])!)
    case ("symbols", 3):
        try benchSymbols(lib: args[1], repeat: Int(args[2])!)
    default:
        fail("usage: raw|stream|grammar-raw|grammar-stream LIB MODEL PROMPT_FILE N_GEN THREADS | tokenize LIB MODEL TEXT_FILE REPEAT | symbols LIB REPEAT")
    }
} catch {
    fail("\(error)")
}
