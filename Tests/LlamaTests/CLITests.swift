import Foundation
@testable import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// Each `llama-swift` subcommand, run as the built binary: exit status, what goes to stdout and
/// what to stderr, JSON that parses. Libraries and model come from the test environment; the
/// cache is a fresh folder, so nothing reaches the user's.
@Suite("llama-swift CLI", .timeLimit(.minutes(10)))
struct CLITests {
    static var binary: URL { TestEnvironment.productsDirectory.appendingPathComponent("llama-swift") }

    /// The environment of a run: the test libraries and model, a fresh cache, no network.
    static func environment(_ extra: [String: String] = [:]) throws -> [String: String] {
        [
            "LLAMA_SWIFT_LIB_DIR": try TestEnvironment.libraryDirectory().path,
            "LLAMA_MODEL": try TestEnvironment.model().path,
            "LLAMA_SWIFT_CACHE": try TestEnvironment.temporaryDirectory().path,
            "LLAMA_SWIFT_MIRRORS": "http://127.0.0.1:9/none", "LLAMA_SWIFT_GITHUB": "http://127.0.0.1:9",
            "LLAMA_SWIFT_PYPI": "http://127.0.0.1:9/simple", "HF_ENDPOINT": "http://127.0.0.1:9",
            "LLAMA_SWIFT_BUILD_FROM_SOURCE": "never", "SWIFT_BACKTRACE": "enable=no",
        ].merging(extra) { _, new in new }
    }

    static func cli(_ arguments: [String], env: [String: String] = [:], stdin: String? = nil) async throws -> ProcessResult {
        try await runProcess(binary, arguments, environment: try environment(env), stdin: stdin)
    }

    /// A failure: non-zero exit, nothing on stdout, the reason on stderr.
    static func expectFailure(_ r: ProcessResult, mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status != 0, sourceLocation: sourceLocation)
        #expect(r.stdout.isEmpty, "stdout: \(r.stdout)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(text), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Program crashed"), sourceLocation: sourceLocation)
    }

    @Test("libs headers: the pin compiled into llama-swift and headers/manifest.json give the same verified headers, those of headers/pinned")
    func headersFromThePin() async throws {
        // The source tree is in the shared cache (`make headers` put it there): nothing is downloaded.
        let cache = ["LLAMA_SWIFT_CACHE": TestEnvironment.cache.path]
        let fromPin = try TestEnvironment.temporaryDirectory(), fromFile = try TestEnvironment.temporaryDirectory()
        let pinned = try await Self.cli(["libs", "headers", "-o", fromPin.path], env: cache)
        #expect(pinned.status == 0, "\(pinned.stderr)")
        let manifest = TestEnvironment.packageRoot.appendingPathComponent("headers/manifest.json").path
        let file = try await Self.cli(["libs", "headers", "--manifest", manifest, "-o", fromFile.path], env: cache)
        #expect(file.status == 0, "\(file.stderr)")
        let committed = try TestEnvironment.headers()
        struct Listed: Decodable { struct Header: Decodable { var path: String }; var headers: [Header] }
        let listed = try JSONDecoder().decode(Listed.self, from: Data(contentsOf: URL(fileURLWithPath: manifest)))
        #expect(!LlamaPin.headers.isEmpty)
        #expect(LlamaPin.headers.map(\.path) == listed.headers.map(\.path), "the compiled pin is not headers/manifest.json's: make regenerate")
        for header in LlamaPin.headers {
            let expected = try Data(contentsOf: committed.appendingPathComponent(header.path))
            #expect(try Data(contentsOf: fromPin.appendingPathComponent(header.path)) == expected, "\(header.path)")
            #expect(try Data(contentsOf: fromFile.appendingPathComponent(header.path)) == expected, "\(header.path)")
        }
    }

    @Test("run: greedy text on stdout equals the library's, logs and summary on stderr; stdin works as the prompt")
    func run() async throws {
        let prompt = "The capital of France is"
        let args = ["run", "--raw", "--temp", "0", "-n", "16", "-t", "2", "-c", "512"]
        let a = try await Self.cli(args + ["-p", prompt])
        try #require(a.status == 0, "\(a.stderr)")
        let b = try await Self.cli(args, stdin: prompt)
        #expect(b.status == 0)
        #expect(a.stdout == b.stdout, "the prompt from stdin gives the same text")
        let options = GenerationOptions(maxTokens: 16)
        var raw = options
        raw.addSpecial = true
        let expected = try await Fixture.context(ContextOptions(contextLength: 512, threads: 2))
            .generate(prompt: prompt, options: raw).summary().text
        #expect(a.stdout == expected + "\n")
        #expect(!a.stdout.contains("load "))
        #expect(a.stderr.contains("run: "))
        #expect(a.stderr.contains("load SmolLM2-135M-Instruct.Q4_1.gguf 100%"), "progress lines go to stderr off a terminal")
    }

    @Test("run: bad flags and bad files are one-line errors with a non-zero exit")
    func runErrors() async throws {
        Self.expectFailure(try await Self.cli(["run", "-p", "x", "--temp", "-1"]), mentioning: "--temp")
        Self.expectFailure(try await Self.cli(["run", "-p", "x", "--top-p", "2"]), mentioning: "--top-p")
        Self.expectFailure(try await Self.cli(["run", "-p", "x", "-m", "/nonexistent/model.gguf"]), mentioning: "cannot read the model")
        let notGGUF = try TestEnvironment.temporaryDirectory().appendingPathComponent("notes.gguf")
        try Data("hello".utf8).write(to: notGGUF)
        Self.expectFailure(try await Self.cli(["run", "-p", "x", "-m", notGGUF.path]), mentioning: "is not a GGUF model")
        Self.expectFailure(try await Self.cli(["run", "-p", "x", "--grammar", "root ::= [0-9"]), mentioning: "grammar")
        Self.expectFailure(try await Self.cli(["run", "-p", "x", "--frobnicate"]), mentioning: "--frobnicate")
        Self.expectFailure(try await Self.cli(["run", "-p", "x", "--lib-dir", "/nonexistent"]), mentioning: "does not exist")
        Self.expectFailure(try await Self.cli(["run", "-p", "x", "--device", "7"]), mentioning: "no such device")
        Self.expectFailure(try await Self.cli(["run", "-p", "x", "--split-mode", "diagonal"]), mentioning: "--split-mode")
    }

    @Test("run: a grammar constrains the output")
    func grammar() async throws {
        let r = try await Self.cli(["run", "-p", "How many legs does a spider have?", "--temp", "0", "-n", "8",
                              "--grammar", "root ::= [0-9]+"])
        try #require(r.status == 0, "\(r.stderr)")
        let text = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!text.isEmpty && text.allSatisfy(\.isNumber), "\(text)")
    }

    @Test("chat: replies on stdout; /reset forgets the conversation, /exit quits")
    func chat() async throws {
        let r = try await Self.cli(["chat", "--temp", "0", "-n", "12", "-c", "1024"], stdin: "Hello!\n/reset\nHello!\n/exit\nnever read\n")
        try #require(r.status == 0, "\(r.stderr)")
        let replies = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        #expect(replies.count == 2, "\(r.stdout)")
        #expect(replies.first == replies.last, "after /reset the same message gets the same greedy reply")
        #expect(r.stderr.contains("conversation cleared"))
    }

    @Test("embed: JSON with one normalized vector per line")
    func embed() async throws {
        let r = try await Self.cli(["embed"], stdin: "The cat sleeps.\n\nA kitten is napping.\n")
        try #require(r.status == 0, "\(r.stderr)")
        let items = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        #expect(items.map { $0["text"] as? String } == ["The cat sleeps.", "A kitten is napping."])
        let width = Int(try Fixture.model.get().embeddingLength)
        for item in items {
            let v = try #require(item["embedding"] as? [Double])
            #expect(v.count == width)
            #expect(abs(v.reduce(0) { $0 + $1 * $1 } - 1) < 1e-3)
        }
        await Self.expectFailure(try Self.cli(["embed"], stdin: "\n"), mentioning: "nothing to embed")
    }

    @Test("devices: the CPU device and the library folder, as text and JSON")
    func devices() async throws {
        let r = try await Self.cli(["devices", "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(doc["library_directory"] as? String == (try TestEnvironment.libraryDirectory().standardizedFileURL.path))
        let devices = try #require(doc["devices"] as? [[String: Any]])
        #expect(devices.contains { $0["kind"] as? String == "cpu" && ($0["memoryTotal"] as? Int ?? 0) > 0 })
        let text = try await Self.cli(["devices"])
        #expect(text.status == 0 && text.stdout.contains("CPU"))
    }

    @Test("libs: path, list, verify, prune on an empty cache")
    func libs() async throws {
        let path = try await Self.cli(["libs", "path"])
        #expect(path.status == 0)
        #expect(path.stdout == (try TestEnvironment.libraryDirectory().path) + "\n")
        let list = try await Self.cli(["libs", "list", "--json"])
        #expect(list.status == 0)
        #expect((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])?.isEmpty == true)
        #expect(try await Self.cli(["libs", "verify"]).status == 0)
        #expect(try await Self.cli(["libs", "prune"]).status == 0)
        // Without LLAMA_SWIFT_LIB_DIR and an empty cache, `path` says what to run.
        Self.expectFailure(try await Self.cli(["libs", "path"], env: ["LLAMA_SWIFT_LIB_DIR": ""]), mentioning: "libs install")
        let offline = try await Self.cli(["libs", "install", "--offline"], env: ["LLAMA_SWIFT_LIB_DIR": ""])
        Self.expectFailure(offline, mentioning: "offline mode")
        Self.expectFailure(try await Self.cli(["libs", "bundle", "-o", "/tmp/x", "--target", "nonsense"]), mentioning: "platform:variant")
    }

    @Test("libs path and libs verify find what `run` installed with default flags (auto), and say so in --help")
    func libsFindWhatRunInstalled() async throws {
        let server = try await ProvisioningTests.mirror()
        let env = try Self.environment(["LLAMA_SWIFT_LIB_DIR": "", "LLAMA_SWIFT_VARIANT": "",
                                        "LLAMA_SWIFT_MIRRORS": server.url(ProvisioningTests.releasePath).absoluteString])
        let run = try await runProcess(Self.binary, ["run", "-p", "Hi", "-n", "1", "--temp", "0", "-c", "256"], environment: env)
        try #require(run.status == 0, "\(run.stderr)")
        let list = try await runProcess(Self.binary, ["libs", "list", "--json"], environment: env)
        let items = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: String]])
        try #require(items.count == 1, "run installed one build: \(list.stdout)")
        let installed = try #require(items[0]["path"])
        for arguments in [["libs", "path"], ["libs", "path", "--variant", "auto"]] {
            let path = try await runProcess(Self.binary, arguments, environment: env)
            #expect(path.status == 0, "\(arguments): \(path.stderr)")
            #expect(path.stdout == installed + "\n", "\(arguments)")
        }
        let verify = try await runProcess(Self.binary, ["libs", "verify"], environment: env)
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stdout.hasPrefix("ok\t\(LlamaPin.tag) \(items[0]["platform"] ?? "") \(items[0]["variant"] ?? "")\t"), "\(verify.stdout)")
        for command in ["path", "install", "verify", "build"] {
            let help = try await runProcess(Self.binary, ["libs", command, "--help"], environment: env)
            let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(text.contains("else auto") && !text.contains("else cpu"), "libs \(command) --help: \(help.stdout)")
        }
    }

    @Test("libs dev-paths prints what tools/paths.py computes for make: one cache layout")
    func devPaths() async throws {
        let cache = try TestEnvironment.temporaryDirectory().path
        let swift = try await runProcess(Self.binary, ["libs", "dev-paths"], environment: ["LLAMA_SWIFT_CACHE": cache])
        try #require(swift.status == 0, "\(swift.stderr)")
        let python = try await runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                          ["python3", TestEnvironment.packageRoot.appendingPathComponent("tools/paths.py").path],
                                          environment: ["LLAMA_SWIFT_CACHE": cache])
        try #require(python.status == 0, "\(python.stderr)")
        #expect(swift.stdout == python.stdout)
        #expect(swift.stdout.contains("LLAMA_LIB_DIR=\(cache)/llama.cpp/\(LlamaPin.tag)/"), "\(swift.stdout)")
        #expect(swift.stdout.split(separator: "\n").map { $0.prefix { $0 != "=" } } == [
            "LLAMA_TAG", "LLAMA_LIB_DIR", "LLAMA_MODEL", "LLAMA_ARCHIVE", "LLAMA_SOURCE", "LLAMA_SOURCE_ARCHIVE", "LLAMA_REFERENCE_DIR",
        ])
    }

    @Test("libs source: any tag's source by the naming rules, one JSON line; a required sha256 that differs fails")
    func libsSource() async throws {
        let archive = try await ArchiveSafetyTests.makeArchive("b1.tar.gz", [("llama.cpp-b1/CMakeLists.txt", "file", "project(x)\n")])
        let sha = try #require(Downloader.sha256(of: archive))
        let server = try await MirrorServer(files: ["ggml-org/llama.cpp/archive/refs/tags/b1.tar.gz": archive])
        let env = ["LLAMA_SWIFT_GITHUB": server.url("").absoluteString]
        let output = try TestEnvironment.temporaryDirectory().appendingPathComponent("src")
        let r = try await runProcess(Self.binary, ["libs", "source", "--tag", "b1", "--output", output.path],
                                     environment: try Self.environment(env))
        try #require(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "{\"file\":\"llama.cpp-b1.tar.gz\",\"root\":\"\(output.path)/llama.cpp-b1\",\"sha256\":\"\(sha)\"}\n")
        #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("llama.cpp-b1/CMakeLists.txt").path))
        let wrong = try await runProcess(Self.binary, ["libs", "source", "--tag", "b1", "--output", output.path,
                                                       "--sha256", String(repeating: "1", count: 64)],
                                         environment: try Self.environment(env))
        Self.expectFailure(wrong, mentioning: "sha256")
        Self.expectFailure(try await runProcess(Self.binary, ["libs", "source", "--tag", "latest", "--output", output.path],
                                                environment: try Self.environment(env)), mentioning: "not a llama.cpp tag")
    }

    @Test("api: the embedded listing is api.txt; a diff names what changed")
    func api() async throws {
        let show = try await Self.cli(["api"])
        try #require(show.status == 0)
        let listing = try String(contentsOf: TestEnvironment.packageRoot.appendingPathComponent("Sources/LlamaRaw/generated/api.txt"),
                                 encoding: .utf8)
        #expect(show.stdout == listing)
        let edited = try TestEnvironment.temporaryDirectory().appendingPathComponent("api.txt")
        try listing.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.contains("llama_backend_init(") }.joined(separator: "\n").write(to: edited, atomically: true, encoding: .utf8)
        let diff = try await Self.cli(["api", "diff", "-", edited.path])
        #expect(diff.status == 0)
        #expect(diff.stdout.contains("llama_backend_init"), "\(diff.stdout)")
        Self.expectFailure(try await Self.cli(["api", "diff", "-", "/nonexistent.txt"]), mentioning: "cannot read")
    }

    @Test("gguf inspect: metadata and tensors as JSON; a truncated or foreign file is refused")
    func gguf() async throws {
        let model = try TestEnvironment.model()
        let r = try await Self.cli(["gguf", "inspect", "--json", model.path])
        try #require(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let metadata = try #require(doc["metadata"] as? [String: Any])
        #expect(metadata["general.architecture"] as? String == "llama")
        let tokens = try #require(metadata["tokenizer.ggml.tokens"] as? [String: Any])
        #expect(tokens["count"] as? Int == Int(try Fixture.model.get().vocab.count))
        let tensors = try #require(doc["tensors"] as? [[String: Any]])
        #expect(tensors.contains { $0["name"] as? String == "token_embd.weight" })
        let text = try await Self.cli(["gguf", "inspect", model.path])
        #expect(text.status == 0 && text.stdout.contains("general.architecture = \"llama\""))

        let truncated = try TestEnvironment.temporaryDirectory().appendingPathComponent("half.gguf")
        let bytes = try Data(contentsOf: model)
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        Self.expectFailure(try await Self.cli(["gguf", "inspect", truncated.path]), mentioning: "truncated")
        let foreign = try TestEnvironment.temporaryDirectory().appendingPathComponent("x.gguf")
        try Data(repeating: 7, count: 64).write(to: foreign)
        Self.expectFailure(try await Self.cli(["gguf", "inspect", foreign.path]), mentioning: "not a GGUF")
        Self.expectFailure(try await Self.cli(["gguf", "inspect", "/nonexistent.gguf"]), mentioning: "does not exist")
    }
}
