import Foundation
import LlamaSchema
import Testing

/// What the libFuzzer schema target (Fuzz/Sources/fuzz-schema, `make fuzz-schema`) found: schemas
/// that compiled to GBNF llama.cpp's parser rejects (or, for `{19,3}`, that made it allocate
/// without bound). llama.cpp's converter writes the same text for them; here they are a typed
/// SchemaError with the pattern's JSON pointer, or text the parser takes.
@Suite("schema fuzz findings")
struct FuzzFindingTests {
    static func failure(_ schema: String) -> SchemaError? {
        do {
            _ = try JSONSchemaGrammar(schemaText: schema)
            return nil
        } catch {
            return error
        }
    }

    @Test("bad repetition counts ({19]{0,3} read as {19,3}, {-4}, {2001}) are .invalidPattern at the pattern",
          arguments: [#"^v[0-9]{19]{0,3}$"#, #"^a{5,2}$"#, #"^(ab){3,1}c$"#, #"^[ZA]{-4}[0-9]{2,4}$"#, #"^a{2001}$"#])
    func badCounts(pattern: String) throws {
        let schema = #"{"type":"string","pattern":"# + String(decoding: try JSONEncoder().encode(pattern), as: UTF8.self) + "}"
        let error = try #require(Self.failure(schema), "\(pattern) must not compile")
        #expect(error.code == .invalidPattern)
        #expect(error.pointer == "#/pattern")
        #expect(error.message.contains("repetition"), "\(error.message)")
    }

    @Test("minLength or minItems past llama.cpp's 2000 repetitions is a typed error; a large maximum is kept")
    func largeMinimums() throws {
        for schema in [#"{"type":"string","minLength":2001}"#, #"{"type":"array","minItems":5000}"#] {
            let error = try #require(Self.failure(schema), "\(schema) must not compile")
            #expect(error.code == .unsupportedKeyword)
            #expect(error.pointer == "#")
        }
        _ = try JSONSchemaGrammar(schemaText: #"{"type":"string","maxLength":5000}"#)
    }

    @Test("stacked quantifiers and unbounded repetitions of what can be empty are .invalidPattern",
          arguments: [#"^abc?d*e(hij)?k*******l$"#, #"^(?:(?:ab)+c)?*d$"#, #"^a+*$"#, #"^(a?)*$"#, #"^(a|)+b$"#,
                      #"^(a*b*){2,}$"#])
    func stackedQuantifiers(pattern: String) throws {
        let schema = #"{"type":"string","pattern":"# + String(decoding: try JSONEncoder().encode(pattern), as: UTF8.self) + "}"
        let error = try #require(Self.failure(schema), "\(pattern) must not compile")
        #expect(error.code == .invalidPattern)
        #expect(error.pointer == "#/pattern")
    }

    @Test("lazy quantifiers and bounded repetitions of what can be empty still compile",
          arguments: [#"^a*?b$"#, #"^a+?$"#, #"^(a?){0,3}$"#, #"^(ab)*c+$"#, #"^a{2,3}?$"#])
    func stillSupported(pattern: String) throws {
        let schema = #"{"type":"string","pattern":"# + String(decoding: try JSONEncoder().encode(pattern), as: UTF8.self) + "}"
        _ = try JSONSchemaGrammar(schemaText: schema)
    }

    @Test("property names with ], \\ or ^ beside additionalProperties: the character classes are escaped")
    func classCharacters() throws {
        let schema = #"{"type":"object","properties":{"and":{"type":"integer"},"also":{"type":"integer"},"b]":{"type":"integer"},"#
            + #""c\\":{"type":"integer"},"^":{"type":"integer"}},"required":["b"],"additionalProperties":{"type":"string","maxLength":1}}"#
        let text = try JSONSchemaGrammar(schemaText: schema).text
        #expect(text.contains(#"[\]]"#), "\(text)")
        #expect(!text.contains("[]]"), "\(text)")
        #expect(text.contains(#"[\\]"#), "\(text)")
        #expect(text.contains(#"[\x5E]"#), "\(text)")
        #expect(!text.contains("[^]"), "\(text)")
    }
}
