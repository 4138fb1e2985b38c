import LlamaJinja
@testable import LlamaSchema
import Testing

@Suite("The rule IR and its pieces")
struct RuleSetTests {
    @Test("rules are deduplicated by body; a taken name gets a number; text is sorted by name")
    func dedup() {
        var rules = RuleSet()
        #expect(rules.add("item", "[0-9]") == "item")
        #expect(rules.add("item", "[0-9]") == "item")
        #expect(rules.add("item", "[a-z]") == "item0")
        #expect(rules.add("item", "[A-Z]") == "item1")
        #expect(rules.add("item", "[a-z]") == "item0")
        #expect(rules.add("a b.c/é", "\"x\"") == "a-b-c-")
        #expect(rules.text == "a-b-c- ::= \"x\"\nitem ::= [0-9]\nitem0 ::= [a-z]\nitem1 ::= [A-Z]\n")
    }

    @Test("the schema as read: keywords folded as llama.cpp folds them")
    func document() throws {
        let doc = try SchemaDocument(try JSONValue(parsing: ##"{"type":["integer","null"],"exclusiveMinimum":0.5,"maximum":9.9,"$defs":{}}"##))
        #expect(doc.root == .anyOf([.integer(minimum: 1, maximum: 9), .null]))
        let obj = try SchemaDocument(try JSONValue(parsing: ##"{"properties":{"a":{"$ref":"#/$defs/x"}},"required":["a"],"$defs":{"x":{"const":1}}}"##))
        #expect(obj.root == .object(properties: [.init(name: "a", schema: .ref("#/$defs/x"), required: true)], additional: nil))
        #expect(obj.definitions["#/$defs/x"] == .constant(.int(1)))
    }

    @Test("repetitions, integer ranges and JSON constants as llama.cpp writes them")
    func pieces() throws {
        #expect(repetition("x", min: 0, max: 1) == "x?")
        #expect(repetition("x", min: 2, max: nil) == "x{2,}")
        #expect(repetition("x", min: 0, max: 3, separator: "\",\" space") == "(x (\",\" space x){0,2})?")
        var range = IntegerRange()
        try range.build(-5, 12)
        #expect(range.out == "\"-\" ([0-5]) | [0-9] | \"1\" [0-2]")
        #expect(GBNF.float(1e15) == "1e+15")
        #expect(GBNF.float(123456789012345.6) == "123456789012345.6")
        #expect(GBNF.float(1.5e-7) == "1.5e-07")
        #expect(GBNF.float(0.001) == "0.001")
        #expect(GBNF.float(-2.0) == "-2.0")
        #expect(GBNF.dump(try JSONValue(parsing: ##"{"b":[1,2.50,"\u0001é"],"a":null}"##)) == ##"{"b":[1,2.5,"\u0001é"],"a":null}"##)
        #expect(GBNF.literal("a\"b\\c\nd") == ##""a\"b\\c\nd""##)
    }
}
