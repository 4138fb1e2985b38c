public import Foundation

/// A folder of verified llama.cpp libraries that an application ships with it, for machines
/// that should not download anything. `bundle.json` lists every file's sha256; the runtime
/// checks them before it loads from the bundle.
///
/// Layout: `<bundle>/bundle.json` and `<bundle>/<platform>-<variant>/llama-<tag>/...`.
public enum LlamaBundle {
    /// The name of a bundle's manifest file, at its top.
    public static let manifestName = "bundle.json"

    /// What a bundle holds: its tag and, per platform and variant, every file with its sha256.
    public struct Manifest: Codable, Sendable, Equatable {
        /// One build in the bundle.
        public struct Entry: Codable, Sendable, Equatable {
            /// The platform it runs on.
            public var platform: LlamaPlatform
            /// The build (cpu, cuda-12.8, vulkan...).
            public var variant: LlamaVariant
            /// The release folder, relative to the bundle.
            public var path: String
            /// Every file of the release folder with its sha256 (links as `-> target`).
            public var files: [String: String]
        }
        /// The llama.cpp tag of every build in the bundle.
        public var tag: String
        /// The builds in the bundle.
        public var entries: [Entry]
    }

    /// Copies the libraries of each platform and variant (installed into the cache first when
    /// needed, and verified there) into `folder`, which is replaced as a whole.
    @discardableResult
    public static func create(at folder: URL, targets: [(platform: LlamaPlatform, variant: LlamaVariant)],
                              options: LlamaInstallOptions = LlamaInstallOptions(),
                              progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> Manifest {
        let staging = folder.deletingLastPathComponent().appendingPathComponent(".\(folder.lastPathComponent).staging-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: staging) }
        var manifest = Manifest(tag: options.release.tag, entries: [])
        for target in targets {
            var o = options
            o.platform = target.platform
            o.variant = target.variant
            let installation = try await LlamaInstaller(options: o).install(progress: progress)
            let damaged = installation.damagedFiles()
            guard damaged.isEmpty, let source = installation.directory else {
                throw LlamaError(.checksumMismatch, "the cached llama.cpp \(o.release.tag) \(target.variant) for \(target.platform) is "
                    + "damaged (\(damaged.prefix(5).joined(separator: ", "))): run `llama-swift libs prune` and install it again")
            }
            let relative = "\(target.platform)-\(installation.variant.rawValue)/llama-\(o.release.tag)"
            let destination = staging.appendingPathComponent(relative)
            try LlamaInstaller.makeFolder(destination.deletingLastPathComponent())
            do { try FileManager.default.copyItem(at: source, to: destination) } catch {
                throw LlamaError(.cacheFailed, "cannot copy \(source.path) into the bundle: \(error.localizedDescription)")
            }
            manifest.entries.append(.init(platform: target.platform, variant: installation.variant, path: relative,
                                          files: installation.files))
        }
        do {
            try encoder.encode(manifest).write(to: staging.appendingPathComponent(manifestName))
        } catch {
            throw LlamaError(.cacheFailed, "cannot write the bundle manifest: \(error.localizedDescription)")
        }
        try LlamaInstaller.replace(folder, with: staging)
        return manifest
    }

    /// The release folder of `platform` and `variant` in a bundle, after checking every file's
    /// digest; nil when the bundle has no such entry or is of another tag.
    public static func locate(in folder: URL, tag: String, platform: LlamaPlatform = .current,
                              variant: LlamaVariant) throws(LlamaError) -> URL? {
        let file = folder.appendingPathComponent(manifestName)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw LlamaError(.fileNotFound, "\(folder.path) is not a llama.cpp bundle: it has no \(manifestName). "
                + "Make one with `llama-swift libs bundle`.")
        }
        let manifest: Manifest
        do { manifest = try decoder.decode(Manifest.self, from: Data(contentsOf: file)) } catch {
            throw LlamaError(.cacheFailed, "\(file.path) cannot be read: \(error.localizedDescription)")
        }
        guard manifest.tag == tag else { return nil }
        let candidates = manifest.entries.filter { $0.platform == platform }
        guard let entry = candidates.first(where: { $0.variant == variant })
            ?? candidates.first(where: { variant.version == nil && $0.variant.family == variant.rawValue }) else { return nil }
        let release = folder.appendingPathComponent(entry.path)
        let found = try LlamaInstallation.digests(of: release)
        let damaged = entry.files.keys.filter { found[$0] != entry.files[$0] }.sorted()
        guard damaged.isEmpty else {
            throw LlamaError(.checksumMismatch, "the bundle at \(folder.path) is damaged: \(damaged.prefix(5).joined(separator: ", ")) "
                + "\(damaged.count > 5 ? "and \(damaged.count - 5) more " : "")do not match \(manifestName). Rebuild the bundle.")
        }
        return release
    }
}
