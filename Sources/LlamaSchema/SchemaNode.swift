public import LlamaJinja

/// The subset of JSON Schema that the grammar compiler understands, read from JSON: the first
/// stage of JSON Schema → `SchemaNode` → `RuleSet` → GBNF text. Keywords are folded in as
/// llama.cpp's converter folds them (a `type` list becomes `anyOf`, `exclusiveMinimum` becomes
/// an inclusive integer bound…), so each case says exactly what the grammar will enforce.
public indirect enum SchemaNode: Sendable, Equatable {
    /// Any JSON value (`{}`, `true`, or an object without structural keywords).
    case any
    /// A `$ref` into the same document; its target is `SchemaDocument.definitions[ref]`.
    case ref(String)
    /// `anyOf`, `oneOf`, or a `type` list expanded to one alternative per type.
    case anyOf([SchemaNode])
    /// `allOf`: every alternative applies (objects merged, enums intersected).
    case allOf([SchemaNode])
    /// `const`: exactly this value.
    case constant(JSONValue)
    /// `enum`: one of these values.
    case enumeration([JSONValue])
    /// `type: null`.
    case null
    /// `type: boolean`.
    case boolean
    /// `type: number` (bounds are not enforced).
    case number
    /// Inclusive bounds; nil is unbounded.
    case integer(minimum: Int64?, maximum: Int64?)
    /// `type: string`, with its pattern, format and length.
    case string(StringSchema)
    /// `type: array` of items of one schema, with bounds on their count (nil: unbounded).
    case array(items: SchemaNode, minItems: Int, maxItems: Int?)
    /// An array of exactly these items (`prefixItems`, or `items` as an array).
    case tuple([SchemaNode])
    /// Properties in schema order; `additional` is nil when other properties are not allowed.
    case object(properties: [Property], additional: SchemaNode?)

    /// A property of an object schema.
    public struct Property: Sendable, Equatable {
        /// Its name.
        public var name: String
        /// Its schema.
        public var schema: SchemaNode
        /// Whether `required` lists it.
        public var required: Bool
    }

    /// What a string schema constrains.
    public struct StringSchema: Sendable, Equatable {
        /// The `format`s the grammar enforces.
        public enum Format: String, Sendable, Equatable {
            /// `uuid`, `date`, `time` and `date-time`, as llama.cpp's converter writes them.
            case uuid, date, time, dateTime = "date-time"
        }
        /// The `pattern`, anchored (`^…$`) when the grammar enforces it.
        public var pattern: String?
        /// Where `pattern` was written, for its errors and warnings.
        public var patternPointer: String
        /// The `format`, when it is one the grammar enforces.
        public var format: Format?
        /// `minLength` (0 when absent).
        public var minLength: Int
        /// `maxLength` (nil: unbounded).
        public var maxLength: Int?
    }
}

/// A schema read from JSON: its root and the targets of its `$ref`s, by reference string.
public struct SchemaDocument: Sendable, Equatable {
    /// The root schema.
    public var root: SchemaNode
    /// The targets of the document's `$ref`s, by reference string (`#/$defs/node`).
    public var definitions: [String: SchemaNode]
    /// Keywords and formats that the grammar does not enforce, with where they are.
    public var warnings: [SchemaWarning]

    /// Reads `schema`, throwing a `SchemaError` naming the JSON pointer of the first problem.
    public init(_ schema: JSONValue) throws(SchemaError) {
        var reader = SchemaReader(root: schema)
        root = try reader.node(schema, at: "#")
        definitions = reader.definitions.compactMapValues { $0 }
        warnings = reader.warnings
    }
}

/// Keywords that describe and do not constrain: never reported.
let annotationKeywords: Set<String> = [
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "$defs", "definitions",
    "deprecated", "readOnly", "writeOnly", "$anchor", "contentMediaType", "contentEncoding",
]

/// Keywords the compiler reads (whether a given node uses one depends on its type, as in llama.cpp).
let compiledKeywords: Set<String> = [
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
]

struct SchemaReader {
    let root: JSONValue
    /// The target of each `$ref`, nil while it is being read (a cycle stops there).
    var definitions: [String: SchemaNode?] = [:]
    var warnings: [SchemaWarning] = []

    init(root: JSONValue) { self.root = root }

    static func escape(_ token: String) -> String {
        var out = ""
        for c in token {
            switch c {
            case "~": out += "~0"
            case "/": out += "~1"
            default: out.append(c)
            }
        }
        return out
    }

    func count(_ schema: JSONObject, _ key: String, at path: String) throws(SchemaError) -> Int? {
        guard let value = schema[key] else { return nil }
        switch value {
        case .int(let n) where n >= 0 && n <= Int(Int32.max): return n
        default: throw SchemaError(.invalidSchema, at: path, "\(key) must be a non-negative integer")
        }
    }

    /// A minimum count becomes a GBNF repetition `{m,…}`, which llama.cpp's grammar parser refuses
    /// past `MAX_REPETITION_THRESHOLD` (2,000): refused here, with the pointer, rather than as a
    /// grammar that does not parse. (A maximum past it is kept: llama.cpp reads it as no maximum.)
    func repetitionLimit(_ n: Int, _ key: String, at path: String) throws(SchemaError) {
        if n > maxGrammarRepetition {
            throw SchemaError(.unsupportedKeyword, at: path, "\(key) \(n) is more than llama.cpp's grammars can repeat "
                + "(\(maxGrammarRepetition)): use a smaller \(key)")
        }
    }

    /// A fractional bound is rounded inwards, towards the integers it still admits.
    func bound(_ schema: JSONObject, _ key: String, at path: String, roundUp: Bool) throws(SchemaError) -> Int64 {
        switch schema[key] {
        case .int(let n): return Int64(n)
        case .bigInteger(let digits): return digits.hasPrefix("-") ? .min : .max
        case .double(let d):
            let r = roundUp ? d.rounded(.up) : d.rounded(.down)
            if r >= 9.2e18 { return .max }
            if r <= -9.2e18 { return .min }
            return Int64(r)
        default: throw SchemaError(.invalidSchema, at: path, "\(key) must be a number")
        }
    }

    func format(_ schema: JSONObject, at path: String) throws(SchemaError) -> SchemaNode.StringSchema.Format? {
        guard let value = schema["format"] else { return nil }
        guard case .string(let format) = value else { throw SchemaError(.invalidSchema, at: path, "format must be a string") }
        switch format {
        case "date": return .date
        case "time": return .time
        case "date-time": return .dateTime
        case "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5": return .uuid
        default: return nil
        }
    }

    /// Follows a `#/a/b/0` reference from the document's root (tokens taken as written, as llama.cpp does).
    func resolve(_ ref: String, at path: String) throws(SchemaError) -> JSONValue {
        var target = root
        let tokens = ref.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for sel in tokens.dropFirst() {
            if case .object(let o) = target, let next = o[sel] {
                target = next
            } else if case .array(let a) = target {
                guard let idx = Int(sel), idx >= 0, idx < a.count else {
                    throw SchemaError(.unresolvedReference, at: path, "cannot resolve $ref \(ref), \(sel) is out of range")
                }
                target = a[idx]
            } else {
                throw SchemaError(.unresolvedReference, at: path, "cannot resolve $ref \(ref), \(sel) not found")
            }
        }
        return target
    }

    mutating func reference(_ value: JSONValue, at path: String) throws(SchemaError) -> SchemaNode {
        guard case .string(let ref) = value else { throw SchemaError(.invalidSchema, at: path, "$ref must be a string") }
        guard ref.hasPrefix("#/") else {
            throw SchemaError(.unresolvedReference, at: path, "unsupported $ref \(ref), only references into the same document are supported")
        }
        if definitions[ref] == nil {
            definitions[ref] = .some(nil)
            let target = try resolve(ref, at: path)
            definitions[ref] = .some(try node(target, at: ref))
        }
        return .ref(ref)
    }

    mutating func alternatives(_ value: JSONValue, at path: String) throws(SchemaError) -> [SchemaNode] {
        guard case .array(let alts) = value else { throw SchemaError(.invalidSchema, at: path, "must be an array of schemas") }
        if alts.isEmpty { throw SchemaError(.invalidSchema, at: path, "must not be empty") }
        var nodes: [SchemaNode] = []
        for (i, alt) in alts.enumerated() { nodes.append(try node(alt, at: "\(path)/\(i)")) }
        return nodes
    }

    mutating func object(_ schema: JSONObject, at path: String) throws(SchemaError) -> SchemaNode {
        var required = Set<String>()
        if case .array(let names)? = schema["required"] {
            for case .string(let name) in names { required.insert(name) }
        }
        var properties: [SchemaNode.Property] = []
        if let value = schema["properties"] {
            guard case .object(let props) = value else { throw SchemaError(.invalidSchema, at: path, "properties must be an object") }
            for (name, prop) in props {
                properties.append(.init(name: name, schema: try node(prop, at: "\(path)/properties/\(Self.escape(name))"), required: required.contains(name)))
            }
        }
        var additional: SchemaNode? = nil
        switch schema["additionalProperties"] {
        case .bool(let allowed)?: additional = allowed ? .any : nil
        case .object?: additional = try node(schema["additionalProperties"]!, at: "\(path)/additionalProperties")
        case nil: additional = schema["properties"] == nil ? .any : nil
        default: throw SchemaError(.invalidSchema, at: path, "additionalProperties must be a boolean or a schema")
        }
        return .object(properties: properties, additional: additional)
    }

    mutating func array(_ schema: JSONObject, at path: String) throws(SchemaError) -> SchemaNode {
        var items = SchemaNode.any
        if let key = schema["items"] != nil ? "items" : schema["prefixItems"] != nil ? "prefixItems" : nil {
            let value = schema[key]!
            if case .array(let list) = value {
                var tuple: [SchemaNode] = []
                for (i, item) in list.enumerated() { tuple.append(try node(item, at: "\(path)/\(key)/\(i)")) }
                return .tuple(tuple)
            }
            items = try node(value, at: "\(path)/\(key)")
        }
        let minItems = try count(schema, "minItems", at: path) ?? 0
        try repetitionLimit(minItems, "minItems", at: path)
        let maxItems = try count(schema, "maxItems", at: path)
        if let maxItems, minItems > maxItems {
            throw SchemaError(.unsatisfiable, at: path, "minItems (\(minItems)) is greater than maxItems (\(maxItems))")
        }
        return .array(items: items, minItems: minItems, maxItems: maxItems)
    }

    mutating func string(_ schema: JSONObject, at path: String) throws(SchemaError) -> SchemaNode {
        var pattern: String? = nil
        if let value = schema["pattern"] {
            guard case .string(let p) = value else { throw SchemaError(.invalidSchema, at: path, "pattern must be a string") }
            pattern = p
        }
        let format = try format(schema, at: path)
        if case .string(let f)? = schema["format"], format == nil {
            warnings.append(SchemaWarning(at: path, "format \"\(f)\" is not enforced"))
        }
        let minLength = try count(schema, "minLength", at: path) ?? 0
        try repetitionLimit(minLength, "minLength", at: path)
        let maxLength = try count(schema, "maxLength", at: path)
        if let maxLength, minLength > maxLength {
            throw SchemaError(.unsatisfiable, at: path, "minLength (\(minLength)) is greater than maxLength (\(maxLength))")
        }
        return .string(.init(pattern: pattern, patternPointer: "\(path)/pattern", format: format, minLength: minLength, maxLength: maxLength))
    }

    func integer(_ schema: JSONObject, at path: String) throws(SchemaError) -> SchemaNode {
        var minimum: Int64? = nil, maximum: Int64? = nil
        if schema["minimum"] != nil {
            minimum = try bound(schema, "minimum", at: path, roundUp: true)
        } else if schema["exclusiveMinimum"] != nil {
            let b = try bound(schema, "exclusiveMinimum", at: path, roundUp: false)
            minimum = b == .max ? b : b + 1
        }
        if schema["maximum"] != nil {
            maximum = try bound(schema, "maximum", at: path, roundUp: false)
        } else if schema["exclusiveMaximum"] != nil {
            let b = try bound(schema, "exclusiveMaximum", at: path, roundUp: true)
            maximum = b == .min ? b : b - 1
        }
        // llama.cpp takes the extreme values as "unbounded".
        if minimum == .min { minimum = nil }
        if maximum == .max { maximum = nil }
        if let minimum, let maximum, minimum > maximum {
            throw SchemaError(.unsatisfiable, at: path, "no integer lies between \(minimum) and \(maximum)")
        }
        if minimum != nil || maximum != nil {
            var range = IntegerRange()
            do {
                try range.build(minimum ?? .min, maximum ?? .max)
            } catch {
                // llama.cpp's digit rules take ±(2^63 - 1) as "unbounded", and fail on this
                throw SchemaError(.invalidSchema, at: path, "integer bounds at the limits of 64 bits are not supported")
            }
        }
        return .integer(minimum: minimum, maximum: maximum)
    }

    mutating func reportIgnored(_ schema: JSONObject, at path: String) {
        for key in schema.keys where !compiledKeywords.contains(key) && !annotationKeywords.contains(key) {
            warnings.append(SchemaWarning(at: path, "keyword \"\(key)\" is ignored"))
        }
    }

    mutating func node(_ value: JSONValue, at path: String) throws(SchemaError) -> SchemaNode {
        guard case .object(let schema) = value else { throw SchemaError(.invalidSchema, at: path, "schema must be an object") }
        reportIgnored(schema, at: path)
        if let ref = schema["$ref"] { return try reference(ref, at: path) }
        if let key = schema["oneOf"] != nil ? "oneOf" : schema["anyOf"] != nil ? "anyOf" : nil {
            return .anyOf(try alternatives(schema[key]!, at: "\(path)/\(key)"))
        }
        let type = schema["type"]
        if case .array(let types) = type {
            if types.isEmpty { throw SchemaError(.invalidSchema, at: path, "type must not be empty") }
            var alts: [SchemaNode] = []
            for (i, t) in types.enumerated() {
                var alt = schema
                alt["type"] = t
                alts.append(try node(.object(alt), at: "\(path)/type/\(i)"))
            }
            // the alternatives repeat the schema's keywords: report them once
            return .anyOf(alts)
        }
        if let c = schema["const"] { return .constant(c) }
        if let values = schema["enum"] {
            guard case .array(let list) = values, !list.isEmpty else {
                throw SchemaError(.invalidSchema, at: path, "enum must be a non-empty array")
            }
            return .enumeration(list)
        }
        var typeName = ""
        switch type {
        case nil, .null?: break
        case .string(let s)?: typeName = s
        default: throw SchemaError(.invalidSchema, at: path, "type must be a string or an array of strings")
        }
        let hasProperties = schema["properties"] != nil || (schema["additionalProperties"] != nil && schema["additionalProperties"] != .bool(true))
        switch typeName {
        case "":
            // without a type the structural keywords decide, in llama.cpp's order
            if hasProperties { return try object(schema, at: path) }
            if let allOf = schema["allOf"] { return .allOf(try alternatives(allOf, at: "\(path)/allOf")) }
            if schema["items"] != nil || schema["prefixItems"] != nil { return try array(schema, at: path) }
            let format = try format(schema, at: path)
            if schema["pattern"] != nil || schema["minLength"] != nil || schema["maxLength"] != nil || format != nil {
                return try string(schema, at: path)
            }
            return .any
        case "object":
            if !hasProperties, let allOf = schema["allOf"] { return .allOf(try alternatives(allOf, at: "\(path)/allOf")) }
            return try object(schema, at: path)
        case "string":
            if let allOf = schema["allOf"] { return .allOf(try alternatives(allOf, at: "\(path)/allOf")) }
            return try string(schema, at: path)
        case "array": return try array(schema, at: path)
        case "integer": return try integer(schema, at: path)
        case "number":
            for key in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] where schema[key] != nil {
                warnings.append(SchemaWarning(at: path, "\(key) is not enforced for numbers"))
            }
            return .number
        case "boolean": return .boolean
        case "null": return .null
        default: throw SchemaError(.invalidSchema, at: path, "unrecognized type \(typeName)")
        }
    }
}
