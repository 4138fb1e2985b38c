import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// ggml's RPC backend between `llama-swift` processes on loopback.
@Suite("RPC", .serialized, .timeLimit(.minutes(5)))
struct RPCTests {
    /// `llama-swift` as the library's helper process (generation, the first contact with a
    /// server): a script that runs it with the test libraries, so that it does not install a
    /// build into the user's cache (on a fresh machine a source build, far over the tests' waits).
    /// The environment of this process is left alone: other suites run beside this one.
    static func helper() throws -> URL {
        let script = try TestEnvironment.temporaryDirectory().appendingPathComponent("llama-swift-helper")
        let text = "#!/bin/sh\nLLAMA_SWIFT_LIB_DIR='\(try TestEnvironment.libraryDirectory().path)' exec '\(CLITests.binary.path)' \"$@\"\n"
        try text.write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        return script
    }

    /// A loopback port nothing listens on.
    static func closedPort() -> UInt16 {
        for _ in 0..<50 {
            let candidate = UInt16.random(in: 40000..<60000)
            if (try? LlamaRuntime.reachable("127.0.0.1:\(candidate)")) == false { return candidate }
        }
        return 9
    }

    /// A `llama-swift rpc serve` process, stopped when released.
    final class Server {
        let process = Process()
        let port: UInt16
        init() throws {
            port = RPCTests.closedPort()
            process.executableURL = CLITests.binary
            process.arguments = ["rpc", "serve", "--port", "\(port)", "--threads", "1"]
            process.environment = ProcessInfo.processInfo.environment.merging(try CLITests.environment()) { _, n in n }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            var waited = 0
            while (try? LlamaRuntime.reachable("127.0.0.1:\(port)")) != true, waited < 100 {
                Thread.sleep(forTimeInterval: 0.1)
                waited += 1
            }
        }
        var endpoint: String { "127.0.0.1:\(port)" }
        deinit {
            process.terminate()
            process.waitUntilExit()
        }
    }

    @Test("a model split over two RPC servers generates the local run's tokens")
    func twoServers() throws {
        let a = try Server(), b = try Server()
        let args = ["run", "--raw", "-p", "The capital of France is", "--temp", "0", "-n", "16", "-t", "2"]
        let local = try CLITests.cli(args)
        let remote = try CLITests.cli(args + ["--rpc", "\(a.endpoint),\(b.endpoint)"])
        try #require(local.status == 0 && remote.status == 0, "\(local.stderr)\n\(remote.stderr)")
        #expect(remote.stdout == local.stdout)
        #expect(!remote.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)

        let devices = try CLITests.cli(["devices", "--json", "--rpc", "\(a.endpoint),\(b.endpoint)"])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(devices.stdout.utf8)) as? [String: Any])
        let list = try #require(doc["devices"] as? [[String: Any]])
        let remoteDevices = list.filter { ($0["backend"] as? String) == "RPC" }
        #expect(Set(remoteDevices.compactMap { $0["description"] as? String }) == [a.endpoint, b.endpoint])
        #expect(remoteDevices.allSatisfy { ($0["memoryTotal"] as? Int ?? 0) > 0 })
    }

    @Test("a server that dies mid-generation is a typed error in the calling process, which stays usable")
    func serverDies() async throws {
        let a = try Server(), b = try Server()
        var generation = try #require(LlamaIsolatedGeneration(model: try TestEnvironment.model().path, servers: [a.endpoint, b.endpoint],
                                                              prompt: "Once upon a time", maxTokens: 2000, raw: true,
                                                              helper: try Self.helper()))
        generation.idleTimeout = .seconds(20)
        var tokens = 0
        var caught: LlamaError?
        do {
            for try await event in generation.stream() {
                if case .token = event {
                    tokens += 1
                    if tokens == 5 { b.process.terminate() }
                }
            }
        } catch let error as LlamaError {
            caught = error
        }
        let error = try #require(caught, "the stream ended without an error after \(tokens) tokens")
        #expect(error.code == .remoteFailed, "\(error)")
        #expect(error.message.contains("RPC server"), "\(error.message)")
        #expect(tokens >= 5 && tokens < 2000)
        // This process goes on: local generation still works.
        let summary = try await Fixture.context(ContextOptions(contextLength: 256, threads: 2))
            .generate(prompt: Fixture.chatPrompt, options: GenerationOptions(maxTokens: 4)).summary()
        #expect(!summary.generatedTokens.isEmpty)
    }

    @Test("chat and embed over RPC compute in a child: a server killed before the reply is an error, not a crash")
    func chatAndEmbedIsolated() throws {
        let a = try Server()
        let ok = try CLITests.cli(["embed", "--rpc", a.endpoint], stdin: "A kitten is a young cat.\n")
        try #require(ok.status == 0, "\(ok.stderr)")
        #expect((try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [[String: Any]])?.count == 1)
        let chat = try CLITests.cli(["chat", "--rpc", a.endpoint, "--temp", "0", "-n", "8"], stdin: "Hello!\n/exit\n")
        #expect(chat.status == 0, "\(chat.stderr)")
        #expect(!chat.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        // The server goes away between load and the first reply: the model's weights live there.
        let b = try Server()
        let endpoint = b.endpoint
        let pid = b.process.processIdentifier
        let killer = Thread { Thread.sleep(forTimeInterval: 2); kill(pid, SIGKILL) }
        killer.start()
        let dead = try CLITests.cli(["chat", "--rpc", endpoint, "--temp", "0", "-n", "2000", "-c", "4096"],
                                    stdin: String(repeating: "Tell me a very long story about the sea. ", count: 1) + "\n")
        #expect(dead.status == 1, "\(dead.stderr)")
        #expect(dead.stderr.contains("RPC server") || dead.stderr.contains("unreachable"), "\(dead.stderr)")
    }

    @Test("a server that stops answering is a timeout after the configured wait")
    func serverHangs() throws {
        let a = try Server()
        // Stopped, the server's port still accepts connections (the kernel queues them), but
        // nothing answers.
        kill(a.process.processIdentifier, SIGSTOP)
        defer { kill(a.process.processIdentifier, SIGCONT) }
        let r = try CLITests.cli(["run", "--raw", "-p", "Once upon a time", "--temp", "0", "-n", "50", "--rpc", a.endpoint,
                                  "--rpc-timeout", "3"])
        CLITests.expectFailure(r, mentioning: "no token came")
    }

    @Test("an unreachable server is a typed error at load, and the process exits cleanly")
    func unreachable() throws {
        let port = Self.closedPort()
        let r = try CLITests.cli(["run", "-p", "x", "-n", "2", "--rpc", "127.0.0.1:\(port)"])
        CLITests.expectFailure(r, mentioning: "unreachable")
        let runtime = try Fixture.runtime.get()
        #expect(throws: LlamaError.self) { try runtime.addRPCServer("127.0.0.1:\(port)", timeout: .seconds(2), checkedBy: try Self.helper()) }
        #expect(throws: LlamaError.self) { try runtime.addRPCServer("no-port") }
    }

    @Test("a server of another RPC protocol version is a typed error naming the version problem")
    func otherVersion() throws {
        // Answers HELLO (command 14) as a server of protocol 99.0.0 would, then hangs up.
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
        let fake = Process()
        fake.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        fake.arguments = ["python3", "-c", script]
        let out = Pipe()
        fake.standardOutput = out
        try fake.run()
        // SIGKILL: a child of this process starts with SIGTERM blocked (Foundation keeps the
        // spawning thread's signal mask).
        defer { kill(fake.processIdentifier, SIGKILL) }
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line.append(byte) }
        let endpoint = "127.0.0.1:\(String(decoding: line, as: UTF8.self))"
        let runtime = try Fixture.runtime.get()
        #expect { try runtime.addRPCServer(endpoint, checkedBy: try Self.helper()) } throws: { error in
            (error as? LlamaError)?.message.contains("another RPC protocol version") == true
        }
        let r = try CLITests.cli(["run", "-p", "x", "-n", "2", "--rpc", endpoint])
        CLITests.expectFailure(r, mentioning: "another RPC protocol version")
    }

    @Test("serving on a non-loopback address needs --allow-remote")
    func loopbackOnly() throws {
        let r = try CLITests.cli(["rpc", "serve", "--host", "0.0.0.0", "--port", "50999"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("no authentication"))
    }
}
