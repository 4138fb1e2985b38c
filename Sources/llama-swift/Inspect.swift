import ArgumentParser
import Foundation
import Llama
import LlamaAPI
import LlamaRaw

/// `llama-swift gguf`: GGUF files.
struct GGUF: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf", abstract: "Look into GGUF files, or copy one with other metadata.", subcommands: [Inspect.self, Set.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a GGUF file with metadata keys set or removed; the tensor data is copied unchanged.",
            discussion: """
                Each KEY=TYPE:VALUE sets a key. TYPE is int, uint, float, bool or str (written as the key's \
                type in the file; a new key gets i32, u32 or f32), or a width: u8, i8, u16, i16, u32, i32, \
                u64, i64, f32, f64. Example, marking a model as a reranker: \
                llama-swift gguf set in.gguf out.gguf llama.pooling_type=u32:4
                """)
        @Argument(help: "The GGUF file to read.")
        var input: String
        @Argument(help: "The file to write (may be the input; it is replaced only when the copy is complete).")
        var output: String
        @Argument(help: "KEY=TYPE:VALUE items.")
        var items: [String] = []
        @Option(name: .customLong("remove"), help: "A key to remove (repeatable).")
        var removals: [String] = []
        @Option(help: "The folder of an unpacked llama.cpp release to load (default: as `run`).")
        var libDir: String?
        @OptionGroup var install: InstallFlags

        func validate() throws {
            guard !items.isEmpty || !removals.isEmpty else { throw ValidationError("give KEY=TYPE:VALUE items or --remove KEY") }
            for item in items {
                switch Result(catching: { () throws(LlamaError) in try GGUFFile.MetadataEdit(parsing: item) }) {
                case .success: break
                case .failure(let error): throw ValidationError(error.message)
                }
            }
        }

        func run() async throws {
            let edits = try items.map { try GGUFFile.MetadataEdit(parsing: $0) }
            let runtime = try await CLI.loadRuntime(libDir: libDir, options: install.options())
            let (input, output, removals) = (input, output, removals)
            // Ctrl-C / SIGTERM stop the copy, which removes its temporary file.
            try await CLI.runCancellable("the copy") {
                try GGUFFile.rewrite(input, to: output, setting: edits, removing: removals, runtime: runtime)
            }
            CLI.note("wrote \(output): \(edits.count) key(s) set, \(removals.count) removed")
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a GGUF file's metadata and tensor table (read through the gguf bindings; no tensor data is loaded).")
        @Argument(help: "The GGUF file.")
        var file: String
        @Option(help: "The folder of an unpacked llama.cpp release to load (default: as `run`).")
        var libDir: String?
        @OptionGroup var install: InstallFlags
        @Flag(help: "JSON output.")
        var json = false
        @Option(help: "Array items shown per array.")
        var arrayPreview = 8

        func run() async throws {
            guard FileManager.default.fileExists(atPath: file) else {
                CLI.note("error: \(file) does not exist")
                throw ExitCode(1)
            }
            let runtime = try await CLI.loadRuntime(libDir: libDir, options: install.options())
            let gguf = try await CLI.run { () async throws(LlamaError) in
                try GGUFFile(path: file, runtime: runtime, arrayPreview: arrayPreview)
            }
            if json {
                struct Document: Encodable {
                    var path: String
                    var version: UInt32
                    var alignment: Int
                    var data_offset: Int
                    var file_size: Int64
                    var tensor_bytes: Int
                    var metadata: [String: GGUFFile.Value]
                    var metadata_order: [String]
                    var tensors: [GGUFFile.Tensor]
                }
                try CLI.printJSON(Document(path: gguf.path, version: gguf.version, alignment: gguf.alignment,
                                           data_offset: gguf.dataOffset, file_size: gguf.fileSize, tensor_bytes: gguf.tensorBytes,
                                           metadata: Dictionary(gguf.metadata.map { ($0.key, $0.value) }) { a, _ in a },
                                           metadata_order: gguf.metadata.map(\.key), tensors: gguf.tensors))
                return
            }
            print("\(gguf.path): GGUF v\(gguf.version), \(gguf.metadata.count) metadata keys, \(gguf.tensors.count) tensors "
                  + "(\(ProgressPrinter.bytes(Int64(gguf.tensorBytes)))), data at \(gguf.dataOffset)")
            print("\nmetadata:")
            for (key, value) in gguf.metadata { print("  \(key) = \(value)") }
            print("\ntensors:")
            for t in gguf.tensors {
                print("  \(t.name)\t\(t.type)\t[\(t.shape.map(String.init).joined(separator: ", "))]\t\(t.size) bytes")
            }
        }
    }
}

/// `llama-swift api`: the bindings' API listing, and listing diffs.
struct API: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api", abstract: "Print the API listing of the generated bindings, or the difference of two listings.",
        subcommands: [Show.self, Diff.self], defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "Print the API listing the bindings were generated with (llama.cpp \(LlamaPin.tag)).")
        func run() async throws { print(LlamaAPIListing.text) }
    }

    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The Markdown difference of two API listings (api.txt files; `-` is the bindings' own).")
        @Argument(help: "The old listing.") var from: String
        @Argument(help: "The new listing.") var to: String
        func read(_ path: String) throws -> String {
            if path == "-" { return LlamaAPIListing.text + "\n" }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("cannot read the listing \(path)")
            }
            return text
        }
        func run() async throws {
            print(apiDiffMarkdown(from: APIListing(parsing: try read(from)), to: APIListing(parsing: try read(to)),
                                  fromLabel: from == "-" ? LlamaPin.tag : from, toLabel: to == "-" ? LlamaPin.tag : to))
        }
    }
}

/// `llama-swift devices`: what the probes found, the variant chosen and why, and ggml's devices.
struct Devices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the GPUs found, the llama.cpp variant chosen and why, and the devices ggml can use.",
        discussion: "With --no-load, only the probes and the plan (nothing is installed or loaded).")
    @Option(help: "The folder of an unpacked llama.cpp release to load (default: as `run`).")
    var libDir: String?
    @OptionGroup var install: InstallFlags
    @Flag(help: "JSON output.")
    var json = false
    @Flag(help: "Probe and plan only; do not install or load a build.")
    var noLoad = false
    @Option(help: "A fixture machine folder to probe instead of this one (files under a root, plus drivers.json).")
    var fixture: String?
    @Option(help: "RPC servers (host:port,...) whose devices to list too.")
    var rpc: String?

    func run() async throws {
        var options = install.options()
        if let fixture {
            do { options.probe = try LlamaHardwareProbe(fixture: URL(fileURLWithPath: fixture), platform: options.platform) } catch {
                CLI.note("error: cannot read the fixture \(fixture): \(error)")
                throw ExitCode(1)
            }
        }
        var runtime: LlamaRuntime?
        if !noLoad {
            let loaded = try await CLI.loadRuntime(libDir: libDir, options: options)
            _ = try await CLI.addRPC(rpc?.split(separator: ",").map(String.init) ?? [], to: loaded)
            runtime = loaded
        }
        // Loading chose from the probes already, unless the libraries were given as a folder or
        // an exact variant: then (and with --no-load) the probes run here.
        var selection: LlamaVariantSelection
        if let chosen = runtime?.selection {
            selection = chosen
        } else {
            selection = LlamaVariantSelection.plan(options.variant, hardware: await options.probe.run(),
                                                   release: options.release, platform: options.platform)
        }
        let devices = runtime?.devices ?? []
        if json {
            struct Document: Encodable {
                var library_directory: String?
                var variant: String?
                var selection: LlamaVariantSelection
                var devices: [LlamaDevice]
            }
            try CLI.printJSON(Document(library_directory: runtime?.libraryDirectory.path,
                                       variant: runtime?.installation?.variant.rawValue ?? selection.chosen?.rawValue,
                                       selection: selection, devices: devices))
            return
        }
        print(selection.summary)
        if let runtime { print("libraries: \(runtime.libraryDirectory.path)") }
        for d in devices {
            let memory = d.memoryTotal > 0 ? "  \(ProgressPrinter.bytes(Int64(d.memoryFree))) free of \(ProgressPrinter.bytes(Int64(d.memoryTotal)))" : ""
            print("\(d.index)\t\(d.name)\t\(d.kind)\t\(d.description)\(memory)")
        }
    }
}
