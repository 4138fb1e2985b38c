public import LlamaJinja

/// A type that a model can generate: its JSON form is described by a JSON Schema, which
/// constrains generation (through ``JSONSchemaGrammar``), and the generated JSON decodes into it.
///
/// The `@Generable` macro (product `LlamaGenerable`) derives the conformance for structs and
/// enums; any `Decodable` type can conform by hand with a written schema. The basic types
/// conform here: `String`, `Bool`, the integer types (fixed-width ones with their bounds),
/// `Double`, `Float`, and `Optional`, `Array` and `Dictionary` (with `String` keys) of
/// generable types.
public protocol Generable: Decodable, Sendable {
    /// The JSON Schema of the type's JSON form.
    static var generationSchema: JSONValue { get }
}

extension String: Generable {
    public static var generationSchema: JSONValue { ["type": "string"] }
}

extension Bool: Generable {
    public static var generationSchema: JSONValue { ["type": "boolean"] }
}

extension Double: Generable {
    public static var generationSchema: JSONValue { ["type": "number"] }
}

extension Float: Generable {
    public static var generationSchema: JSONValue { ["type": "number"] }
}

extension Int: Generable {
    public static var generationSchema: JSONValue { ["type": "integer"] }
}

extension Int64: Generable {
    public static var generationSchema: JSONValue { ["type": "integer"] }
}

// Narrower integers carry their bounds, so that generated numbers always fit.
extension Int32: Generable {
    public static var generationSchema: JSONValue { GenerationSchema.integer(in: Int(min)...Int(max)) }
}

extension Int16: Generable {
    public static var generationSchema: JSONValue { GenerationSchema.integer(in: Int(min)...Int(max)) }
}

extension Int8: Generable {
    public static var generationSchema: JSONValue { GenerationSchema.integer(in: Int(min)...Int(max)) }
}

extension UInt: Generable {
    public static var generationSchema: JSONValue { ["type": "integer", "minimum": 0] }
}

extension UInt64: Generable {
    public static var generationSchema: JSONValue { ["type": "integer", "minimum": 0] }
}

extension UInt32: Generable {
    public static var generationSchema: JSONValue { GenerationSchema.integer(in: 0...Int(max)) }
}

extension UInt16: Generable {
    public static var generationSchema: JSONValue { GenerationSchema.integer(in: 0...Int(max)) }
}

extension UInt8: Generable {
    public static var generationSchema: JSONValue { GenerationSchema.integer(in: 0...Int(max)) }
}

/// A value or JSON `null`: `{"anyOf": [wrapped, {"type": "null"}]}`. (An optional stored
/// property of a `@Generable` struct is instead a property that may be left out, with the
/// wrapped type's schema.)
extension Optional: Generable where Wrapped: Generable {
    public static var generationSchema: JSONValue { GenerationSchema.nullable(Wrapped.generationSchema) }
}

/// `{"type": "array", "items": element}`.
extension Array: Generable where Element: Generable {
    public static var generationSchema: JSONValue { GenerationSchema.array(of: Element.generationSchema) }
}

/// `{"type": "object", "additionalProperties": value}`.
extension Dictionary: Generable where Key == String, Value: Generable {
    public static var generationSchema: JSONValue { GenerationSchema.dictionary(of: Value.generationSchema) }
}

/// A constraint of `@Guide` on a property's schema: `@Guide(description: "servings", .range(1...12))`.
///
/// Each one adds JSON Schema keywords to the property's schema (to the wrapped type's schema
/// for an optional): a range becomes `minimum`/`maximum` (enforced by the grammar for integers
/// only: `JSONSchemaGrammar` reports bounds on numbers as not enforced), a count becomes
/// `minItems`/`maxItems` on arrays and `minLength`/`maxLength` on strings, a pattern becomes an
/// anchored `pattern` (the whole string must match), allowed values become `enum`, and
/// `.element(...)` applies constraints to the items of an array.
public struct GuideConstraint: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case minimum(JSONValue)
        case maximum(JSONValue)
        case minimumCount(Int)
        case maximumCount(Int)
        case pattern(String)
        case values([JSONValue])
        case element([GuideConstraint])
    }

    let kinds: [Kind]

    init(_ kinds: [Kind]) { self.kinds = kinds }

    /// Integers from `range.lowerBound` to `range.upperBound`, inclusive.
    public static func range(_ range: ClosedRange<Int>) -> Self {
        Self([.minimum(.int(range.lowerBound)), .maximum(.int(range.upperBound))])
    }

    /// Integers from `range.lowerBound` up.
    public static func range(_ range: PartialRangeFrom<Int>) -> Self { Self([.minimum(.int(range.lowerBound))]) }

    /// Integers up to `range.upperBound`, inclusive.
    public static func range(_ range: PartialRangeThrough<Int>) -> Self { Self([.maximum(.int(range.upperBound))]) }

    /// Numbers from `range.lowerBound` to `range.upperBound` (not enforced by the grammar).
    public static func range(_ range: ClosedRange<Double>) -> Self {
        Self([.minimum(.double(range.lowerBound)), .maximum(.double(range.upperBound))])
    }

    /// A lower bound (inclusive): enforced for integers; for numbers, in the schema only.
    public static func minimum(_ value: Int) -> Self { Self([.minimum(.int(value))]) }
    /// An upper bound (inclusive): enforced for integers; for numbers, in the schema only.
    public static func maximum(_ value: Int) -> Self { Self([.maximum(.int(value))]) }
    /// A lower bound (inclusive): enforced for integers; for numbers, in the schema only.
    public static func minimum(_ value: Double) -> Self { Self([.minimum(.double(value))]) }
    /// An upper bound (inclusive): enforced for integers; for numbers, in the schema only.
    public static func maximum(_ value: Double) -> Self { Self([.maximum(.double(value))]) }

    /// Between `range.lowerBound` and `range.upperBound` items (arrays) or characters (strings).
    public static func count(_ range: ClosedRange<Int>) -> Self {
        Self([.minimumCount(range.lowerBound), .maximumCount(range.upperBound)])
    }

    /// At least `range.lowerBound` items or characters.
    public static func count(_ range: PartialRangeFrom<Int>) -> Self { Self([.minimumCount(range.lowerBound)]) }

    /// Exactly `count` items or characters.
    public static func count(_ count: Int) -> Self { Self([.minimumCount(count), .maximumCount(count)]) }

    /// The whole string matches the regular expression (the subset `JSONSchemaGrammar` compiles;
    /// `^` and `$` are added when missing).
    public static func pattern(_ pattern: String) -> Self { Self([.pattern(pattern)]) }

    /// One of these strings (`enum`).
    public static func anyOf(_ values: [String]) -> Self { Self([.values(values.map { .string($0) })]) }

    /// One of these integers (`enum`).
    public static func anyOf(_ values: [Int]) -> Self { Self([.values(values.map { .int($0) })]) }

    /// Constraints on each item of an array.
    public static func element(_ constraints: GuideConstraint...) -> Self { Self([.element(constraints)]) }
}

/// The building blocks of generation schemas, which the `@Generable` macro's expansions call.
/// They keep a fixed key order (the order of the properties as declared), and move the
/// `$defs` of nested recursive types to the top of the document, where their `$ref`s point.
public enum GenerationSchema {
    /// A property of an object schema.
    public struct Property: Sendable {
        /// The property's name in the JSON object.
        public var name: String
        /// The property's schema.
        public var schema: JSONValue
        /// Whether the object must have it (false for optionals).
        public var isRequired: Bool

        /// A property with its name, schema and whether it is required.
        public init(_ name: String, _ schema: JSONValue, isRequired: Bool = true) {
            self.name = name
            self.schema = schema
            self.isRequired = isRequired
        }
    }

    /// `T.generationSchema` (the expansions call this, so that a type that is not `Generable`
    /// is reported where the property is written).
    public static func schema<T: Generable>(for type: T.Type) -> JSONValue { T.generationSchema }

    /// `{"type": "object", "description"?, "properties": …, "required": […], "additionalProperties": false}`,
    /// properties in the given order.
    public static func object(description: String? = nil, properties: [Property]) -> JSONValue {
        var defs = JSONObject()
        var props = JSONObject()
        for p in properties { props[p.name] = hoist(p.schema, into: &defs) }
        var o: JSONObject = ["type": "object"]
        if let description { o["description"] = .string(description) }
        o["properties"] = .object(props)
        o["required"] = .array(properties.filter(\.isRequired).map { .string($0.name) })
        o["additionalProperties"] = false
        return attach(defs, to: .object(o))
    }

    /// `{"type": "array", "items": items}`.
    public static func array(of items: JSONValue) -> JSONValue {
        var defs = JSONObject()
        let items = hoist(items, into: &defs)
        return attach(defs, to: ["type": "array", "items": items])
    }

    /// `{"type": "object", "additionalProperties": values}`: a dictionary with string keys.
    public static func dictionary(of values: JSONValue) -> JSONValue {
        var defs = JSONObject()
        let values = hoist(values, into: &defs)
        return attach(defs, to: ["type": "object", "additionalProperties": values])
    }

    /// `{"anyOf": [schema, {"type": "null"}]}`.
    public static func nullable(_ schema: JSONValue) -> JSONValue {
        var defs = JSONObject()
        let schema = hoist(schema, into: &defs)
        return attach(defs, to: ["anyOf": [schema, ["type": "null"]]])
    }

    /// `{"type": "integer", "minimum": …, "maximum": …}`.
    public static func integer(in range: ClosedRange<Int>) -> JSONValue {
        ["type": "integer", "minimum": .int(range.lowerBound), "maximum": .int(range.upperBound)]
    }

    /// `{"type": "string", "description"?, "enum": values}`: the cases of an enum without payloads.
    public static func enumeration(description: String? = nil, _ values: [String]) -> JSONValue {
        var o: JSONObject = ["type": "string"]
        if let description { o["description"] = .string(description) }
        o["enum"] = .array(values.map { .string($0) })
        return .object(o)
    }

    /// `{"type": "integer", "description"?, "enum": values}`: the cases of an enum with `Int` raw values.
    public static func enumeration(description: String? = nil, _ values: [Int]) -> JSONValue {
        var o: JSONObject = ["type": "integer"]
        if let description { o["description"] = .string(description) }
        o["enum"] = .array(values.map { .int($0) })
        return .object(o)
    }

    /// `{"description"?, "anyOf": alternatives}`.
    public static func anyOf(description: String? = nil, _ alternatives: [JSONValue]) -> JSONValue {
        var defs = JSONObject()
        let alternatives = alternatives.map { hoist($0, into: &defs) }
        var o = JSONObject()
        if let description { o["description"] = .string(description) }
        o["anyOf"] = .array(alternatives)
        return attach(defs, to: .object(o))
    }

    /// A case of an enum with payloads, in the form Swift's synthesized `Codable` gives it:
    /// `{"name": {"label": value, …}}` (`_0`, `_1`… for unlabelled values; `{}` without values).
    public static func enumCase(_ name: String, _ values: [Property]) -> JSONValue {
        object(properties: [Property(name, object(properties: values))])
    }

    /// `schema` with a description and the constraints of `@Guide` (see ``GuideConstraint``);
    /// for `{"anyOf": [x, {"type": "null"}]}` they apply to `x`.
    public static func guided(_ schema: JSONValue, description: String? = nil, _ constraints: [GuideConstraint] = []) -> JSONValue {
        guard case .object(var o) = schema else { return schema }
        if !constraints.isEmpty {
            if case .array(var alternatives)? = o["anyOf"], alternatives.count == 2, alternatives[1] == ["type": "null"] {
                alternatives[0] = apply(constraints, to: alternatives[0])
                o["anyOf"] = .array(alternatives)
            } else {
                o = apply(constraints, to: .object(o)).objectValue ?? o
            }
        }
        if let description {
            // The description goes first, as people write it.
            var described: JSONObject = ["description": .string(description)]
            for (k, v) in o where k != "description" { described[k] = v }
            o = described
        }
        return .object(o)
    }

    static func apply(_ constraints: [GuideConstraint], to schema: JSONValue) -> JSONValue {
        guard case .object(var o) = schema else { return schema }
        let type = o["type"]?.stringValue
        for kind in constraints.flatMap(\.kinds) {
            switch kind {
            case .minimum(let v): o["minimum"] = v
            case .maximum(let v): o["maximum"] = v
            case .minimumCount(let n): o[type == "string" ? "minLength" : "minItems"] = .int(n)
            case .maximumCount(let n): o[type == "string" ? "maxLength" : "maxItems"] = .int(n)
            case .pattern(let p):
                o["pattern"] = .string((p.hasPrefix("^") ? "" : "^") + p + (p.hasSuffix("$") ? "" : "$"))
            case .values(let values): o["enum"] = .array(values)
            case .element(let inner):
                if let items = o["items"] { o["items"] = apply(inner, to: items) }
            }
        }
        return .object(o)
    }

    // MARK: Recursive types

    /// What `definition` is building on this thread: the names in progress, and those referred to.
    final class Building: @unchecked Sendable {
        // Only touched synchronously, inside one `definition` call tree on one thread.
        var names: [String] = []
        var referenced: Set<String> = []
    }

    @TaskLocal static var building: Building?

    /// The schema of a named type, as `build` makes it; a type that contains itself (directly
    /// or through others) becomes `{"$defs": {name: schema}, "$ref": "#/$defs/name"}`, and its
    /// inner occurrences `{"$ref": "#/$defs/name"}`. The `@Generable` expansions wrap every
    /// type's schema in this.
    public static func definition(_ name: String, _ build: () -> JSONValue) -> JSONValue {
        if let current = building { return define(name, build, current) }
        let current = Building()
        return $building.withValue(current) { define(name, build, current) }
    }

    static func define(_ name: String, _ build: () -> JSONValue, _ current: Building) -> JSONValue {
        if current.names.contains(name) {
            current.referenced.insert(name)
            return reference(name)
        }
        current.names.append(name)
        let schema = build()
        current.names.removeLast()
        guard current.referenced.remove(name) != nil else { return schema }
        var defs = JSONObject()
        let body = hoist(schema, into: &defs)
        defs[name] = body
        return ["$defs": .object(defs), "$ref": reference(name)["$ref"]!]
    }

    static func reference(_ name: String) -> JSONValue { ["$ref": .string("#/$defs/\(name)")] }

    /// `schema` without its top-level `$defs`, which are added to `defs`.
    static func hoist(_ schema: JSONValue, into defs: inout JSONObject) -> JSONValue {
        guard case .object(var o) = schema, case .object(let inner)? = o["$defs"] else { return schema }
        for (k, v) in inner where defs[k] == nil { defs[k] = v }
        o["$defs"] = nil
        return .object(o)
    }

    static func attach(_ defs: JSONObject, to schema: JSONValue) -> JSONValue {
        guard !defs.isEmpty, case .object(var o) = schema else { return schema }
        o["$defs"] = .object(defs)
        return .object(o)
    }
}
