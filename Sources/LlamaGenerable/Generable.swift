@_exported public import LlamaJinja
@_exported public import LlamaSchema

/// Derives a `Generable` conformance: a JSON Schema of the type's JSON form, from a struct's
/// stored properties or an enum's cases, for typed generation
/// (`session.respond(to:generating:)`).
///
/// ```swift
/// @Generable(description: "A recipe")
/// struct Recipe {
///     @Guide(description: "The dish", .pattern("[A-Z][a-z ]+"))
///     var name: String
///     @Guide(.range(1...12)) var servings: Int
///     @Guide(.count(2...6)) var ingredients: [String]
///     var note: String?   // optional: may be left out
/// }
/// ```
///
/// Structs: stored instance properties in declaration order (their `CodingKeys` names when the
/// struct declares `CodingKeys`), all required except optionals; computed and static properties
/// are ignored, and a `let` with a default value is left out (decoding keeps it). Enums without
/// payloads: a string enum of the case names (decoded by name: the macro adds `init(from:)`),
/// or of the raw values (`String` or `Int` raw values). Enums with payloads: the form of Swift's
/// synthesized `Codable`, `{"case": {"label": value}}`. Nested generable types are inlined; a type
/// that contains itself becomes a `$defs`/`$ref` schema.
///
/// Decoding is the type's own `Decodable`: declared, or synthesized through `Generable`, which
/// refines `Decodable`. A custom `init(from:)` must read the JSON form the schema describes.
/// Generic types, classes and actors are reported as unsupported: conform to `Generable` by hand.
@attached(extension, conformances: Generable, names: named(generationSchema), named(init(from:)))
public macro Generable(description: String? = nil) = #externalMacro(module: "LlamaGenerableMacros", type: "GenerableMacro")

/// Describes and constrains a stored property of a `@Generable` type:
/// `@Guide(description: "servings", .range(1...12))`. See ``GuideConstraint``.
@attached(peer)
public macro Guide(description: String? = nil, _ constraints: GuideConstraint...) = #externalMacro(module: "LlamaGenerableMacros", type: "GuideMacro")
