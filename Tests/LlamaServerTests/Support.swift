import AsyncHTTPClient
import Foundation
import Llama
import LlamaServer
import LlamaTestSupport
import Logging
import ServiceLifecycle
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// The runtime and SmolLM2, loaded once for the test run.
enum ServerFixture {
    static let runtime: Result<LlamaRuntime, any Error> = Result {
        try LlamaRuntime(libraryDirectory: try TestEnvironment.libraryDirectory())
    }
    static let model: Result<LlamaModel, any Error> = Result {
        try LlamaModel(runtime: try runtime.get(), path: try TestEnvironment.model().path)
    }
    static let modelID = "smol"
}

/// Something that did not happen within its bound.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
}

/// A value that arrives once, from a callback, awaited by the test (an event, not a sleep).
final class Arrival<Value: Sendable>: Sendable {
    private let state = Mutex<(value: Value?, waiters: [CheckedContinuation<Value, Never>])>((nil, []))

    func deliver(_ value: Value) {
        let waiters = state.withLock { s -> [CheckedContinuation<Value, Never>] in
            guard s.value == nil else { return [] }
            s.value = value
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: value) }
    }

    /// The value, or an error after `timeout`.
    func value(within timeout: Duration, _ what: String) async throws -> Value {
        try await withThrowingTaskGroup(of: Value.self) { group in
            group.addTask {
                await withCheckedContinuation { c in
                    let ready = self.state.withLock { s -> Value? in
                        if let v = s.value { return v }
                        s.waiters.append(c)
                        return nil
                    }
                    if let ready { c.resume(returning: ready) }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TestFailure(description: "\(what) did not happen within \(timeout)")
            }
            let v = try await group.next()!
            group.cancelAll()
            return v
        }
    }
}

/// An in-process server on a port the system chose, stopped when `body` ends.
func withServer<T: Sendable>(models: [ServedModel]? = nil, _ configure: (inout LlamaServerConfiguration) -> Void = { _ in },
                             _ body: @Sendable (LlamaServer, Client) async throws -> T) async throws -> T {
    var configuration = LlamaServerConfiguration()
    configuration.port = 0
    configuration.slots = 2
    configuration.contextLength = 2048
    configuration.threads = 2
    configure(&configuration)
    let port = Arrival<Int>()
    let server = try LlamaServer(models: try models ?? [ServedModel(id: ServerFixture.modelID, model: try ServerFixture.model.get())],
                                 configuration: configuration) { _, p in port.deliver(p) }
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: server)],
                                                                      logger: Logger(label: "test")))
    let running = Task { try await group.run() }
    do {
        let bound = try await port.value(within: .seconds(60), "the server listening")
        let result = try await withClient(base: "http://127.0.0.1:\(bound)", apiKey: configuration.apiKey) { client in
            try await body(server, client)
        }
        // A graceful shutdown, bounded: the group must end by itself.
        await group.triggerGracefulShutdown()
        let ended = Arrival<Void>()
        Task { _ = try? await running.value; ended.deliver(()) }
        try await ended.value(within: .seconds(60), "the server's graceful shutdown")
        return result
    } catch {
        running.cancel()
        throw error
    }
}

/// A loopback HTTP client, shut down when `body` ends.
func withClient<T: Sendable>(base: String, apiKey: String? = nil, _ body: (Client) async throws -> T) async throws -> T {
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    let client = Client(http: http, base: base, apiKey: apiKey)
    do {
        let result = try await body(client)
        try await http.shutdown()
        return result
    } catch {
        try? await http.shutdown()
        throw error
    }
}

struct Reply: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: String
    var json: JSONValue? { try? JSONValue(parsing: body) }
}

struct Client: Sendable {
    let http: HTTPClient
    let base: String
    let apiKey: String?

    func request(_ method: HTTPMethod, _ path: String, bytes: [UInt8]? = nil, headers: [(String, String)]? = nil)
        -> HTTPClientRequest {
        var r = HTTPClientRequest(url: base + path)
        r.method = method
        if let bytes { r.body = .bytes(ByteBuffer(bytes: bytes)) }
        r.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers ?? apiKey.map { [("Authorization", "Bearer \($0)")] } ?? [] {
            r.headers.add(name: name, value: value)
        }
        return r
    }

    func send(_ method: HTTPMethod, _ path: String, bytes: [UInt8]? = nil, headers: [(String, String)]? = nil) async throws -> Reply {
        let response = try await http.execute(request(method, path, bytes: bytes, headers: headers), timeout: .seconds(300))
        let body = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
    }

    func post(_ path: String, _ json: JSONValue, headers: [(String, String)]? = nil) async throws -> Reply {
        try await send(.POST, path, bytes: Array(json.jsonText.utf8), headers: headers)
    }

    func get(_ path: String) async throws -> Reply { try await send(.GET, path) }

    /// A streaming request: each `data:` payload to `onEvent` until it returns false (the client
    /// then goes away) or the stream ends. Returns the status and the payloads seen.
    func stream(_ path: String, _ json: JSONValue, onEvent: (String) async throws -> Bool = { _ in true }) async throws
        -> (status: Int, events: [String]) {
        let response = try await http.execute(request(.POST, path, bytes: Array(json.jsonText.utf8)), timeout: .seconds(300))
        var events: [String] = []
        var pending = ""
        for try await buffer in response.body {
            pending += String(buffer: buffer)
            while let end = pending.range(of: "\n\n") {
                let block = String(pending[..<end.lowerBound])
                pending = String(pending[end.upperBound...])
                for line in block.split(separator: "\n") where line.hasPrefix("data: ") {
                    let payload = String(line.dropFirst(6))
                    events.append(payload)
                    if try await !onEvent(payload) { return (Int(response.status.code), events) }
                }
            }
        }
        return (Int(response.status.code), events)
    }
}

/// The value of a metric line (`name{labels} value`) in a Prometheus exposition.
func metric(_ text: String, _ name: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") || line.hasPrefix(name + "{") {
        if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return value }
    }
    return nil
}

/// A child's output lines, kept for failure messages.
final class OutputLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    func tail(_ n: Int = 30) -> String { lines.withLock { $0.suffix(n).joined(separator: "\n") } }
}

final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() -> Int { value.withLock { $0 += 1; return $0 } }
}

extension JSONValue {
    /// A number as a Double (written as an integer or not).
    var number: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    var integer: Int? { if case .int(let i) = self { return i }; return nil }
}
