public import LlamaJinja

/// A type that a model can generate: its JSON form is described by a JSON Schema, which
/// constrains generation (through ``JSONSchemaGrammar``), and the generated JSON decodes into it.
///
/// The `@Generable` macro (product `LlamaGenerable`) derives the conformance for structs and
/// enums; any `Decodable` type can conform by hand with a written schema.
public protocol Generable: Decodable, Sendable {
    /// The JSON Schema of the type's JSON form.
    static var generationSchema: JSONValue { get }
}
