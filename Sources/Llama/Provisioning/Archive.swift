import CZlib
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Unpacks release archives (`.tar.gz`, `.zip`) without trusting them: every path must stay
/// inside the target folder (no absolute paths, no `..`, nothing written through a link), and
/// every link must point inside it. The first offending entry stops the extraction with
/// `.unsafeArchive`; callers extract into a staging folder and discard it on error.
enum SafeArchive {
    static func extract(_ archive: URL, into target: URL) throws(LlamaError) {
        let name = archive.lastPathComponent
        if name.hasSuffix(".zip") || name.hasSuffix(".whl") {
            try extractZip(archive, into: target)
        } else if name.hasSuffix(".tar.gz") || name.hasSuffix(".tgz") {
            let tar = target.appendingPathComponent(".\(UUID().uuidString).tar")
            defer { try? FileManager.default.removeItem(at: tar) }
            try gunzip(archive, to: tar)
            try extractTar(tar, into: target, archiveName: name)
        } else if name.hasSuffix(".tar") {
            try extractTar(archive, into: target, archiveName: name)
        } else {
            throw LlamaError(.unsafeArchive, "\(name) is not a .tar.gz, .zip or .whl archive")
        }
    }

    // MARK: gzip

    static func gunzip(_ source: URL, to destination: URL) throws(LlamaError) {
        guard let input = FileHandle(forReadingAtPath: source.path) else {
            throw LlamaError(.cacheFailed, "cannot read \(source.path)")
        }
        defer { try? input.close() }
        guard FileManager.default.createFile(atPath: destination.path, contents: nil),
              let output = FileHandle(forWritingAtPath: destination.path) else {
            throw LlamaError(.cacheFailed, "cannot write \(destination.path)")
        }
        defer { try? output.close() }
        var inflater = try Inflater(windowBits: 15 + 32)  // zlib or gzip header, detected
        while let chunk = try? input.read(upToCount: 1 << 20), !chunk.isEmpty {
            try inflater.feed(chunk, name: source.lastPathComponent) { try? output.write(contentsOf: $0) }
        }
        guard inflater.finished else {
            throw LlamaError(.unsafeArchive, "\(source.lastPathComponent) is truncated: the compressed stream ends early")
        }
    }

    /// A zlib inflate stream. The z_stream lives at a fixed address: zlib keeps a pointer to it.
    struct Inflater: ~Copyable {
        private let stream: UnsafeMutablePointer<z_stream>
        private(set) var finished = false

        init(windowBits: Int32) throws(LlamaError) {
            stream = .allocate(capacity: 1)
            stream.initialize(to: z_stream())
            let status = inflateInit2_(stream, windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
            guard status == Z_OK else {
                stream.deallocate()
                throw LlamaError(.unsafeArchive, "zlib could not start (status \(status))")
            }
        }

        deinit {
            inflateEnd(stream)
            stream.deallocate()
        }

        /// Inflates `data`, passing each piece of output to `sink`. Concatenated gzip members are read on.
        mutating func feed(_ data: Data, name: String, sink: (Data) -> Void) throws(LlamaError) {
            var output = [UInt8](repeating: 0, count: 1 << 18)
            var input = data
            while !input.isEmpty {
                if finished {
                    // Another member follows the end of the previous one.
                    inflateReset(stream)
                    finished = false
                }
                var consumed = 0
                var status: Int32 = Z_OK
                input.withUnsafeMutableBytes { (inBytes: UnsafeMutableRawBufferPointer) in
                    stream.pointee.next_in = inBytes.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.pointee.avail_in = uInt(inBytes.count)
                    repeat {
                        output.withUnsafeMutableBytes { outBytes in
                            stream.pointee.next_out = outBytes.baseAddress!.assumingMemoryBound(to: Bytef.self)
                            stream.pointee.avail_out = uInt(outBytes.count)
                            status = inflate(stream, Z_NO_FLUSH)
                            let produced = outBytes.count - Int(stream.pointee.avail_out)
                            if produced > 0 { sink(Data(outBytes.prefix(produced))) }
                        }
                    } while status == Z_OK && (stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0)
                    consumed = inBytes.count - Int(stream.pointee.avail_in)
                }
                switch status {
                case Z_STREAM_END: finished = true
                case Z_OK, Z_BUF_ERROR: break
                default:
                    throw LlamaError(.unsafeArchive, "\(name) is damaged: the compressed data does not inflate (zlib status \(status))")
                }
                input = input.dropFirst(consumed)
                if !finished && consumed == 0 { break }
            }
        }
    }

    // MARK: paths

    /// What an entry may be.
    enum Kind { case file(mode: mode_t), directory, symlink(String) }

    /// Checks an entry's path and creates it under `target`.
    static func place(_ rawPath: String, _ kind: Kind, in target: URL, archive: String,
                      write: (Int32) throws(LlamaError) -> Void) throws(LlamaError) {
        let components = try safeComponents(rawPath, archive: archive)
        guard !components.isEmpty else { return }  // "./"
        // Nothing may be written through a link: every existing parent must be a real folder.
        var dir = target
        for component in components.dropLast() {
            dir = dir.appendingPathComponent(component)
            if let status = PathStatus(dir.path) {
                guard status.kind == .directory else {
                    throw LlamaError(.unsafeArchive, "\(archive) is unsafe: \(rawPath) would be written through a link or file")
                }
            } else if mkdir(dir.path, 0o755) != 0 {
                throw LlamaError(.cacheFailed, "cannot create \(dir.path): \(String(cString: strerror(errno)))")
            }
        }
        let path = dir.appendingPathComponent(components.last!).path
        if let status = PathStatus(path), status.kind != .directory || !isDirectory(kind) {
            unlink(path)  // a later entry replaces an earlier one, as tar does; never follows a link
        }
        switch kind {
        case .directory:
            if mkdir(path, 0o755) != 0 && errno != EEXIST {
                throw LlamaError(.cacheFailed, "cannot create \(path): \(String(cString: strerror(errno)))")
            }
        case .symlink(let destination):
            guard !destination.hasPrefix("/"), !destination.isEmpty else {
                throw LlamaError(.unsafeArchive, "\(archive) is unsafe: the link \(rawPath) points to the absolute path \(destination)")
            }
            var resolved = Array(components.dropLast())
            for part in destination.split(separator: "/") {
                if part == "." || part.isEmpty { continue }
                if part == ".." {
                    guard !resolved.isEmpty else {
                        throw LlamaError(.unsafeArchive, "\(archive) is unsafe: the link \(rawPath) → \(destination) points outside the archive's folder")
                    }
                    resolved.removeLast()
                } else {
                    resolved.append(String(part))
                }
            }
            guard symlink(destination, path) == 0 else {
                throw LlamaError(.cacheFailed, "cannot create the link \(path): \(String(cString: strerror(errno)))")
            }
        case .file(let mode):
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode & 0o755 | 0o600)
            guard fd >= 0 else { throw LlamaError(.cacheFailed, "cannot create \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            try write(fd)
        }
    }

    private static func isDirectory(_ kind: Kind) -> Bool {
        if case .directory = kind { return true }
        return false
    }

    /// The components of an entry path, refusing absolute paths and `..`.
    static func safeComponents(_ path: String, archive: String) throws(LlamaError) -> [String] {
        let normalized = path.replacingOccurrences(of: "\\", with: "/")
        guard !normalized.hasPrefix("/"), !(normalized.count >= 2 && normalized.dropFirst().first == ":") else {
            throw LlamaError(.unsafeArchive, "\(archive) is unsafe: it holds the absolute path \(path)")
        }
        let parts = normalized.split(separator: "/").map(String.init).filter { $0 != "." && !$0.isEmpty }
        guard !parts.contains("..") else {
            throw LlamaError(.unsafeArchive, "\(archive) is unsafe: the path \(path) leaves the archive's folder")
        }
        return parts
    }

    static func writeAll(_ fd: Int32, _ data: Data, path: String) throws(LlamaError) {
        let failed: Int32? = data.withUnsafeBytes { bytes in
            var written = 0
            while written < bytes.count {
                let n = systemWrite(fd, bytes.baseAddress! + written, bytes.count - written)
                guard n > 0 else { return errno }
                written += n
            }
            return nil
        }
        if let failed { throw LlamaError(.cacheFailed, "cannot write \(path): \(String(cString: strerror(failed)))") }
    }

    // MARK: tar

    static func extractTar(_ tar: URL, into target: URL, archiveName: String) throws(LlamaError) {
        guard let handle = FileHandle(forReadingAtPath: tar.path) else {
            throw LlamaError(.cacheFailed, "cannot read \(tar.path)")
        }
        defer { try? handle.close() }
        func read(_ count: Int) throws(LlamaError) -> Data {
            let data = (try? handle.read(upToCount: count)) ?? Data()
            guard data.count == count else {
                throw LlamaError(.unsafeArchive, "\(archiveName) is truncated: a tar entry ends early")
            }
            return data
        }
        var longName: String?, longLink: String?
        var paxPath: String?, paxLink: String?
        while true {
            let header = (try? handle.read(upToCount: 512)) ?? Data()
            if header.count < 512 || header.allSatisfy({ $0 == 0 }) { break }
            let bytes = [UInt8](header)
            guard checksumValid(bytes) else {
                throw LlamaError(.unsafeArchive, "\(archiveName) is damaged: a tar header fails its checksum")
            }
            let size = Int(octal(bytes[124..<136]))
            let type = bytes[156]
            let padded = (size + 511) / 512 * 512
            var name = string(bytes[0..<100])
            let prefix = string(bytes[345..<500])
            if bytes[257..<262].elementsEqual(Array("ustar".utf8)), !prefix.isEmpty { name = prefix + "/" + name }
            var link = string(bytes[157..<257])
            let mode = mode_t(octal(bytes[100..<108]))
            switch type {
            case UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g"):
                let data = try read(padded).prefix(size)
                if type == UInt8(ascii: "L") { longName = string(data) }
                if type == UInt8(ascii: "K") { longLink = string(data) }
                if type == UInt8(ascii: "x") { (paxPath, paxLink) = pax(data) }
                continue
            default: break
            }
            name = paxPath ?? longName ?? name
            link = paxLink ?? longLink ?? link
            paxPath = nil; paxLink = nil; longName = nil; longLink = nil
            switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"):
                try place(name, .file(mode: mode), in: target, archive: archiveName) { (fd: Int32) throws(LlamaError) in
                    var left = size
                    while left > 0 {
                        let chunk = try read(min(left, 1 << 20))
                        try writeAll(fd, chunk, path: name)
                        left -= chunk.count
                    }
                }
                if padded > size { _ = try read(padded - size) }
            case UInt8(ascii: "5"):
                try place(name, .directory, in: target, archive: archiveName) { _ in }
            case UInt8(ascii: "2"):
                try place(name, .symlink(link), in: target, archive: archiveName) { _ in }
            case UInt8(ascii: "1"):
                throw LlamaError(.unsafeArchive, "\(archiveName) holds a hard link (\(name) → \(link)), which release archives do not use")
            default:
                throw LlamaError(.unsafeArchive, "\(archiveName) holds \(name), an entry of tar type '\(Character(UnicodeScalar(type)))' (device, FIFO...), which release archives do not use")
            }
        }
    }

    private static func string<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
    }

    private static func octal(_ bytes: ArraySlice<UInt8>) -> Int64 {
        if let first = bytes.first, first & 0x80 != 0 {  // base-256, for large sizes
            return bytes.dropFirst().reduce(Int64(first & 0x7F)) { $0 << 8 | Int64($1) }
        }
        let text = string(bytes).trimmingCharacters(in: .whitespaces)
        return Int64(text, radix: 8) ?? 0
    }

    private static func checksumValid(_ bytes: [UInt8]) -> Bool {
        let stored = octal(bytes[148..<156])
        let sum = bytes.enumerated().reduce(Int64(0)) { $0 + Int64((148..<156).contains($1.offset) ? 32 : $1.element) }
        return stored == sum
    }

    /// The path and linkpath records of a pax extended header.
    private static func pax(_ data: Data) -> (String?, String?) {
        var path: String?, link: String?
        var rest = [UInt8](data)[...]
        // Records are "<length> <key>=<value>\n", the length counting the whole record.
        while let space = rest.firstIndex(of: UInt8(ascii: " ")),
              let length = Int(String(decoding: rest[rest.startIndex..<space], as: UTF8.self)),
              length > 0, length <= rest.count {
            let record = rest.prefix(length)
            rest = rest.dropFirst(length)
            let body = record[(space + 1)...].dropLast()
            guard let eq = body.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = String(decoding: body[body.startIndex..<eq], as: UTF8.self)
            let value = String(decoding: body[(eq + 1)...], as: UTF8.self)
            if key == "path" { path = value }
            if key == "linkpath" { link = value }
        }
        return (path, link)
    }

    // MARK: zip

    static func extractZip(_ zip: URL, into target: URL) throws(LlamaError) {
        let name = zip.lastPathComponent
        guard let data = try? Data(contentsOf: zip, options: .alwaysMapped) else {
            throw LlamaError(.cacheFailed, "cannot read \(zip.path)")
        }
        let bytes = [UInt8](data)
        func u16(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 }
        func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
        // The end-of-central-directory record: within the last 64 KiB + 22 bytes.
        var eocd = -1
        var i = bytes.count - 22
        while i >= max(0, bytes.count - 65_557) {
            if u32(i) == 0x0605_4b50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw LlamaError(.unsafeArchive, "\(name) is not a zip archive, or is truncated") }
        let count = u16(eocd + 10)
        var entry = u32(eocd + 16)
        for _ in 0..<count {
            guard entry + 46 <= bytes.count, u32(entry) == 0x0201_4b50 else {
                throw LlamaError(.unsafeArchive, "\(name) is damaged: its central directory is broken")
            }
            let method = u16(entry + 10)
            let compressed = u32(entry + 20), size = u32(entry + 24)
            let nameLength = u16(entry + 28), extraLength = u16(entry + 30), commentLength = u16(entry + 32)
            let unixMode = mode_t(u32(entry + 38) >> 16)
            let local = u32(entry + 42)
            guard entry + 46 + nameLength <= bytes.count, compressed != 0xFFFF_FFFF, local + 30 <= bytes.count else {
                throw LlamaError(.unsafeArchive, "\(name) is damaged or uses zip64, which is not supported")
            }
            let path = String(decoding: bytes[(entry + 46)..<(entry + 46 + nameLength)], as: UTF8.self)
            entry += 46 + nameLength + extraLength + commentLength
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            guard start + compressed <= bytes.count else { throw LlamaError(.unsafeArchive, "\(name) is truncated at \(path)") }
            let raw = Data(bytes[start..<(start + compressed)])
            var content = Data()
            switch method {
            case 0: content = raw
            case 8:
                var inflater = try Inflater(windowBits: -15)
                        try inflater.feed(raw, name: name) { content.append($0) }
            default:
                throw LlamaError(.unsafeArchive, "\(name) stores \(path) with compression method \(method), which is not supported")
            }
            guard content.count == size else { throw LlamaError(.unsafeArchive, "\(name) is damaged at \(path)") }
            if path.hasSuffix("/") {
                try place(path, .directory, in: target, archive: name) { _ in }
            } else if unixMode & S_IFMT == S_IFLNK {
                try place(path, .symlink(String(decoding: content, as: UTF8.self)), in: target, archive: name) { _ in }
            } else {
                try place(path, .file(mode: unixMode == 0 ? 0o644 : unixMode & 0o777), in: target, archive: name) { (fd: Int32) throws(LlamaError) in
                    try writeAll(fd, content, path: path)
                }
            }
        }
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#else
private let systemWrite = Darwin.write
#endif
