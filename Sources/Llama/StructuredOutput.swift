public import LlamaJinja
import LlamaSchema

/// What generated text must be: free text, or text a grammar allows.
///
/// A format other than ``text`` becomes a ``SamplerStage/grammar(_:root:)`` stage in front of
/// the sampler chain, so that every later stage only sees tokens the grammar allows.
public enum GenerationFormat: Sendable, Equatable {
    /// Free text.
    case text
    /// Text a GBNF grammar allows (start symbol `root`).
    case grammar(String)
    /// Any JSON value (llama.cpp's JSON grammar, with its whitespace policy).
    case json
    /// A JSON document that a JSON Schema describes, compiled to GBNF by `LlamaSchema`'s `JSONSchemaGrammar`.
    case jsonSchema(JSONValue)

    /// The GBNF text of the format; nil for free text. A schema that cannot be compiled is an
    /// `.invalidSchema` error naming the JSON pointer of the problem.
    public func grammarText() throws(LlamaError) -> String? {
        switch self {
        case .text: return nil
        case .grammar(let text): return text
        case .json: return JSONSchemaGrammar.anyJSON().text
        case .jsonSchema(let schema):
            do { return try JSONSchemaGrammar(schema: schema).text } catch {
                throw LlamaError(.invalidSchema, "the JSON Schema for the output cannot be compiled to a grammar "
                    + "(\(error.code) at \(error.pointer)): \(error.message)")
            }
        }
    }

    /// `chain` with the format's grammar stage in front (unchanged for free text).
    func constraining(_ chain: SamplerChain) throws(LlamaError) -> SamplerChain {
        guard let text = try grammarText() else { return chain }
        return SamplerChain([.grammar(text)] + chain.stages)
    }
}
