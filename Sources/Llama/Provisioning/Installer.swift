public import Foundation
import Logging
import Synchronization

/// Installs llama.cpp releases into the cache and manages it: download (or build) → verify →
/// unpack into a staging folder → rename into place, under a lock shared with other processes.
///
/// The cache holds `<root>/llama.cpp/<tag>/<platform>-<variant>/llama-<tag>/` with its
/// `install.json` (a source build is one such entry, `origin: build`), the digests recorded for
/// unpinned assets (`<tag>/digests.json`), the variants `.auto` chose (`<tag>/choices.json`), the
/// source tree of a build with its archive (`<tag>/source/`) and, while a download is under way,
/// its `.part` file in `<tag>/downloads/` (kept for resuming). The model store is beside it
/// (`<root>/models`, see ``LlamaModelStore``).
public struct LlamaInstaller: Sendable {
    /// Where and how it installs.
    public var options: LlamaInstallOptions

    /// An installer with these options (by default from the environment).
    public init(options: LlamaInstallOptions = LlamaInstallOptions()) {
        self.options = options
    }

    var tag: String { options.release.tag }
    /// `<cache>/llama.cpp`.
    public var root: URL { options.cacheDirectory.appendingPathComponent("llama.cpp") }
    var tagFolder: URL { root.appendingPathComponent(tag) }
    var downloads: URL { tagFolder.appendingPathComponent("downloads") }
    /// The entry folder of the options' platform and variant.
    public var entry: URL { tagFolder.appendingPathComponent("\(options.platform)-\(options.variant.rawValue)") }

    /// The installation of the options' tag, platform and variant, if complete in the cache.
    public func installed() -> LlamaInstallation? {
        guard let record = LlamaInstallation.read(entry: entry), let dir = record.directory,
              FileManager.default.fileExists(atPath: dir.path) else { return nil }
        return record
    }

    /// For `.auto` or a family: `work` done by an installer of the variant the hardware calls for,
    /// and that choice recorded (what `libs path` and `.auto` later find); nil when the options name
    /// one build.
    private func onHardwareChoice(
        _ work: (LlamaInstaller) async throws(LlamaError) -> LlamaInstallation
    ) async throws(LlamaError) -> LlamaInstallation? {
        guard LlamaVariantSelection.choosesFromHardware(options.variant, release: options.release, platform: options.platform)
        else { return nil }
        let plan = LlamaVariantSelection.plan(options.variant, hardware: await options.probe.run(),
                                              release: options.release, platform: options.platform)
        guard let preferred = plan.preferred else {
            throw LlamaError(.noAsset, "no llama.cpp build of \(options.variant) fits this machine:\n\(plan.summary)")
        }
        var o = options
        o.variant = preferred
        let installation = try await work(LlamaInstaller(options: o))
        recordChoice(preferred)
        return installation
    }

    /// Installs the options' release variant unless it is cached, and returns it.
    ///
    /// Offline, only the cache is used. Two processes installing the same entry at once download
    /// it once: the second waits for the first and then finds it installed.
    public func install(progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> LlamaInstallation {
        // `.auto` or a family: the build the hardware calls for (not verified here; LlamaRuntime.load does).
        if let chosen = try await onHardwareChoice({ (installer) async throws(LlamaError) in try await installer.install(progress: progress) }) {
            return chosen
        }
        if let done = installed() { return done }
        guard !options.offline else {
            throw LlamaError(.offline, "offline mode, and llama.cpp \(tag) for \(options.platform) (\(options.variant)) is not in the cache "
                + "(\(entry.path)). Install it once with network (`llama-swift libs install --variant \(options.variant)`), "
                + "point \(LlamaRuntime.libraryDirectoryVariable) to an unpacked release, or use a bundle "
                + "(\(LlamaInstallOptions.bundleVariable)).")
        }
        let lockFile = tagFolder.appendingPathComponent(".\(entry.lastPathComponent).lock")
        let logger = options.logger, entryName = entry.lastPathComponent
        let lock = try await FileLock.acquire(lockFile) {
            logger.info("another process is installing llama.cpp \(entryName); waiting for it")
            progress?(LlamaProgress(phase: .waitForLock, item: entryName, completed: 0, total: nil))
        }
        defer { withExtendedLifetime(lock) {} }
        if let done = installed() { return done }

        let releaseEntry = options.release.entry(for: options.platform, variant: options.variant)
        if options.buildFromSource == .always {
            return try await buildLocked(progress: progress)
        }
        guard let releaseEntry else {
            let available = options.release.variants(for: options.platform).map(\.rawValue)
            let why = "llama.cpp \(tag) has no release asset for \(options.platform) (\(options.variant))"
                + (available.isEmpty ? "" : "; released variants: \(available.joined(separator: ", "))")
            if options.buildFromSource == .fallback, LlamaSourceBuild.toolsPresent() {
                options.logger.warning("\(why); building it from source")
                return try await buildLocked(progress: progress)
            }
            throw LlamaError(.noAsset, why + ". Choose a released variant, or install cmake and a C++ compiler to build it from source.")
        }
        do {
            return try await download(releaseEntry, progress: progress)
        } catch {
            guard [.downloadFailed, .timeout].contains(error.code), options.buildFromSource == .fallback,
                  LlamaSourceBuild.toolsPresent() else { throw error }
            options.logger.warning("\(error.message) Building llama.cpp \(tag) from source instead.")
            return try await buildLocked(progress: progress)
        }
    }

    // MARK: download

    private func download(_ releaseEntry: LlamaRelease.Entry, progress: LlamaProgressHandler?) async throws(LlamaError) -> LlamaInstallation {
        let expected = try releaseEntry.assets.map { asset throws(LlamaError) in (asset, try expectedDigest(for: asset)) }
        try makeFolder(downloads)
        let fetched = try await Downloader.with(options, progress: progress) { (d: Downloader) async throws(LlamaError) -> [(LlamaReleaseAsset, Downloader.Fetched)] in
            do {
                return try await withThrowingTaskGroup(of: (Int, Downloader.Fetched).self) { group in
                    for (i, (asset, digest)) in expected.enumerated() {
                        let urls = options.mirrors.map { $0.appendingPathComponent(tag).appendingPathComponent(asset.name) }
                        let target = downloads.appendingPathComponent(asset.name)
                        group.addTask { (i, try await d.fetch(asset.name, from: urls, to: target, expectedSHA256: digest)) }
                    }
                    var results = [Downloader.Fetched?](repeating: nil, count: expected.count)
                    for try await (i, f) in group { results[i] = f }
                    return zip(expected.map(\.0), results.map { $0! }).map { ($0, $1) }
                }
            } catch let error as LlamaError {
                throw error
            } catch {
                throw LlamaError(.downloadFailed, "\(error)")
            }
        }
        let archives = fetched.map { downloads.appendingPathComponent($0.0.name) }
        defer { for a in archives { try? FileManager.default.removeItem(at: a) } }
        for (asset, f) in fetched where asset.sha256 == nil {
            try recordDigest(f.sha256, for: asset.name)
        }
        let assets = fetched.map { LlamaInstallation.Asset(name: $0.0.name, sha256: $0.1.sha256, url: $0.1.url.absoluteString,
                                                            pinned: $0.0.sha256 != nil) }
        return try await commit(origin: .download, assets: assets, progress: progress) { (release: URL) throws(LlamaError) in
            for archive in archives { try Self.unpack(archive, into: release, progress: progress) }
        }
    }

    /// The digest a download must have: pinned, else recorded by an earlier download, else none
    /// (refused in strict mode).
    func expectedDigest(for asset: LlamaReleaseAsset) throws(LlamaError) -> String? {
        if let pinned = asset.sha256 { return pinned }
        if let recorded = recordedDigests()[asset.name] { return recorded }
        guard !options.requirePinnedDigests else {
            throw LlamaError(.unpinnedDigest, "\(asset.name) has no pinned sha256 in the manifest of llama.cpp \(tag), and strict "
                + "digest checking is on (\(LlamaInstallOptions.strictDigestsVariable)=1 or requirePinnedDigests). "
                + "Run `make bump TAG=\(tag)` where GitHub's API is reachable to pin it, or turn strict mode off.")
        }
        return nil
    }

    private var digestsFile: URL { tagFolder.appendingPathComponent("digests.json") }

    /// The digests recorded on first download of assets that the manifest does not pin.
    public func recordedDigests() -> [String: String] {
        guard let data = try? Data(contentsOf: digestsFile) else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: data)) ?? [:]
    }

    private static let warned = Mutex(Set<String>())

    func recordDigest(_ digest: String, for name: String) throws(LlamaError) {
        var all = recordedDigests()
        guard all[name] == nil else { return }
        all[name] = digest
        do {
            try encoder.encode(all).write(to: digestsFile, options: .atomic)
        } catch {
            throw LlamaError(.cacheFailed, "cannot record the digest of \(name) in \(digestsFile.path): \(error.localizedDescription)")
        }
        if Self.warned.withLock({ $0.insert(name).inserted }) {
            options.logger.warning("\(name) has no pinned sha256; recorded \(digest) in \(digestsFile.path), and later downloads must match it")
        }
    }

    // MARK: staging

    /// Builds an entry in a staging folder (`fill` receives its release folder), writes its record
    /// and renames it into place. On any error the staging folder is removed.
    func commit(origin: LlamaInstallation.Origin, assets: [LlamaInstallation.Asset], build: LlamaInstallation.Build? = nil,
                progress: LlamaProgressHandler?,
                fill: (URL) async throws(LlamaError) -> Void) async throws(LlamaError) -> LlamaInstallation {
        let staging = tagFolder.appendingPathComponent(".staging-\(UUID().uuidString)")
        let release = staging.appendingPathComponent("llama-\(tag)")
        defer { try? FileManager.default.removeItem(at: staging) }
        try makeFolder(release)
        try await fill(release)
        progress?(LlamaProgress(phase: .verify, item: entry.lastPathComponent, completed: 0, total: nil))
        var record = LlamaInstallation(tag: tag, platform: options.platform, variant: options.variant, origin: origin,
                                       assets: assets, files: try LlamaInstallation.digests(of: release), installedAt: Date(),
                                       build: build)
        try record.write(entry: staging)
        try Self.replace(entry, with: staging)
        record.directory = entry.appendingPathComponent("llama-\(tag)")
        options.logger.info("installed llama.cpp \(tag) \(options.variant) for \(options.platform) in \(entry.path)")
        return record
    }

    /// Unpacks an archive into the release folder: the contents of its single top folder when it
    /// has one (the release archives' `llama-<tag>/`), else its files.
    static func unpack(_ archive: URL, into release: URL, progress: LlamaProgressHandler?) throws(LlamaError) {
        progress?(LlamaProgress(phase: .extract, item: archive.lastPathComponent, completed: 0, total: nil))
        let scratch = release.deletingLastPathComponent().appendingPathComponent(".unpack-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        try makeFolder(scratch)
        try SafeArchive.extract(archive, into: scratch)
        let fm = FileManager.default
        var top = scratch
        let items = (try? fm.contentsOfDirectory(atPath: scratch.path)) ?? []
        if items.count == 1, (try? fm.destinationOfSymbolicLink(atPath: scratch.appendingPathComponent(items[0]).path)) == nil {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: scratch.appendingPathComponent(items[0]).path, isDirectory: &isDir), isDir.boolValue {
                top = scratch.appendingPathComponent(items[0])
            }
        }
        for item in (try? fm.contentsOfDirectory(atPath: top.path)) ?? [] {
            let to = release.appendingPathComponent(item)
            try? fm.removeItem(at: to)
            do { try fm.moveItem(at: top.appendingPathComponent(item), to: to) } catch {
                throw LlamaError(.cacheFailed, "cannot move \(item) into \(release.path): \(error.localizedDescription)")
            }
        }
        progress?(LlamaProgress(phase: .extract, item: archive.lastPathComponent, completed: 1, total: 1))
    }

    /// Puts `staging` at `target`, replacing what was there; the old folder is renamed away first
    /// so that `target` is never half-written.
    static func replace(_ target: URL, with staging: URL) throws(LlamaError) {
        let fm = FileManager.default
        let trash = target.deletingLastPathComponent().appendingPathComponent(".trash-\(UUID().uuidString)")
        if fm.fileExists(atPath: target.path) { try? fm.moveItem(at: target, to: trash) }
        defer { try? fm.removeItem(at: trash) }
        guard rename(staging.path, target.path) == 0 else {
            throw LlamaError(.cacheFailed, "cannot move \(staging.path) to \(target.path): \(String(cString: strerror(errno)))")
        }
    }

    static func makeFolder(_ url: URL) throws(LlamaError) {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw LlamaError(.cacheFailed, "cannot create \(url.path): \(error.localizedDescription)")
        }
    }
    private func makeFolder(_ url: URL) throws(LlamaError) { try Self.makeFolder(url) }

    // MARK: build

    /// Builds the options' variant from the pinned source (the cached source tree, fetched when
    /// absent) into the cache, whatever the release has, configured as `options.buildLayout` says.
    /// `.auto` or a family builds the variant the hardware calls for.
    ///
    /// Unless `force`, an entry that is already a build of the same source with the same flags is
    /// returned as it is: a warm cache makes this a no-op.
    public func build(force: Bool = false, progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> LlamaInstallation {
        if let chosen = try await onHardwareChoice({ (installer) async throws(LlamaError) in
            try await installer.build(force: force, progress: progress)
        }) {
            return chosen
        }
        if !force, let done = upToDateBuild() { return done }
        let lockFile = tagFolder.appendingPathComponent(".\(entry.lastPathComponent).lock")
        let entryName = entry.lastPathComponent, logger = options.logger
        let lock = try await FileLock.acquire(lockFile) {
            logger.info("another process is installing llama.cpp \(entryName); waiting for it")
            progress?(LlamaProgress(phase: .waitForLock, item: entryName, completed: 0, total: nil))
        }
        defer { withExtendedLifetime(lock) {} }
        if !force, let done = upToDateBuild() { return done }
        return try await buildLocked(progress: progress)
    }

    /// The flags a source build of the options' variant is configured with.
    public var buildFlags: [String] { LlamaSourceBuild.flags(options.buildLayout, variant: options.variant) }

    /// The installed entry, when it is a build of the cached source with `buildFlags`.
    private func upToDateBuild() -> LlamaInstallation? {
        guard let done = installed(), done.origin == .build, let made = done.build, made.flags == buildFlags,
              let source = cachedSource(), source.sha256 == made.sourceSHA256 else { return nil }
        return done
    }

    /// Builds with the entry's lock held.
    private func buildLocked(progress: LlamaProgressHandler?) async throws(LlamaError) -> LlamaInstallation {
        guard LlamaSourceBuild.toolsPresent() else {
            throw LlamaError(.buildFailed, "building llama.cpp from source needs cmake and a C++ compiler on the PATH "
                + "(Debian/Ubuntu: apt-get install cmake g++; macOS: xcode-select --install and brew install cmake)")
        }
        let tree = try await source(progress: progress)
        let flags = buildFlags
        let asset = LlamaInstallation.Asset(name: tree.file, sha256: tree.sha256, url: tree.url, pinned: tree.pinned)
        let made = LlamaInstallation.Build(flags: flags, source: tree.file, sourceSHA256: tree.sha256)
        let builder = LlamaSourceBuild(installer: self)
        return try await commit(origin: .build, assets: [asset], build: made, progress: progress) { (release: URL) throws(LlamaError) in
            try await builder.build(tree: tree.root, flags: flags, into: release, progress: progress)
        }
    }

    // MARK: what `.auto` chose

    private var choicesFile: URL { tagFolder.appendingPathComponent("choices.json") }

    /// Records that `variant` was chosen for the options' request (`.auto` or a family) on the
    /// options' platform, so that later lookups (`libs path`, `libs verify`) find that build.
    /// The runtime records what it loaded; failing to record only costs a later lookup a probe.
    public func recordChoice(_ variant: LlamaVariant) {
        guard variant != options.variant else { return }
        var all = recordedChoices()
        let key = "\(options.platform)-\(options.variant.rawValue)"
        guard all[key] != variant.rawValue else { return }
        all[key] = variant.rawValue
        do {
            try LlamaInstaller.makeFolder(tagFolder)
            try encoder.encode(all).write(to: choicesFile, options: .atomic)
        } catch {
            options.logger.info("cannot record the choice of \(variant) in \(choicesFile.path): \(error)")
        }
    }

    /// The variant last chosen for the options' request on the options' platform, if recorded.
    public func recordedChoice() -> LlamaVariant? {
        recordedChoices()["\(options.platform)-\(options.variant.rawValue)"].map(LlamaVariant.init(rawValue:))
    }

    private func recordedChoices() -> [String: String] {
        guard let data = try? Data(contentsOf: choicesFile) else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: data)) ?? [:]
    }

    /// The installation the options name, if it is in the cache. For `.auto` or a family (chosen
    /// from the hardware), that is the variant recorded as chosen when it is installed, else the
    /// first candidate of the hardware plan that is installed — the build `LlamaRuntime.load`
    /// would use.
    public func resolveInstalled() async -> LlamaInstallation? {
        guard LlamaVariantSelection.choosesFromHardware(options.variant, release: options.release, platform: options.platform) else {
            return installed()
        }
        var o = options
        if let chosen = recordedChoice() {
            o.variant = chosen
            if let done = LlamaInstaller(options: o).installed() { return done }
        }
        let plan = LlamaVariantSelection.plan(options.variant, hardware: await options.probe.run(),
                                              release: options.release, platform: options.platform)
        for candidate in plan.candidates {
            o.variant = candidate.variant
            if let done = LlamaInstaller(options: o).installed() { return done }
        }
        return nil
    }

    // MARK: cache management

    /// Every complete installation in the cache, by tag then entry.
    public func list() -> [LlamaInstallation] {
        let fm = FileManager.default
        var out: [LlamaInstallation] = []
        for tag in ((try? fm.contentsOfDirectory(atPath: root.path)) ?? []).sorted() where !tag.hasPrefix(".") {
            let folder = root.appendingPathComponent(tag)
            for name in ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).sorted() where !name.hasPrefix(".") {
                if let record = LlamaInstallation.read(entry: folder.appendingPathComponent(name)) { out.append(record) }
            }
        }
        return out
    }

    /// Re-hashes every cached installation; returns each with its damaged or missing files (empty: intact).
    public func verify() -> [(installation: LlamaInstallation, damaged: [String])] {
        list().map { ($0, $0.damagedFiles()) }
    }

    /// Removes installations of other tags than `keep` (default: the options' tag), interrupted
    /// downloads and staging folders; with `digests`, the recorded digests too. Returns the paths removed.
    @discardableResult
    public func prune(keep: Set<String>? = nil, digests: Bool = false) throws(LlamaError) -> [String] {
        let keepTags = keep ?? [tag]
        let fm = FileManager.default
        var removed: [String] = []
        func remove(_ url: URL) throws(LlamaError) {
            do { try fm.removeItem(at: url) } catch {
                throw LlamaError(.cacheFailed, "cannot remove \(url.path): \(error.localizedDescription)")
            }
            removed.append(url.path)
        }
        for name in ((try? fm.contentsOfDirectory(atPath: root.path)) ?? []).sorted() {
            let folder = root.appendingPathComponent(name)
            if !keepTags.contains(name) {
                try remove(folder)
                continue
            }
            for item in ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).sorted() {
                let url = folder.appendingPathComponent(item)
                if item.hasPrefix(".staging-") || item.hasPrefix(".trash-") || item.hasPrefix(".unpack-") || item == "downloads"
                    || item.hasPrefix(".build-") || (digests && item == "digests.json") {
                    try remove(url)
                } else if !item.hasPrefix("."), !["digests.json", "choices.json", "source", "reference"].contains(item),
                          LlamaInstallation.read(entry: url) == nil {
                    try remove(url)  // an entry without its record is incomplete
                }
            }
        }
        return removed
    }
}
