import Foundation
import LlamaGenerable
import LlamaProcess
import LlamaTestSupport
import Testing

/// The schemas the macro derives, compared with the schemas written by hand, compiled to grammars,
/// and checked against the types' own decoding: documents that decode validate with Python's
/// jsonschema, and documents of the wrong shape are rejected by both.
@Suite("@Generable schemas")
struct SchemaTests {
    func expectSchema<T: Generable>(_ type: T.Type, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let want = try JSONValue(parsing: expected)
        #expect(T.generationSchema == want, "\(T.self): got \(T.generationSchema.jsonText)", sourceLocation: sourceLocation)
        let grammar = try JSONSchemaGrammar(schema: T.generationSchema)
        #expect(grammar.warnings.isEmpty, "\(T.self): \(grammar.warnings)", sourceLocation: sourceLocation)
    }

    static let ingredient = """
        {"type":"object","description":"An ingredient and how much of it","properties":{
        "name":{"description":"What it is, in lower case","type":"string","pattern":"^[a-z]+( [a-z]+)?$"},
        "grams":{"type":"integer","minimum":1,"maximum":500}},"required":["name","grams"],"additionalProperties":false}
        """

    static let tree = """
        {"type":"object","description":"A tree of words","properties":{
        "word":{"type":"string","pattern":"^[a-z]{1,8}$"},
        "children":{"type":"array","items":{"$ref":"#/$defs/Tree"},"minItems":0,"maxItems":2}},
        "required":["word","children"],"additionalProperties":false}
        """

    @Test("nested structs, guides with descriptions, patterns, counts and ranges, optional properties")
    func nestedStruct() throws {
        try expectSchema(Ingredient.self, Self.ingredient)
        try expectSchema(Recipe.self, """
            {"type":"object","description":"A recipe","properties":{
            "title":{"description":"The dish's name","type":"string","pattern":"^[A-Z][a-z ]{2,23}$"},
            "servings":{"type":"integer","minimum":1,"maximum":12},
            "ingredients":{"type":"array","items":\(Self.ingredient),"minItems":1,"maxItems":3},
            "vegetarian":{"type":"boolean"},
            "note":{"type":"string"}},
            "required":["title","servings","ingredients","vegetarian"],"additionalProperties":false}
            """)
    }

    @Test("enums: case names, String and Int raw values, payloads in synthesized Codable form")
    func enums() throws {
        try expectSchema(Colour.self, #"{"type":"string","description":"A colour","enum":["red","green","blue"]}"#)
        try expectSchema(Size.self, #"{"type":"string","enum":["S","M","large"]}"#)
        try expectSchema(Priority.self, #"{"type":"integer","enum":[1,2,5]}"#)
        let empty = #"{"type":"object","properties":{},"required":[],"additionalProperties":false}"#
        func wrap(_ name: String, _ inner: String) -> String {
            #"{"type":"object","properties":{"\#(name)":\#(inner)},"required":["\#(name)"],"additionalProperties":false}"#
        }
        try expectSchema(Shape.self, #"{"anyOf":["#
            + wrap("circle", #"{"type":"object","properties":{"radius":{"type":"integer"}},"required":["radius"],"additionalProperties":false}"#)
            + "," + wrap("square", #"{"type":"object","properties":{"_0":{"type":"integer"}},"required":["_0"],"additionalProperties":false}"#)
            + "," + wrap("empty", empty) + "]}")
    }

    @Test("allowed values, element constraints, nested enums, fixed-width integers")
    func constraints() throws {
        try expectSchema(Ticket.self, """
            {"type":"object","properties":{
            "summary":{"description":"Short summary","type":"string","minLength":1,"maxLength":40},
            "colour":{"type":"string","description":"A colour","enum":["red","green","blue"]},
            "size":{"type":"string","enum":["S","M","large"]},
            "priority":{"type":"integer","enum":[1,2,5]},
            "state":{"type":"string","enum":["open","closed"]},
            "digits":{"type":"array","items":{"type":"integer","minimum":0,"maximum":9},"minItems":0,"maxItems":3}},
            "required":["summary","colour","size","priority","state","digits"],"additionalProperties":false}
            """)
        try expectSchema(Point.self, """
            {"type":"object","description":"A point","properties":{
            "x":{"type":"integer","minimum":-128,"maximum":127},"y":{"type":"integer","minimum":0,"maximum":255}},
            "required":["x","y"],"additionalProperties":false}
            """)
    }

    @Test("a type that contains itself: $defs and $ref, hoisted to the top of enclosing schemas")
    func recursive() throws {
        try expectSchema(Tree.self, ##"{"$defs":{"Tree":\##(Self.tree)},"$ref":"#/$defs/Tree"}"##)
        try expectSchema(Forest.self, """
            {"type":"object","properties":{
            "trees":{"type":"array","items":{"$ref":"#/$defs/Tree"}},
            "names":{"type":"object","additionalProperties":{"type":"integer"}},
            "best":{"$ref":"#/$defs/Tree"}},
            "required":["trees","names"],"additionalProperties":false,"$defs":{"Tree":\(Self.tree)}}
            """)
    }

    @Test("CodingKeys name the properties; computed, static and unkeyed properties are left out")
    func codingKeys() throws {
        try expectSchema(Renamed.self, """
            {"type":"object","properties":{"first_name":{"type":"string"},"age":{"type":"integer"}},
            "required":["first_name","age"],"additionalProperties":false}
            """)
    }

    @Test("a public type (the expansion's members are public)")
    func publicType() throws {
        try expectSchema(Published.self, """
            {"type":"object","properties":{"id":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},
            "required":["id","tags"],"additionalProperties":false}
            """)
    }

    @Test("basic types")
    func basicTypes() throws {
        #expect(String.generationSchema == ["type": "string"])
        #expect(Bool.generationSchema == ["type": "boolean"])
        #expect(Int.generationSchema == ["type": "integer"])
        #expect(Double.generationSchema == ["type": "number"])
        #expect(Float.generationSchema == ["type": "number"])
        #expect(UInt.generationSchema == ["type": "integer", "minimum": 0])
        #expect(Int16.generationSchema == ["type": "integer", "minimum": -32768, "maximum": 32767])
        #expect(Int?.generationSchema == ["anyOf": [["type": "integer"], ["type": "null"]]])
        #expect([Bool].generationSchema == ["type": "array", "items": ["type": "boolean"]])
        #expect([String: Double].generationSchema == ["type": "object", "additionalProperties": ["type": "number"]])
        let treeText = try JSONValue(parsing: Self.tree).jsonText
        #expect([Tree?].generationSchema.jsonText == ##"{"type":"array","items":{"anyOf":[{"$ref":"#/$defs/Tree"},{"type":"null"}]},"$defs":{"Tree":\##(treeText)}}"##)
    }

    /// Documents that each type decodes, and documents of the wrong shape.
    static let documents: [(name: String, schema: JSONValue, decode: @Sendable (String) -> Bool, valid: [String], invalid: [String])] = [
        entry(Recipe.self, valid: [
            #"{"title":"Pancakes","servings":4,"ingredients":[{"name":"flour","grams":200}],"vegetarian":true}"#,
            #"{"title":"Fish soup","servings":2,"ingredients":[{"name":"cod","grams":300},{"name":"sea salt","grams":5}],"vegetarian":false,"note":"hot"}"#,
        ], invalid: [
            #"{"title":"Pancakes","servings":40,"ingredients":[{"name":"flour","grams":200}],"vegetarian":true}"#,
            #"{"title":"pancakes","servings":4,"ingredients":[{"name":"flour","grams":200}],"vegetarian":true}"#,
            #"{"title":"Pancakes","servings":4,"ingredients":[],"vegetarian":true}"#,
            #"{"title":"Pancakes","servings":4,"ingredients":[{"name":"flour","grams":200}],"vegetarian":true,"extra":1}"#,
        ]),
        entry(Colour.self, valid: [#""red""#, #""blue""#], invalid: [#""Red""#, #"{"red":{}}"#, "0"]),
        entry(Mood.self, valid: [#""sad""#], invalid: [#"{"sad":{}}"#]),
        entry(Size.self, valid: [#""S""#, #""large""#], invalid: [#""small""#]),
        entry(Priority.self, valid: ["1", "5"], invalid: ["3", #""low""#]),
        entry(Shape.self, valid: [#"{"circle":{"radius":3}}"#, #"{"square":{"_0":2}}"#, #"{"empty":{}}"#],
              invalid: [#"{"circle":{"r":3}}"#, #""empty""#, #"{"square":{"_0":2},"empty":{}}"#]),
        entry(Ticket.self, valid: [
            #"{"summary":"Broken","colour":"green","size":"M","priority":2,"state":"open","digits":[1,2]}"#,
        ], invalid: [
            #"{"summary":"Broken","colour":"green","size":"M","priority":2,"state":"pending","digits":[1,2]}"#,
            #"{"summary":"Broken","colour":"green","size":"M","priority":2,"state":"open","digits":[10]}"#,
        ]),
        entry(Point.self, valid: [#"{"x":-5,"y":200}"#], invalid: [#"{"x":-500,"y":200}"#, #"{"x":1,"y":-1}"#]),
        entry(Tree.self, valid: [#"{"word":"a","children":[{"word":"b","children":[]},{"word":"c","children":[{"word":"d","children":[]}]}]}"#],
              invalid: [#"{"word":"a","children":[{"word":"B","children":[]}]}"#, #"{"word":"a","children":[{"word":"b"}]}"#]),
        entry(Forest.self, valid: [#"{"trees":[],"names":{"a":1},"best":{"word":"x","children":[]}}"#, #"{"trees":[{"word":"x","children":[]}],"names":{}}"#],
              invalid: [#"{"trees":[],"names":{"a":"1"}}"#]),
        entry(Renamed.self, valid: [#"{"first_name":"Ada","age":36}"#], invalid: [#"{"firstName":"Ada","age":36}"#]),
    ]

    static func entry<T: Generable>(_ type: T.Type, valid: [String], invalid: [String])
        -> (name: String, schema: JSONValue, decode: @Sendable (String) -> Bool, valid: [String], invalid: [String]) {
        ("\(T.self)", T.generationSchema, { (try? JSONDecoder().decode(T.self, from: Data($0.utf8))) != nil }, valid, invalid)
    }

    @Test("documents that decode validate with jsonschema; documents of the wrong shape are rejected by both")
    func schemaMatchesDecoding() async throws {
        var records: [JSONValue] = []
        for d in Self.documents {
            for text in d.valid { #expect(d.decode(text), "\(d.name) should decode \(text)") }
            // What jsonschema rejects for a shape reason (not a constraint the decoder does not know)
            // must not decode either; the constraint-only ones are checked by jsonschema alone.
            records.append(.object(["name": .string(d.name), "schema": d.schema,
                                     "valid": .array(d.valid.map { .string($0) }), "invalid": .array(d.invalid.map { .string($0) })]))
        }
        #expect(!Colour.self.decodes(#""Red""#))
        #expect(!Shape.self.decodes(#""empty""#))
        #expect(!Renamed.self.decodes(#"{"firstName":"Ada","age":36}"#))
        #expect(Renamed.self.decodes(#"{"first_name":"Ada","age":36}"#))
        let output = try await JSONSchemaValidator.validate(records)
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
    }
}

extension Decodable {
    static func decodes(_ text: String) -> Bool { (try? JSONDecoder().decode(Self.self, from: Data(text.utf8))) != nil }
}

/// Python's jsonschema (the shared Tests/Support/jsonschema_check.py), run once over a list of
/// records `{name, schema, valid: [text], invalid: [text]}`, each schema also checked against its
/// metaschema: every valid text must parse and validate, every invalid text must fail to.
enum JSONSchemaValidator {
    static func validate(_ records: [JSONValue]) async throws -> ProcessResult {
        let checked = records.map { record -> JSONValue in
            guard case .object(var o) = record else { return record }
            o["check_schema"] = true
            return .object(o)
        }
        let r = try await jsonSchemaCheck(records: JSONValue.array(checked).jsonText)
        #expect(r.status != 3, "\(r.stdout)")
        return r
    }
}
