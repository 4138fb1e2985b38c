public import Foundation

/// `headers/manifest.json`: the pin. Field names follow the JSON file.
public struct Manifest: Codable, Hashable, Sendable {
    public struct Source: Codable, Hashable, Sendable {
        /// Where an archive comes from: the kinds `LlamaPinnedSource.archives(forTag:)` names.
        public enum Kind: String, Codable, Hashable, Sendable {
            case githubTagArchive = "github-tag-archive"
            case pypiSdist = "pypi-sdist"
        }
        public var kind: Kind
        public var url: String?
        public var package: String?
        public var version: String?
        public var file: String
        public var root: String
        public var sha256: String?

        public init(kind: Kind, url: String? = nil, package: String? = nil, version: String? = nil, file: String,
                    root: String, sha256: String? = nil) {
            self.kind = kind
            self.url = url
            self.package = package
            self.version = version
            self.file = file
            self.root = root
            self.sha256 = sha256
        }
    }
    public struct Library: Codable, Hashable, Sendable {
        public var name: String
        /// The file name without extension; may end in `*` for a family (the CPU variants).
        public var file: String
        public var required: Bool
    }
    public struct Header: Codable, Hashable, Sendable {
        public var path: String
        public var sha256: String
        public var library: String

        public init(path: String, sha256: String, library: String) {
            self.path = path
            self.sha256 = sha256
            self.library = library
        }
    }
    public struct Asset: Codable, Hashable, Sendable {
        public struct Companion: Codable, Hashable, Sendable {
            public var name: String
            public var sha256: String?

            public init(name: String, sha256: String?) {
                self.name = name
                self.sha256 = sha256
            }
        }
        public var os: String
        public var arch: String
        public var variant: String
        public var name: String
        public var sha256: String?
        public var companions: [Companion]?

        public init(os: String, arch: String, variant: String, name: String, sha256: String?, companions: [Companion]?) {
            self.os = os
            self.arch = arch
            self.variant = variant
            self.name = name
            self.sha256 = sha256
            self.companions = companions
        }
    }
    public struct Release: Codable, Hashable, Sendable {
        /// The assets of tag T are at `<base_url>/<T>/<name>`.
        public var base_url: String
        public var assets: [Asset]

        public init(base_url: String, assets: [Asset]) {
            self.base_url = base_url
            self.assets = assets
        }
    }
    public struct Model: Codable, Hashable, Sendable {
        public struct PyPI: Codable, Hashable, Sendable {
            public var package: String
            public var version: String
            public var file: String
            public var sha256: String
            public var member: String
        }
        /// Where the Hugging Face Hub has the same file.
        public struct HuggingFace: Codable, Hashable, Sendable {
            public var repo: String
            public var revision: String
            public var file: String
        }
        public var name: String
        public var pypi: PyPI
        public var huggingface: HuggingFace?
        public var sha256: String
    }

    /// The cmake flags that build the shared libraries from the source (see `LlamaPinnedCMake`).
    public struct CMake: Codable, Hashable, Sendable {
        /// Flags of every build.
        public var flags: [String]
        /// Added for a build laid out like the official release archive.
        public var release_flags: [String]
        /// Added for a build tuned for the building machine's CPU.
        public var native_flags: [String]
        /// Added for a variant's backend, by variant name or family.
        public var variant_flags: [String: [String]]
    }

    public var schema: Int
    public var tag: String
    public var sources: [Source]
    public var libraries: [Library]
    public var headers: [Header]
    /// Functions that a header declares but another library exports: name → library.
    public var symbol_libraries: [String: String]
    public var release: Release
    public var model: Model
    public var cmake: CMake
    /// Earlier tags whose API listing is identical to this tag's: libraries of those versions
    /// may be loaded with these bindings. A bump with an empty API diff extends it.
    public var api_compatible_tags: [String]?

    public static func load(from url: URL) throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: url))
    }

    /// The manifest as JSON: sorted keys, two-space indentation, as committed.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(contentsOf: Array("\n".utf8))
        return data
    }
}
