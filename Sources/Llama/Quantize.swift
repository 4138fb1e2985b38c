import Foundation
import LlamaRaw
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Quantizes a GGUF model into another file type: llama.cpp's `llama_model_quantize`, the
/// function behind its `llama-quantize` tool, with the same options and the same output bytes.
///
/// ```swift
/// let quantizer = LlamaQuantizer(runtime: runtime)
/// var options = LlamaQuantizer.Options(fileType: .q4_K_M)
/// options.allowRequantize = true   // the input is already quantized
/// let report = try await quantizer.quantize(input: "model-f16.gguf", output: "model-Q4_K_M.gguf",
///                                           options: options) { print($0.tensorIndex, "/", $0.tensorCount) }
/// ```
///
/// What this adds to the C function:
/// - **No partial output file.** llama.cpp writes straight into its output and leaves what it
///   wrote when it fails. Here it writes to a hidden temporary file in the output's folder, which
///   is renamed to the output only when llama.cpp succeeded, and removed otherwise.
/// - **Typed errors** (``LlamaError``), checked before llama.cpp starts where that is possible:
///   `.invalidModel` for an input that is not GGUF, damaged or truncated (``GGUFFile/validate(path:runtime:vocabularyOnly:)``,
///   as model loading checks it); `.fileNotFound`; `.fileNotWritable` for an output folder that
///   cannot be written; `.invalidArgument` for an unknown tensor type, the output equal to the
///   input, and a requantization without ``Options/allowRequantize`` (its ``Refusal`` says which);
///   `.unsupported` for a file type that needs an importance matrix (``FileType/requiresImportanceMatrix``);
///   `.creationFailed` for any other failure llama.cpp reports (its message is kept).
/// - **Progress**: one ``Progress`` per tensor, read from the per-tensor lines llama.cpp logs
///   (the C function has no progress callback). While a quantization runs, the process-wide log
///   callback passes through this quantizer (and on to the one installed before); quantizations
///   run one at a time in a process.
/// - **Cancellation**: the C function has no cancellation hook either. On Linux, cancelling the
///   task makes llama.cpp's output stream fail at the next tensor (its file descriptor is pointed
///   at `/dev/full`), so llama.cpp stops there; elsewhere the quantization runs to its end. In
///   both cases the temporary file is removed and the call throws `.cancelled`.
public struct LlamaQuantizer: Sendable {
    /// The libraries whose quantizer runs.
    public let runtime: LlamaRuntime

    /// A quantizer using llama.cpp's `llama_model_quantize` from these libraries.
    public init(runtime: LlamaRuntime) {
        self.runtime = runtime
    }

    // MARK: Types

    /// A target file type (`llama_ftype`), named as `llama-quantize` names it (`Q4_K_M`, `Q8_0`, ...).
    /// Open: ``init(rawValue:name:requiresImportanceMatrix:)`` reaches file types this list does not name.
    public struct FileType: Hashable, Sendable, CustomStringConvertible {
        /// The `llama_ftype` value.
        public let rawValue: Int32
        /// The name `llama-quantize` accepts.
        public let name: String
        /// Whether llama.cpp refuses this type without an importance matrix (`--imatrix`), which
        /// this quantizer does not compute: IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M, IQ3_XXS, Q2_K_S.
        public let requiresImportanceMatrix: Bool

        /// A file type by its `llama_ftype` value and name, for types this list does not name.
        public init(rawValue: Int32, name: String, requiresImportanceMatrix: Bool = false) {
            self.rawValue = rawValue
            self.name = name
            self.requiresImportanceMatrix = requiresImportanceMatrix
        }

        public var description: String { name }

        private static func t(_ value: llama_ftype, _ name: String, imatrix: Bool = false) -> FileType {
            FileType(rawValue: Int32(bitPattern: value.rawValue), name: name, requiresImportanceMatrix: imatrix)
        }

        /// `Q1_0` (`llama-quantize` Q1_0).
        public static let q1_0 = t(LLAMA_FTYPE_MOSTLY_Q1_0, "Q1_0")
        /// `Q2_0` (`llama-quantize` Q2_0).
        public static let q2_0 = t(LLAMA_FTYPE_MOSTLY_Q2_0, "Q2_0")
        /// `Q4_0` (`llama-quantize` Q4_0).
        public static let q4_0 = t(LLAMA_FTYPE_MOSTLY_Q4_0, "Q4_0")
        /// `Q4_1` (`llama-quantize` Q4_1).
        public static let q4_1 = t(LLAMA_FTYPE_MOSTLY_Q4_1, "Q4_1")
        /// `MXFP4_MOE` (`llama-quantize` MXFP4_MOE).
        public static let mxfp4_MOE = t(LLAMA_FTYPE_MOSTLY_MXFP4_MOE, "MXFP4_MOE")
        /// `Q5_0` (`llama-quantize` Q5_0).
        public static let q5_0 = t(LLAMA_FTYPE_MOSTLY_Q5_0, "Q5_0")
        /// `Q5_1` (`llama-quantize` Q5_1).
        public static let q5_1 = t(LLAMA_FTYPE_MOSTLY_Q5_1, "Q5_1")
        /// `IQ2_XXS` (`llama-quantize` IQ2_XXS); needs an importance matrix.
        public static let iq2_XXS = t(LLAMA_FTYPE_MOSTLY_IQ2_XXS, "IQ2_XXS", imatrix: true)
        /// `IQ2_XS` (`llama-quantize` IQ2_XS); needs an importance matrix.
        public static let iq2_XS = t(LLAMA_FTYPE_MOSTLY_IQ2_XS, "IQ2_XS", imatrix: true)
        /// `IQ2_S` (`llama-quantize` IQ2_S); needs an importance matrix.
        public static let iq2_S = t(LLAMA_FTYPE_MOSTLY_IQ2_S, "IQ2_S", imatrix: true)
        /// `IQ2_M` (`llama-quantize` IQ2_M); needs an importance matrix.
        public static let iq2_M = t(LLAMA_FTYPE_MOSTLY_IQ2_M, "IQ2_M", imatrix: true)
        /// `IQ1_S` (`llama-quantize` IQ1_S); needs an importance matrix.
        public static let iq1_S = t(LLAMA_FTYPE_MOSTLY_IQ1_S, "IQ1_S", imatrix: true)
        /// `IQ1_M` (`llama-quantize` IQ1_M); needs an importance matrix.
        public static let iq1_M = t(LLAMA_FTYPE_MOSTLY_IQ1_M, "IQ1_M", imatrix: true)
        /// `TQ1_0` (`llama-quantize` TQ1_0).
        public static let tq1_0 = t(LLAMA_FTYPE_MOSTLY_TQ1_0, "TQ1_0")
        /// `TQ2_0` (`llama-quantize` TQ2_0).
        public static let tq2_0 = t(LLAMA_FTYPE_MOSTLY_TQ2_0, "TQ2_0")
        /// `Q2_K` (`llama-quantize` Q2_K).
        public static let q2_K = t(LLAMA_FTYPE_MOSTLY_Q2_K, "Q2_K")
        /// `Q2_K_S` (`llama-quantize` Q2_K_S); needs an importance matrix.
        public static let q2_K_S = t(LLAMA_FTYPE_MOSTLY_Q2_K_S, "Q2_K_S", imatrix: true)
        /// `IQ3_XXS` (`llama-quantize` IQ3_XXS); needs an importance matrix.
        public static let iq3_XXS = t(LLAMA_FTYPE_MOSTLY_IQ3_XXS, "IQ3_XXS", imatrix: true)
        /// `IQ3_S` (`llama-quantize` IQ3_S).
        public static let iq3_S = t(LLAMA_FTYPE_MOSTLY_IQ3_S, "IQ3_S")
        /// `IQ3_M` (`llama-quantize` IQ3_M).
        public static let iq3_M = t(LLAMA_FTYPE_MOSTLY_IQ3_M, "IQ3_M")
        /// `IQ3_XS` (`llama-quantize` IQ3_XS).
        public static let iq3_XS = t(LLAMA_FTYPE_MOSTLY_IQ3_XS, "IQ3_XS")
        /// `Q3_K_S` (`llama-quantize` Q3_K_S).
        public static let q3_K_S = t(LLAMA_FTYPE_MOSTLY_Q3_K_S, "Q3_K_S")
        /// `Q3_K_M` (`llama-quantize` Q3_K_M).
        public static let q3_K_M = t(LLAMA_FTYPE_MOSTLY_Q3_K_M, "Q3_K_M")
        /// `Q3_K_L` (`llama-quantize` Q3_K_L).
        public static let q3_K_L = t(LLAMA_FTYPE_MOSTLY_Q3_K_L, "Q3_K_L")
        /// `IQ4_NL` (`llama-quantize` IQ4_NL).
        public static let iq4_NL = t(LLAMA_FTYPE_MOSTLY_IQ4_NL, "IQ4_NL")
        /// `IQ4_XS` (`llama-quantize` IQ4_XS).
        public static let iq4_XS = t(LLAMA_FTYPE_MOSTLY_IQ4_XS, "IQ4_XS")
        /// `Q4_K_S` (`llama-quantize` Q4_K_S).
        public static let q4_K_S = t(LLAMA_FTYPE_MOSTLY_Q4_K_S, "Q4_K_S")
        /// `Q4_K_M` (`llama-quantize` Q4_K_M).
        public static let q4_K_M = t(LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q4_K_M")
        /// `Q5_K_S` (`llama-quantize` Q5_K_S).
        public static let q5_K_S = t(LLAMA_FTYPE_MOSTLY_Q5_K_S, "Q5_K_S")
        /// `Q5_K_M` (`llama-quantize` Q5_K_M).
        public static let q5_K_M = t(LLAMA_FTYPE_MOSTLY_Q5_K_M, "Q5_K_M")
        /// `Q6_K` (`llama-quantize` Q6_K).
        public static let q6_K = t(LLAMA_FTYPE_MOSTLY_Q6_K, "Q6_K")
        /// `Q8_0` (`llama-quantize` Q8_0).
        public static let q8_0 = t(LLAMA_FTYPE_MOSTLY_Q8_0, "Q8_0")
        /// `F16`: tensors as 16-bit floats (`llama-quantize` F16).
        public static let f16 = t(LLAMA_FTYPE_MOSTLY_F16, "F16")
        /// `BF16`: tensors as bfloat16 (`llama-quantize` BF16).
        public static let bf16 = t(LLAMA_FTYPE_MOSTLY_BF16, "BF16")
        /// `F32`: every tensor 32-bit floats (`llama-quantize` F32).
        public static let f32 = t(LLAMA_FTYPE_ALL_F32, "F32")
        /// Copies the tensors as they are (`only_copy`): no quantizing.
        public static let copy = t(LLAMA_FTYPE_ALL_F32, "COPY")

        /// Every type `llama-quantize` lists, in its order.
        public static let all: [FileType] = [
            q1_0, q2_0, q4_0, q4_1, mxfp4_MOE, q5_0, q5_1, iq2_XXS, iq2_XS, iq2_S, iq2_M, iq1_S, iq1_M, tq1_0, tq2_0,
            q2_K, q2_K_S, iq3_XXS, iq3_S, iq3_M, iq3_XS, q3_K_S, q3_K_M, q3_K_L, iq4_NL, iq4_XS, q4_K_S, q4_K_M,
            q5_K_S, q5_K_M, q6_K, q8_0, f16, bf16, f32, copy,
        ]
        /// `llama-quantize`'s aliases.
        static let aliases: [String: FileType] = ["Q3_K": q3_K_M, "Q4_K": q4_K_M, "Q5_K": q5_K_M]

        /// The type named `text` (case-insensitive, aliases Q3_K, Q4_K, Q5_K included) or with
        /// that `llama_ftype` number, as `llama-quantize` parses its TYPE argument; nil otherwise.
        public init?(_ text: String) {
            let upper = text.uppercased()
            if let found = Self.all.first(where: { $0.name == upper }) ?? Self.aliases[upper] {
                self = found
            } else if let number = Int32(text), let found = Self.all.first(where: { $0.rawValue == number }) {
                self = found
            } else {
                return nil
            }
        }

        /// The names, for a message.
        public static var names: String { all.map(\.name).joined(separator: ", ") }
    }

    /// What ``quantize(input:output:options:progress:)`` is asked to do: the fields of
    /// `llama_model_quantize_params` (importance matrix, metadata overrides and layer pruning aside).
    public struct Options: Sendable {
        /// The target file type (`ftype`).
        public var fileType: FileType
        /// Threads (`nthread`); nil: llama.cpp's default, one per hardware thread.
        public var threads: Int32?
        /// Quantize tensors that are already quantized (`allow_requantize`, `--allow-requantize`).
        public var allowRequantize = false
        /// Quantize `output.weight` (`quantize_output_tensor`); false is `--leave-output-tensor`.
        public var quantizeOutputTensor = true
        /// The ggml type of `output.weight` (`output_tensor_type`, `--output-tensor-type`), by its
        /// ggml name (`q8_0`, `f16`, ...; case-insensitive).
        public var outputTensorType: String?
        /// The ggml type of the token embeddings (`token_embedding_type`, `--token-embedding-type`).
        public var tokenEmbeddingType: String?
        /// Per-tensor types (`tt_overrides`, `--tensor-type NAME=TYPE`): tensors whose name
        /// matches the pattern (a regular expression, as llama.cpp matches it) get the type.
        public var tensorTypes: [(pattern: String, type: String)] = []
        /// The same type for every tensor: no k-quant mixtures (`pure`, `--pure`).
        public var pure = false
        /// One output file per input split (`keep_split`, `--keep-split`): the outputs are then
        /// `<output without .gguf>-00001-of-0000N.gguf`, ..., as llama.cpp names splits.
        public var keepSplit = false
        /// Compute the sizes only; no file is written (`dry_run`, `--dry-run`).
        public var dryRun = false
        /// The most bytes of tensor rows kept in memory while one tensor is quantized
        /// (`max_buf_size`, `--max-buffer-size`); nil: llama.cpp's default.
        public var maxBufferSize: Int?

        /// llama.cpp's default quantization options, to this file type.
        public init(fileType: FileType) {
            self.fileType = fileType
        }
    }

    /// One tensor started.
    public struct Progress: Sendable, Equatable {
        /// 1-based, as llama.cpp counts.
        public var tensorIndex: Int
        /// Tensors in all.
        public var tensorCount: Int
        /// The tensor started.
        public var tensorName: String
    }

    /// What a quantization produced.
    public struct Report: Sendable, Equatable {
        /// The files written (one, or one per split with ``Options/keepSplit``); empty for a dry run.
        public var outputs: [String]
        /// The tensors' size before, in MiB, as llama.cpp reports it (two decimals).
        public var originalMiB: Double?
        /// The tensors' size after, in MiB, as llama.cpp reports it: for a dry run, the answer.
        public var quantizedMiB: Double?
        /// Tensors quantized (or copied).
        public var tensorCount: Int
        /// For a dry run: llama.cpp warned that the real quantization will need an importance matrix.
        public var requiresImportanceMatrix: Bool
        /// How long the quantization took.
        public var duration: Duration
    }

    /// Why a quantization was refused before or by llama.cpp: the `underlying` error of the
    /// ``LlamaError`` (its code is `.invalidArgument` or `.unsupported`).
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// Why the quantization was refused; open: new kinds may be added.
        public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
            public let rawValue: String
            public init(rawValue: String) { self.rawValue = rawValue }
            public var description: String { rawValue }
            /// The input has quantized tensors and ``Options/allowRequantize`` is false.
            public static let requantize = Kind(rawValue: "requantize")
            /// The file type needs an importance matrix.
            public static let importanceMatrix = Kind(rawValue: "importanceMatrix")
            /// A tensor type name ggml does not know.
            public static let unknownTensorType = Kind(rawValue: "unknownTensorType")
        }
        /// Why the quantization was refused.
        public var kind: Kind
        public var description: String { kind.rawValue }
    }

    // MARK: Quantizing

    /// Quantizes `input` (a GGUF file, the first part of a split model) into `output`.
    ///
    /// - Parameters:
    ///   - input: the GGUF file to quantize (the first part of a split model).
    ///   - output: the file to write (one file per input split with ``Options/keepSplit``).
    ///   - options: the target type and llama.cpp's quantization options.
    ///   - progress: called once per tensor, from llama.cpp's thread; keep it quick.
    /// - Returns: the files written and the sizes llama.cpp reported.
    /// - Throws: ``LlamaError`` as the type's documentation lists; after any error, no output
    ///   file and no temporary file is left.
    public func quantize(input: String, output: String, options: Options,
                         progress: (@Sendable (Progress) -> Void)? = nil) async throws(LlamaError) -> Report {
        let c = runtime.raw
        try GGUFFile.validate(path: input, runtime: runtime)
        let inputFile = try GGUFFile(path: input, runtime: runtime)
        var params = c.llama_model_quantize_default_params()
        params.ftype = llama_ftype(rawValue: UInt32(bitPattern: options.fileType.rawValue))
        if options.fileType.requiresImportanceMatrix {
            throw LlamaError(.unsupported, "\(options.fileType) needs an importance matrix (llama-imatrix's output), which "
                + "this quantizer does not take: choose a type that needs none (Q4_K_M, Q5_K_M, Q6_K, Q8_0, IQ4_XS, ...)",
                underlying: Refusal(kind: .importanceMatrix))
        }
        if let threads = options.threads { params.nthread = threads }
        params.allow_requantize = options.allowRequantize
        params.quantize_output_tensor = options.quantizeOutputTensor
        params.only_copy = options.fileType == .copy
        params.pure = options.pure
        params.keep_split = options.keepSplit
        params.dry_run = options.dryRun
        if let size = options.maxBufferSize {
            guard size > 0 else { throw LlamaError(.invalidArgument, "the buffer size must be positive, not \(size)") }
            params.max_buf_size = size
        }
        if let name = options.outputTensorType { params.output_tensor_type = try tensorType(name, for: "--output-tensor-type") }
        if let name = options.tokenEmbeddingType { params.token_embedding_type = try tensorType(name, for: "--token-embedding-type") }
        let overrides = try options.tensorTypes.map { (pattern, type) throws(LlamaError) -> (String, ggml_type) in
            guard !pattern.isEmpty else { throw LlamaError(.invalidArgument, "a tensor type override needs a tensor name pattern") }
            // llama-quantize lowercases the names it is given.
            return (pattern.lowercased(), try tensorType(type, for: "--tensor-type \(pattern)"))
        }

        // The outputs, and the temporary names llama.cpp writes instead.
        let outputURL = URL(fileURLWithPath: output)
        let folder = outputURL.deletingLastPathComponent().resolvingSymlinksInPath()
        let splitCount = options.keepSplit ? Self.splitCount(inputFile) : 1
        let temporaryBase = folder.appendingPathComponent(".\(outputURL.lastPathComponent).quantizing-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        var finalPaths: [String] = []
        var temporaryPaths: [String] = []
        if !options.dryRun {
            if Self.sameFile(input, output) {
                throw LlamaError(.invalidArgument, "the output \(output) is the input: choose another output path")
            }
            if options.keepSplit {
                let prefix = output.hasSuffix(".gguf") ? String(output.dropLast(5)) : output
                for i in 0..<splitCount {
                    finalPaths.append(Self.splitPath(prefix, i, splitCount))
                    temporaryPaths.append(Self.splitPath(temporaryBase, i, splitCount))
                }
            } else {
                finalPaths = [output]
                temporaryPaths = [temporaryBase]
            }
            // Reserve the temporary names (and learn now whether the folder is writable).
            for (i, path) in temporaryPaths.enumerated() {
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
                guard fd >= 0 else {
                    let reason = String(cString: strerror(errno))
                    for done in temporaryPaths.prefix(i) { unlink(done) }
                    throw LlamaError(.fileNotWritable, "cannot write the quantized model in \(folder.path): \(reason). "
                        + "Choose an output in a folder you can write to.")
                }
                close(fd)
            }
        }
        let removeTemporaries = { for path in temporaryPaths { unlink(path) } }

        // The parameters hold no pointer yet (the overrides are set on the worker thread).
        struct Parameters: @unchecked Sendable { var value: llama_model_quantize_params }
        let frozen = Parameters(value: params)
        let job = Job(temporaryPaths: Set(temporaryPaths), progress: progress)
        let input = input
        let started = ContinuousClock.now
        let status: UInt32 = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<UInt32, Never>) in
                let run = { @Sendable in
                    let status = Self.serial.withLock { _ -> UInt32 in
                        if job.isCancelled { return 1 }
                        // The overrides' C strings and array live until the call returns.
                        let names = overrides.map { strdup($0.0) }
                        defer { names.forEach { free($0) } }
                        var table = zip(names, overrides).map { llama_model_tensor_override(pattern: $0, type: $1.1) }
                        table.append(llama_model_tensor_override(pattern: nil, type: GGML_TYPE_COUNT))
                        return table.withUnsafeBufferPointer { buffer in
                            var p = frozen.value
                            if !overrides.isEmpty { p.tt_overrides = buffer.baseAddress }
                            return job.tapping(c) { c.llama_model_quantize(input, temporaryBase, &p) }
                        }
                    }
                    continuation.resume(returning: status)
                }
                Thread.detachNewThread(run)
            }
        } onCancel: {
            job.cancel()
        }
        let log = job.finished()
        if job.isCancelled || Task.isCancelled {
            removeTemporaries()
            throw LlamaError(.cancelled, "the quantization of \(input) was cancelled; no output was written")
        }
        guard status == 0 else {
            removeTemporaries()
            let reason = log.failure ?? "llama_model_quantize returned \(status)"
            if reason.contains("requantizing from type") {
                throw LlamaError(.invalidArgument, "\(input) is already quantized (\(reason)): requantizing loses quality; "
                    + "allow it with allowRequantize (--allow-requantize), or quantize from an F16/BF16/F32 model",
                    status: Int32(bitPattern: status), underlying: Refusal(kind: .requantize))
            }
            if reason.contains("imatrix") || reason.contains("importance matrix") {
                throw LlamaError(.unsupported, "\(options.fileType) needs an importance matrix here (\(reason)): choose "
                    + "another type", status: Int32(bitPattern: status), underlying: Refusal(kind: .importanceMatrix))
            }
            if reason.contains("failed to open") || reason.contains("basic_ios") || reason.contains("iostream") {
                throw LlamaError(.fileNotWritable, "writing the quantized model in \(folder.path) failed (\(reason)): "
                    + "check the free space and permissions", status: Int32(bitPattern: status))
            }
            throw LlamaError(.creationFailed, "llama.cpp could not quantize \(input) to \(options.fileType): \(reason)",
                             status: Int32(bitPattern: status))
        }
        for (from, to) in zip(temporaryPaths, finalPaths) where rename(from, to) != 0 {
            let reason = String(cString: strerror(errno))
            removeTemporaries()
            throw LlamaError(.fileNotWritable, "the quantized model could not be moved to \(to): \(reason)")
        }
        return Report(outputs: finalPaths, originalMiB: log.originalMiB, quantizedMiB: log.quantizedMiB,
                      tensorCount: log.tensorCount, requiresImportanceMatrix: log.warnedImportanceMatrix,
                      duration: ContinuousClock.now - started)
    }

    /// The ggml type named `name` (case-insensitive), as `llama-quantize` looks it up.
    func tensorType(_ name: String, for option: String) throws(LlamaError) -> ggml_type {
        let c = runtime.raw
        var known: [String] = []
        for raw in 0..<GGML_TYPE_COUNT.rawValue {
            let type = ggml_type(rawValue: raw)
            guard let cName = c.ggml_type_name(type) else { continue }
            let typeName = String(cString: cName)
            if typeName.lowercased() == name.lowercased() { return type }
            if typeName != "DEPRECATED" { known.append(typeName) }
        }
        throw LlamaError(.invalidArgument, "\(option): ggml has no tensor type named \(name.debugDescription); known: "
            + known.joined(separator: ", "), underlying: Refusal(kind: .unknownTensorType))
    }

    static func splitCount(_ file: GGUFFile) -> Int {
        switch file["split.count"] {
        case .uint(let n)?: return max(1, Int(n))
        case .int(let n)?: return max(1, Int(n))
        default: return 1
        }
    }

    /// llama.cpp's split naming (`llama_split_path`): `PREFIX-00001-of-00003.gguf`.
    static func splitPath(_ prefix: String, _ index: Int, _ count: Int) -> String {
        String(format: "%@-%05d-of-%05d.gguf", prefix, index + 1, count)
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        let fm = FileManager.default
        guard let x = try? fm.attributesOfItem(atPath: a), let y = try? fm.attributesOfItem(atPath: b),
              let dx = x[.systemNumber] as? Int, let dy = y[.systemNumber] as? Int,
              let ix = x[.systemFileNumber] as? Int, let iy = y[.systemFileNumber] as? Int else { return false }
        return dx == dy && ix == iy
    }

    /// One quantization at a time: the log callback is process-wide.
    static let serial = Mutex(())
}

// MARK: The log tap

extension LlamaQuantizer {
    /// What llama.cpp logged during one quantization.
    struct Log: Sendable {
        var tensorCount = 0
        var failure: String?
        var originalMiB: Double?
        var quantizedMiB: Double?
        var warnedImportanceMatrix = false
        var errorText = ""
    }

    /// One running quantization: its cancellation flag and what its log said.
    final class Job: Sendable {
        private struct State {
            var cancelled = false
            var log = Log()
            var line = ""
            /// The thread calling `llama_model_quantize`: only its log lines are this job's.
            var thread: pthread_t?
        }
        private let state = Mutex(State())
        let temporaryPaths: Set<String>
        let progress: (@Sendable (Progress) -> Void)?

        init(temporaryPaths: Set<String>, progress: (@Sendable (Progress) -> Void)?) {
            self.temporaryPaths = temporaryPaths
            self.progress = progress
        }

        var isCancelled: Bool { state.withLock { $0.cancelled } }
        func cancel() { state.withLock { $0.cancelled = true } }
        func finished() -> Log { state.withLock { $0.log } }

        /// The job whose quantization is running (the C callback's user data cannot carry a Swift object safely).
        static let current = Mutex<Job?>(nil)

        /// Runs `body` as the job whose log lines the runtime's log callback hands over
        /// (``LlamaLog``'s callback calls ``observe(level:text:)``). The process-wide callback is not
        /// swapped: another runtime made meanwhile re-installs the same one, and nothing is lost.
        func tapping<T>(_ c: LlamaSymbols, _ body: () -> T) -> T {
            state.withLock { $0.thread = pthread_self() }
            Job.current.withLock { $0 = self }
            defer { Job.current.withLock { $0 = nil } }
            return body()
        }

        /// One piece of llama.cpp's log, for the quantization running now (if any).
        static func observe(level: ggml_log_level, text: UnsafePointer<CChar>) {
            guard let job = Job.current.withLock({ $0 }) else { return }
            job.receive(level: level, text: String(cString: text))
        }

        /// Reads one piece of llama.cpp's log (lines come in pieces).
        func receive(level: ggml_log_level, text: String) {
            var started: Progress?
            let cancelled: Bool? = state.withLock { s in
                // Another thread's llama.cpp log (a generation running meanwhile) is not ours.
                guard let thread = s.thread, pthread_equal(thread, pthread_self()) != 0 else { return nil }
                if level == GGML_LOG_LEVEL_ERROR { s.log.errorText += text }
                // A tensor starts: "[  12/ 272] blk.0.attn_k.weight - [...], type = ..."
                if text.hasPrefix("["), let p = Self.tensorStart(text) {
                    s.log.tensorCount = max(s.log.tensorCount, p.tensorIndex)
                    started = p
                }
                s.line += text
                while let newline = s.line.firstIndex(of: "\n") {
                    let line = String(s.line[..<newline])
                    s.line = String(s.line[s.line.index(after: newline)...])
                    if let range = line.range(of: "failed to quantize: ") {
                        s.log.failure = String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
                    } else if let v = Self.mib(line, after: "model size  =") {
                        s.log.originalMiB = v
                    } else if let v = Self.mib(line, after: "quant size  =") {
                        s.log.quantizedMiB = v
                    } else if line.contains("will require an imatrix") {
                        s.log.warnedImportanceMatrix = true
                    }
                }
                return s.cancelled
            }
            if let started, let cancelled {
                // Called on llama.cpp's quantizing thread, between two tensors: the output stream
                // is open, so its descriptor can be swapped safely.
                if cancelled { stopWriting() }
                progress?(started)
            }
        }

        /// Points the descriptor llama.cpp writes the temporary output through at /dev/full: its
        /// next write fails, its stream throws, and `llama_model_quantize` returns an error.
        private func stopWriting() {
            #if os(Linux)
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
            let full = open("/dev/full", O_WRONLY)
            guard full >= 0 else { return }
            defer { close(full) }
            for entry in entries {
                guard let fd = Int32(entry), fd != full,
                      let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
                      temporaryPaths.contains(target) else { continue }
                dup2(full, fd)
            }
            #endif
        }

        static func tensorStart(_ text: String) -> Progress? {
            // "[%4d/%4d] %-36s - ..."
            guard let close = text.firstIndex(of: "]") else { return nil }
            let counts = text[text.index(after: text.startIndex)..<close].split(separator: "/")
            guard counts.count == 2, let index = Int(counts[0].trimmingCharacters(in: .whitespaces)),
                  let count = Int(counts[1].trimmingCharacters(in: .whitespaces)) else { return nil }
            let name = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true).first.map(String.init) ?? ""
            return Progress(tensorIndex: index, tensorCount: count, tensorName: name)
        }

        static func mib(_ line: String, after marker: String) -> Double? {
            guard let range = line.range(of: marker) else { return nil }
            let rest = line[range.upperBound...].trimmingCharacters(in: .whitespaces)
            return rest.split(separator: " ").first.flatMap { Double($0) }
        }
    }
}
