import ArgumentParser
import Foundation
import Llama

/// Where libraries come from: the flags every command that installs or loads them shares.
struct InstallFlags: ParsableArguments {
    @Option(help: "The llama.cpp build: cpu, vulkan, cuda-12.8, cuda-13.4, metal... (default: $LLAMA_SWIFT_VARIANT, else cpu).")
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
        abstract: "Install, locate, check and prune the llama.cpp libraries.",
        subcommands: [Install.self, Path.self, List.self, Verify.self, Prune.self, Build.self, MakeBundle.self, Check.self,
                      CheckRPC.self])

    struct CheckRPC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-rpc",
            abstract: "Contact an RPC server with the libraries of a folder and print its devices as JSON (the runtime runs this in a child process first).")
        @Argument(help: "The release folder (.../llama-<tag>).")
        var directory: String
        @Argument(help: "host:port")
        var endpoint: String
        func run() async throws {
            let devices = try await CLI.run { () async throws(LlamaError) in
                try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: directory)).addRPCServer(endpoint, checkedBy: nil)
            }
            try CLI.printJSON(devices)
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load the libraries of a folder and print ggml's devices as JSON (the runtime runs this in a child process before it loads a GPU build).")
        @Argument(help: "The release folder (.../llama-<tag>).")
        var directory: String
        func run() async throws {
            let runtime = try await CLI.run { () async throws(LlamaError) in
                try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: directory))
            }
            try CLI.printJSON(runtime.devices)
        }
    }

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
            abstract: "Build the pinned llama.cpp source with cmake into the cache; prints its folder.")
        @OptionGroup var flags: InstallFlags
        @Option(help: "Parallel compile jobs (default: the number of processors).")
        var jobs: Int?
        func run() async throws {
            var options = flags.options()
            if let jobs { options.buildJobs = jobs }
            let o = options
            let installation = try await CLI.run { () async throws(LlamaError) in
                try await LlamaInstaller(options: o).build(progress: ProgressPrinter().handler)
            }
            print(installation.directory?.path ?? "")
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
                if let done = installer.installed() { return done.directory!.path }
                guard install else {
                    throw LlamaError(.fileNotFound, "llama.cpp \(options.release.tag) (\(options.variant)) is not installed in "
                        + "\(installer.entry.path): run `llama-swift libs install` or pass --install")
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
