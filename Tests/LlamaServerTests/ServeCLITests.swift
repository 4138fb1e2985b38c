import Foundation
import Llama
import LlamaProcess
import LlamaTestSupport
import Synchronization
import Testing

/// `llama-swift serve` as a child process: the official openai client against it, and SIGTERM
/// during streams.
@Suite("llama-swift serve (child process)", .serialized, .timeLimit(.minutes(10)))
struct ServeCLITests {
    static var binary: URL { TestEnvironment.productsDirectory.appendingPathComponent("llama-swift") }

    struct Listening: Sendable {
        var port: Int
        var pid: Int32
    }

    /// Starts the server; returns once it prints its JSON line (an event from its output).
    static func start(_ extra: [String] = []) async throws -> (ChildProcess.Running, Listening, OutputLines) {
        let listening = Arrival<Listening>()
        let output = OutputLines()
        let child = ChildProcess.start(
            binary.path,
            ["serve", "--port", "0", "-m", "smol=\(try TestEnvironment.model().path)", "-c", "4096", "-np", "4", "-t", "2"] + extra,
            environment: ["LLAMA_SWIFT_LIB_DIR": try TestEnvironment.libraryDirectory().path, "LLAMA_SWIFT_OFFLINE": "1"],
            timeout: .seconds(480), grace: .seconds(5)
        ) { line in
            output.append(line.description)
            if line.stream == .output, line.text.hasPrefix("{\"listening\""), let json = try? JSONValue(parsing: line.text),
               case .int(let port)? = json["port"], case .int(let pid)? = json["pid"] {
                listening.deliver(Listening(port: port, pid: Int32(pid)))
            }
        }
        do {
            let l = try await listening.value(within: .seconds(120), "llama-swift serve listening")
            return (child, l, output)
        } catch {
            child.stop()
            throw TestFailure(description: "\(error); its output:\n\(output.tail())")
        }
    }

    @Test("the official openai Python client: chat, streaming, completions, logprobs, embeddings, models, tools round trip, json_schema, usage, errors; --models-dir")
    func openaiClient() async throws {
        // A models folder beside -m: its model is listed and loads on its first request.
        let folder = try TestEnvironment.temporaryDirectory().appendingPathComponent("models")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("other.gguf").path,
                                                   withDestinationPath: try TestEnvironment.model().path)
        let (child, listening, output) = try await Self.start(["--models-dir", folder.path, "--models-max", "2"])
        defer { child.stop() }
        try await withClient(base: "http://127.0.0.1:\(listening.port)") { client in
            let before = try await client.get("/v1/models").json?["data"]?.arrayValue ?? []
            #expect(before.map { $0["id"]?.stringValue ?? "" } == ["smol", "other"])
            #expect(before.map { $0["status"]?["value"]?.stringValue ?? "" } == ["loaded", "unloaded"])
            let reply = try await client.post("/v1/completions", ["model": "other", "prompt": "Hi", "max_tokens": 2])
            #expect(reply.status == 200, "\(reply.body)")
            let after = try await client.get("/v1/models").json?["data"]?.arrayValue ?? []
            #expect(after.map { $0["status"]?["value"]?.stringValue ?? "" } == ["loaded", "loaded"])
        }
        let end = try await ChildProcess.run(
            "python3", ["tools/openai_client_check.py", "--base-url", "http://127.0.0.1:\(listening.port)/v1", "--model", "smol"],
            workingDirectory: TestEnvironment.packageRoot, timeout: .seconds(400))
        let text = end.outputText
        let summary = text.split(separator: "\n").last { $0.hasPrefix("openai checks: ") }.map(String.init) ?? ""
        #expect(end.state == .exited(0), "\(text)\n\(end.errorText.suffix(3000))\nserver:\n\(output.tail(20))")
        #expect(summary == "openai checks: 10 ok, 0 failed", "\(text)")
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("ok ") }.count == 10, "\(text)")
    }

    @Test("SIGTERM during 4 streams: each ends with a final event or an error, then [DONE]; the process exits 0 within the grace")
    func sigtermDuringStreams() async throws {
        let (child, listening, output) = try await Self.start(["--shutdown-grace", "2"])
        defer { child.stop() }
        let started = Counter()
        let allStarted = Arrival<Void>()
        let results = try await withClient(base: "http://127.0.0.1:\(listening.port)") { client in
            try await withThrowingTaskGroup(of: [String].self) { group in
                for i in 0..<4 {
                    group.addTask {
                        var first = true
                        let r = try await client.stream("/v1/chat/completions", [
                            "messages": [["role": "user", "content": .string("Tell me a long story number \(i).")]],
                            "temperature": 0, "max_tokens": 900, "stream": true]) { _ in
                            if first {
                                first = false
                                if started.increment() == 4 { allStarted.deliver(()) }
                            }
                            return true
                        }
                        return r.events
                    }
                }
                try await allStarted.value(within: .seconds(120), "4 streams started")
                let signalled = Date()
                #expect(kill(listening.pid, SIGTERM) == 0)
                var all: [[String]] = []
                for try await events in group { all.append(events) }
                #expect(Date().timeIntervalSince(signalled) < 30)
                return all
            }
        }
        #expect(results.count == 4)
        for events in results {
            #expect(events.last == "[DONE]", "\(events.suffix(3))")
            let final = events.dropLast().last.flatMap { try? JSONValue(parsing: $0) }
            let finish = final?["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue
            let error = final?["error"]?["code"]?.stringValue
            #expect(finish != nil || error != nil, "\(events.suffix(3))")
        }
        let end = try await child.termination()
        #expect(end.state == .exited(0), "\(end)\n\(output.tail(20))")
    }
}
