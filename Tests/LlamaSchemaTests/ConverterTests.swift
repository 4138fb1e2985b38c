import Foundation
import LlamaJinja
import LlamaSchema
import LlamaTestSupport
import Testing

@Suite("JSON Schema to GBNF against llama.cpp's converter")
struct ConverterTests {
    struct UpstreamCase: Decodable {
        var name: String
        var status: String
        var schema: String
        var grammar: String
    }

    /// The cases of the pinned tests/test-json-schema-to-grammar.cpp, read through our harness.
    static func upstreamCases() async throws -> [UpstreamCase] {
        let r = try await runProcess(try SchemaReference.program(), ["cases"])
        guard r.status == 0 else { throw SchemaReference.Missing(description: "schema-reference cases failed: \(r.stderr)") }
        return try r.stdout.split(separator: "\n").map { try JSONDecoder().decode(UpstreamCase.self, from: Data($0.utf8)) }
    }

    @Test("every case of llama.cpp's test file: the same grammar text, or the same failure")
    func upstreamTestCases() async throws {
        let cases = try await Self.upstreamCases()
        #expect(cases.count >= 80, "expected the ~81 cases of tests/test-json-schema-to-grammar.cpp, read \(cases.count)")
        var identical = 0, failures = 0
        for c in cases {
            let result = Result { () throws(SchemaError) in try JSONSchemaGrammar(schemaText: c.schema) }
            switch (c.status, result) {
            case ("success", .success(let g)):
                #expect(trimmedGrammar(g.text) == c.grammar, "case \(c.name)")
                if trimmedGrammar(g.text) == c.grammar { identical += 1 }
            case ("failure", .failure):
                failures += 1
            case ("success", .failure(let e)):
                Issue.record("case \(c.name): llama.cpp converts it, we fail: \(e)")
            default:
                Issue.record("case \(c.name): llama.cpp fails, we convert it")
            }
        }
        print("llama.cpp test cases: \(cases.count); identical grammar \(identical), same failure \(failures)")
        #expect(identical + failures == cases.count)
    }

    @Test("every case and every corpus schema: byte-identical to the converter built from the pinned source")
    func identicalToReferenceConverter() async throws {
        var identical = 0, bothFail = 0
        let inputs = try await Self.upstreamCases().map { ($0.name, $0.schema) } + schemaCorpus + edgeSchemas
        for (name, schema) in inputs {
            let ours = Result { () throws(SchemaError) in try JSONSchemaGrammar(schemaText: schema).text }
            switch (try await SchemaReference.convert(schema), ours) {
            case (.success(let theirs), .success(let mine)):
                #expect(mine == theirs, "\(name): the texts differ")
                if mine == theirs { identical += 1 }
            case (.failure, .failure): bothFail += 1
            case (.success, .failure(let e)): Issue.record("\(name): llama.cpp converts it, we fail: \(e)")
            case (.failure(let e), .success): Issue.record("\(name): llama.cpp fails (\(e)), we convert it")
            }
        }
        print("reference converter: \(inputs.count) schemas (\(inputs.count - schemaCorpus.count - edgeSchemas.count) of llama.cpp's test, \(schemaCorpus.count) corpus, \(edgeSchemas.count) edge cases); identical \(identical), both fail \(bothFail)")
        #expect(schemaCorpus.count >= 40)
    }

    /// Equal acceptance by llama.cpp's grammar engine on generated documents: what "the same
    /// grammar" means where text could legitimately differ. Run for every corpus schema, and
    /// for our other whitespace policies (which must accept the compact documents llama.cpp's does).
    @Test("our grammars and llama.cpp's accept and reject the same 200 documents per schema")
    func equalAcceptance() async throws {
        var accepted = 0, rejected = 0
        for (index, (name, schema)) in schemaCorpus.enumerated() {
            let ours = try JSONSchemaGrammar(schemaText: schema)
            guard case .success(let theirs) = try await SchemaReference.convert(schema) else {
                Issue.record("\(name): llama.cpp's converter fails")
                continue
            }
            var generator = DocumentGenerator(document: ours.document, rng: SeededRandom(seed: UInt64(index + 1)))
            let docs = generator.documents(200)
            let a = try await SchemaReference.accepts(ours.text, docs), b = try await SchemaReference.accepts(theirs, docs)
            for (i, doc) in docs.enumerated() where a[i] != b[i] {
                Issue.record("\(name): \(doc.debugDescription) ours \(a[i]), llama.cpp's \(b[i])")
            }
            let n = a.filter { $0 }.count
            #expect(n > 0 && n < docs.count, "\(name): the sample should hold accepted and rejected documents (\(n)/\(docs.count) accepted)")
            accepted += n
            rejected += docs.count - n
        }
        print("equal acceptance: \(schemaCorpus.count) schemas x 200 documents; accepted \(accepted), rejected \(rejected)")
    }

    /// Where we differ from llama.cpp on purpose, each difference shown on documents.
    @Test("deliberate differences: a non-ASCII character before a quantifier, unsatisfiable bounds")
    func deliberateDifferences() async throws {
        // llama.cpp splits the UTF-8 bytes of "é" before "+": its grammar does not parse.
        let pattern = ##"{"type":"string","pattern":"^café+$"}"##
        let ours = try JSONSchemaGrammar(schemaText: pattern)
        #expect(ours.rules.rules["root"] == ##""\"" ("caf" "é"+) "\"""##)
        #expect(try await SchemaReference.accepts(ours.text, [#""café""#, #""cafééé""#, #""caf""#, #""cafe""#]) == [true, true, false, false])
        guard case .success(let theirs) = try await SchemaReference.convert(pattern) else { Issue.record("llama.cpp's converter fails"); return }
        #expect(theirs != ours.text)
        guard case .failure(let why) = try await SchemaReference.convertAndAccept(pattern, [#""café""#]) else {
            Issue.record("llama.cpp's grammar for \(pattern) was expected not to parse")
            return
        }
        #expect(why.description.contains("does not parse"), "\(why)")

        // minItems > maxItems: llama.cpp writes a grammar that accepts arrays the schema
        // rejects (jsonschema agrees nothing is valid); we refuse the schema.
        let bounds = ##"{"type":"array","items":{"type":"integer"},"minItems":3,"maxItems":1}"##
        guard case .failure(let error) = compile(bounds) else { Issue.record("should be refused"); return }
        #expect(error.code == .unsatisfiable)
        guard case .success(let loose) = try await SchemaReference.convert(bounds) else { Issue.record("llama.cpp's converter fails"); return }
        #expect(try await SchemaReference.accepts(loose, ["[1]", "[1,2,3]"]).contains(true))
        print("deliberate differences: 2 (non-ASCII before a quantifier; unsatisfiable bounds refused)")
    }

    @Test("whitespace policies: compact accepts compact JSON only, single-space one space")
    func whitespacePolicies() async throws {
        let schema = ##"{"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}}},"required":["a"]}"##
        let compact = try JSONSchemaGrammar(schemaText: schema, options: .init(whitespace: .compact))
        let single = try JSONSchemaGrammar(schemaText: schema, options: .init(whitespace: .singleSpace))
        let docs = [##"{"a":[1,2]}"##, ##"{ "a": [1, 2] }"##, "{\n  \"a\": [1]\n}"]
        #expect(try await SchemaReference.accepts(compact.text, docs) == [true, false, false])
        #expect(try await SchemaReference.accepts(single.text, docs) == [true, true, false])
        #expect(try await SchemaReference.accepts(JSONSchemaGrammar.anyJSON().text, docs) == [true, true, true])
    }
}

@Suite("Invalid schemas")
struct InvalidSchemaTests {
    @Test("typed errors naming the JSON pointer", arguments: [
        (##"{"type":"foo"}"##, SchemaError.Code.invalidSchema, "#"),
        (##"{"type":"object","properties":{"a":{"type":7}}}"##, .invalidSchema, "#/properties/a"),
        (##"{"type":"array","minItems":-1}"##, .invalidSchema, "#"),
        (##"{"type":"array","items":{"type":"string","maxLength":"x"}}"##, .invalidSchema, "#/items"),
        (##"{"type":"array","minItems":3,"maxItems":1}"##, .unsatisfiable, "#"),
        (##"{"type":"string","minLength":5,"maxLength":2}"##, .unsatisfiable, "#"),
        (##"{"type":"integer","minimum":10,"maximum":2}"##, .unsatisfiable, "#"),
        (##"{"$ref":"#/$defs/missing"}"##, .unresolvedReference, "#"),
        (##"{"properties":{"a":{"$ref":"other.json#/a"}}}"##, .unresolvedReference, "#/properties/a"),
        (##"{"type":"string","pattern":"^(a$"}"##, .invalidPattern, "#/pattern"),
        (##"{"type":"object","properties":{"p":{"type":"string","pattern":"^a\\$"}}}"##, .invalidPattern, "#/properties/p/pattern"),
        (##"{"anyOf":[]}"##, .invalidSchema, "#/anyOf"),
        (##"{"enum":[]}"##, .invalidSchema, "#"),
        (##"{"type":"object","additionalProperties":3}"##, .invalidSchema, "#"),
        (##"[1,2]"##, .invalidSchema, "#"),
        (##"{"type":"##, .invalidJSON, "#"),
    ])
    func invalid(schema: String, code: SchemaError.Code, pointer: String) {
        switch compile(schema) {
        case .success(let g): Issue.record("\(schema) compiled to \(g.text)")
        case .failure(let error):
            #expect(error.code == code, "\(schema): \(error)")
            #expect(error.pointer == pointer, "\(schema): \(error)")
        }
    }

    @Test("unsupported regex features and ignored keywords: warnings with pointers, errors when strict")
    func ignored() throws {
        let schema = ##"{"type":"object","properties":{"w":{"type":"string","pattern":"^\\w+$"},"e":{"type":"string","format":"email"},"u":{"type":"array","uniqueItems":true}},"not":{}}"##
        let g = try JSONSchemaGrammar(schemaText: schema)
        #expect(Set(g.warnings.map { $0.pointer }) == ["#", "#/properties/e", "#/properties/u", "#/properties/w/pattern"], "\(g.warnings)")
        #expect(g.rules.rules["w"] == "string", "an unsupported pattern accepts any string, as in llama.cpp")
        switch compile(schema, .init(rejectIgnoredKeywords: true)) {
        case .success: Issue.record("strict compilation should fail")
        case .failure(let error): #expect(error.code == .unsupportedKeyword)
        }
    }
}

func compile(_ schema: String, _ options: JSONSchemaGrammar.Options = .init()) -> Result<JSONSchemaGrammar, SchemaError> {
    Result { () throws(SchemaError) in try JSONSchemaGrammar(schemaText: schema, options: options) }
}
