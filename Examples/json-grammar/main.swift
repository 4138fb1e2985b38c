// Grammar-constrained output: a GBNF grammar makes the model answer with JSON of a fixed shape,
// which then decodes into a Swift value.
import Foundation
import Llama

struct City: Decodable {
    var name: String
    var country: String
}

let grammar = #"""
root   ::= "{" ws "\"name\":" ws string "," ws "\"country\":" ws string ws "}"
string ::= "\"" [A-Za-z ]+ "\""
ws     ::= [ ]?
"""#

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 512))
let prompt = try model.formatChat([.user("Name a big city and its country, as JSON with the keys name and country.")])
let text = try await context.generate(prompt: prompt, sampling: SamplerChain([.grammar(grammar), .greedy]),
                                      options: GenerationOptions(maxTokens: 48)).summary().text
print(text)
let city = try JSONDecoder().decode(City.self, from: Data(text.utf8))
print("decoded: \(city.name), \(city.country)")
