public import Foundation
import LlamaRaw
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `host:port` of a ggml RPC server.
public struct LlamaRPCEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var description: String { "\(host):\(port)" }

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
        let host = String(text[..<colon])
        guard !host.isEmpty, !host.contains(" ") else { return nil }
        self.host = host
        self.port = port
    }

    /// Whether the host is this machine (127.0.0.0/8, ::1, localhost).
    public var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }
}

extension LlamaRuntime {
    /// Connects to a ggml RPC server (`llama-swift rpc serve`, or llama.cpp's `rpc-server`) and
    /// adds its devices to ggml's registry; returns them, with their memory. Their layers are
    /// placed with ``ModelOptions/placement`` like any device.
    ///
    /// The server is reached first with a plain TCP connection bounded by `timeout`, so an
    /// unreachable host is an error in that time, not the system's connect timeout. A server of
    /// another llama.cpp RPC protocol version answers with no devices, which is an error too.
    /// The corresponding C function is `ggml_backend_rpc_add_server`.
    ///
    /// ggml ends the process on a failed handshake (a server of another protocol version), so
    /// the first contact happens in a helper process (`llama-swift libs check-rpc`) when one is
    /// given (by default ``LlamaInstallOptions/helper``); its verdict becomes a typed error here.
    @discardableResult
    public func addRPCServer(_ endpoint: String, timeout: Duration = .seconds(5),
                             checkedBy helper: URL? = LlamaInstallOptions().helper) throws(LlamaError) -> [LlamaDevice] {
        guard let parsed = LlamaRPCEndpoint(endpoint) else {
            throw LlamaError(.invalidArgument, "\(endpoint) is not host:port")
        }
        guard libraries.absentLibraries.contains(.ggmlRpc) == false else {
            throw LlamaError(.unsupported, "libggml-rpc is not in \(libraryDirectory.path): this llama.cpp build has no RPC backend")
        }
        try Self.probeTCP(parsed, timeout: timeout)
        if let helper { try checkRPC(parsed, helper: helper, timeout: timeout) }
        let c = raw
        let key = parsed.description
        let added: ggml_backend_reg_t?
        do { added = try c.ggml_backend_rpc_add_server(key) } catch {
            throw LlamaError(.unsupported, error.description)
        }
        guard let reg = added else {
            throw LlamaError(.libraryLoad, "the RPC server at \(key) accepted the connection but offered no device: it is not a "
                + "ggml RPC server, or it speaks another RPC protocol version (run the server of llama.cpp \(LlamaPin.tag))")
        }
        let isNew = Self.rpcRegistered.withLock { $0.insert(Int(bitPattern: UnsafeRawPointer(reg))).inserted }
        if isNew {
            c.ggml_backend_register(reg)
            // ggml ends the process when a server dies mid-computation; say so plainly first.
            _ = c.ggml_set_abort_callback { message in
                let text = "swift-llama-cpp: ggml is ending the process: \(message.map { String(cString: $0) } ?? "abort"). "
                    + "When an RPC server stops during a computation, ggml cannot recover.\n"
                FileHandle.standardError.write(Data(text.utf8))
            }
        }
        let names = Set((0..<c.ggml_backend_reg_dev_count(reg)).compactMap { c.ggml_backend_reg_dev_get(reg, $0) }
            .compactMap { c.ggml_backend_dev_name($0).map { String(cString: $0) } })
        return devices.filter { names.contains($0.name) && $0.description == key }
    }

    /// Contacts the server from a helper process, which ggml may end.
    func checkRPC(_ endpoint: LlamaRPCEndpoint, helper: URL, timeout: Duration) throws(LlamaError) {
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent("llama-swift-\(UUID().uuidString).stderr")
        defer { try? FileManager.default.removeItem(at: errors) }
        let child: ChildProcess
        do {
            child = try ChildProcess(helper.path, ["libs", "check-rpc", libraryDirectory.path, endpoint.description], errorFile: errors)
        } catch {
            throw LlamaError(.remoteFailed, "the helper \(helper.path) could not start: \(error)")
        }
        // Bounded: a server that accepts but never answers must not hold us.
        let done = Atomic<Bool>(false)
        let killed = Atomic<Bool>(false)
        let limit = timeout * 3
        Thread.detachNewThread {
            let deadline = ContinuousClock.now + limit
            while !done.load(ordering: .relaxed) {
                if ContinuousClock.now > deadline {
                    killed.store(true, ordering: .relaxed)
                    child.forceKill()
                    return
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        _ = child.readToEnd()
        let status = child.wait()
        done.store(true, ordering: .relaxed)
        if killed.load(ordering: .relaxed) {
            throw LlamaError(.timeout, "the RPC server at \(endpoint) accepted the connection but did not answer within \(limit)")
        }
        guard status != 0 else { return }
        let lines = ((try? String(contentsOf: errors, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        if let mismatch = lines.first(where: { $0.contains("version mismatch") }) {
            throw LlamaError(.libraryLoad, "the RPC server at \(endpoint) speaks another RPC protocol version "
                + "(\(mismatch.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?")): run the server "
                + "of llama.cpp \(LlamaPin.tag)")
        }
        let reason = lines.last { $0.hasPrefix("error:") }.map { String($0.dropFirst(7)) } ?? lines.last ?? "no output"
        throw LlamaError(.remoteFailed, status > 128
            ? "contacting the RPC server at \(endpoint) ended a helper process (signal \(status - 128)): \(reason)"
            : reason)
    }

    /// Whether something accepts TCP connections at `host:port` (within a second).
    public static func reachable(_ endpoint: String) throws(LlamaError) -> Bool {
        guard let parsed = LlamaRPCEndpoint(endpoint) else { throw LlamaError(.invalidArgument, "\(endpoint) is not host:port") }
        do { try probeTCP(parsed, timeout: .seconds(1)) } catch { return false }
        return true
    }

    /// Registries added to ggml (per process, like ggml's own registry).
    private static let rpcRegistered = Mutex(Set<Int>())

    /// Opens and closes a TCP connection, failing after `timeout`.
    static func probeTCP(_ endpoint: LlamaRPCEndpoint, timeout: Duration) throws(LlamaError) {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(endpoint.host, String(endpoint.port), &hints, &result) == 0, let first = result else {
            throw LlamaError(.libraryLoad, "the RPC server host \(endpoint.host) does not resolve")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw LlamaError(.libraryLoad, "cannot open a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        if connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 && errno != EINPROGRESS {
            throw LlamaError(.timeout, "the RPC server at \(endpoint) is unreachable: \(String(cString: strerror(errno)))")
        }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ms = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&poller, 1, ms) == 1 else {
            throw LlamaError(.timeout, "the RPC server at \(endpoint) did not accept a connection within \(timeout)")
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else {
            throw LlamaError(.timeout, "the RPC server at \(endpoint) is unreachable: \(String(cString: strerror(error)))")
        }
    }

    /// Serves this process's devices to RPC clients until the process ends (the call does not
    /// return): what `llama-swift rpc serve` runs. The protocol has no authentication: bind to
    /// loopback, or to a trusted network only.
    /// The corresponding C function is `ggml_backend_rpc_start_server`.
    public func serveRPC(endpoint: LlamaRPCEndpoint, devices: [LlamaDevice], threads: Int, cacheDirectory: URL?) throws(LlamaError) -> Never {
        let c = raw
        var handles: [ggml_backend_dev_t?] = devices.compactMap { c.ggml_backend_dev_get($0.index) }
        guard !handles.isEmpty else { throw LlamaError(.invalidArgument, "no device to serve") }
        do {
            try handles.withUnsafeMutableBufferPointer { (buffer: inout UnsafeMutableBufferPointer<ggml_backend_dev_t?>) throws(LlamaSymbolError) in
                try c.ggml_backend_rpc_start_server(endpoint.description, cacheDirectory?.path, threads, buffer.count, buffer.baseAddress)
            }
        } catch {
            throw LlamaError(.unsupported, error.description)
        }
        throw LlamaError(.libraryLoad, "the RPC server on \(endpoint) stopped: the address is in use or cannot be bound")
    }
}
