// Moving the pin to another llama.cpp tag: everything from outside lands in a temporary
// folder first (the tag's source through `llama-swift libs source`, its headers, its release
// assets from the release workflow, their digests from GitHub's API); the bindings are generated
// there; only then are the manifest, the pinned headers and the generated folders replaced. The
// temporary folder is removed on every path, failures included.
public import BindgenCore
public import Foundation
import LlamaAPI
import LlamaProcess

/// Why a bump failed. Every failure before the files are replaced leaves them as they were.
public struct BumpError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The name is neither `bN` nor `vX.Y.Z`.
        public static let notATag = Code(rawValue: "notATag")
        /// No source archive of the tag could be had.
        public static let sourceUnavailable = Code(rawValue: "sourceUnavailable")
        /// The source archive's digest is not the one asked for.
        public static let checksumMismatch = Code(rawValue: "checksumMismatch")
        /// A header of the manifest is not in the tag's source tree.
        public static let headerMissing = Code(rawValue: "headerMissing")
        /// The headers do not parse, or hold constructs the generator does not bind.
        public static let headersRejected = Code(rawValue: "headersRejected")
        /// `llama-swift` (which fetches the source) could not be run.
        public static let toolMissing = Code(rawValue: "toolMissing")
        /// The handwritten code does not compile against the new bindings (the files were replaced).
        public static let buildFailed = Code(rawValue: "buildFailed")
        /// Reading or writing a file failed.
        public static let io = Code(rawValue: "io")
    }

    public var code: Code
    public var message: String
    /// Whether the manifest, the headers and the generated folders are as they were.
    public var nothingChanged: Bool

    public init(_ code: Code, _ message: String, nothingChanged: Bool = true) {
        self.code = code
        self.message = message
        self.nothingChanged = nothingChanged
    }

    public var description: String { message + (nothingChanged ? "; nothing was changed" : "") }
}

/// What a bump reads and writes.
public struct BumpOptions: Sendable {
    public var tag: String
    /// The package whose generated folders are replaced.
    public var packageRoot: URL
    public var manifest: URL
    /// The folder of the pinned headers (at their source-tree paths).
    public var headers: URL
    public var diffOut: URL
    /// GitHub's REST API, for the release assets' digests.
    public var githubAPI: String
    /// A GitHub-like host to fetch tag archives from (nil: GitHub).
    public var github: String?
    /// A digest the source archive must have.
    public var sourceSHA256: String?
    /// The `llama-swift` executable that fetches, verifies and unpacks the tag's source.
    public var llamaSwift: String
    /// Whether to build the package against the new bindings.
    public var build: Bool
    /// Where the temporary `llama-bump-*` folder is made.
    public var temporaryRoot: URL
    /// The longest time `llama-swift libs source` and `swift build` may take, each.
    public var toolTimeout: Duration

    public init(tag: String, packageRoot: URL, manifest: URL, headers: URL, diffOut: URL,
                githubAPI: String = "https://api.github.com", github: String? = nil, sourceSHA256: String? = nil,
                llamaSwift: String, build: Bool = true,
                temporaryRoot: URL = FileManager.default.temporaryDirectory, toolTimeout: Duration = .seconds(3600)) {
        self.tag = tag
        self.packageRoot = packageRoot
        self.manifest = manifest
        self.headers = headers
        self.diffOut = diffOut
        self.githubAPI = githubAPI
        self.github = github
        self.sourceSHA256 = sourceSHA256
        self.llamaSwift = llamaSwift
        self.build = build
        self.temporaryRoot = temporaryRoot
        self.toolTimeout = toolTimeout
    }
}

/// What a bump did.
public struct BumpReport: Sendable {
    public var from: String
    public var to: String
    public var functions: Int
    /// The Markdown API diff.
    public var diff: String
}

/// The candidate pin of a tag: its manifest and the folder holding its headers.
public struct PreparedTag: Sendable {
    public var manifest: Manifest
    public var headers: URL
}

/// The line `llama-swift libs source` prints.
struct SourceLine: Decodable {
    var root: String
    var file: String
    var sha256: String
}

public struct Bumper: Sendable {
    public var options: BumpOptions
    /// Where progress notes go (stderr in the tool).
    public var note: @Sendable (String) -> Void

    public init(options: BumpOptions, note: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.note = note
    }

    /// Runs the bump in a fresh temporary folder, removed whatever happens.
    public func run() async throws(BumpError) -> BumpReport {
        let fm = FileManager.default
        let work = options.temporaryRoot.appendingPathComponent("llama-bump-\(UUID().uuidString)")
        do { try fm.createDirectory(at: work, withIntermediateDirectories: true) } catch {
            throw BumpError(.io, "cannot make the temporary folder \(work.path): \(error.localizedDescription)")
        }
        defer { try? fm.removeItem(at: work) }
        return try await run(in: work)
    }

    func run(in work: URL) async throws(BumpError) -> BumpReport {
        let tag = options.tag
        let old: Manifest
        do { old = try Manifest.load(from: options.manifest) } catch {
            throw BumpError(.io, "cannot read the manifest \(options.manifest.path): \(error)")
        }
        // 1. Everything from outside, into the temporary folder.
        var prepared = try await prepare(from: old, in: work)

        // 2. Generate into memory.
        var result = generate(manifest: prepared.manifest, headersRoot: prepared.headers)
        for d in result.diagnostics.items { note("\(d)") }
        if result.diagnostics.hasErrors {
            throw BumpError(.headersRejected, "the \(tag) headers could not be bound (errors above)")
        }

        // 3. The API diff against what is committed now.
        let layout = OutputLayout.package
        let listingPath = layout.swiftFolder + "/api.txt"
        let oldText = (try? String(contentsOf: options.packageRoot.appendingPathComponent(listingPath), encoding: .utf8)) ?? ""
        let newText = result.files.first { $0.path == listingPath }?.contents ?? ""
        let diff = apiDiffMarkdown(from: APIListing(parsing: oldText), to: APIListing(parsing: newText),
                                   fromLabel: old.tag, toLabel: tag)

        // 4. Tags sharing this API: kept across identical listings, reset by any change.
        if oldText == newText {
            let carried = Set((old.api_compatible_tags ?? []) + [old.tag]).subtracting([tag])
            prepared.manifest.api_compatible_tags = carried.sorted { buildNumber($0) < buildNumber($1) }
        } else {
            prepared.manifest.api_compatible_tags = []
        }
        if prepared.manifest.api_compatible_tags?.isEmpty == true { prepared.manifest.api_compatible_tags = nil }
        result = generate(manifest: prepared.manifest, headersRoot: prepared.headers)

        // 5. Replace the pin, the headers and the generated code.
        do {
            let fm = FileManager.default
            try prepared.manifest.encoded().write(to: options.manifest, options: .atomic)
            for header in prepared.manifest.headers {
                let dest = options.headers.appendingPathComponent(header.path)
                try fm.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(contentsOf: prepared.headers.appendingPathComponent(header.path)).write(to: dest, options: .atomic)
            }
            try write(result.files, to: options.packageRoot, layout: layout)
            try fm.createDirectory(at: options.diffOut.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(diff.utf8).write(to: options.diffOut, options: .atomic)
        } catch {
            throw BumpError(.io, "writing the \(tag) pin failed midway: \(error.localizedDescription); "
                            + "restore the files with git", nothingChanged: false)
        }
        note("llama.cpp \(old.tag) → \(tag): \(result.module.functions.count) functions bound; API diff in \(options.diffOut.path)")
        let report = BumpReport(from: old.tag, to: tag, functions: result.module.functions.count, diff: diff)

        // 6. Does the handwritten code still build?
        guard options.build else { return report }
        note("building the package against the \(tag) bindings")
        let build: ChildProcess.Termination
        do {
            build = try await ChildProcess.run("swift", ["build", "--package-path", options.packageRoot.path],
                                               standardError: .mergeIntoOutput, timeout: options.toolTimeout)
        } catch {
            throw BumpError(.toolMissing, "cannot run swift build: \(error.message)", nothingChanged: false)
        }
        guard !build.succeeded else {
            note("the package builds against llama.cpp \(tag)")
            return report
        }
        let broken = brokenCalls(in: build.outputText, generatedFolders: layout.generatedFolders)
        note(build.outputText)
        throw BumpError(.buildFailed, "the handwritten code no longer compiles against the \(tag) bindings (\(build)):\n"
                        + (broken.isEmpty ? "  (see the compiler output above)" : broken.map { "  \($0)" }.joined(separator: "\n")),
                        nothingChanged: false)
    }

    /// The candidate pin of the tag: its source fetched and unpacked by `llama-swift libs
    /// source`, its headers copied into `work/headers`, its release assets named by the tag's
    /// release workflow (or, without one, by the rules of the pinned tag) with GitHub's digests.
    public func prepare(from old: Manifest, in work: URL) async throws(BumpError) -> PreparedTag {
        let tag = options.tag
        guard LlamaSourceArchives.isTag(tag) else {
            throw BumpError(.notATag, "'\(tag)' is not a llama.cpp tag: use bN (a build) or vX.Y.Z (a stable release)")
        }
        let source = try await fetchSource(into: work.appendingPathComponent("source"))
        if let expected = options.sourceSHA256, expected.lowercased() != source.sha256.lowercased() {
            throw BumpError(.checksumMismatch, "\(source.file): sha256 mismatch: expected \(expected), the download has \(source.sha256)")
        }
        let tree = URL(fileURLWithPath: source.root)
        let fm = FileManager.default
        let note = self.note

        // Headers, at their source-tree paths.
        let headersRoot = work.appendingPathComponent("headers")
        var headers: [Manifest.Header] = []
        for h in old.headers {
            let from = tree.appendingPathComponent(h.path)
            guard fm.fileExists(atPath: from.path) else {
                throw BumpError(.headerMissing, "\(h.path) is not in the llama.cpp \(tag) source: the header list needs review")
            }
            let to = headersRoot.appendingPathComponent(h.path)
            do {
                let data = try Data(contentsOf: from)
                try fm.createDirectory(at: to.deletingLastPathComponent(), withIntermediateDirectories: true)
                try data.write(to: to)
                headers.append(Manifest.Header(path: h.path, sha256: sha256Hex(data), library: h.library))
            } catch {
                throw BumpError(.io, "cannot copy \(h.path) of llama.cpp \(tag): \(error.localizedDescription)")
            }
        }

        // Release assets.
        var assets: [Manifest.Asset]
        let workflow = tree.appendingPathComponent(".github/workflows/release.yml")
        if let text = try? String(contentsOf: workflow, encoding: .utf8) {
            do {
                assets = ReleaseWorkflow.classify(try ReleaseWorkflow.assetNames(workflow: text, tag: tag) { note("warning: \($0)") },
                                                  tag: tag)
            } catch {
                throw BumpError(.headersRejected, "the \(tag) release workflow could not be read: \(error)")
            }
        } else {
            note("the \(tag) source has no .github/workflows/release.yml: its release assets are named by the rules of "
                 + "\(old.tag), the nearest tag known (the pinned one); digests come from GitHub's release API as usual")
            assets = ReleaseWorkflow.assets(old.release.assets, renamedFrom: old.tag, to: tag)
        }
        if let digests = await ReleaseDigests.fetch(api: options.githubAPI, tag: tag, warn: { note("warning: \($0)") }) {
            assets = ReleaseDigests.apply(digests, to: assets)
        }

        // The manifest records GitHub's own URLs; --github only changes where they are fetched from.
        var sources: [Manifest.Source] = []
        for archive in LlamaSourceArchives.archives(forTag: tag) {
            guard let kind = Manifest.Source.Kind(rawValue: archive.kind) else {
                throw BumpError(.io, "the naming rules give a source kind the manifest does not know: \(archive.kind)")
            }
            sources.append(Manifest.Source(kind: kind, url: archive.url, package: archive.package, version: archive.version,
                                           file: archive.file, root: archive.root,
                                           sha256: archive.file == source.file ? source.sha256 : nil))
        }
        var manifest = old
        manifest.tag = tag
        manifest.sources = sources
        manifest.headers = headers
        manifest.release = Manifest.Release(base_url: LlamaSourceArchives.releaseBase, assets: assets)
        note("prepared llama.cpp \(tag): \(headers.count) headers, \(assets.count) release assets "
             + "(\(assets.filter { $0.sha256 != nil }.count) with digests), source \(source.file)")
        return PreparedTag(manifest: manifest, headers: headersRoot)
    }

    /// Runs `llama-swift libs source` for the tag and reads the line it prints.
    func fetchSource(into folder: URL) async throws(BumpError) -> SourceLine {
        let tag = options.tag
        var arguments = ["libs", "source", "--tag", tag, "--output", folder.path]
        if let github = options.github { arguments += ["--github", github] }
        let note = self.note
        let termination: ChildProcess.Termination
        do {
            termination = try await ChildProcess.run(options.llamaSwift, arguments, timeout: options.toolTimeout) { line in
                if line.stream == .error { note("llama-swift: \(line.text)") }
            }
        } catch {
            throw BumpError(.toolMissing, "cannot run \(options.llamaSwift) to fetch the \(tag) source (\(error.message)): "
                            + "build it with `swift build --product llama-swift`, or pass --llama-swift")
        }
        guard termination.succeeded else {
            let said = termination.errorText.split(separator: "\n").suffix(6).joined(separator: "\n  ")
            throw BumpError(.sourceUnavailable, "no source of llama.cpp \(tag) answered (\(termination)); is \(tag) a real tag?\n  \(said)")
        }
        let lines = termination.outputText.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let last = lines.last(where: { $0.hasPrefix("{") }),
              let line = try? JSONDecoder().decode(SourceLine.self, from: Data(last.utf8)) else {
            throw BumpError(.sourceUnavailable, "llama-swift libs source printed no {\"root\", \"file\", \"sha256\"} line: "
                            + termination.outputText.suffix(400))
        }
        return line
    }
}

/// The build number of a tag, for ordering (stable releases after builds).
public func buildNumber(_ tag: String) -> Int {
    tag.hasPrefix("b") ? Int(tag.dropFirst()) ?? 0 : Int.max
}

/// Compiler errors located in handwritten files: `path:line:col: error: message`.
public func brokenCalls(in output: String, generatedFolders: [String]) -> [String] {
    var seen = Set<String>()
    return output.split(separator: "\n").compactMap { line -> String? in
        guard line.contains(": error: "), line.hasPrefix("/"),
              !generatedFolders.contains(where: { line.contains("/" + $0 + "/") }) else { return nil }
        return seen.insert(String(line)).inserted ? String(line) : nil
    }
}
