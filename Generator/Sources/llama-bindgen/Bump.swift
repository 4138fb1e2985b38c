import ArgumentParser
import BindgenCore
import BumpCore
import LlamaAPI
import Foundation

func note(_ message: String) {
    FileHandle.standardError.write(Data("llama-bindgen: \(message)\n".utf8))
}

struct Bump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move the pin to another llama.cpp tag: manifest, headers, generated code, build, API diff.",
        discussion: """
            Fetches the tag's source (`llama-swift libs source`), reads its headers and its release \
            workflow (the release assets' names), asks GitHub's API for the assets' digests, generates \
            the bindings in a temporary folder, and only then replaces the manifest, the pinned headers \
            and the generated folders. Bad input (an unknown tag, a source whose digest does not match, \
            headers that do not parse) leaves every file as it was, and the temporary folder is removed \
            whatever happens. Writes the Markdown API diff, builds the package, and names the \
            handwritten calls that no longer compile.
            """)

    @Option(help: "The llama.cpp tag: bN (a build) or vX.Y.Z (a stable release).")
    var tag: String

    @OptionGroup var common: Common

    @Option(help: "Base URL of GitHub's REST API, for the release assets' digests (default: $LLAMA_GITHUB_API, else GitHub's).")
    var githubAPI: String?

    @Option(help: "Base URL of GitHub, for the tag's source archive (default: $LLAMA_GITHUB_URL, else GitHub).")
    var github: String?

    @Option(help: "The sha256 the source archive must have.")
    var sourceSha256: String?

    @Option(help: "Where to write the Markdown API diff.")
    var diffOut: String = ".bump/api-diff.md"

    @Option(help: "The package root whose generated folders are replaced.")
    var package: String = "."

    @Option(help: "The llama-swift executable that fetches the tag's source (default: <package>/.build/debug/llama-swift).")
    var llamaSwift: String?

    @Flag(help: "Do not build the package after regenerating.")
    var noBuild = false

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let root = URL(fileURLWithPath: package)
        let options = BumpOptions(
            tag: tag, packageRoot: root, manifest: URL(fileURLWithPath: common.manifest),
            headers: URL(fileURLWithPath: common.headers), diffOut: URL(fileURLWithPath: diffOut),
            githubAPI: githubAPI ?? env["LLAMA_GITHUB_API"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.github.com",
            github: github ?? env["LLAMA_GITHUB_URL"].flatMap { $0.isEmpty ? nil : $0 },
            sourceSHA256: sourceSha256,
            llamaSwift: llamaSwift ?? root.appendingPathComponent(".build/debug/llama-swift").path,
            build: !noBuild)
        let report: BumpReport
        do {
            report = try await Bumper(options: options, note: note).run()
        } catch {
            // The bump has returned: its temporary folder is gone before the process exits.
            fail("\(error) [\(error.code)]")
        }
        print(report.diff)
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
