import LlamaGenerableMacros
import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacrosGenericTestSupport
import Testing

/// What `@Generable` expands to, and what it reports for shapes it does not support.
@Suite("@Generable expansions")
struct MacroExpansionTests {
    static let specs: [String: MacroSpec] = [
        "Generable": MacroSpec(type: GenerableMacro.self, conformances: ["Generable"]),
        "Guide": MacroSpec(type: GuideMacro.self),
    ]

    func expand(_ source: String, _ expanded: String, diagnostics: [DiagnosticSpec] = [],
                sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        assertMacroExpansion(source, expandedSource: expanded, diagnostics: diagnostics, macroSpecs: Self.specs,
                             indentationWidth: .spaces(4)) { failure in
            Issue.record(Comment(rawValue: failure.message), sourceLocation: sourceLocation)
        }
    }

    @Test("a struct: properties in order, guides, optionals not required, public access kept")
    func structExpansion() {
        expand(
            """
            @Generable(description: "A recipe")
            public struct Recipe {
                @Guide(description: "Name", .pattern("[a-z]+"))
                public var name: String
                @Guide(.range(1...12)) var servings: Int
                var tags: [String]?
                var total: Int { servings * 2 }
            }
            """,
            """
            public struct Recipe {
                public var name: String
                var servings: Int
                var tags: [String]?
                var total: Int { servings * 2 }
            }

            extension Recipe: LlamaSchema.Generable {
                public static var generationSchema: LlamaJinja.JSONValue {
                    LlamaSchema.GenerationSchema.definition("Recipe") {
                        LlamaSchema.GenerationSchema.object(description: "A recipe", properties: [
                            LlamaSchema.GenerationSchema.Property("name", LlamaSchema.GenerationSchema.guided(LlamaSchema.GenerationSchema.schema(for: String.self), description: "Name", [.pattern("[a-z]+")])),
                            LlamaSchema.GenerationSchema.Property("servings", LlamaSchema.GenerationSchema.guided(LlamaSchema.GenerationSchema.schema(for: Int.self), description: nil, [.range(1 ... 12)])),
                            LlamaSchema.GenerationSchema.Property("tags", LlamaSchema.GenerationSchema.schema(for: [String].self), isRequired: false),
                        ])
                    }
                }
            }
            """)
    }

    @Test("an enum without raw values: case names, and a decoder by name")
    func enumExpansion() {
        expand(
            """
            @Generable
            enum Colour {
                case red, green
            }
            """,
            """
            enum Colour {
                case red, green
            }

            extension Colour: LlamaSchema.Generable {
                static var generationSchema: LlamaJinja.JSONValue {
                    LlamaSchema.GenerationSchema.definition("Colour") {
                        LlamaSchema.GenerationSchema.enumeration(description: nil, ["red", "green"])
                    }
                }

                init(from decoder: any Swift.Decoder) throws {
                    let container = try decoder.singleValueContainer()
                    switch try container.decode(Swift.String.self) {
                    case "red":
                        self = .red
                    case "green":
                        self = .green
                    default:
                        throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "not a case of Colour: expected one of red, green")
                    }
                }
            }
            """)
    }

    @Test("unsupported shapes are errors that say what to do")
    func diagnostics() {
        expand(
            """
            @Generable
            class Box {
                var x: Int = 0
            }
            """,
            """
            class Box {
                var x: Int = 0
            }
            """,
            diagnostics: [DiagnosticSpec(id: .init(domain: "LlamaGenerable", id: "notStructOrEnum"),
                                         message: "@Generable applies to structs and enums, not to class declarations; conform to Generable by hand with a written generationSchema",
                                         line: 1, column: 1)])
        expand(
            """
            @Generable
            struct Page<T> {
                var items: [T]
            }
            """,
            """
            struct Page<T> {
                var items: [T]
            }
            """,
            diagnostics: [DiagnosticSpec(message: "@Generable does not support generic types; conform to Generable by hand (for example in an extension with 'where' clauses) with a written generationSchema",
                                         line: 2, column: 8)])
        expand(
            """
            @Generable
            struct S {
                var count = 3
            }
            """,
            """
            struct S {
                var count = 3
            }
            """,
            diagnostics: [DiagnosticSpec(message: "stored property 'count' needs a type annotation for @Generable to derive its schema",
                                         line: 3, column: 9)])
        expand(
            """
            @Generable
            struct S {
                @Guide(.range(10...1)) var a: Int
                @Guide(.pattern("x")) var b: Int
                @Guide(.count(1...3), .pattern("[a-z]+")) var c: String
            }
            """,
            """
            struct S {
                var a: Int
                var b: Int
                var c: String
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "10...1 is an empty range: its lower bound is above its upper bound", line: 3, column: 19),
                DiagnosticSpec(message: ".pattern does not apply to Int: ranges apply to numbers, counts to arrays and strings, patterns and allowed strings to strings",
                               line: 4, column: 12),
                DiagnosticSpec(message: "a string's .count is not enforced together with a .pattern (the grammar follows the pattern): write the length into the pattern, for example \"[a-z]{2,8}\"",
                               line: 5, column: 12),
            ])
        expand(
            """
            @Generable
            enum E: Double {
                case a = 1.5
            }
            """,
            """
            enum E: Double {
                case a = 1.5
            }
            """,
            diagnostics: [DiagnosticSpec(message: "@Generable supports enums without raw values, or with String or Int raw values, not Double; conform to Generable by hand",
                                         line: 2, column: 9)])
    }

    @Test("a let with a default value is left out, with a warning")
    func letWithDefault() {
        expand(
            """
            @Generable
            struct S {
                let version: Int = 1
                var name: String
            }
            """,
            """
            struct S {
                let version: Int = 1
                var name: String
            }

            extension S: LlamaSchema.Generable {
                static var generationSchema: LlamaJinja.JSONValue {
                    LlamaSchema.GenerationSchema.definition("S") {
                        LlamaSchema.GenerationSchema.object(description: nil, properties: [
                            LlamaSchema.GenerationSchema.Property("name", LlamaSchema.GenerationSchema.schema(for: String.self)),
                        ])
                    }
                }
            }
            """,
            diagnostics: [DiagnosticSpec(message: "'version' is a 'let' with a default value, which decoding keeps: it is left out of the schema (make it a 'var' to have it generated)",
                                         line: 3, column: 9, severity: .warning)])
    }
}
