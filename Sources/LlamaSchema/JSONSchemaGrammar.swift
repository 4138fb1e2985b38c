public import LlamaJinja

/// A GBNF grammar compiled from a JSON schema: JSON Schema → `SchemaDocument` → `RuleSet` →
/// GBNF text. With the default options the text is the text that llama.cpp's converter
/// (`json_schema_to_grammar`, common/json-schema-to-grammar.cpp of the pinned release) writes
/// for the same schema.
///
/// Supported: `type` (and type lists), `enum`, `const`, `anyOf`, `oneOf` (as `anyOf`),
/// `allOf` (object properties merged; enums intersected), `$ref` into the same document
/// (recursive too), `properties`, `required` (optional properties in schema order),
/// `additionalProperties`, `items`, `prefixItems`, `minItems`, `maxItems`, `minLength`,
/// `maxLength`, `pattern` (anchored, a regular-expression subset), `format` (`date`, `time`,
/// `date-time`, `uuid`), integer `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`.
/// Not enforced, and reported in `warnings` with their JSON pointer (or as errors with
/// `Options.rejectIgnoredKeywords`): every other keyword (`uniqueItems`, `multipleOf`, `not`,
/// `patternProperties`, `minProperties`…), other formats (`email`…), and bounds on `number`.
/// Annotations (`title`, `description`, `default`, `examples`, `$schema`, `$id`, `$comment`…)
/// are not reported.
public struct JSONSchemaGrammar: Sendable, Equatable {
    /// How the schema is compiled.
    public struct Options: Sendable, Equatable {
        /// The whitespace allowed between JSON tokens; `.llamaCpp` gives llama.cpp's text.
        public var whitespace: WhitespacePolicy
        /// Whether `.` in patterns also matches newlines.
        public var dotAll: Bool
        /// Throw `SchemaError.Code.unsupportedKeyword` instead of warning about what the
        /// grammar does not enforce (unsupported patterns included).
        public var rejectIgnoredKeywords: Bool

        /// Options; the defaults give llama.cpp's text.
        public init(whitespace: WhitespacePolicy = .llamaCpp, dotAll: Bool = false, rejectIgnoredKeywords: Bool = false) {
            self.whitespace = whitespace
            self.dotAll = dotAll
            self.rejectIgnoredKeywords = rejectIgnoredKeywords
        }
    }

    /// The schema as the compiler read it.
    public let document: SchemaDocument
    /// The rules, by name.
    public let rules: RuleSet
    /// What the grammar does not enforce.
    public let warnings: [SchemaWarning]

    /// The GBNF text, root rule `root`.
    public var text: String { rules.text }

    /// Compiles a schema given as a JSON value.
    public init(schema: JSONValue, options: Options = Options()) throws(SchemaError) {
        let document = try SchemaDocument(schema)
        let compiler = GrammarCompiler(document: document, whitespace: options.whitespace, dotAll: options.dotAll)
        _ = compiler.visit(document.root, "")
        if let error = compiler.errors.first { throw error }
        var warnings: [SchemaWarning] = []
        for w in document.warnings + compiler.warnings where !warnings.contains(w) { warnings.append(w) }
        if options.rejectIgnoredKeywords, let w = warnings.first {
            throw SchemaError(.unsupportedKeyword, at: w.pointer, w.message)
        }
        self.document = document
        self.rules = compiler.rules
        self.warnings = warnings
    }

    /// Compiles schema JSON text.
    public init(schemaText: String, options: Options = Options()) throws(SchemaError) {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: schemaText)
        } catch {
            throw SchemaError(.invalidJSON, at: "#", error.description)
        }
        try self.init(schema: value, options: options)
    }

    /// A grammar for any JSON value (what `{}` compiles to), with the given whitespace.
    public static func anyJSON(whitespace: WhitespacePolicy = .llamaCpp) -> JSONSchemaGrammar {
        // `{}` compiles whatever the options: it cannot fail.
        try! JSONSchemaGrammar(schema: .object(JSONObject()), options: Options(whitespace: whitespace))
    }
}
