public import Foundation
public import Logging
import LlamaRaw

/// Where llama.cpp's libraries come from and how they are fetched. Every setting has an
/// environment variable, read when the options are created, so a deployed program can be
/// steered without rebuilding it.
public struct LlamaInstallOptions: Sendable {
    /// What happens when no release asset can be had (none for this platform, or every mirror failed).
    public enum BuildFromSource: String, Sendable, Codable {
        /// Build the pinned source when cmake and a C++ compiler are present (the default).
        case fallback
        /// Never build: fail with the download error.
        case never
        /// Build from source without trying the release assets.
        case always
    }

    /// How a source build is configured.
    public enum BuildLayout: String, Sendable, Codable {
        /// Tuned for this machine's CPU, the backends linked in (the default).
        case native
        /// Laid out like the official release archive: portable, backends loaded at run time,
        /// one CPU library per instruction-set level (what `make llama` builds for the tests).
        case release
    }

    /// The build of llama.cpp to use: `.auto` (the default, unless `LLAMA_SWIFT_VARIANT` names
    /// another) chooses by the hardware; a family (`.cuda`) picks its best build; an exact
    /// variant (`cuda-12.8`) is used as it is.
    public var variant: LlamaVariant
    /// The platform whose assets to install (default: this machine). Bundles name others.
    public var platform: LlamaPlatform
    /// The release: tag and assets (default: the pinned one).
    public var release: LlamaRelease
    /// Base URLs laid out like GitHub's release downloads (`<base>/<tag>/<asset>`), tried in
    /// order (default: `LLAMA_SWIFT_MIRRORS`, comma-separated, else GitHub).
    public var mirrors: [URL]
    /// Where the source archives come from: a GitHub-like host (`<github>/ggml-org/llama.cpp/archive/...`;
    /// default `LLAMA_SWIFT_GITHUB`, else https://github.com) and a PyPI simple index, read as JSON
    /// (PEP 691; default `LLAMA_SWIFT_PYPI`, else `PIP_INDEX_URL`, else https://pypi.org/simple).
    public var githubURL: URL
    /// The PyPI index the pinned source sdist comes from when GitHub cannot be reached (`LLAMA_SWIFT_PYPI`).
    public var pypiURL: URL
    /// The cache root (default: `LLAMA_SWIFT_CACHE`, else `$XDG_CACHE_HOME` or `~/.cache`, then
    /// `swift-llama-cpp`). Libraries live in `<root>/llama.cpp/<tag>/<platform>-<variant>/`.
    public var cacheDirectory: URL
    /// A bundle folder (made by ``LlamaBundle``) looked in before the cache (default: `LLAMA_SWIFT_BUNDLE_DIR`).
    public var bundleDirectory: URL?
    /// Use only what is cached or bundled; never touch the network (default: `LLAMA_SWIFT_OFFLINE=1`).
    public var offline: Bool
    /// Refuse assets whose sha256 the manifest does not pin (default: `LLAMA_SWIFT_STRICT_DIGESTS=1`).
    /// Without it, the first download of such an asset records its digest and later ones must match.
    public var requirePinnedDigests: Bool
    /// Building from source when assets cannot be had (default: `LLAMA_SWIFT_BUILD_FROM_SOURCE`, else `.fallback`).
    public var buildFromSource: BuildFromSource
    /// How a source build is configured (default: `LLAMA_SWIFT_BUILD_LAYOUT`, else `.native`).
    public var buildLayout: BuildLayout
    /// Parallel compile jobs of a source build (default: the number of processors).
    public var buildJobs: Int
    /// How long a connection may take to open.
    public var connectTimeout: Duration
    /// How long a server may stay silent in the middle of a response.
    public var idleTimeout: Duration
    /// Further attempts per mirror after a transient failure (connection lost, timeout, 5xx), with
    /// exponential backoff; a resumed attempt continues where the last one stopped.
    public var retries: Int
    /// The first backoff delay; each retry doubles it.
    public var retryDelay: Duration
    /// Where provisioning tells what it does (downloads, recorded digests, builds, variant choice).
    public var logger: Logger
    /// How the hardware is probed for `.auto` and family variants.
    public var probe: LlamaHardwareProbe
    /// The `llama-helper` program that loads a GPU build in a child process first, so that a
    /// broken driver crashes it and not this process (see ``LlamaHelper``). Default:
    /// `LLAMA_SWIFT_HELPER`; nil: found when needed, beside this program's executable or on PATH.
    /// When none is found, loading a GPU build fails with `.helperNotFound`.
    public var helper: URL?

    /// The environment variable that sets ``variant``.
    public static let variantVariable = "LLAMA_SWIFT_VARIANT"
    /// The environment variable that sets ``mirrors`` (comma-separated URLs).
    public static let mirrorsVariable = "LLAMA_SWIFT_MIRRORS"
    /// The environment variable that sets ``githubURL``.
    public static let githubVariable = "LLAMA_SWIFT_GITHUB"
    /// The environment variable that sets ``pypiURL``.
    public static let pypiVariable = "LLAMA_SWIFT_PYPI"
    /// The environment variable that sets ``cacheDirectory``.
    public static let cacheVariable = "LLAMA_SWIFT_CACHE"
    /// The environment variable that sets ``bundleDirectory``.
    public static let bundleVariable = "LLAMA_SWIFT_BUNDLE_DIR"
    /// The environment variable that sets ``offline`` (`1`).
    public static let offlineVariable = "LLAMA_SWIFT_OFFLINE"
    /// The environment variable that sets ``requirePinnedDigests`` (`1`).
    public static let strictDigestsVariable = "LLAMA_SWIFT_STRICT_DIGESTS"
    /// The environment variable that sets ``buildFromSource`` (`fallback`, `never`, `always`).
    public static let buildFromSourceVariable = "LLAMA_SWIFT_BUILD_FROM_SOURCE"
    /// The environment variable that sets ``buildLayout``.
    public static let buildLayoutVariable = "LLAMA_SWIFT_BUILD_LAYOUT"

    /// GitHub's release downloads of llama.cpp.
    public static let githubReleases = URL(string: LlamaPin.releaseBaseURL)!

    /// Options from the environment variables, for this machine's platform and the pinned release.
    ///
    /// - Parameters:
    ///   - variant: the build to install (nil: `LLAMA_SWIFT_VARIANT`, else `.auto`).
    ///   - environment: where the variables are read.
    public init(variant: LlamaVariant? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        let env = environment
        func url(_ name: String, _ fallback: String) -> URL {
            env[name].flatMap { URL(string: $0.trimmingCharacters(in: .whitespaces)) } ?? URL(string: fallback)!
        }
        self.variant = variant ?? env[Self.variantVariable].flatMap { $0.isEmpty ? nil : LlamaVariant(rawValue: $0) } ?? .auto
        platform = .current
        release = .pinned
        mirrors = env[Self.mirrorsVariable].map {
            $0.split(separator: ",").compactMap { URL(string: $0.trimmingCharacters(in: .whitespaces)) }
        }.flatMap { $0.isEmpty ? nil : $0 } ?? [Self.githubReleases]
        githubURL = url(Self.githubVariable, "https://github.com")
        pypiURL = url(Self.pypiVariable, env["PIP_INDEX_URL"] ?? "https://pypi.org/simple")
        cacheDirectory = Self.defaultCacheDirectory(environment: env)
        bundleDirectory = env[Self.bundleVariable].map { URL(fileURLWithPath: $0) }
        offline = env[Self.offlineVariable] == "1"
        requirePinnedDigests = env[Self.strictDigestsVariable] == "1"
        buildFromSource = env[Self.buildFromSourceVariable].flatMap(BuildFromSource.init(rawValue:)) ?? .fallback
        buildLayout = env[Self.buildLayoutVariable].flatMap(BuildLayout.init(rawValue:)) ?? .native
        buildJobs = ProcessInfo.processInfo.activeProcessorCount
        connectTimeout = .seconds(15)
        idleTimeout = .seconds(30)
        retries = 3
        retryDelay = .milliseconds(500)
        logger = Logger(label: "swift-llama-cpp")
        probe = LlamaHardwareProbe()
        helper = env[LlamaHelper.environmentVariable].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
    }

    /// `LLAMA_SWIFT_CACHE`, else `$XDG_CACHE_HOME/swift-llama-cpp` or `~/.cache/swift-llama-cpp`.
    public static func defaultCacheDirectory(environment env: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let explicit = env[cacheVariable], !explicit.isEmpty { return URL(fileURLWithPath: explicit) }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("swift-llama-cpp")
    }
}

/// What a long provisioning step has done so far.
public struct LlamaProgress: Sendable, Equatable {
    /// What is being done.
    public enum Phase: String, Sendable {
        /// The steps of an installation: downloading, verifying digests, unpacking, building from source, waiting for another process's lock, and loading.
        case download, verify, extract, build, waitForLock, load
    }
    /// What is being done.
    public var phase: Phase
    /// The asset, file or build step concerned.
    public var item: String
    /// Bytes (download), or percent (build), done so far.
    public var completed: Int64
    /// The total, when known.
    public var total: Int64?
    /// Bytes per second since the step started (downloads).
    public var rate: Double?

    /// A progress report; every parameter is the property of the same name.
    public init(phase: Phase, item: String, completed: Int64, total: Int64?, rate: Double? = nil) {
        self.phase = phase
        self.item = item
        self.completed = completed
        self.total = total
        self.rate = rate
    }
}

/// Receives progress; called from any thread, often, so it should be quick.
public typealias LlamaProgressHandler = @Sendable (LlamaProgress) -> Void
