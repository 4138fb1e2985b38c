import Foundation
import Llama
import LlamaTestSupport
import Testing

/// `llama-swift chat --tools`: built-in tools run by the CLI, calls and results printed as they happen.
@Suite("llama-swift chat --tools", .serialized, .timeLimit(.minutes(10)))
struct ChatToolsCLITests {
    /// A tools file: the built-in calculator (its expression limited to arithmetic characters, so
    /// that a small model closes the string) and a tool llama-swift has no implementation of.
    static let tools = #"""
        [{"type": "function", "function": {"name": "calculator", "description": "Evaluates an arithmetic expression.",
          "parameters": {"type": "object", "properties": {"expression": {"type": "string", "pattern": "^[0-9+*/() .-]{1,40}$"}},
                         "required": ["expression"]}}},
         {"type": "function", "function": {"name": "weather", "description": "The weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
        """#

    static func files() throws -> (dir: URL, tools: URL, template: URL) {
        let dir = try TestEnvironment.temporaryDirectory()
        let tools = dir.appendingPathComponent("tools.json"), template = dir.appendingPathComponent("hermes.jinja")
        try Data(Self.tools.utf8).write(to: tools)
        try Data(ToolTests.hermesTemplate.utf8).write(to: template)
        return (dir, tools, template)
    }

    @Test("--tool-choice required with the calculator: the call and its right result are printed, then the answer")
    func requiredCalculator() async throws {
        let f = try Self.files()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let r = try await CLITests.cli(["chat", "--temp", "0", "-n", "96", "-c", "2048", "--tools", f.tools.path,
                                        "--tool-choice", "required", "--chat-template-file", f.template.path],
                                       stdin: "What is 12 times 7?\n")
        try #require(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: --tools: \"weather\" is not a built-in tool"), "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        let callLine = try #require(lines.first { $0.hasPrefix("[tool call ") }, "no call printed: \(r.stderr)")
        let resultLine = try #require(lines.first { $0.hasPrefix("[tool result ") }, "no result printed: \(r.stderr)")
        // [tool call ID] calculator {"expression": "..."}
        let callJSON = try #require(callLine.firstIndex(of: "{").map { String(callLine[$0...]) }, "\(callLine)")
        #expect(callLine.contains("] calculator {"), "\(callLine)")
        let expression = try #require(try JSONValue(parsing: callJSON)["expression"]?.stringValue, "\(callJSON)")
        #expect(expression.allSatisfy { "0123456789+-*/(). ".contains($0) }, "\(expression)")
        // [tool result ID] calculator: VALUE, which Python's arithmetic agrees with.
        #expect(!resultLine.contains("(error)"), "\(resultLine)")
        let printedText = resultLine.components(separatedBy: "calculator: ").last ?? ""
        let printed = try #require(Double(printedText), "\(resultLine)")
        let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        let check = try await runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                         [python, "-c", "import sys; print(float(eval(sys.argv[1], {'__builtins__': {}})))", expression],
                                         timeout: 60)
        try #require(check.status == 0, "\(check.stderr)")
        let expectedText = check.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let expected = try #require(Double(expectedText), "\(expectedText)")
        #expect(abs(printed - expected) <= 1e-9 * max(1, abs(expected)), "\(expression) = \(expected), printed \(printed)")
        // The answer after the tool round is on stdout, without call markup.
        #expect(!r.stdout.contains("<tool_call>"), "\(r.stdout)")
        #expect(!r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }

    @Test("--tool-choice NAME makes the first reply call that tool; one without an implementation gets that result")
    func namedToolWithoutImplementation() async throws {
        let f = try Self.files()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let r = try await CLITests.cli(["chat", "--temp", "0", "-n", "64", "-c", "2048", "--tools", f.tools.path,
                                        "--tool-choice", "weather", "--max-tool-rounds", "1",
                                        "--chat-template-file", f.template.path],
                                       stdin: "What is the weather in Paris?\n")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        let call = try #require(lines.first { $0.hasPrefix("[tool call ") }, "\(r.stderr)")
        #expect(call.contains("] weather {"), "\(call)")
        let result = try #require(lines.first { $0.hasPrefix("[tool result ") }, "\(r.stderr)")
        #expect(result.contains("weather (error): error: no implementation"), "\(result)")
        // Exit 0 with an answer, or 1 when the model called again after its one round.
        #expect(r.status == 0 || r.stderr.contains("toolRoundsExceeded") || r.stderr.contains("rounds"), "\(r.stderr)")
    }

    @Test("bad --tools and --tool-choice: errors that say what to do")
    func badFlags() async throws {
        let f = try Self.files()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        CLITests.expectFailure(try await CLITests.cli(["chat", "--tools", f.tools.path, "--tool-choice", "nope"], stdin: "hi\n"),
                               mentioning: "--tool-choice nope: no such tool")
        CLITests.expectFailure(try await CLITests.cli(["chat", "--tool-choice", "required"], stdin: "hi\n"),
                               mentioning: "--tool-choice needs --tools")
        let bad = f.dir.appendingPathComponent("bad.json")
        try Data(#"{"name": "x"}"#.utf8).write(to: bad)
        CLITests.expectFailure(try await CLITests.cli(["chat", "--tools", bad.path], stdin: "hi\n"),
                               mentioning: "must hold a JSON array of tools")
        let nameless = f.dir.appendingPathComponent("nameless.json")
        try Data(#"[{"type": "function", "function": {"description": "no name"}}]"#.utf8).write(to: nameless)
        CLITests.expectFailure(try await CLITests.cli(["chat", "--tools", nameless.path], stdin: "hi\n"),
                               mentioning: "--tools: tool 0 of \(nameless.path): a tool needs a \"name\"")
        CLITests.expectFailure(try await CLITests.cli(["chat", "--tools", f.tools.path, "--json"], stdin: "hi\n"),
                               mentioning: "cannot be used with --tools")
    }
}
