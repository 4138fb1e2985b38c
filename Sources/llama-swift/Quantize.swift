import ArgumentParser
import Dispatch
import Foundation
import Llama

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `llama-swift quantize`: llama.cpp's `llama-quantize`, with its arguments and flags, through
/// LlamaQuantizer (the same output bytes; no partial output file; typed errors).
struct Quantize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a GGUF model to another type (as llama.cpp's llama-quantize).",
        discussion: """
            Arguments as llama-quantize takes them: IN OUT TYPE [NTHREADS], or IN TYPE [NTHREADS] (the output is then \
            ggml-model-TYPE.gguf beside IN). TYPE is one of \(LlamaQuantizer.FileType.names) (or its llama_ftype \
            number); types that need an importance matrix are refused. The output is written to a temporary file in \
            its folder and renamed when complete. Progress on stderr; Ctrl-C stops and removes the temporary file.
            """)

    @Argument(help: "The input GGUF file.")
    var input: String
    @Argument(help: ArgumentHelp("OUT TYPE [NTHREADS], or TYPE [NTHREADS].", valueName: "args"))
    var rest: [String] = []

    @Flag(name: .customLong("allow-requantize"), help: "Allow requantizing tensors that are already quantized (quality suffers).")
    var allowRequantize = false
    @Flag(name: .customLong("leave-output-tensor"), help: "Leave output.weight un(re)quantized.")
    var leaveOutputTensor = false
    @Flag(help: "Disable k-quant mixtures: quantize all tensors to the same type.")
    var pure = false
    @Option(name: .customLong("output-tensor-type"), help: "The ggml type of output.weight (q8_0, f16, ...).")
    var outputTensorType: String?
    @Option(name: .customLong("token-embedding-type"), help: "The ggml type of the token embeddings.")
    var tokenEmbeddingType: String?
    @Option(name: .customLong("tensor-type"), help: ArgumentHelp("Quantize tensors matching NAME to TYPE; repeatable.",
                                                                valueName: "NAME=TYPE"))
    var tensorTypes: [String] = []
    @Flag(name: .customLong("keep-split"), help: "Write one output per input split (OUT-00001-of-0000N.gguf, ...).")
    var keepSplit = false
    @Flag(name: .customLong("dry-run"), help: "Compute and show the final size; write nothing.")
    var dryRun = false
    @Option(name: .customLong("max-buffer-size"), help: ArgumentHelp("The most tensor rows kept in memory while quantizing one tensor.",
                                                                     valueName: "MiB"))
    var maxBufferSize: Int?
    @Option(help: "The folder of an unpacked llama.cpp release to load (default: as `run`).")
    var libDir: String?
    @OptionGroup var install: InstallFlags
    @Flag(help: "Print the report as JSON on stdout.")
    var json = false

    /// OUT, TYPE and NTHREADS from the positional arguments, as llama-quantize reads them.
    func positional() throws -> (output: String?, type: LlamaQuantizer.FileType, threads: Int32?) {
        guard let first = rest.first else { throw ValidationError("missing TYPE: quantize IN OUT TYPE [NTHREADS]") }
        var output: String?
        var index = 1
        let type: LlamaQuantizer.FileType
        if let direct = LlamaQuantizer.FileType(first) {
            type = direct
        } else {
            output = first
            guard rest.count > 1 else { throw ValidationError("missing TYPE after \(first): quantize IN OUT TYPE [NTHREADS]") }
            guard let named = LlamaQuantizer.FileType(rest[1]) else {
                throw ValidationError("unknown type \(rest[1]); one of \(LlamaQuantizer.FileType.names)")
            }
            type = named
            index = 2
        }
        var threads: Int32?
        if rest.count > index {
            guard let n = Int32(rest[index]) else { throw ValidationError("NTHREADS must be a number, not \(rest[index])") }
            threads = n
            index += 1
        }
        guard rest.count == index else { throw ValidationError("unexpected arguments: \(rest[index...].joined(separator: " "))") }
        return (output, type, threads)
    }

    func validate() throws {
        _ = try positional()
        for t in tensorTypes {
            let parts = t.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--tensor-type takes NAME=TYPE, e.g. attn_q=q8_0, not \(t)")
            }
        }
        if let maxBufferSize, maxBufferSize <= 0 { throw ValidationError("--max-buffer-size must be positive") }
    }

    func run() async throws {
        let (named, type, threads) = try positional()
        var output = named ?? ""
        if named == nil && !dryRun {
            // llama-quantize's name: ggml-model-TYPE.gguf beside the input.
            output = URL(fileURLWithPath: input).deletingLastPathComponent().appendingPathComponent("ggml-model-\(type.name).gguf").path
        }
        var options = LlamaQuantizer.Options(fileType: type)
        options.threads = threads
        options.allowRequantize = allowRequantize
        options.quantizeOutputTensor = !leaveOutputTensor
        options.outputTensorType = outputTensorType
        options.tokenEmbeddingType = tokenEmbeddingType
        options.tensorTypes = tensorTypes.map { t in
            let parts = t.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), String(parts[1]))
        }
        options.pure = pure
        options.keepSplit = keepSplit
        options.dryRun = dryRun
        options.maxBufferSize = maxBufferSize.map { $0 * 1024 * 1024 }

        let runtime = try await CLI.loadRuntime(libDir: libDir, options: install.options())
        let quantizer = LlamaQuantizer(runtime: runtime)
        let interactive = isatty(STDERR_FILENO) == 1
        let input = input
        // Ctrl-C / SIGTERM cancel the work, which removes the temporary output.
        let report = try await CLI.runCancellable("the quantization") { () async throws -> LlamaQuantizer.Report in
            try await quantizer.quantize(input: input, output: output, options: options) { p in
                // A line per tensor on a terminal (redrawn), else one per tenth.
                if interactive {
                    FileHandle.standardError.write(Data("\r\u{1B}[Kquantize [\(p.tensorIndex)/\(p.tensorCount)] \(p.tensorName)".utf8))
                    if p.tensorIndex == p.tensorCount { FileHandle.standardError.write(Data("\n".utf8)) }
                } else if p.tensorIndex == 1 || p.tensorIndex == p.tensorCount
                            || p.tensorIndex * 10 / p.tensorCount != (p.tensorIndex - 1) * 10 / p.tensorCount {
                    CLI.note("quantize [\(p.tensorIndex)/\(p.tensorCount)] \(p.tensorName)")
                }
            }
        }
        if json {
            struct Document: Encodable {
                var input: String
                var outputs: [String]
                var type: String
                var dry_run: Bool
                var original_mib: Double?
                var quantized_mib: Double?
                var tensors: Int
                var requires_imatrix: Bool
                var seconds: Double
            }
            try CLI.printJSON(Document(input: input, outputs: report.outputs, type: type.name, dry_run: dryRun,
                                       original_mib: report.originalMiB, quantized_mib: report.quantizedMiB,
                                       tensors: report.tensorCount, requires_imatrix: report.requiresImportanceMatrix,
                                       seconds: Self.seconds(report.duration)))
            return
        }
        let sizes = [report.originalMiB.map { String(format: "%.2f MiB", $0) }, report.quantizedMiB.map { String(format: "%.2f MiB", $0) }]
            .compactMap { $0 }.joined(separator: " -> ")
        if dryRun {
            print("dry run: \(input) as \(type.name): \(sizes), \(report.tensorCount) tensors"
                  + (report.requiresImportanceMatrix ? " (the real quantization needs an importance matrix)" : ""))
        } else {
            print("quantized \(input) to \(report.outputs.joined(separator: ", ")) as \(type.name): \(sizes), "
                  + "\(report.tensorCount) tensors in \(String(format: "%.2f", Self.seconds(report.duration))) s")
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

}
