import Foundation
import LlamaJinja
import LlamaProcess
import LlamaTestSupport
import Testing

/// What the reference tests need from the machine, found the way `make test` provides it: the
/// pinned llama.cpp source (its `models/templates`), the default model (its GGUF chat
/// template), our C++ reference harness, and Python with jinja2. A missing one is a test
/// failure that says what to run, never a skip.
enum ReferenceEnvironment {
    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let referenceTool = packageRoot.appendingPathComponent("tools/jinja_reference.py")

    /// The runtime's cache, where `make` puts everything (`LLAMA_SWIFT_CACHE`, else
    /// `$XDG_CACHE_HOME/swift-llama-cpp`, else `~/.cache/swift-llama-cpp`); the defaults below are
    /// its paths (tools/paths.py), and the variables `make` exports win.
    static var cache: URL {
        let env = ProcessInfo.processInfo.environment
        if let explicit = env["LLAMA_SWIFT_CACHE"], !explicit.isEmpty { return URL(fileURLWithPath: explicit) }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("swift-llama-cpp")
    }

    /// The committed manifest.
    static func manifest() throws -> [String: Any] {
        let url = packageRoot.appendingPathComponent("headers/manifest.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Missing(description: "cannot read the manifest \(url.path)")
        }
        return object
    }

    /// The pinned tag, from the committed manifest (the cache's folders are named after it).
    static func tag() throws -> String {
        guard let tag = try manifest()["tag"] as? String else {
            throw Missing(description: "the manifest headers/manifest.json has no tag")
        }
        return tag
    }

    /// `<cache>/llama.cpp/<tag>`.
    static func tagFolder() throws -> URL { cache.appendingPathComponent("llama.cpp/\(try tag())") }

    static func existing(_ variable: String, default path: URL, make target: String) throws -> URL {
        let url = ProcessInfo.processInfo.environment[variable].map { URL(fileURLWithPath: $0) } ?? path
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw Missing(description: "\(url.path) does not exist (from \(variable) or its default): run `\(target)`, or `make test-package`, which runs it")
        }
        return url
    }

    /// The unpacked pinned source tree (`make headers` puts it in the cache).
    static func source() throws -> URL {
        try existing("LLAMA_SOURCE", default: try tagFolder().appendingPathComponent("source/llama.cpp"), make: "make headers")
    }

    static func model() throws -> URL {
        let model = try manifest()["model"] as? [String: Any]
        guard let hub = model?["huggingface"] as? [String: String], let repo = hub["repo"], let revision = hub["revision"],
              let file = hub["file"] else {
            throw Missing(description: "the manifest names no Hugging Face place for the default model: set LLAMA_MODEL")
        }
        return try existing("LLAMA_MODEL", default: cache.appendingPathComponent("models/\(repo)/\(revision)/\(file)"), make: "make model")
    }

    /// Our C++ harness over llama.cpp's own Jinja engine (`tools/reference`, built by `make reference`).
    static func jinjaReferenceProgram() throws -> URL {
        let pinned = try tag()
        let dir = ProcessInfo.processInfo.environment["LLAMA_REFERENCE_DIR"].map { URL(fileURLWithPath: $0) }
            ?? cache.appendingPathComponent("llama.cpp/\(pinned)/reference")
        let program = dir.appendingPathComponent("jinja-reference")
        guard FileManager.default.isExecutableFile(atPath: program.path) else {
            throw Missing(description: "\(program.path) is not there (from LLAMA_REFERENCE_DIR or its default): run `make reference`, or `make test-package`, which runs it")
        }
        return program
    }

    /// The Python interpreter the Makefile uses (`PYTHON`, else `python3` on the PATH).
    static var python: String { ProcessInfo.processInfo.environment["PYTHON"] ?? "python3" }
}

/// A finished child process: its status and what it wrote.
struct ReferenceProcessResult {
    var status: Int32
    var stdout: Data
    var stderr: String
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs a program (a path, or a name on the PATH) to its end; after `timeout` seconds it is
/// stopped (SIGTERM, then SIGKILL) and this throws.
func runReferenceProcess(_ executable: String, _ arguments: [String], stdin: Data? = nil,
                         timeout: TimeInterval = 300) async throws -> ReferenceProcessResult {
    let end = try await ChildProcess.run(executable, arguments, input: stdin, timeout: .milliseconds(Int64(timeout * 1000)))
    let status: Int32
    switch end.state {
    case .exited(let code): status = code
    case .signalled(let signal): status = 128 + signal
    case .timedOut:
        throw ReferenceEnvironment.Missing(description: "\(executable) \(arguments.prefix(2).joined(separator: " ")) ran past "
            + "\(Int(timeout)) s and was stopped; its stderr:\n\(end.errorText.suffix(2000))")
    case .cancelled: throw CancellationError()
    }
    return ReferenceProcessResult(status: status, stdout: end.standardOutput, stderr: end.errorText)
}

/// jinja2, set up as transformers sets it up (`tools/jinja_reference.py`), in one Python
/// process for a whole batch of jobs.
enum Jinja2 {
    /// One rendering by jinja2: the text, or the exception it raised.
    enum Outcome: Equatable {
        case output(String)
        case error(type: String, message: String, line: Int?)
    }

    /// The jinja2 version, or a failure saying how to install it.
    static func version() async throws -> String {
        let r = try await runReferenceProcess(ReferenceEnvironment.python, [ReferenceEnvironment.referenceTool.path, "version"])
        guard r.status == 0 else {
            throw ReferenceEnvironment.Missing(description: "jinja2 is not usable with \(ReferenceEnvironment.python) (exit \(r.status)): \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)) — run `make deps`")
        }
        return r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A job: a template (a file path or its text), the variables, and the clock `strftime_now` reads.
    struct Job {
        var id: String
        var templatePath: String?
        var source: String?
        var context: JSONObject
        var now: String

        var json: JSONValue {
            var o = JSONObject()
            o["id"] = .string(id)
            if let templatePath { o["template"] = .string(templatePath) }
            if let source { o["source"] = .string(source) }
            o["context"] = .object(context)
            o["now"] = .string(now)
            return .object(o)
        }
    }

    private struct Result: Decodable {
        var id: String
        var output: String?
        var error: String?
        var type: String?
        var line: Int?
    }

    /// Renders every job in one Python process; the outcomes by job id.
    static func render(_ jobs: [Job]) async throws -> [String: Outcome] {
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("jobs.json"), output = dir.appendingPathComponent("results.json")
        try Data(JSONValue.array(jobs.map(\.json)).jsonText.utf8).write(to: input)
        let r = try await runReferenceProcess(ReferenceEnvironment.python,
                                        [ReferenceEnvironment.referenceTool.path, "render", input.path, "--out", output.path])
        guard r.status == 0 else {
            throw ReferenceEnvironment.Missing(description: "tools/jinja_reference.py render failed (exit \(r.status)): \(r.stderr)")
        }
        let results = try JSONDecoder().decode([Result].self, from: try Data(contentsOf: output))
        var outcomes: [String: Outcome] = [:]
        for result in results {
            if let text = result.output {
                outcomes[result.id] = .output(text)
            } else {
                outcomes[result.id] = .error(type: result.type ?? "?", message: result.error ?? "", line: result.line)
            }
        }
        return outcomes
    }

    /// The chat template a GGUF file carries, read by the tool's own GGUF reader.
    static func chatTemplate(ofModel model: URL) async throws -> String {
        let r = try await runReferenceProcess(ReferenceEnvironment.python, [ReferenceEnvironment.referenceTool.path, "chat-template", model.path])
        guard r.status == 0 else {
            throw ReferenceEnvironment.Missing(description: "cannot read the chat template of \(model.path): \(r.stderr)")
        }
        return r.stdoutText
    }
}

/// The fixed clock every reference rendering uses, in UTC on both sides.
enum ReferenceClock {
    static func options(now: String) -> JinjaTemplate.Options {
        var options = JinjaTemplate.Options()
        let date = ISO8601DateFormatter().date(from: now) ?? Date(timeIntervalSince1970: 0)
        options.now = { date }
        options.timeZone = TimeZone(identifier: "UTC")!
        return options
    }
}

/// Runs `body` under a deadline on a thread of its own, so a runaway template fails its test
/// instead of hanging the run. The thread has an 8 MiB stack (Linux's default for a main
/// thread); a body that overruns the deadline is left running and reported as timed out.
func runWithDeadline(seconds: Double, _ body: @escaping @Sendable () -> Result<String, JinjaError>) -> DeadlineOutcome {
    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var value: Result<String, JinjaError>?
    }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    let start = Date()
    let thread = Thread {
        let result = body()
        box.lock.lock()
        box.value = result
        box.lock.unlock()
        done.signal()
    }
    thread.stackSize = 8 << 20
    thread.start()
    guard done.wait(timeout: .now() + seconds) == .success else { return .timedOut }
    box.lock.lock()
    defer { box.lock.unlock() }
    return .finished(box.value!, seconds: Date().timeIntervalSince(start))
}

/// Parses and renders `source` under a deadline.
func renderWithDeadline(_ source: String, _ variables: [String: JSONValue] = [:], options: JinjaTemplate.Options = JinjaTemplate.Options(),
                        seconds: Double) -> DeadlineOutcome {
    runWithDeadline(seconds: seconds) {
        do throws(JinjaError) {
            return .success(try JinjaTemplate(source, options: options).render(variables))
        } catch {
            return .failure(error)
        }
    }
}

enum DeadlineOutcome {
    case finished(Result<String, JinjaError>, seconds: Double)
    case timedOut
}

/// Where two texts first differ, as bytes, with escaped context on both sides.
func firstDifference(expected: String, actual: String, context: Int = 60) -> String {
    let e = Array(expected.utf8), a = Array(actual.utf8)
    var i = 0
    while i < e.count, i < a.count, e[i] == a[i] { i += 1 }
    func excerpt(_ bytes: [UInt8]) -> String {
        let start = max(0, i - context), end = min(bytes.count, i + context)
        let before = String(decoding: bytes[start..<min(i, bytes.count)], as: UTF8.self)
        let after = i < bytes.count ? String(decoding: bytes[i..<end], as: UTF8.self) : ""
        return "\(start > 0 ? "…" : "")\(escaped(before))⟦\(escaped(after))\(end < bytes.count ? "…" : "")"
    }
    let line = e[..<min(i, e.count)].filter { $0 == 0x0A }.count + 1
    return """
        first difference at byte \(i) (line \(line)) of \(e.count) expected / \(a.count) actual bytes
              jinja2: \(excerpt(e))
              ours:   \(excerpt(a))
        """
}

/// A text on one line: newlines, tabs and other controls written as escapes.
func escaped(_ s: String) -> String {
    var out = ""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out
}
