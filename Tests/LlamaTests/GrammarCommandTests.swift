import Foundation
import Llama
import LlamaTestSupport
import Testing

/// `llama-swift grammar from-schema` and `run --json-schema` / `run --json`, as the built binary.
@Suite("llama-swift grammar and JSON output", .timeLimit(.minutes(10)))
struct GrammarCommandTests {
    static let schema = #"{"type":"object","properties":{"name":{"type":"string","maxLength":10},"n":{"type":"integer","minimum":1,"maximum":9}},"required":["name","n"],"additionalProperties":false}"#

    @Test("grammar from-schema: the GBNF on stdout from a file and from stdin; warnings and errors on stderr")
    func fromSchema() async throws {
        let dir = try TestEnvironment.temporaryDirectory()
        let file = dir.appendingPathComponent("schema.json")
        try Data(Self.schema.utf8).write(to: file)
        let a = try await CLITests.cli(["grammar", "from-schema", file.path])
        try #require(a.status == 0, "\(a.stderr)")
        #expect(a.stdout.contains("\nn ::= ([1-9])\n"))
        #expect(a.stdout.contains("root ::= \"{\" space name-kv \",\" space n-kv space \"}\"\n"))
        #expect(a.stderr.isEmpty)
        let b = try await CLITests.cli(["grammar", "from-schema", "-"], stdin: Self.schema)
        #expect(b.stdout == a.stdout)
        let compact = try await CLITests.cli(["grammar", "from-schema", "--whitespace", "compact", "-"], stdin: Self.schema)
        #expect(compact.stdout.contains("space ::= \"\"\n"))

        let w = try await CLITests.cli(["grammar", "from-schema", "-"], stdin: #"{"type":"string","format":"email"}"#)
        #expect(w.status == 0)
        #expect(w.stderr.contains("warning: stdin: #: format \"email\" is not enforced"), "\(w.stderr)")
        CLITests.expectFailure(try await CLITests.cli(["grammar", "from-schema", "--strict", "-"], stdin: #"{"type":"string","format":"email"}"#),
                               mentioning: "format \"email\" is not enforced")
        CLITests.expectFailure(try await CLITests.cli(["grammar", "from-schema", "-"], stdin: #"{"type":"array","minItems":3,"maxItems":1}"#),
                               mentioning: "JSON schema error at #: minItems (3) is greater than maxItems (1)")
        CLITests.expectFailure(try await CLITests.cli(["grammar", "from-schema", "-"], stdin: ##"{"$ref":"#/$defs/x"}"##), mentioning: "$ref")
        CLITests.expectFailure(try await CLITests.cli(["grammar", "from-schema", dir.appendingPathComponent("missing.json").path]),
                               mentioning: "cannot read")
    }

    @Test("run --json-schema and --json: the output parses and has the schema's shape")
    func runJSON() async throws {
        let args = ["run", "-n", "48", "-t", "2", "-c", "512", "--temp", "1.0", "--seed", "7"]
        let a = try await CLITests.cli(args + ["--json-schema", Self.schema, "-p", "A person as JSON."])
        try #require(a.status == 0, "\(a.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(a.stdout.utf8)) as? [String: Any], "\(a.stdout)")
        #expect(Set(object.keys) == ["name", "n"])
        #expect((object["n"] as? Int).map { (1...9).contains($0) } == true)
        // any JSON value is open-ended: greedy, on a prompt SmolLM2 answers briefly
        let b = try await CLITests.cli(["run", "-n", "96", "-t", "2", "-c", "512", "--temp", "0", "--json", "-p", #"Return {"ok": true} as JSON."#])
        try #require(b.status == 0, "\(b.stderr)")
        #expect((try? JSONSerialization.jsonObject(with: Data(b.stdout.utf8), options: .fragmentsAllowed)) != nil, "\(b.stdout)")
        CLITests.expectFailure(try await CLITests.cli(args + ["--json", "--grammar", "root ::= \"a\"", "-p", "x"]), mentioning: "give one of")
        CLITests.expectFailure(try await CLITests.cli(args + ["--json-schema", #"{"type":"foo"}"#, "-p", "x"]), mentioning: "unrecognized type foo")
    }
}
