import Foundation
import FuzzSupport
import Llama
import LlamaSchema

// JSON Schemas through LlamaSchema's compiler: any text must be a SchemaError or a grammar; a
// grammar must be one llama.cpp's parser accepts with SmolLM2's vocabulary (generation of a
// token through it is an error only when no token can begin it, `.grammarDeadEnd`). Seeds: the
// schemas of LlamaSchemaTests' corpus (Tests/LlamaSchemaTests/Fixtures) and schemas of our own.

nonisolated(unsafe) var context: LlamaContext!
let prompt = "JSON:"

@main
enum FuzzSchema {
    static func main() {
        Fuzz.initialize { dir in
            var i = 0
            for schema in FuzzSeeds.schemas() {
                try Fuzz.seed(Data(schema.utf8), i, in: dir, name: "schema")
                i += 1
            }
        }
        context = Fuzz.context()
        Fuzz.run(test)
    }
}

func test(_ input: UnsafeBufferPointer<UInt8>) {
    let text = String(decoding: input, as: UTF8.self)
    let grammar: JSONSchemaGrammar
    do { grammar = try JSONSchemaGrammar(schemaText: text) } catch { return }
    let gbnf = grammar.text
    let context = context!
    let outcome = Fuzz.blocking {
        try await context.generate(prompt: prompt, sampling: SamplerChain([.grammar(gbnf), .greedy]),
                                   options: GenerationOptions(maxTokens: 2)).summary()
    }
    switch outcome {
    case .failure(let error as LlamaError) where error.code == .invalidGrammar:
        Fuzz.finding("the schema compiled to a grammar llama.cpp does not parse:\n\(gbnf)")
    default:
        Fuzz.expect(outcome, allowed: [.grammarDeadEnd], "generation through the schema's grammar")
    }
}
