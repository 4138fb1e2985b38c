public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An installed llama.cpp release: one platform and variant of one tag, in the cache or a bundle.
/// Its record (`install.json`) is written before the folder is renamed into place, so a folder
/// with a record is complete.
public struct LlamaInstallation: Codable, Sendable, Equatable {
    /// Where an installation came from.
    public enum Origin: String, Codable, Sendable {
        /// Release assets, downloaded and verified.
        case download
        /// Built from the pinned source on this machine.
        case build
    }
    /// A downloaded archive and the digest it was checked against.
    public struct Asset: Codable, Sendable, Equatable {
        /// The asset's file name.
        public var name: String
        /// Its sha256, as checked.
        public var sha256: String
        /// Where it came from.
        public var url: String
        /// Whether the manifest pinned the digest (otherwise it was recorded on first download).
        public var pinned: Bool
    }

    /// How a source build was made: what decides whether it is still up to date.
    public struct Build: Codable, Sendable, Equatable {
        /// The cmake flags it was configured with.
        public var flags: [String]
        /// The source archive and its sha256.
        public var source: String
        /// The sha256 of the source archive.
        public var sourceSHA256: String

        /// A build record; every parameter is the property of the same name.
        public init(flags: [String], source: String, sourceSHA256: String) {
            self.flags = flags
            self.source = source
            self.sourceSHA256 = sourceSHA256
        }
    }

    /// The llama.cpp tag.
    public var tag: String
    /// The platform it runs on.
    public var platform: LlamaPlatform
    /// The build.
    public var variant: LlamaVariant
    /// Downloaded or built here.
    public var origin: Origin
    /// The archives it was unpacked from (none for a source build).
    public var assets: [Asset]
    /// Every file of the release folder (relative path) with its sha256; links as `-> target`.
    public var files: [String: String]
    /// When it was installed.
    public var installedAt: Date
    /// For a source build (`origin == .build`), how it was made.
    public var build: Build? = nil

    /// The release folder (`.../llama-<tag>`) holding the libraries; set when read from disk.
    public internal(set) var directory: URL? = nil

    enum CodingKeys: String, CodingKey { case tag, platform, variant, origin, assets, files, installedAt, build }

    static let recordName = "install.json"

    /// The record of an entry folder, or nil when there is none (not installed, or interrupted).
    static func read(entry: URL) -> LlamaInstallation? {
        guard let data = try? Data(contentsOf: entry.appendingPathComponent(recordName)),
              var record = try? decoder.decode(LlamaInstallation.self, from: data) else { return nil }
        record.directory = entry.appendingPathComponent("llama-\(record.tag)")
        return record
    }

    func write(entry: URL) throws(LlamaError) {
        do {
            try encoder.encode(self).write(to: entry.appendingPathComponent(Self.recordName), options: .atomic)
        } catch {
            throw LlamaError(.cacheFailed, "cannot write the install record in \(entry.path): \(error.localizedDescription)")
        }
    }

    /// Files whose digest differs from the record, or that are missing.
    public func damagedFiles() -> [String] {
        guard let directory else { return Array(files.keys).sorted() }
        let current = (try? Self.digests(of: directory)) ?? [:]
        return files.keys.filter { current[$0] != files[$0] }.sorted() + current.keys.filter { files[$0] == nil }.sorted()
    }

    /// The sha256 of every file under `folder` (links recorded by their target, not followed).
    static func digests(of folder: URL) throws(LlamaError) -> [String: String] {
        var out: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: folder.path) else {
            throw LlamaError(.cacheFailed, "cannot read \(folder.path)")
        }
        while let relative = walker.nextObject() as? String {
            let path = folder.appendingPathComponent(relative)
            guard let status = PathStatus(path.path) else { continue }
            switch status.kind {
            case .link:
                out[relative] = "-> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: path.path)) ?? "?")
            case .regular:
                guard let digest = Downloader.sha256(of: path) else {
                    throw LlamaError(.cacheFailed, "cannot read \(path.path)")
                }
                out[relative] = digest
            default: continue
            }
        }
        return out
    }
}

let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    e.dateEncodingStrategy = .iso8601
    return e
}()

let decoder: JSONDecoder = {
    let d = JSONDecoder()
    d.dateDecodingStrategy = .iso8601
    return d
}()

/// An exclusive lock between processes (flock on a file), held until released or the process ends.
final class FileLock: Sendable {
    private let fd: Int32

    /// Waits for the lock, polling so that the wait can be cancelled; `waiting` is called once if
    /// another process holds it.
    static func acquire(_ url: URL, waiting: @Sendable () -> Void) async throws(LlamaError) -> FileLock {
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = open(url.path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw LlamaError(.cacheFailed, "cannot open the lock \(url.path): \(String(cString: strerror(errno)))") }
        var told = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if !told { waiting(); told = true }
            do { try await Task.sleep(for: .milliseconds(50)) } catch {
                close(fd)
                throw LlamaError(.cancelled, "cancelled while waiting for another process installing into \(url.deletingLastPathComponent().path)")
            }
        }
        return FileLock(fd: fd)
    }

    private init(fd: Int32) { self.fd = fd }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
