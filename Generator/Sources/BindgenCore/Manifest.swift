public import Foundation

/// `headers/manifest.json`: the pin. Field names follow the JSON file.
public struct Manifest: Codable, Hashable, Sendable {
    public struct Source: Codable, Hashable, Sendable {
        public var kind: String
        public var url: String?
        public var package: String?
        public var version: String?
        public var file: String
        public var root: String
        public var sha256: String?
    }
    public struct Library: Codable, Hashable, Sendable {
        public var name: String
        /// The file name without extension; may end in `*` for a family (the CPU variants).
        public var file: String
        public var required: Bool
        /// Set when another library loads this one (ggml loads its CPU backend).
        public var loaded_by: String?
    }
    public struct Header: Codable, Hashable, Sendable {
        public var path: String
        public var sha256: String
        public var library: String
    }
    public struct Asset: Codable, Hashable, Sendable {
        public struct Companion: Codable, Hashable, Sendable {
            public var name: String
            public var sha256: String?
        }
        public var os: String
        public var arch: String
        public var variant: String
        public var name: String
        public var sha256: String?
        public var companions: [Companion]?
    }
    public struct Release: Codable, Hashable, Sendable {
        public var base_url: String
        public var assets: [Asset]
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

    public var schema: Int
    public var tag: String
    public var sources: [Source]
    public var libraries: [Library]
    public var headers: [Header]
    /// Functions that a header declares but another library exports: name → library.
    public var symbol_libraries: [String: String]
    public var release: Release
    public var model: Model
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

    /// The library that exports `function`, declared in `header`.
    public func library(of function: String, header: String) -> String? {
        symbol_libraries[function] ?? headers.first { $0.path == header }?.library
    }
}
