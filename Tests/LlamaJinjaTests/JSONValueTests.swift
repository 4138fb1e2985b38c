import Foundation
import LlamaJinja
import LlamaTestSupport
import Testing

/// JSONValue: parsing keeps key order and integer-ness, writing follows Python's `json.dumps`
/// with its options (what transformers' `tojson` calls), and floats print as Python's `repr`.
/// The expectations come from Python itself, in the same run.
@Suite("JSONValue against Python's json and repr", .serialized, .timeLimit(.minutes(5)))
struct JSONValueTests {
    /// Documents written for these tests: key order, nesting, escapes, non-ASCII, numbers.
    static let documents: [String] = [
        #"{"b": 1, "a": 2, "c": {"z": [], "y": {}, "x": [1, 2.5, -3, 1e2, 0.1, -0.0]}}"#,
        #"[null, true, false, "", "\"quoted\" \\ back\/slash", "tab\tnew\nline\r\u0001\u001f\u007f"]"#,
        #"{"unicode": "Grüße 👋🏽 你好 مرحبا", "escaped": "\u00e9\u4f60\ud83d\ude00", "zwj": "👨‍👩‍👧‍👦"}"#,
        #"{"ints": [0, -1, 9007199254740993, -9223372036854775808, 9223372036854775807], "floats": [1.0, 1.5e300, 2.5e-300, 123456789012345680000.0, 1e-7, 0.0001, 1e16, 123.456]}"#,
        #"{"tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"q": "x", "n": [1, {"deep": [[[]]]}]}}}]}"#,
        #"{"dup": 1, "other": 2, "dup": 3}"#,
        #"  [ 1 , { "k" : "v" } ]  "#,
        #"{"": "empty key", " ": "space key", "é": "accented key", "a\"b": "quote in key"}"#,
        #""just a string""#,
        #"42"#,
        #"-12.75"#,
    ]

    /// The writer's option sets, as tojson passes them to json.dumps.
    struct Options: CustomStringConvertible {
        var indent: Int?
        var itemSeparator: String
        var keySeparator: String
        var asciiOnly: Bool
        var sortKeys: Bool
        var description: String { "indent=\(indent.map(String.init) ?? "None") separators=(\"\(itemSeparator)\", \"\(keySeparator)\") ensure_ascii=\(asciiOnly) sort_keys=\(sortKeys)" }

        var writer: JSONWriter {
            JSONWriter(indent: indent.map { String(repeating: " ", count: $0) }, itemSeparator: itemSeparator,
                       keySeparator: keySeparator, asciiOnly: asciiOnly, sortKeys: sortKeys)
        }
        var python: String {
            "dict(indent=\(indent.map(String.init) ?? "None"), separators=(\(pyString(itemSeparator)), \(pyString(keySeparator))), ensure_ascii=\(asciiOnly ? "True" : "False"), sort_keys=\(sortKeys ? "True" : "False"))"
        }
        private func pyString(_ s: String) -> String { "'" + s + "'" }
    }

    static let optionSets: [Options] = [
        Options(indent: nil, itemSeparator: ", ", keySeparator: ": ", asciiOnly: false, sortKeys: false),  // tojson's default
        Options(indent: nil, itemSeparator: ",", keySeparator: ":", asciiOnly: false, sortKeys: false),   // JSONValue.jsonText
        Options(indent: 2, itemSeparator: ",", keySeparator: ": ", asciiOnly: false, sortKeys: false),    // tojson(indent=2)
        Options(indent: 4, itemSeparator: ",", keySeparator: ": ", asciiOnly: true, sortKeys: true),
        Options(indent: nil, itemSeparator: ", ", keySeparator: ": ", asciiOnly: true, sortKeys: false),
        Options(indent: 0, itemSeparator: ",", keySeparator: ": ", asciiOnly: false, sortKeys: true),
    ]

    /// Runs a Python snippet with `input` on stdin; its stdout.
    static func python(_ script: String, input: String) async throws -> String {
        let r = try await runReferenceProcess(ReferenceEnvironment.python, ["-c", script], stdin: Data(input.utf8))
        guard r.status == 0 else {
            throw ReferenceEnvironment.Missing(description: "\(ReferenceEnvironment.python) failed (exit \(r.status)): \(r.stderr)")
        }
        return r.stdoutText
    }

    @Test("writing with json.dumps' options gives Python's bytes, for every document and option set")
    func writerMatchesPython() async throws {
        // Python reads each document with json.loads and writes it with each option set; one
        // JSON array of strings per document on its own line.
        let script = """
            import json, sys
            opts = [\(Self.optionSets.map(\.python).joined(separator: ", "))]
            for line in sys.stdin.read().split("\\n"):
                if line:
                    doc = json.loads(json.loads(line))
                    print(json.dumps([json.dumps(doc, **o) for o in opts]))
            """
        let input = Self.documents.map { doc -> String in
            // Each document travels as a JSON string so its own whitespace survives.
            var quoted = ""
            JSONWriter.quote(doc, asciiOnly: true, into: &quoted)
            return quoted
        }.joined(separator: "\n") + "\n"
        let lines = try await Self.python(script, input: input).split(separator: "\n")
        try #require(lines.count == Self.documents.count, "python wrote \(lines.count) lines for \(Self.documents.count) documents")
        for (doc, line) in zip(Self.documents, lines) {
            let expected = try JSONDecoder().decode([String].self, from: Data(line.utf8))
            let value: JSONValue
            do { value = try JSONValue(parsing: doc) } catch {
                Issue.record("\(doc): \(error)")
                continue
            }
            for (options, want) in zip(Self.optionSets, expected) {
                let got = options.writer.write(value)
                #expect(got.utf8.elementsEqual(want.utf8), "\(doc) with \(options):\n\(firstDifference(expected: want, actual: got))")
            }
        }
    }

    @Test("parsing keeps key order; a repeated key keeps its first place and its last value, as json.loads")
    func keyOrder() throws {
        let value = try JSONValue(parsing: #"{"zeta": 1, "alpha": {"m": 1, "b": 2}, "zeta": 3, "mid": null}"#)
        let object = try #require(value.objectValue)
        #expect(object.keys == ["zeta", "alpha", "mid"])
        #expect(object["zeta"] == .int(3))
        #expect(object["mid"] == .null)
        #expect(value["alpha"]?.objectValue?.keys == ["m", "b"])
        #expect(value.jsonText == #"{"zeta":3,"alpha":{"m":1,"b":2},"mid":null}"#)
    }

    @Test("integers stay integers and floats stay floats, through a round trip")
    func numbers() throws {
        let value = try JSONValue(parsing: "[1, 1.0, -0, -0.0, 1e2, 100, 0.5]")
        #expect(value == [.int(1), .double(1.0), .int(0), .double(-0.0), .double(100.0), .int(100), .double(0.5)])
        #expect(value.jsonText == "[1,1.0,0,-0.0,100.0,100,0.5]")
    }

    @Test("integers beyond 64 bits keep their digits, as Python's unbounded ints do")
    func bigIntegers() throws {
        for text in ["12345678901234567890", "-98765432109876543210", "[18446744073709551616]"] {
            let value = try JSONValue(parsing: text)
            #expect(value.jsonText == text, "\(text) came back as \(value.jsonText)")
        }
    }

    @Test("round trip: parse(write(v)) == v and write(parse(t)) is stable")
    func roundTrip() throws {
        for doc in Self.documents {
            let value = try JSONValue(parsing: doc)
            let text = value.jsonText
            let again = try JSONValue(parsing: text)
            #expect(again == value, "\(doc)")
            #expect(again.jsonText == text, "\(doc)")
        }
    }

    @Test("invalid JSON is a JSONParseError at a byte offset inside the text", arguments: [
        "", " ", "{", "}", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "+1",
        "tru", "nul", "\"unterminated", "\"bad \\x escape\"", "\"\\u12\"", "\"ctrl \u{01}\"", "[1] 2", "NaN", "Infinity",
    ])
    func invalid(_ text: String) {
        do {
            let value = try JSONValue(parsing: text)
            Issue.record("\(escaped(String(text.prefix(40)))) parsed as \(value.jsonText.prefix(40))")
        } catch {
            #expect(error.offset >= 0 && error.offset <= text.utf8.count, "\(escaped(String(text.prefix(40)))): offset \(error.offset)")
            #expect(!error.message.isEmpty)
        }
    }

    @Test("100000 nested arrays or objects are a JSONParseError, not a stack overflow")
    func deepNesting() {
        for text in [String(repeating: "[", count: 100_000), String(repeating: "{\"a\":", count: 100_000)] {
            do {
                _ = try JSONValue(parsing: text)
                Issue.record("\(text.prefix(10))…: parsed")
            } catch {
                #expect(error.offset <= text.utf8.count)
            }
        }
    }

    /// Doubles of every kind: random bit patterns, short decimals, integers, the edges of
    /// Python's switch to exponent notation (1e16, 1e-4), subnormals, extremes and specials.
    static func sampleDoubles() -> [Double] {
        var rng = SplitMix64(state: 0x5EED_1234)
        var out: [Double] = [0.0, -0.0, .infinity, -.infinity, .nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                             .leastNormalMagnitude, .leastNonzeroMagnitude, 1, -1, 0.1, 0.2, 0.30000000000000004, 1.0 / 3,
                             1e15, 1e16, 1e17, 9999999999999998, 12345678901234568, 0.0001, 0.00001, 0.00012345, 1e-5,
                             123456789.0, 1e22, 1e23, 2.5, 100, 1e100, 1.7976931348623157e308]
        for e in -20...20 { out.append(pow(10, Double(e))); out.append(1.5 * pow(10, Double(e))) }
        for _ in 0..<200 {  // random finite bit patterns
            var d: Double
            repeat { d = Double(bitPattern: rng.next()) } while !d.isFinite
            out.append(d)
        }
        for _ in 0..<150 {  // short decimals at random scales
            let digits = Double(rng.next() % 100_000) / 100
            let scale = pow(10, Double(Int(rng.next() % 40) - 20))
            out.append((rng.next() & 1 == 0 ? 1 : -1) * digits * scale)
        }
        return out
    }

    @Test("pythonFloat is Python's repr and json.dumps' float, for a few hundred doubles")
    func pythonFloat() async throws {
        let doubles = Self.sampleDoubles()
        let script = """
            import json, struct, sys
            for line in sys.stdin.read().split():
                x = struct.unpack("<d", struct.pack("<Q", int(line, 16)))[0]
                print(repr(x) + " " + json.dumps(x))
            """
        let input = doubles.map { String($0.bitPattern, radix: 16) }.joined(separator: "\n") + "\n"
        let lines = try await Self.python(script, input: input).split(separator: "\n")
        try #require(lines.count == doubles.count)
        var failures: [String] = []
        for (d, line) in zip(doubles, lines) {
            let parts = line.split(separator: " ")
            let repr = String(parts[0]), json = String(parts[1])
            let ours = JSONWriter.pythonFloat(d), oursJSON = JSONWriter.pythonFloat(d, json: true)
            if ours != repr || oursJSON != json {
                failures.append("bits \(String(d.bitPattern, radix: 16)): python \(repr) / \(json), ours \(ours) / \(oursJSON)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(doubles.count) differ:\n\(failures.prefix(20).joined(separator: "\n"))")
    }

    @Test("decoded through Codable, an object's keys come sorted: the same in every process, whatever its hash seed")
    func codableKeyOrder() throws {
        let keys = ["type", "properties", "required", "description", "zeta", "alpha", "items", "enum"]
        let text = "{" + keys.enumerated().map { "\"\($0.element)\": {\"b\": \($0.offset), \"a\": [1, {\"y\": 1, \"x\": 2}]}" }
            .joined(separator: ", ") + "}"
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        let object = try #require(decoded.objectValue)
        #expect(object.keys == keys.sorted())
        #expect(object["type"]?.objectValue?.keys == ["a", "b"])
        #expect(object["type"]?["a"]?.arrayValue?.last?.objectValue?.keys == ["x", "y"])
        // Parsing keeps the text's order; the values are the same either way.
        let parsed = try JSONValue(parsing: text)
        #expect(parsed.objectValue?.keys == keys)
        #expect(keys.allSatisfy { decoded[$0]?["b"] != nil && decoded[$0]?["b"] == parsed[$0]?["b"] })
    }
}
