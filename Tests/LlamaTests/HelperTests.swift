import Foundation
import Llama
import LlamaProcess
import LlamaRaw
import LlamaTestSupport
import Testing

/// The error a body throws, when it is a LlamaError (nil when it returns, or throws another error:
/// then the `#expect` on the code fails and prints what came).
func caughtLlamaError<T>(_ body: () async throws -> T) async -> LlamaError? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error as? LlamaError
    }
}

/// The helper protocol, the `llama-helper` program, how the library finds it, and the codes of
/// the edge's errors: each failure path asserts its code.
@Suite("helper protocol and edge errors", .timeLimit(.minutes(5)))
struct HelperTests {
    static var helper: URL { TestEnvironment.productsDirectory.appendingPathComponent("llama-helper") }

    /// An executable shell script in a fresh folder.
    static func script(_ body: String, name: String = "fake-helper") throws -> URL {
        let file = try TestEnvironment.temporaryDirectory().appendingPathComponent(name)
        try ("#!/bin/sh\n" + body + "\n").write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file.path)
        return file
    }

    /// Runs the real helper on one request line; returns its termination and its messages.
    static func ask(_ line: Data) async throws -> (ChildProcess.Termination, [HelperResponse]) {
        let termination = try await ChildProcess.run(helper.path, [], input: line + Data("\n".utf8), timeout: .seconds(120))
        let responses = try termination.outputText.split(separator: "\n").map { text in
            try LlamaHelperProtocol.decode(HelperResponse.self, from: Data(text.utf8))
        }
        return (termination, responses)
    }

    // MARK: messages

    @Test("every message survives a round trip through its JSON line, which names the protocol version")
    func roundTrip() throws {
        let requests: [HelperRequest] = [
            HelperRequest(.backendCheck(.init(directory: "/x/llama-b1", variant: .vulkan))),
            HelperRequest(.rpcCheck(.init(directory: "/x", endpoint: "127.0.0.1:5", timeoutSeconds: 2.5))),
            HelperRequest(.generate(.init(directory: nil, model: "m.gguf", prompt: "p\nq", raw: true, maxTokens: 3,
                                          stopSequences: ["."], sampling: .init(temperature: 0.5, seed: 7, grammar: "root ::= \"a\""),
                                          rpcServers: ["h:1"], contextLength: 64, threads: 2, gpuLayers: 0))),
            HelperRequest(.validateModel(.init(directory: "/x", path: "/m/a b.gguf", vocabularyOnly: true))),
            HelperRequest(.validateModel(.init(path: "m.gguf"))),
        ]
        for request in requests {
            let line = try LlamaHelperProtocol.encode(request)
            #expect(!line.contains(UInt8(ascii: "\n")))
            #expect(String(decoding: line, as: UTF8.self).contains("\"protocolVersion\":\(LlamaHelperProtocol.version)"))
            #expect(try LlamaHelperProtocol.decode(HelperRequest.self, from: line) == request)
        }
        let summaryLine = #"{"promptTokens":4,"reusedPromptTokens":1,"generatedTokens":[5,6],"text":"ab","stopReason":"stopSequence","stopSequence":".","promptSeconds":0.02,"generationSeconds":0.03}"#
        let summary = try JSONDecoder().decode(HelperResponse.Summary.self, from: Data(summaryLine.utf8))
        let responses: [HelperResponse] = [
            HelperResponse(.devices([])),
            HelperResponse(.token(.init(id: 5, text: "a"))),
            HelperResponse(.text("b")),
            HelperResponse(.finished(summary)),
            HelperResponse(.failure(.init(code: .rpcProtocol, message: "m", rpc: .init(kind: .versionMismatch, serverVersion: "9.0.0",
                                                                                      clientVersion: "7.0.0")))),
            HelperResponse(.validated(.init(architecture: "llama", description: "llama 135M Q4_1", vocabularySize: 49152,
                                            vocabularyOnly: false))),
            HelperResponse(.validated(.init(architecture: nil, description: "", vocabularySize: 3, vocabularyOnly: true))),
        ]
        for response in responses {
            #expect(try LlamaHelperProtocol.decode(HelperResponse.self, from: try LlamaHelperProtocol.encode(response)) == response)
        }
        let back = try summary.summary()
        #expect(back.stopReason == StopReason.stopSequence(".") && back.generatedTokens == [5, 6] && back.promptDuration == .milliseconds(20))
        #expect(HelperResponse.Summary(back) == summary)
        var unknown = summary
        unknown.stopReason = "exploded"
        #expect(throws: LlamaHelperProtocol.Violation.self) { try unknown.summary() }
    }

    @Test("a line of another protocol version, or not a message, is a violation that says which")
    func violations() {
        #expect { try LlamaHelperProtocol.decode(HelperResponse.self, from: Data(#"{"protocolVersion":99,"devices":[]}"#.utf8)) }
            throws: { ($0 as? LlamaHelperProtocol.Violation)?.foundVersion == 99 }
        #expect { try LlamaHelperProtocol.decode(HelperResponse.self, from: Data("gpu".utf8)) }
            throws: { ($0 as? LlamaHelperProtocol.Violation)?.foundVersion == nil }
        #expect { try LlamaHelperProtocol.decode(HelperResponse.self, from: Data("{\"protocolVersion\":\(LlamaHelperProtocol.version),\"what\":1}".utf8)) }
            throws: { ($0 as? LlamaHelperProtocol.Violation)?.foundVersion == LlamaHelperProtocol.version }
    }

    // MARK: the llama-helper program

    @Test("llama-helper: a backend check lists ggml's devices; a bad folder and a bad request are typed failures")
    func realHelper() async throws {
        let dir = try TestEnvironment.libraryDirectory()
        let (ok, answers) = try await Self.ask(try LlamaHelperProtocol.encode(HelperRequest(.backendCheck(.init(directory: dir.path, variant: .cpu)))))
        #expect(ok.state == .exited(0), "\(ok)")
        guard case .devices(let devices)? = answers.last?.message else {
            Issue.record("no device list: \(answers)")
            return
        }
        #expect(answers.count == 1)
        #expect(devices.contains { $0.kind == .cpu })

        let (missing, failed) = try await Self.ask(try LlamaHelperProtocol.encode(
            HelperRequest(.backendCheck(.init(directory: "/nonexistent/llama-\(LlamaPin.tag)", variant: .cpu)))))
        #expect(missing.state == .exited(1))
        guard case .failure(let notFound)? = failed.first?.message else {
            Issue.record("no failure: \(failed)")
            return
        }
        #expect(failed.count == 1)
        #expect(notFound.code == .libraryNotFound && notFound.message.contains("does not exist"), "\(notFound)")

        let other = LlamaHelperProtocol.version + 1
        let (garbage, refused) = try await Self.ask(Data("{\"protocolVersion\":\(other),\"backendCheck\":{}}".utf8))
        #expect(garbage.state == .exited(2))
        guard case .failure(let failure)? = refused.first?.message else {
            Issue.record("no failure: \(refused)")
            return
        }
        #expect(failure.code == .helperProtocol && failure.message.contains("version \(other)"), "\(failure)")
    }

    // MARK: finding the helper

    @Test("the helper is found: explicit path, LLAMA_SWIFT_HELPER, beside the executable, PATH; else .helperNotFound")
    func locate() throws {
        let a = try Self.script("exit 0", name: "llama-helper")
        let b = try Self.script("exit 0", name: "llama-helper")
        let c = try Self.script("exit 0", name: "llama-helper")
        let empty = try TestEnvironment.temporaryDirectory()
        let env = [LlamaHelper.environmentVariable: b.path, "PATH": "\(empty.path):\(c.deletingLastPathComponent().path)"]
        #expect(try LlamaHelper.locate(a, environment: env, executableDirectory: empty) == a)
        #expect(try LlamaHelper.locate(nil, environment: env, executableDirectory: empty) == b)
        #expect(try LlamaHelper.locate(nil, environment: ["PATH": env["PATH"]!], executableDirectory: a.deletingLastPathComponent()) == a)
        #expect(try LlamaHelper.locate(nil, environment: ["PATH": env["PATH"]!], executableDirectory: empty) == c)

        var errors: [LlamaError] = []
        for attempt in [{ try LlamaHelper.locate(nil, environment: ["PATH": empty.path], executableDirectory: empty) },
                        { try LlamaHelper.locate(empty.appendingPathComponent("none"), environment: env, executableDirectory: empty) },
                        { try LlamaHelper.locate(nil, environment: [LlamaHelper.environmentVariable: "/nonexistent"], executableDirectory: nil) }]
            as [() throws -> URL] {
            do { _ = try attempt() } catch let error as LlamaError { errors.append(error) } catch {}
        }
        #expect(errors.count == 3)
        #expect(errors.allSatisfy { $0.code == .helperNotFound && $0.message.contains("LLAMA_SWIFT_HELPER") }, "\(errors)")
    }

    // MARK: isolated generation against fake helpers

    func generate(with helper: URL, idleTimeout: Duration = .seconds(30)) async -> (tokens: [Int32], error: LlamaError?) {
        let generation = LlamaIsolatedGeneration(.init(model: "/unused.gguf", prompt: "x"), helper: helper, idleTimeout: idleTimeout)
        var tokens: [Int32] = []
        let error = await caughtLlamaError {
            for try await event in generation.stream() {
                if case .token(let id, _) = event { tokens.append(id) }
            }
        }
        return (tokens, error)
    }

    @Test("a helper answering garbage, another protocol version, or nothing is .helperProtocol")
    func helperProtocolErrors() async throws {
        let garbage = await generate(with: try Self.script("read line\necho 'gpu'\nsleep 60"))
        #expect(garbage.error?.code == .helperProtocol, "\(String(describing: garbage.error))")
        let version = LlamaHelperProtocol.version + 1
        let other = await generate(with: try Self.script("read line\necho '{\"protocolVersion\":\(version),\"token\":{\"id\":1,\"text\":\"a\"}}'"))
        #expect(other.error?.code == .helperProtocol && other.error?.message.contains("protocol \(version)") == true,
                "\(String(describing: other.error))")
        #expect(other.tokens.isEmpty)
        let silent = await generate(with: try Self.script("read line\nexit 0"))
        #expect(silent.error?.code == .helperProtocol, "\(String(describing: silent.error))")
    }

    @Test("a helper that crashes mid-generation is .remoteFailed after the tokens it sent; one that hangs is .timeout")
    func helperCrashAndHang() async throws {
        let token = "{\"protocolVersion\":\(LlamaHelperProtocol.version),\"token\":{\"id\":5,\"text\":\"hi\"}}"
        let crash = await generate(with: try Self.script("read line\necho '\(token)'\nkill -SEGV $$"))
        #expect(crash.tokens == [5])
        #expect(crash.error?.code == .remoteFailed, "\(String(describing: crash.error))")
        #expect((crash.error?.underlying as? LlamaHelper.Ended)?.signal == SIGSEGV)
        let hang = await generate(with: try Self.script("read line\necho '\(token)'\nsleep 60"), idleTimeout: .seconds(1))
        #expect(hang.tokens == [5])
        #expect(hang.error?.code == .timeout, "\(String(describing: hang.error))")
        let failure = "{\"protocolVersion\":\(LlamaHelperProtocol.version),\"failure\":{\"code\":\"invalidModel\",\"message\":\"not a GGUF file\"}}"
        let failed = await generate(with: try Self.script("read line\necho '\(failure)'\nexit 1"))
        #expect(failed.error?.code == .invalidModel && failed.error?.message == "not a GGUF file", "\(String(describing: failed.error))")
    }

    // MARK: loading

    @Test("load errors keep their codes: missing folder, another version, missing symbols")
    func loadCodes() async throws {
        let missing = await caughtLlamaError { try LlamaRuntime(libraryDirectory: URL(fileURLWithPath: "/nonexistent/llama-\(LlamaPin.tag)")) }
        #expect(missing?.code == .libraryNotFound, "\(String(describing: missing))")
        #expect((missing?.underlying as? LlamaLoadError)?.code == .directoryNotFound)

        let older = try TestEnvironment.releaseFolder(tag: "b1")
        let mismatch = await caughtLlamaError { try LlamaRuntime(libraryDirectory: older, allowVersionMismatch: false) }
        #expect(mismatch?.code == .versionMismatch, "\(String(describing: mismatch))")
        #expect((mismatch?.underlying as? LlamaLoadError)?.foundTag == "b1")

        // Stand-in libraries: they load, libggml has ggml_backend_load_all_from_path (doing
        // nothing), and no library has the rest.
        let dir = try TestEnvironment.releaseFolder()
        let sources = try TestEnvironment.temporaryDirectory()
        try "int llama_swift_stub;\n".write(to: sources.appendingPathComponent("empty.c"), atomically: true, encoding: .utf8)
        try "void ggml_backend_load_all_from_path(const char *p) { (void)p; }\n"
            .write(to: sources.appendingPathComponent("load.c"), atomically: true, encoding: .utf8)
        for (source, library) in [("empty.c", "libggml-base.so"), ("load.c", "libggml.so"), ("empty.c", "libllama.so")] {
            let cc = try await ChildProcess.run("cc", ["-shared", "-fPIC", "-o", dir.appendingPathComponent(library).path,
                                                       sources.appendingPathComponent(source).path], timeout: .seconds(120))
            try #require(cc.succeeded, "cc: \(cc)")
        }
        #expect {
            _ = try LlamaLibraries.load(from: dir)
        } throws: { error in
            guard let e = error as? LlamaLoadError, e.code == .missingSymbols else { return false }
            return e.missingSymbols.contains { $0.name == "llama_decode" && $0.library == .llama }
                && e.description.contains("lack \(e.missingSymbols.count) required function(s)")
        }
        let symbols = await caughtLlamaError { try LlamaRuntime(libraryDirectory: dir) }
        #expect(symbols?.code == .missingSymbols, "\(String(describing: symbols))")
        #expect((symbols?.underlying as? LlamaLoadError)?.missingSymbols.contains { $0.name == "llama_backend_init" } == true)
    }

    @Test("checking a GPU build: no helper is .helperNotFound, a garbage helper .helperProtocol, a crashing one a .backendRejected fallback")
    func backendCheck() async throws {
        let server = try await SelectionTests.mirror()
        func options(helper: URL) throws -> LlamaInstallOptions {
            var o = try SelectionTests.options(server)
            o.probe = try LlamaHardwareProbe(fixture: SelectionTests.machines.appendingPathComponent("intel-vulkan-only"), platform: o.platform)
            o.helper = helper
            return o
        }
        let absent = await caughtLlamaError { try await LlamaRuntime.load(options: try options(helper: URL(fileURLWithPath: "/nonexistent/llama-helper"))) }
        #expect(absent?.code == .helperNotFound, "\(String(describing: absent))")
        let garbage = await caughtLlamaError { try await LlamaRuntime.load(options: try options(helper: try Self.script("read line\necho 'gpu'\nsleep 60"))) }
        #expect(garbage?.code == .helperProtocol, "\(String(describing: garbage))")

        let crashing = try options(helper: try Self.script("read line\nkill -SEGV $$"))
        let runtime = try await LlamaRuntime.load(options: crashing)
        let selection = try #require(runtime.selection)
        #expect(selection.chosen == .cpu)
        let rejection = try #require(selection.rejected.first { $0.variant == .vulkan }, "\(selection.summary)")
        #expect(rejection.code == .backendRejected, "\(rejection)")
        #expect(rejection.reason.contains("crashed a child process (signal \(SIGSEGV))"), "\(rejection.reason)")
    }
}
