// Greedy generation through the generated raw bindings only: the smallest complete use of
// LlamaRaw, and the Swift side of the native-vs-Swift token equality test.
//
//   raw-generate [--lib-dir DIR] [--model FILE] [--prompt TEXT] [-n N] [--threads N] [--ids]
//
// --lib-dir and --model default to $LLAMA_LIB_DIR and $LLAMA_MODEL (make run sets both).
// Text goes to stdout; with --ids, the prompt and generated token ids instead.
import Foundation
import LlamaRaw

struct Options {
    var libDir = ProcessInfo.processInfo.environment["LLAMA_LIB_DIR"]
    var model = ProcessInfo.processInfo.environment["LLAMA_MODEL"]
    var prompt = "Hello"
    var maxTokens: Int32 = 64
    var threads: Int32 = 2
    var ids = false
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("raw-generate: error: \(message)\n".utf8))
    exit(1)
}

func parse(_ args: [String]) -> Options {
    var o = Options()
    var it = args.makeIterator()
    func value(_ flag: String) -> String {
        guard let v = it.next() else { fail("\(flag) needs a value") }
        return v
    }
    func number(_ flag: String) -> Int32 {
        guard let n = Int32(value(flag)), n > 0 else { fail("\(flag) needs a positive number") }
        return n
    }
    while let arg = it.next() {
        switch arg {
        case "--lib-dir": o.libDir = value(arg)
        case "--model", "-m": o.model = value(arg)
        case "--prompt", "-p": o.prompt = value(arg)
        case "-n", "--max-tokens": o.maxTokens = number(arg)
        case "--threads", "-t": o.threads = number(arg)
        case "--ids": o.ids = true
        default: fail("unknown argument \(arg)")
        }
    }
    return o
}

let options = parse(Array(CommandLine.arguments.dropFirst()))
guard let libDir = options.libDir else { fail("no libraries: pass --lib-dir or set LLAMA_LIB_DIR (make llama builds them)") }
guard let modelPath = options.model else { fail("no model: pass --model or set LLAMA_MODEL (make model fetches one)") }

let libraries: LlamaLibraries
do {
    libraries = try LlamaLibraries.load(from: URL(fileURLWithPath: libDir))
} catch {
    fail(error.description)
}
let c = libraries.symbols
c.llama_log_set({ _, _, _ in }, nil)

guard FileManager.default.isReadableFile(atPath: modelPath) else { fail("cannot read the model \(modelPath)") }
guard let model = c.llama_model_load_from_file(modelPath, c.llama_model_default_params()) else {
    fail("llama.cpp could not load \(modelPath): is it a GGUF model?")
}
defer { c.llama_model_free(model) }
let vocab = c.llama_model_get_vocab(model)

let promptLength = Int32(options.prompt.utf8.count)
let needed = -c.llama_tokenize(vocab, options.prompt, promptLength, nil, 0, true, true)
var tokens = [llama_token](repeating: 0, count: Int(needed))
guard c.llama_tokenize(vocab, options.prompt, promptLength, &tokens, needed, true, true) == needed else {
    fail("the prompt could not be tokenized")
}

var params = c.llama_context_default_params()
params.n_ctx = 512
params.n_batch = 512
params.n_threads = options.threads
params.n_threads_batch = options.threads
guard let context = c.llama_init_from_model(model, params) else { fail("llama.cpp could not create a context") }
defer { c.llama_free(context) }
guard let sampler = c.llama_sampler_chain_init(c.llama_sampler_chain_default_params()) else {
    fail("llama.cpp could not create a sampler")
}
defer { c.llama_sampler_free(sampler) }
c.llama_sampler_chain_add(sampler, c.llama_sampler_init_greedy())

func printIDs(_ label: String, _ ids: [llama_token]) {
    print("\(label):" + ids.map { " \($0)" }.joined())
}

if options.ids { printIDs("prompt", tokens) }
var generated: [llama_token] = []
var piece = [CChar](repeating: 0, count: 256)
let status = tokens.withUnsafeMutableBufferPointer { c.llama_decode(context, c.llama_batch_get_one($0.baseAddress, needed)) }
guard status == 0 else { fail("llama_decode failed with status \(status)") }
while generated.count < options.maxTokens {
    var token = c.llama_sampler_sample(sampler, context, -1)
    generated.append(token)
    if c.llama_vocab_is_eog(vocab, token) { break }
    if !options.ids {
        let n = c.llama_token_to_piece(vocab, token, &piece, Int32(piece.count), 0, false)
        if n > 0 { FileHandle.standardOutput.write(Data(piece.prefix(Int(n)).map { UInt8(bitPattern: $0) })) }
    }
    if generated.count == options.maxTokens { break }
    let status = c.llama_decode(context, c.llama_batch_get_one(&token, 1))
    guard status == 0 else { fail("llama_decode failed with status \(status)") }
}
if options.ids { printIDs("generated", generated) } else { print() }
