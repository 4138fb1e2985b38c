import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Streams files over HTTP into the cache: resumes with Range, retries transient failures with
/// backoff, gives up on a silent server after the idle timeout, tries mirrors in order, reports
/// progress and computes sha256 as the bytes arrive.
struct Downloader: Sendable {
    let client: HTTPClient
    let options: LlamaInstallOptions
    let progress: LlamaProgressHandler?
    /// Sent with every request (an access token).
    var headers: [String: String] = [:]

    struct Fetched: Sendable {
        var sha256: String
        var size: Int64
        var url: URL
    }

    /// Why one attempt failed.
    private enum Failure: Error {
        /// The server has no such file, or refuses it: try the next mirror.
        case permanent(String)
        /// Worth retrying the same URL (lost connection, 5xx); `timeout` when the server went silent.
        case transient(String, timeout: Bool)
        case cancelled
    }

    /// Runs `body` with a client set to the options' timeouts, and shuts the client down after.
    static func with<T: Sendable>(_ options: LlamaInstallOptions, progress: LlamaProgressHandler?, headers: [String: String] = [:],
                                  _ body: (Downloader) async throws(LlamaError) -> T) async throws(LlamaError) -> T {
        var config = HTTPClient.Configuration(
            redirectConfiguration: .follow(max: 10, allowCycles: false),
            timeout: .init(connect: .init(options.connectTimeout), read: .init(options.idleTimeout)))
        config.httpVersion = .http1Only
        // A refused connection fails the attempt at once; our own retries (with backoff) decide
        // what happens next, rather than the pool retrying silently until the connect timeout.
        config.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        let result: Result<T, LlamaError>
        do {
            result = .success(try await body(Downloader(client: client, options: options, progress: progress, headers: headers)))
        } catch {
            result = .failure(error)
        }
        try? await client.shutdown()
        return try result.get()
    }

    /// Downloads `name` from the first of `urls` that serves it, into `destination`
    /// (written as `<destination>.part`, renamed when complete and verified).
    ///
    /// `expectedSHA256`, when given, must match; a mismatch removes the bytes and tries the next mirror.
    func fetch(_ name: String, from urls: [URL], to destination: URL, expectedSHA256: String?) async throws(LlamaError) -> Fetched {
        let part = destination.appendingPathExtension("part")
        var failures: [String] = []
        var sawMismatch = false, sawTimeout = false
        for url in urls {
            var attempt = 0
            mirror: while true {
                let outcome: Result<Fetched, Failure>
                do { outcome = .success(try await self.attempt(name, url: url, part: part)) } catch { outcome = .failure(error) }
                switch outcome {
                case .success(let fetched):
                    if let expected = expectedSHA256, fetched.sha256 != expected.lowercased() {
                        try? FileManager.default.removeItem(at: part)
                        sawMismatch = true
                        failures.append("\(url.absoluteString): sha256 \(fetched.sha256), expected \(expected)")
                        break mirror
                    }
                    try? FileManager.default.removeItem(at: destination)
                    do {
                        try FileManager.default.moveItem(at: part, to: destination)
                    } catch {
                        throw LlamaError(.cacheFailed, "cannot move \(part.path) to \(destination.path): \(error.localizedDescription)")
                    }
                    return fetched
                case .failure(.cancelled):
                    throw LlamaError(.cancelled, "the download of \(name) was cancelled (the part downloaded is kept for resuming)")
                case .failure(.permanent(let why)):
                    failures.append("\(url.absoluteString): \(why)")
                    break mirror
                case .failure(.transient(let why, let timeout)):
                    sawTimeout = sawTimeout || timeout
                    guard attempt < options.retries else {
                        failures.append("\(url.absoluteString): \(why) (after \(attempt + 1) attempts)")
                        break mirror
                    }
                    let delay = options.retryDelay * (1 << min(attempt, 6))
                    options.logger.info("download of \(name) from \(url.host ?? url.absoluteString) failed: \(why); retrying in \(delay)")
                    attempt += 1
                    do { try await Task.sleep(for: delay) } catch {
                        throw LlamaError(.cancelled, "the download of \(name) was cancelled")
                    }
                }
            }
        }
        let tried = failures.joined(separator: "; ")
        if sawMismatch {
            throw LlamaError(.checksumMismatch, "\(name) does not have the expected sha256 on any mirror (\(tried)). "
                + "Nothing was installed; the asset is damaged or not the one pinned — check the mirror, or clear the "
                + "recorded digest with `llama-swift libs prune --digests` if the release was legitimately replaced.")
        }
        if sawTimeout {
            throw LlamaError(.timeout, "\(name) could not be downloaded: a server stopped answering (\(tried)). "
                + "Check the network or the mirror, or raise the idle timeout.")
        }
        throw LlamaError(.downloadFailed, "\(name) could not be downloaded from any mirror (\(tried)). "
            + "Check the network, set \(LlamaInstallOptions.mirrorsVariable) to a reachable mirror, or install offline "
            + "from a bundle (\(LlamaInstallOptions.bundleVariable)).")
    }

    /// One request: continues `part` where it stops when the server allows ranges.
    private func attempt(_ name: String, url: URL, part: URL) async throws(Failure) -> Fetched {
        if Task.isCancelled { throw .cancelled }
        let existing = (try? FileManager.default.attributesOfItem(atPath: part.path)[.size] as? Int64) ?? 0
        var request = HTTPClientRequest(url: url.absoluteString)
        request.headers.add(name: "User-Agent", value: "swift-llama-cpp")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if existing > 0 { request.headers.add(name: "Range", value: "bytes=\(existing)-") }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, deadline: .distantFuture)
        } catch {
            throw Self.classify(error)
        }
        var offset: Int64 = 0
        switch response.status.code {
        case 200:
            offset = 0
        case 206:
            guard let range = response.headers.first(name: "Content-Range"), Self.rangeStart(range) == existing else {
                try? FileManager.default.removeItem(at: part)
                throw .transient("the server answered a range that does not continue the partial download", timeout: false)
            }
            offset = existing
        case 416:
            try? FileManager.default.removeItem(at: part)
            throw .transient("the partial download is not a prefix of the file; starting again", timeout: false)
        case 408, 429, 500...599:
            throw .transient("HTTP \(response.status.code)", timeout: false)
        default:
            throw .permanent("HTTP \(response.status.code) \(response.status.reasonPhrase)")
        }
        let length = response.headers.first(name: "Content-Length").flatMap { Int64($0) }
        let total = length.map { $0 + offset }

        let fd = open(part.path, O_WRONLY | O_CREAT | (offset > 0 ? O_APPEND : O_TRUNC), 0o644)
        guard fd >= 0 else { throw .permanent("cannot write \(part.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var hasher = SHA256()
        if offset > 0 {
            guard Self.hashFile(part, into: &hasher) == offset else {
                throw .transient("the partial download changed while resuming", timeout: false)
            }
        }
        var done = offset
        let started = ContinuousClock.now
        var lastReport = started
        report(name, done: done, total: total, since: started, received: 0)
        do {
            for try await buffer in response.body {
                try buffer.withUnsafeReadableBytes { bytes throws(Failure) in
                    hasher.update(bufferPointer: bytes)
                    var written = 0
                    while written < bytes.count {
                        let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
                        guard n > 0 else { throw .permanent("cannot write \(part.path): \(String(cString: strerror(errno)))") }
                        written += n
                    }
                }
                done += Int64(buffer.readableBytes)
                let now = ContinuousClock.now
                if now - lastReport >= .milliseconds(100) {
                    lastReport = now
                    report(name, done: done, total: total, since: started, received: done - offset)
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Self.classify(error)
        }
        if let total, done != total {
            throw .transient("the connection closed after \(done) of \(total) bytes", timeout: false)
        }
        report(name, done: done, total: total ?? done, since: started, received: done - offset)
        let digest = Self.hex(hasher)
        return Fetched(sha256: digest, size: done, url: url)
    }

    /// A small document (at most 16 MiB), with the same retries; errors name `what`.
    func get(_ url: URL, what: String, accept: String? = nil) async throws(LlamaError) -> Data {
        var attempt = 0
        while true {
            var request = HTTPClientRequest(url: url.absoluteString)
            request.headers.add(name: "User-Agent", value: "swift-llama-cpp")
            if let accept { request.headers.add(name: "Accept", value: accept) }
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            let failure: Failure
            do {
                let response = try await client.execute(request, deadline: .now() + .seconds(120))
                let body = try await response.body.collect(upTo: 16 << 20)
                switch response.status.code {
                case 200: return Data(body.readableBytesView)
                case 401, 403:
                    throw LlamaError(.downloadFailed, "\(what) is not accessible (HTTP \(response.status.code)): a gated or private "
                        + "repository needs an access token in HF_TOKEN")
                case 404: throw LlamaError(.fileNotFound, "\(what) does not exist (HTTP 404 at \(url.absoluteString))")
                case 408, 429, 500...599: failure = .transient("HTTP \(response.status.code)", timeout: false)
                default: throw LlamaError(.downloadFailed, "\(what) could not be read: HTTP \(response.status.code) at \(url.absoluteString)")
                }
            } catch let error as LlamaError {
                throw error
            } catch {
                failure = Self.classify(error)
            }
            switch failure {
            case .cancelled: throw LlamaError(.cancelled, "reading \(what) was cancelled")
            case .permanent(let why): throw LlamaError(.downloadFailed, "\(what) could not be read from \(url.absoluteString): \(why)")
            case .transient(let why, let timeout):
                guard attempt < options.retries else {
                    throw LlamaError(timeout ? .timeout : .downloadFailed, "\(what) could not be read from \(url.absoluteString): \(why)")
                }
                attempt += 1
                do { try await Task.sleep(for: options.retryDelay * (1 << min(attempt, 6))) } catch {
                    throw LlamaError(.cancelled, "reading \(what) was cancelled")
                }
            }
        }
    }

    private func report(_ name: String, done: Int64, total: Int64?, since start: ContinuousClock.Instant, received: Int64) {
        guard let progress else { return }
        let elapsed = (ContinuousClock.now - start) / .seconds(1)
        progress(LlamaProgress(phase: .download, item: name, completed: done, total: total,
                               rate: elapsed > 0 ? Double(received) / elapsed : nil))
    }

    private static func classify(_ error: any Error) -> Failure {
        if error is CancellationError { return .cancelled }
        if let http = error as? HTTPClientError {
            switch http {
            case .readTimeout: return .transient("no data for longer than the idle timeout", timeout: true)
            case .connectTimeout: return .transient("the connection was not accepted within the connect timeout", timeout: true)
            case .cancelled: return .cancelled
            case .deadlineExceeded: return .transient("the request took too long", timeout: true)
            default: return .transient("\(http)", timeout: false)
            }
        }
        if Task.isCancelled { return .cancelled }
        let text = String(describing: error)
        // A host that does not resolve will not resolve on retry either.
        if text.contains("UnknownHost") || text.contains("DNS error") { return .permanent(text) }
        return .transient(text, timeout: false)
    }

    /// Where a PyPI file is, from the index's JSON project page (PEP 691): its URL (resolved
    /// against the page) and the sha256 the index lists.
    func pypiFile(index: URL, project: String, file: String) async throws(LlamaError) -> (url: URL, sha256: String?) {
        let normalized = project.lowercased().replacingOccurrences(of: "_", with: "-").replacingOccurrences(of: ".", with: "-")
        let page = index.appendingPathComponent(normalized).appendingPathComponent("")
        let data = try await get(page, what: "the PyPI page of \(project)", accept: "application/vnd.pypi.simple.v1+json")
        struct Page: Decodable {
            struct File: Decodable { var filename: String; var url: String; var hashes: [String: String]? }
            var files: [File]
        }
        guard let parsed = try? JSONDecoder().decode(Page.self, from: data) else {
            throw LlamaError(.downloadFailed, "the PyPI page of \(project) at \(page.absoluteString) is not a JSON simple-index page")
        }
        guard let entry = parsed.files.first(where: { $0.filename == file }),
              let url = URL(string: entry.url, relativeTo: page)?.absoluteURL else {
            throw LlamaError(.fileNotFound, "PyPI has no \(file) for \(project) (\(page.absoluteString))")
        }
        return (url, entry.hashes?["sha256"])
    }

    /// `bytes 100-999/1000` → 100.
    static func rangeStart(_ header: String) -> Int64? {
        guard header.hasPrefix("bytes ") else { return nil }
        return header.dropFirst(6).split(separator: "-").first.flatMap { Int64($0) }
    }

    /// Feeds a file to a hasher; returns the number of bytes read, nil if it cannot be read.
    @discardableResult
    static func hashFile(_ url: URL, into hasher: inout SHA256) -> Int64? {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return nil }
        defer { try? handle.close() }
        var count: Int64 = 0
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            count += Int64(chunk.count)
        }
        return count
    }

    /// A finished digest in lowercase hex.
    static func hex(_ hasher: SHA256) -> String {
        hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The sha256 of a file, in lowercase hex; nil when it cannot be read.
    static func sha256(of url: URL) -> String? {
        var hasher = SHA256()
        guard hashFile(url, into: &hasher) != nil else { return nil }
        return Self.hex(hasher)
    }
}
