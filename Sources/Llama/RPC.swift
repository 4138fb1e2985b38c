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
    /// The host name or address.
    public var host: String
    /// The TCP port.
    public var port: UInt16
    public var description: String { "\(host):\(port)" }

    /// Parses `host:port` (the port after the last colon, 1 to 65535); nil when it is not that.
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
    /// unreachable host is an `.unreachable` (or `.timeout`) error in that time, not the system's
    /// connect timeout. The corresponding C function is `ggml_backend_rpc_add_server`.
    ///
    /// ggml ends the process on a failed handshake (a server of another protocol version), so
    /// the first contact with a server happens in the `llama-helper` program (request `rpcCheck`;
    /// see ``LlamaHelper``): a server of another RPC protocol version is an `.rpcProtocol` error
    /// whose underlying ``HelperResponse/RPCFailure`` holds both versions. Without a helper this
    /// is a `.helperNotFound` error.
    ///
    /// - Parameters:
    ///   - endpoint: the server, as `host:port`.
    ///   - timeout: the longest wait for the connection and for each answer.
    ///   - helper: the `llama-helper` to use (nil: found as ``LlamaHelper/locate(_:purpose:environment:executableDirectory:)`` does).
    ///   - isolated: false skips the first contact in a helper: ggml then ends this process if the
    ///     handshake fails. Only for a process that is itself the isolation (the helper does this).
    @discardableResult
    public func addRPCServer(_ endpoint: String, timeout: Duration = .seconds(5), helper: URL? = nil,
                             isolated: Bool = true) async throws(LlamaError) -> [LlamaDevice] {
        guard let parsed = LlamaRPCEndpoint(endpoint) else {
            throw LlamaError(.invalidArgument, "\(endpoint) is not host:port")
        }
        guard libraries.absentLibraries.contains(.ggmlRpc) == false else {
            throw LlamaError(.unsupported, "libggml-rpc is not in \(libraryDirectory.path): this llama.cpp build has no RPC backend")
        }
        try Self.probeTCP(parsed, timeout: timeout)
        if isolated {
            let found = try LlamaHelper.locate(helper, purpose: "to contact the RPC server at \(parsed) first")
            try await checkRPC(parsed, helper: found, timeout: timeout)
        }
        return try registerRPCServer(parsed)
    }

    /// `ggml_backend_rpc_add_server` and the registration of its devices, in this process.
    func registerRPCServer(_ parsed: LlamaRPCEndpoint) throws(LlamaError) -> [LlamaDevice] {
        let c = raw
        let key = parsed.description
        let added: ggml_backend_reg_t?
        do { added = try c.ggml_backend_rpc_add_server(key) } catch {
            throw LlamaError(.unsupported, error.description, underlying: error)
        }
        guard let reg = added else {
            throw LlamaError(.rpcProtocol, "the RPC server at \(key) accepted the connection but offered no device: it is not a "
                + "ggml RPC server, or it speaks another RPC protocol version (run the server of llama.cpp \(LlamaPin.tag))",
                underlying: HelperResponse.RPCFailure(kind: .noDevices))
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

    /// Contacts the server from the helper, which ggml may end; its answer becomes a typed error here.
    func checkRPC(_ endpoint: LlamaRPCEndpoint, helper: URL, timeout: Duration) async throws(LlamaError) {
        let request = HelperRequest(.rpcCheck(.init(directory: libraryDirectory.path, endpoint: endpoint.description,
                                                    timeoutSeconds: HelperResponse.Summary.seconds(timeout))))
        // Bounded: a server that accepts but never answers must not hold us (loading the
        // libraries in the helper takes part of it).
        let limit = timeout * 3 + .seconds(10)
        let exchange = try await LlamaHelper.exchange(request, helper: helper, timeout: limit)
        switch exchange.final {
        case .devices? where exchange.violation == nil:
            return
        case .failure(let failure)? where exchange.violation == nil:
            throw failure.error
        default:
            throw LlamaHelper.unanswered(exchange, helper: helper, crashCode: .remoteFailed, crashed: { signal in
                "contacting the RPC server at \(endpoint) ended a helper process (signal \(signal))"
            }, timedOut: {
                LlamaError(.timeout, "the RPC server at \(endpoint) accepted the connection but did not answer within \(limit)")
            })
        }
    }

    /// The ggml RPC protocol version this build speaks (`RPC_PROTO_*_VERSION`).
    public static var rpcProtocolVersion: String { "\(RPC_PROTO_MAJOR_VERSION).\(RPC_PROTO_MINOR_VERSION).\(RPC_PROTO_PATCH_VERSION)" }

    /// Says HELLO to a ggml RPC server on a connection of its own, as ggml's client does first,
    /// and compares the protocol version it answers with this build's as ggml does (same major,
    /// minor not newer). A server of another version is an `.rpcProtocol` error carrying both
    /// versions (``HelperResponse/RPCFailure``); this never ends the process.
    public static func rpcHandshake(_ endpoint: LlamaRPCEndpoint, timeout: Duration) throws(LlamaError) -> String {
        let connection = try connectTCP(endpoint, timeout: timeout)
        defer { close(connection) }
        let client = rpcProtocolVersion
        func noHandshake(_ why: String) -> LlamaError {
            LlamaError(.rpcProtocol, "the server at \(endpoint) \(why) to the RPC handshake: it is not a ggml RPC server, or "
                + "one of another protocol version (this build speaks \(client); run the server of llama.cpp \(LlamaPin.tag))",
                underlying: HelperResponse.RPCFailure(kind: .noHandshake, clientVersion: client))
        }
        // | command 14 (HELLO) | size (8 bytes, little endian) | connection capabilities (24 bytes, none) |
        let capabilities = 24
        var hello = [UInt8(14)]
        withUnsafeBytes(of: UInt64(capabilities).littleEndian) { hello += $0 }
        hello += [UInt8](repeating: 0, count: capabilities)
        guard sendAll(connection, hello) else { throw noHandshake("closed the connection instead of listening") }
        // | size (8 bytes) | major | minor | patch | padding | capabilities |
        guard let sizeBytes = receive(connection, count: 8, timeout: timeout) else { throw noHandshake("did not answer") }
        let size = sizeBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard size >= 3, size <= 4096, let body = receive(connection, count: Int(size), timeout: timeout) else {
            throw noHandshake(size < 3 || size > 4096 ? "sent an answer of \(size) bytes" : "did not answer")
        }
        let server = "\(body[0]).\(body[1]).\(body[2])"
        guard Int32(body[0]) == RPC_PROTO_MAJOR_VERSION, Int32(body[1]) <= RPC_PROTO_MINOR_VERSION else {
            throw LlamaError(.rpcProtocol, "the RPC server at \(endpoint) speaks another RPC protocol version (\(server); this "
                + "build speaks \(client)): run the server of llama.cpp \(LlamaPin.tag)",
                underlying: HelperResponse.RPCFailure(kind: .versionMismatch, serverVersion: server, clientVersion: client))
        }
        return server
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                guard poll(&poller, 1, 5000) == 1 else { return false }
                continue
            }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    /// Exactly `count` bytes, or nil when the peer closes or stays silent for `timeout`.
    private static func receive(_ fd: Int32, count: Int, timeout: Duration) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var received = 0
        let deadline = ContinuousClock.now + timeout
        while received < count {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return nil }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, milliseconds(left))
            if ready < 0 && errno == EINTR { continue }
            guard ready == 1 else { return nil }
            let n = buffer[received...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else { return nil }
            received += n
        }
        return buffer
    }

    private static func milliseconds(_ d: Duration) -> Int32 {
        Int32(clamping: max(1, d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000))
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
        close(try connectTCP(endpoint, timeout: timeout))
    }

    /// A connected, non-blocking TCP socket, within `timeout`.
    static func connectTCP(_ endpoint: LlamaRPCEndpoint, timeout: Duration) throws(LlamaError) -> Int32 {
        func unreachable(_ why: String) -> LlamaError {
            LlamaError(.unreachable, "the RPC server at \(endpoint) is unreachable: \(why)",
                       underlying: HelperResponse.RPCFailure(kind: .unreachable))
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(endpoint.host, String(endpoint.port), &hints, &result) == 0, let first = result else {
            throw unreachable("the host \(endpoint.host) does not resolve")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw unreachable("cannot open a socket: \(String(cString: strerror(errno)))") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        if connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 && errno != EINPROGRESS {
            let why = String(cString: strerror(errno))
            close(fd)
            throw unreachable(why)
        }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, milliseconds(timeout)) == 1 else {
            close(fd)
            throw LlamaError(.timeout, "the RPC server at \(endpoint) did not accept a connection within \(timeout)",
                             underlying: HelperResponse.RPCFailure(kind: .unreachable))
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else {
            close(fd)
            throw unreachable(String(cString: strerror(error)))
        }
        return fd
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
        throw LlamaError(.bindFailed, "the RPC server on \(endpoint) stopped: the address is in use or cannot be bound")
    }
}
