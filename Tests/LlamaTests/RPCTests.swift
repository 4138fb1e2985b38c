import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// ggml's RPC backend between `llama-swift` processes on loopback.
@Suite("RPC", .serialized, .timeLimit(.minutes(5)))
struct RPCTests {
    /// A `llama-swift rpc serve` process, stopped when released.
    final class Server {
        let process = Process()
        let port: UInt16
        init() throws {
            var port: UInt16 = 0
            for _ in 0..<50 {
                let candidate = UInt16.random(in: 40000..<60000)
                if (try? LlamaRuntime.reachable("127.0.0.1:\(candidate)")) == false { port = candidate; break }
            }
            self.port = port
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

    @Test("an unreachable server is a typed error at load, and the process exits cleanly")
    func unreachable() throws {
        var port: UInt16 = 9
        for _ in 0..<50 {
            let candidate = UInt16.random(in: 40000..<60000)
            if (try? LlamaRuntime.reachable("127.0.0.1:\(candidate)")) == false { port = candidate; break }
        }
        let r = try CLITests.cli(["run", "-p", "x", "-n", "2", "--rpc", "127.0.0.1:\(port)"])
        CLITests.expectFailure(r, mentioning: "unreachable")
        let runtime = try Fixture.runtime.get()
        #expect(throws: LlamaError.self) { try runtime.addRPCServer("127.0.0.1:\(port)", timeout: .seconds(2)) }
        #expect(throws: LlamaError.self) { try runtime.addRPCServer("no-port") }
    }

    @Test("serving on a non-loopback address needs --allow-remote")
    func loopbackOnly() throws {
        let r = try CLITests.cli(["rpc", "serve", "--host", "0.0.0.0", "--port", "50999"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("no authentication"))
    }
}
