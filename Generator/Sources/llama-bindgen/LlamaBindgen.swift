import ArgumentParser
import BindgenCore
import Foundation

@main
struct LlamaBindgen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llama-bindgen",
        abstract: "Generate the Swift bindings of llama.cpp from its pinned headers with libclang.",
        subcommands: [Generate.self, Listing.self, Bump.self, APIDiff.self])
}

struct Common: ParsableArguments {
    @Option(help: "The pin.")
    var manifest: String = "headers/manifest.json"

    @Option(help: "The folder that holds the pinned headers at their source-tree paths (make headers).")
    var headers: String = "headers/pinned"
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("llama-bindgen: error: \(message)\n".utf8))
    Foundation.exit(1)
}

func runPipeline(_ common: Common) -> (Manifest, GenerationResult) {
    let manifest: Manifest
    do {
        manifest = try Manifest.load(from: URL(fileURLWithPath: common.manifest))
    } catch {
        fail("cannot read the manifest \(common.manifest): \(error)")
    }
    let root = URL(fileURLWithPath: common.headers)
    for header in manifest.headers where !FileManager.default.fileExists(atPath: root.appendingPathComponent(header.path).path) {
        fail("\(header.path) is not in \(common.headers): run `make headers` first")
    }
    let result = generate(manifest: manifest, headersRoot: root)
    for d in result.diagnostics.items {
        FileHandle.standardError.write(Data("\(d)\n".utf8))
    }
    if result.diagnostics.hasErrors {
        fail("\(result.diagnostics.items.filter { $0.severity == .error }.count) error(s); nothing was written")
    }
    return (manifest, result)
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the headers and write the C declarations, the Swift symbol table and the API listing.")

    @OptionGroup var common: Common

    @Option(help: "The root the generated paths are relative to (the package root, or a temporary folder).")
    var output: String = "."

    @Flag(help: "Print, per header, how many API functions were bound and what was skipped.")
    var report = false

    func run() throws {
        let (manifest, result) = runPipeline(common)
        try write(result.files, to: URL(fileURLWithPath: output), layout: .package)
        let functions = result.module.functions
        var summary = "llama-bindgen: llama.cpp \(manifest.tag): \(functions.count) functions bound, "
            + "\(result.module.skipped.count) declarations skipped, \(result.files.count) files written to \(output)\n"
        if report {
            for header in manifest.headers {
                let bound = functions.filter { $0.location.header == header.path }.count
                let skipped = result.module.skipped.filter { $0.location.header == header.path }
                summary += "  \(header.path): \(bound) bound, \(skipped.count) skipped\n"
                for s in skipped { summary += "    skipped \(s.name) (\(s.location)): \(s.reason)\n" }
            }
        }
        FileHandle.standardError.write(Data(summary.utf8))
    }
}

struct Listing: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the API listing of the pinned headers.")

    @OptionGroup var common: Common

    func run() throws {
        let (_, result) = runPipeline(common)
        print(emitAPIListing(result.module), terminator: "")
    }
}
