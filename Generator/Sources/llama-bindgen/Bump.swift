import ArgumentParser
import BindgenCore
import LlamaAPI
import Foundation

/// Runs a program, passing its output through, and returns its exit status.
func runTool(_ arguments: [String], captureOutput: Bool = false) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let pipe = Pipe()
    if captureOutput {
        process.standardOutput = pipe
        process.standardError = pipe
    }
    try process.run()
    let data = captureOutput ? pipe.fileHandleForReading.readDataToEndOfFile() : Data()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

func note(_ message: String) {
    FileHandle.standardError.write(Data("llama-bindgen: \(message)\n".utf8))
}

struct Bump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move the pin to another llama.cpp tag: manifest, headers, generated code, build, API diff.",
        discussion: """
            Fetches the tag's source (tools/fetch.py prepare), generates the bindings into a \
            temporary folder, and only then replaces the manifest, the pinned headers and the \
            generated folders. Bad input (an unknown tag, a source whose digest does not match, \
            headers that do not parse) leaves every file as it was. Writes the Markdown API diff, \
            builds the package, and names the handwritten calls that no longer compile.
            """)

    @Option(help: "The llama.cpp tag: bN (a build) or vX.Y.Z (a stable release).")
    var tag: String

    @OptionGroup var common: Common

    @Option(help: "Base URL of GitHub's REST API, for the release assets' digests (mirrors, tests).")
    var githubAPI: String?

    @Option(help: "Base URL of GitHub, for the tag's source archive.")
    var github: String?

    @Option(help: "The sha256 the source archive must have.")
    var sourceSha256: String?

    @Option(help: "Where to write the Markdown API diff.")
    var diffOut: String = ".bump/api-diff.md"

    @Option(help: "The package root whose generated folders are replaced.")
    var package: String = "."

    @Flag(help: "Do not build the package after regenerating.")
    var noBuild = false

    func run() throws {
        let fm = FileManager.default
        let root = URL(fileURLWithPath: package)
        let work = fm.temporaryDirectory.appendingPathComponent("llama-bump-\(UUID().uuidString)")
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: work) }

        let old = try Manifest.load(from: URL(fileURLWithPath: common.manifest))
        // 1. Everything from outside, into the temporary folder.
        var prepare = ["python3", root.appendingPathComponent("tools/fetch.py").path, "--manifest", common.manifest,
                       "prepare", "--tag", tag, "--out", work.path]
        if let githubAPI { prepare += ["--github-api", githubAPI] }
        if let github { prepare += ["--github", github] }
        if let sourceSha256 { prepare += ["--source-sha256", sourceSha256] }
        guard try runTool(prepare).status == 0 else {
            fail("could not prepare llama.cpp \(tag); nothing was changed")
        }
        var manifest = try Manifest.load(from: work.appendingPathComponent("manifest.json"))

        // 2. Generate into the temporary folder.
        var result = generate(manifest: manifest, headersRoot: work.appendingPathComponent("headers"))
        for d in result.diagnostics.items { note("\(d)") }
        if result.diagnostics.hasErrors {
            fail("the \(tag) headers could not be bound (errors above); nothing was changed")
        }

        // 3. The API diff against what is committed now.
        let layout = OutputLayout.package
        let listingPath = layout.swiftFolder + "/api.txt"
        let oldText = (try? String(contentsOf: root.appendingPathComponent(listingPath), encoding: .utf8)) ?? ""
        let newText = result.files.first { $0.path == listingPath }!.contents
        let diff = apiDiffMarkdown(from: APIListing(parsing: oldText), to: APIListing(parsing: newText),
                                   fromLabel: old.tag, toLabel: tag)

        // 4. Tags sharing this API: kept across identical listings, reset by any change.
        if oldText == newText {
            let carried = Set((old.api_compatible_tags ?? []) + [old.tag]).subtracting([tag])
            manifest.api_compatible_tags = carried.sorted { buildNumber($0) < buildNumber($1) }
        } else {
            manifest.api_compatible_tags = []
        }
        if manifest.api_compatible_tags?.isEmpty == true { manifest.api_compatible_tags = nil }
        result = generate(manifest: manifest, headersRoot: work.appendingPathComponent("headers"))

        // 5. Replace the pin, the headers and the generated code.
        try manifest.encoded().write(to: URL(fileURLWithPath: common.manifest), options: .atomic)
        for header in manifest.headers {
            let dest = URL(fileURLWithPath: common.headers).appendingPathComponent(header.path)
            try fm.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(contentsOf: work.appendingPathComponent("headers").appendingPathComponent(header.path))
                .write(to: dest, options: .atomic)
        }
        try write(result.files, to: root, layout: layout)
        let diffURL = URL(fileURLWithPath: diffOut)
        try fm.createDirectory(at: diffURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(diff.utf8).write(to: diffURL, options: .atomic)
        print(diff)
        note("llama.cpp \(old.tag) → \(tag): \(result.module.functions.count) functions bound; API diff in \(diffOut)")

        // 6. Does the handwritten code still build?
        guard !noBuild else { return }
        note("building the package against the \(tag) bindings")
        let build = try runTool(["swift", "build", "--package-path", root.path], captureOutput: true)
        guard build.status != 0 else {
            note("the package builds against llama.cpp \(tag)")
            return
        }
        let broken = brokenCalls(in: build.output, generatedFolders: layout.generatedFolders)
        FileHandle.standardError.write(Data(build.output.utf8))
        fail("the handwritten code no longer compiles against the \(tag) bindings:\n"
             + (broken.isEmpty ? "  (see the compiler output above)" : broken.map { "  \($0)" }.joined(separator: "\n")))
    }
}

/// The build number of a tag, for ordering (stable releases after builds).
func buildNumber(_ tag: String) -> Int {
    tag.hasPrefix("b") ? Int(tag.dropFirst()) ?? 0 : Int.max
}

/// Compiler errors located in handwritten files: `path:line:col: error: message`.
func brokenCalls(in output: String, generatedFolders: [String]) -> [String] {
    var seen = Set<String>()
    return output.split(separator: "\n").compactMap { line -> String? in
        guard line.contains(": error: "), line.hasPrefix("/"),
              !generatedFolders.contains(where: { line.contains("/" + $0 + "/") }) else { return nil }
        return seen.insert(String(line)).inserted ? String(line) : nil
    }
}

struct APIDiff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-diff", abstract: "Write the Markdown API diff between two API listings (api.txt files).")

    @Argument(help: "The older listing.") var from: String
    @Argument(help: "The newer listing.") var to: String
    @Option(help: "How to name the older side (default: its path).") var fromLabel: String?
    @Option(help: "How to name the newer side (default: its path).") var toLabel: String?

    func run() throws {
        func read(_ path: String) -> String {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { fail("cannot read \(path)") }
            return text
        }
        print(apiDiffMarkdown(from: APIListing(parsing: read(from)), to: APIListing(parsing: read(to)),
                              fromLabel: fromLabel ?? from, toLabel: toLabel ?? to), terminator: "")
    }
}
