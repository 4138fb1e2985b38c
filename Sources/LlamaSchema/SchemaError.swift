/// A JSON schema that cannot be compiled to a grammar: what is wrong, and where.
public struct SchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem it is. Open: new codes may be added.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The schema text is not JSON.
        public static let invalidJSON = Code(rawValue: "invalid-json")
        /// A keyword has a value of the wrong kind (`minItems: -1`, `properties: []`, `type: "foo"`…).
        public static let invalidSchema = Code(rawValue: "invalid-schema")
        /// A `$ref` outside the document, or one that points nowhere.
        public static let unresolvedReference = Code(rawValue: "unresolved-reference")
        /// A `pattern` that is not a valid regular expression.
        public static let invalidPattern = Code(rawValue: "invalid-pattern")
        /// Constraints that no value satisfies (`minItems` > `maxItems`, `minimum` > `maximum`…).
        public static let unsatisfiable = Code(rawValue: "unsatisfiable")
        /// A keyword the compiler does not enforce, when `Options.rejectIgnoredKeywords` is set.
        public static let unsupportedKeyword = Code(rawValue: "unsupported-keyword")
    }

    /// What kind of problem it is, to switch on.
    public let code: Code
    /// The JSON pointer of the schema at fault, in URI-fragment form (`#/properties/a`).
    public let pointer: String
    /// What is wrong, for people.
    public let message: String

    /// An error with its code, the JSON pointer of the schema at fault, and a message.
    public init(_ code: Code, at pointer: String, _ message: String) {
        self.code = code
        self.pointer = pointer
        self.message = message
    }

    public var description: String { "JSON schema error at \(pointer): \(message)" }
}

/// Something the grammar does not enforce, with where it is: a keyword that is ignored, or a
/// pattern outside the supported regular-expression subset (the string then accepts any text).
public struct SchemaWarning: Sendable, Equatable, CustomStringConvertible {
    /// The JSON pointer of the keyword or pattern concerned (`#/properties/a/pattern`).
    public let pointer: String
    /// What is not enforced.
    public let message: String

    /// A warning with its JSON pointer and message.
    public init(at pointer: String, _ message: String) {
        self.pointer = pointer
        self.message = message
    }

    public var description: String { "\(pointer): \(message)" }
}
