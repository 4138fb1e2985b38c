import Foundation
import Llama
import LlamaRaw
import LlamaProcess
import LlamaTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// ggml's RPC backend between `llama-swift` processes on loopback.
@Suite("RPC", .serialized, .timeLimit(.minutes(5)))
struct RPCTests {
    /// The llama-helper built with the tests, passed explicitly (the environment of this process
    /// is left alone: other suites run beside this one).
    static var helper: URL { TestEnvironment.productsDirectory.appendingPathComponent("llama-helper") }

    /// A loopback port nothing listens on: one the system gave a socket (bind to port 0), then closed.
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound, "cannot bind a loopback socket: \(String(cString: strerror(errno)))")
        return UInt16(bigEndian: address.sin_port)
    }

    /// A `llama-swift rpc serve` process (through ChildProcess, bounded), stopped when released.
    final class Server: Sendable {
        let port: UInt16
        /// The server's process id (the shell execs it), for the tests that stop or kill it.
        let pid: Int32
        private let run: Task<Void, Never>

        init() async throws {
            port = try RPCTests.freePort()
            let environment = try CLITests.environment().mapValues { Optional($0) }
            let (pids, reported) = AsyncStream.makeStream(of: Int32.self)
            let arguments = ["-c", "echo $$; exec \"$0\" \"$@\"", CLITests.binary.path, "rpc", "serve", "--port", "\(port)",
                             "--threads", "1"]
            run = Task {
                do {
                    _ = try await ChildProcess.run("/bin/sh", arguments, environment: environment, standardOutput: .discard,
                                                   standardError: .discard, timeout: .seconds(600)) { line in
                        if line.stream == .output, let pid = Int32(line.text) { reported.yield(pid) }
                    }
                } catch {
                    Issue.record("the RPC server did not start: \(error)")
                }
                reported.finish()
            }
            var first: Int32?
            for await pid in pids {
                first = pid
                break
            }
            pid = try #require(first, "the RPC server's shell reported no process id")
            // Bounded wait for the port to accept connections (the server binds after loading).
            let deadline = ContinuousClock.now + .seconds(60)
            while try !LlamaRuntime.reachable("127.0.0.1:\(port)") {
                try #require(ContinuousClock.now < deadline, "the RPC server on port \(port) did not listen within 60 s")
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        var endpoint: String { "127.0.0.1:\(port)" }
        deinit { run.cancel() }
    }

    @Test("a model split over two RPC servers generates the local run's tokens")
    func twoServers() async throws {
        let a = try await Server(), b = try await Server()
        let args = ["run", "--raw", "-p", "The capital of France is", "--temp", "0", "-n", "16", "-t", "2"]
        let local = try await CLITests.cli(args)
        let remote = try await CLITests.cli(args + ["--rpc", "\(a.endpoint),\(b.endpoint)"])
        try #require(local.status == 0 && remote.status == 0, "\(local.stderr)\n\(remote.stderr)")
        #expect(remote.stdout == local.stdout)
        #expect(!remote.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)

        let devices = try await CLITests.cli(["devices", "--json", "--rpc", "\(a.endpoint),\(b.endpoint)"])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(devices.stdout.utf8)) as? [String: Any])
        let list = try #require(doc["devices"] as? [[String: Any]])
        let remoteDevices = list.filter { ($0["backend"] as? String) == "RPC" }
        #expect(Set(remoteDevices.compactMap { $0["description"] as? String }) == [a.endpoint, b.endpoint])
        #expect(remoteDevices.allSatisfy { ($0["memoryTotal"] as? Int ?? 0) > 0 })
    }

    @Test("run --rpc in the helper process applies the model-parameter flags and --context-shift as the local run does")
    func helperTakesEveryFlag() async throws {
        let a = try await Server()
        // 400 tokens in a 256-token window: only a context shift gets there. A BOS forced by
        // --override-kv adds one prompt token.
        let args = ["run", "--raw", "-p", "Once upon a time", "--temp", "0", "-n", "400", "-c", "256", "-t", "2", "--context-shift",
                    "--override-kv", "tokenizer.ggml.add_bos_token=bool:true", "--no-repack"]
        let local = try await CLITests.cli(args)
        let remote = try await CLITests.cli(args + ["--rpc", a.endpoint])
        try #require(local.status == 0 && remote.status == 0, "\(local.stderr)\n\(remote.stderr)")
        #expect(remote.stdout == local.stdout)
        for r in [local, remote] {
            #expect(r.stderr.contains("400 generated"), "\(r.stderr)")
        }
        let plain = try await CLITests.cli(["run", "--raw", "-p", "Once upon a time", "--temp", "0", "-n", "1", "--rpc", a.endpoint])
        let forced = try await CLITests.cli(["run", "--raw", "-p", "Once upon a time", "--temp", "0", "-n", "1", "--rpc", a.endpoint,
                                             "--override-kv", "tokenizer.ggml.add_bos_token=bool:true"])
        func promptTokens(_ r: ProcessResult) -> Int? {
            r.stderr.split(separator: "\n").first { $0.hasPrefix("run: ") && $0.contains("prompt tokens") }
                .flatMap { Int($0.dropFirst(5).split(separator: " ").first ?? "") }
        }
        let p = try #require(promptTokens(plain), "\(plain.stderr)"), f = try #require(promptTokens(forced), "\(forced.stderr)")
        #expect(f == p + 1)
        // What the helper does not take is refused, not dropped.
        for flags in [["--device", "0"], ["--split-mode", "layer"], ["--memory-limit", "1"], ["--mmproj", "/nonexistent.gguf"]] {
            CLITests.expectFailure(try await CLITests.cli(["run", "-p", "x", "-n", "1", "--rpc", a.endpoint] + flags),
                                   mentioning: "\(flags[0]) with --rpc needs --in-process")
        }
    }

    @Test("a server that dies mid-generation is a typed error in the calling process, which stays usable")
    func serverDies() async throws {
        let a = try await Server(), b = try await Server()
        let generation = LlamaIsolatedGeneration(model: try TestEnvironment.model().path, servers: [a.endpoint, b.endpoint],
                                                 prompt: "Once upon a time", maxTokens: 2000, raw: true,
                                                 libraryDirectory: try TestEnvironment.libraryDirectory(), helper: Self.helper,
                                                 idleTimeout: .seconds(20))
        var tokens = 0
        var caught: LlamaError?
        do {
            for try await event in generation.stream() {
                if case .token = event {
                    tokens += 1
                    if tokens == 5 { kill(b.pid, SIGTERM) }
                }
            }
        } catch let error as LlamaError {
            caught = error
        }
        let error = try #require(caught, "the stream ended without an error after \(tokens) tokens")
        #expect(error.code == .remoteFailed, "\(error)")
        #expect(error.message.contains("RPC server"), "\(error.message)")
        #expect(tokens >= 5 && tokens < 2000)
        #expect((error.underlying as? LlamaHelper.Ended)?.signal != nil, "a crash of the helper: \(String(describing: error.underlying))")
        withExtendedLifetime(a) {}
        // This process goes on: local generation still works.
        let summary = try await Fixture.context(ContextOptions(contextLength: 256, threads: 2))
            .generate(prompt: Fixture.chatPrompt, options: GenerationOptions(maxTokens: 4)).summary()
        #expect(!summary.generatedTokens.isEmpty)
    }

    @Test("chat and embed over RPC compute in a child: a server killed before the reply is an error, not a crash")
    func chatAndEmbedIsolated() async throws {
        let a = try await Server()
        let ok = try await CLITests.cli(["embed", "--rpc", a.endpoint], stdin: "A kitten is a young cat.\n")
        try #require(ok.status == 0, "\(ok.stderr)")
        #expect((try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [[String: Any]])?.count == 1)
        let chat = try await CLITests.cli(["chat", "--rpc", a.endpoint, "--temp", "0", "-n", "8"], stdin: "Hello!\n/exit\n")
        #expect(chat.status == 0, "\(chat.stderr)")
        #expect(!chat.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        // The server goes away between load and the first reply: the model's weights live there.
        let b = try await Server()
        let endpoint = b.endpoint
        let pid = b.pid
        let killer = Thread { Thread.sleep(forTimeInterval: 2); kill(pid, SIGKILL) }
        killer.start()
        let dead = try await CLITests.cli(["chat", "--rpc", endpoint, "--temp", "0", "-n", "2000", "-c", "4096"],
                                    stdin: String(repeating: "Tell me a very long story about the sea. ", count: 1) + "\n")
        #expect(dead.status == 1, "\(dead.stderr)")
        #expect(dead.stderr.contains("RPC server") || dead.stderr.contains("unreachable"), "\(dead.stderr)")
        withExtendedLifetime((a, b)) {}
    }

    @Test("a server that stops answering is a timeout after the configured wait")
    func serverHangs() async throws {
        let a = try await Server()
        // Stopped, the server's port still accepts connections (the kernel queues them), but
        // nothing answers.
        kill(a.pid, SIGSTOP)
        defer { kill(a.pid, SIGCONT) }
        let r = try await CLITests.cli(["run", "--raw", "-p", "Once upon a time", "--temp", "0", "-n", "50", "--rpc", a.endpoint,
                                  "--rpc-timeout", "3"])
        CLITests.expectFailure(r, mentioning: "no token came")
    }

    @Test("an unreachable server is a typed error at load, and the process exits cleanly")
    func unreachable() async throws {
        let port = try Self.freePort()
        let r = try await CLITests.cli(["run", "-p", "x", "-n", "2", "--rpc", "127.0.0.1:\(port)"])
        CLITests.expectFailure(r, mentioning: "unreachable")
        let runtime = try Fixture.runtime.get()
        let refused = await caughtLlamaError { try await runtime.addRPCServer("127.0.0.1:\(port)", timeout: .seconds(2), helper: Self.helper) }
        #expect(refused?.code == .unreachable, "\(String(describing: refused))")
        #expect((refused?.underlying as? HelperResponse.RPCFailure)?.kind == .unreachable)
        let malformed = await caughtLlamaError { try await runtime.addRPCServer("no-port") }
        #expect(malformed?.code == .invalidArgument, "\(String(describing: malformed))")
    }

    /// A fake server that answers HELLO (command 14) as a server of protocol 99.0.0 would, then
    /// hangs up: its endpoint, and the task that runs it (bounded by ChildProcess; cancel it to stop it).
    static func fakeServerOfAnotherVersion() async throws -> (endpoint: String, server: Task<Void, Never>) {
        let script = """
            import socket, struct, sys
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
            print(s.getsockname()[1], flush=True)
            while True:
                c, _ = s.accept()
                try:
                    cmd = c.recv(1); size = struct.unpack("<Q", c.recv(8))[0]
                    data = b""
                    while len(data) < size: data += c.recv(size - len(data))
                    c.sendall(struct.pack("<Q", 4 + size) + bytes([99, 0, 0, 0]) + bytes(size))
                except Exception:
                    pass
                c.close()
            """
        let (ports, reported) = AsyncStream.makeStream(of: String.self)
        let server = Task {
            do {
                _ = try await ChildProcess.run("python3", ["-c", script], timeout: .seconds(300)) { line in
                    if line.stream == .output { reported.yield(line.text) }
                }
            } catch {
                Issue.record("the fake server did not start: \(error)")
            }
            reported.finish()
        }
        var port: String?
        for await line in ports {
            port = line
            break
        }
        return ("127.0.0.1:\(try #require(port, "the fake server reported no port"))", server)
    }

    @Test("a server of another RPC protocol version is an .rpcProtocol error with both versions")
    func otherVersion() async throws {
        let (endpoint, server) = try await Self.fakeServerOfAnotherVersion()
        defer { server.cancel() }
        let runtime = try Fixture.runtime.get()
        let error = await caughtLlamaError { try await runtime.addRPCServer(endpoint, helper: Self.helper) }
        #expect(error?.code == .rpcProtocol, "\(String(describing: error))")
        #expect(error?.message.contains("another RPC protocol version") == true, "\(String(describing: error))")
        let failure = error?.underlying as? HelperResponse.Failure
        #expect(failure?.rpc == HelperResponse.RPCFailure(kind: .versionMismatch, serverVersion: "99.0.0",
                                                          clientVersion: LlamaRuntime.rpcProtocolVersion),
                "\(String(describing: failure))")
        // The handshake on its own, in this process: the same verdict, and nothing ends.
        #expect(throws: LlamaError.self) { try LlamaRuntime.rpcHandshake(try #require(LlamaRPCEndpoint(endpoint)), timeout: .seconds(5)) }
        let r = try await CLITests.cli(["run", "-p", "x", "-n", "2", "--rpc", endpoint])
        CLITests.expectFailure(r, mentioning: "another RPC protocol version")
    }

    @Test("without a helper, the first contact with a server is a .helperNotFound error that says how to provide one")
    func helperAbsent() async throws {
        let (endpoint, server) = try await Self.fakeServerOfAnotherVersion()
        defer { server.cancel() }
        let runtime = try Fixture.runtime.get()
        let missing = URL(fileURLWithPath: "/nonexistent/llama-helper")
        let error = await caughtLlamaError { try await runtime.addRPCServer(endpoint, helper: missing) }
        #expect(error?.code == .helperNotFound, "\(String(describing: error))")
        #expect(error?.message.contains("LLAMA_SWIFT_HELPER") == true && error?.message.contains("--product llama-helper") == true)
        let generation = LlamaIsolatedGeneration(model: try TestEnvironment.model().path, servers: [endpoint], prompt: "x",
                                                 helper: missing)
        let failed = await caughtLlamaError { try await generation.stream().summary() }
        #expect(failed?.code == .helperNotFound, "\(String(describing: failed))")
    }

    @Test("serving on a non-loopback address needs --allow-remote")
    func loopbackOnly() async throws {
        let r = try await CLITests.cli(["rpc", "serve", "--host", "0.0.0.0", "--port", "50999"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("no authentication"))
    }
}
