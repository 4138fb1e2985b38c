// Text generation with the Llama API: load SmolLM2 (or any GGUF), stream the reply.
//
//   generate [--lib-dir DIR] [--model FILE] [--prompt TEXT] [-n N] [--temp T] [--seed S] [--raw]
//
// --lib-dir and --model default to $LLAMA_LIB_DIR and $LLAMA_MODEL (make run sets both). The
// prompt goes through the model's chat template unless --raw. Text streams to stdout; the
// summary goes to stderr.
import Foundation
import Llama

struct Options {
    var libDir = ProcessInfo.processInfo.environment["LLAMA_LIB_DIR"]
    var model = ProcessInfo.processInfo.environment["LLAMA_MODEL"]
    var prompt = "Write a haiku about the sea."
    var maxTokens = 128
    var temperature: Float = 0
    var seed: UInt32 = 42
    var raw = false
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("generate: error: \(message)\n".utf8))
    exit(1)
}

func parse(_ args: [String]) -> Options {
    var o = Options()
    var it = args.makeIterator()
    func value(_ flag: String) -> String {
        guard let v = it.next() else { fail("\(flag) needs a value") }
        return v
    }
    while let arg = it.next() {
        switch arg {
        case "--lib-dir": o.libDir = value(arg)
        case "--model", "-m": o.model = value(arg)
        case "--prompt", "-p": o.prompt = value(arg)
        case "-n", "--max-tokens":
            guard let n = Int(value(arg)), n > 0 else { fail("\(arg) needs a positive number") }
            o.maxTokens = n
        case "--temp":
            guard let t = Float(value(arg)), t >= 0 else { fail("--temp needs a number ≥ 0") }
            o.temperature = t
        case "--seed":
            guard let s = UInt32(value(arg)) else { fail("--seed needs a number") }
            o.seed = s
        case "--raw": o.raw = true
        default: fail("unknown argument \(arg)")
        }
    }
    return o
}

@main
struct Generate {
    static func main() async {
        let options = parse(Array(CommandLine.arguments.dropFirst()))
        guard let modelPath = options.model else { fail("no model: pass --model or set LLAMA_MODEL (make model fetches one)") }
        do {
            let runtime = try LlamaRuntime(libraryDirectory: options.libDir.map { URL(fileURLWithPath: $0) })
            let model = try await LlamaModel.load(runtime: runtime, paths: [modelPath])
            let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 2048, threads: 2))
            let prompt = options.raw ? options.prompt : try model.formatChat([.user(options.prompt)])
            let stream = context.generate(prompt: prompt,
                                          sampling: .standard(temperature: options.temperature, seed: options.seed),
                                          options: GenerationOptions(maxTokens: options.maxTokens))
            for try await event in stream {
                switch event {
                case .token(_, let text), .text(let text):
                    FileHandle.standardOutput.write(Data(text.utf8))
                case .finished(let summary):
                    FileHandle.standardOutput.write(Data("\n".utf8))
                    let rate = String(format: "%.1f", summary.tokensPerSecond)
                    FileHandle.standardError.write(Data(
                        "generate: \(summary.generatedTokens.count) tokens at \(rate) tokens/s, stopped: \(summary.stopReason)\n".utf8))
                }
            }
        } catch {
            fail("\(error)")
        }
    }
}
