import CZlib
public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Packs a release folder the way llama.cpp's release workflow packs its Linux and macOS
/// archives: a gzip-compressed tar whose only top folder is `llama-<tag>/`, holding the folder's
/// files with their modes, and links as links. A source build packed this way goes through the
/// same download, verify and unpack path as an official asset (the tests serve it on loopback).
public enum LlamaReleasePacker {
    /// The release asset name of a platform's CPU archive: `llama-<tag>-bin-ubuntu-x64.tar.gz`.
    public static func assetName(tag: String, platform: LlamaPlatform) -> String {
        let system = platform.os == "linux" ? "ubuntu" : platform.os
        return "llama-\(tag)-bin-\(system)-\(platform.arch).tar.gz"
    }

    /// Writes `archive` (through a `.part` file renamed when complete) from the release folder `folder`.
    /// Entries are sorted and carry no timestamps or owners, so the same files give the same bytes.
    public static func pack(_ folder: URL, tag: String, to archive: URL) throws(LlamaError) {
        let fm = FileManager.default
        try LlamaInstaller.makeFolder(archive.deletingLastPathComponent())
        let part = archive.appendingPathExtension("part")
        try? fm.removeItem(at: part)
        guard fm.createFile(atPath: part.path, contents: nil), let out = FileHandle(forWritingAtPath: part.path) else {
            throw LlamaError(.cacheFailed, "cannot write \(part.path)")
        }
        var closed = false
        defer {
            if !closed { try? out.close() }
            try? fm.removeItem(at: part)
        }
        var deflater = try Deflater()
        func emit(_ bytes: [UInt8]) throws(LlamaError) {
            try deflater.feed(bytes, finish: false) { (chunk: Data) throws(LlamaError) in try write(chunk) }
        }
        func write(_ chunk: Data) throws(LlamaError) {
            do { try out.write(contentsOf: chunk) } catch {
                throw LlamaError(.cacheFailed, "cannot write \(part.path): \(error.localizedDescription)")
            }
        }
        let top = "llama-\(tag)"
        try emit(try header(name: top + "/", mode: 0o755, size: 0, type: "5", link: ""))
        guard let walker = fm.enumerator(atPath: folder.path) else { throw LlamaError(.cacheFailed, "cannot read \(folder.path)") }
        var names: [String] = []
        while let relative = walker.nextObject() as? String { names.append(relative) }
        for relative in names.sorted() {
            let path = folder.appendingPathComponent(relative).path
            guard let status = PathStatus(path) else { throw LlamaError(.cacheFailed, "cannot read \(path)") }
            let mode = status.permissions
            let name = "\(top)/\(relative)"
            switch status.kind {
            case .directory:
                try emit(try header(name: name + "/", mode: mode, size: 0, type: "5", link: ""))
            case .link:
                let target: String
                do { target = try fm.destinationOfSymbolicLink(atPath: path) } catch {
                    throw LlamaError(.cacheFailed, "cannot read the link \(path): \(error.localizedDescription)")
                }
                try emit(try header(name: name, mode: mode, size: 0, type: "2", link: target))
            case .regular:
                let size = status.size
                try emit(try header(name: name, mode: mode, size: size, type: "0", link: ""))
                guard let input = FileHandle(forReadingAtPath: path) else { throw LlamaError(.cacheFailed, "cannot read \(path)") }
                defer { try? input.close() }
                var left = size
                while left > 0, let chunk = try? input.read(upToCount: min(left, 1 << 20)), !chunk.isEmpty {
                    try emit([UInt8](chunk))
                    left -= chunk.count
                }
                guard left == 0 else { throw LlamaError(.cacheFailed, "\(path) changed while it was packed") }
                if size % 512 != 0 { try emit([UInt8](repeating: 0, count: 512 - size % 512)) }
            default:
                throw LlamaError(.cacheFailed, "\(path) is neither a file, a folder nor a link; a release folder holds no such thing")
            }
        }
        // Two zero blocks end a tar.
        try deflater.feed([UInt8](repeating: 0, count: 1024), finish: true) { (chunk: Data) throws(LlamaError) in try write(chunk) }
        do { try out.close() } catch { throw LlamaError(.cacheFailed, "cannot write \(part.path): \(error.localizedDescription)") }
        closed = true
        try? fm.removeItem(at: archive)
        do { try fm.moveItem(at: part, to: archive) } catch {
            throw LlamaError(.cacheFailed, "cannot move \(part.path) to \(archive.path): \(error.localizedDescription)")
        }
    }

    /// A ustar header block.
    static func header(name: String, mode: Int, size: Int, type: Character, link: String) throws(LlamaError) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, width: Int) throws(LlamaError) {
            let bytes = Array(text.utf8)
            guard bytes.count <= width else { throw LlamaError(.cacheFailed, "\(text) is too long for a tar header") }
            block.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        }
        func octal(_ value: Int, at offset: Int, width: Int) throws(LlamaError) {
            try put(String(value, radix: 8).leftPadded(to: width - 1), at: offset, width: width - 1)
        }
        var stored = name, prefix = ""
        if Array(name.utf8).count > 100, let cut = name.dropLast().lastIndex(of: "/") {
            prefix = String(name[..<cut])
            stored = String(name[name.index(after: cut)...])
        }
        try put(stored, at: 0, width: 100)
        try octal(mode, at: 100, width: 8)
        try octal(0, at: 108, width: 8)
        try octal(0, at: 116, width: 8)
        try octal(size, at: 124, width: 12)
        try octal(0, at: 136, width: 12)
        try put(String(type), at: 156, width: 1)
        try put(link, at: 157, width: 100)
        try put("ustar", at: 257, width: 6)
        try put("00", at: 263, width: 2)
        try put(prefix, at: 345, width: 155)
        try put("        ", at: 148, width: 8)
        let sum = block.reduce(0) { $0 + Int($1) }
        try put(String(sum, radix: 8).leftPadded(to: 6), at: 148, width: 6)
        block[154] = 0
        block[155] = UInt8(ascii: " ")
        return block
    }

    /// A zlib deflate stream writing gzip. The z_stream lives at a fixed address: zlib keeps a pointer to it.
    struct Deflater: ~Copyable {
        private let stream: UnsafeMutablePointer<z_stream>

        init() throws(LlamaError) {
            stream = .allocate(capacity: 1)
            stream.initialize(to: z_stream())
            // windowBits 15 + 16: a gzip header and trailer.
            let status = deflateInit2_(stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
                                       Int32(MemoryLayout<z_stream>.size))
            guard status == Z_OK else {
                stream.deallocate()
                throw LlamaError(.cacheFailed, "zlib could not start compressing (status \(status))")
            }
        }

        deinit {
            deflateEnd(stream)
            stream.deallocate()
        }

        /// Compresses `bytes`, passing the output to `sink`; `finish` ends the stream.
        mutating func feed(_ bytes: [UInt8], finish: Bool, sink: (Data) throws(LlamaError) -> Void) throws(LlamaError) {
            var input = bytes
            var output = [UInt8](repeating: 0, count: 1 << 18)
            var status: Int32 = Z_OK
            var pending: [Data] = []
            input.withUnsafeMutableBufferPointer { inBytes in
                stream.pointee.next_in = inBytes.baseAddress
                stream.pointee.avail_in = uInt(inBytes.count)
                repeat {
                    output.withUnsafeMutableBufferPointer { outBytes in
                        stream.pointee.next_out = outBytes.baseAddress
                        stream.pointee.avail_out = uInt(outBytes.count)
                        status = deflate(stream, finish ? Z_FINISH : Z_NO_FLUSH)
                        let produced = outBytes.count - Int(stream.pointee.avail_out)
                        if produced > 0 { pending.append(Data(outBytes[0..<produced])) }
                    }
                } while status == Z_OK && (stream.pointee.avail_out == 0 || finish)
            }
            for chunk in pending { try sink(chunk) }
            guard status == Z_OK || status == Z_BUF_ERROR || status == Z_STREAM_END else {
                throw LlamaError(.cacheFailed, "zlib failed while compressing (status \(status))")
            }
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
