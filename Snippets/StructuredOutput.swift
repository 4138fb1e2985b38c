// JSON Schema → GBNF grammar (LlamaSchema), and generation constrained by it.
import Llama
import LlamaSchema

let schema = #"{"type":"object","properties":{"name":{"type":"string","maxLength":20},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["name"]}"#

// snippet.show
// The grammar as llama.cpp's own converter writes it, and what it cannot enforce.
let grammar = try JSONSchemaGrammar(schemaText: schema)
for warning in grammar.warnings { print("not enforced:", warning) }   // with its JSON pointer

// A sampler chain whose first stage is the grammar.
var chain = SamplerChain.standard(temperature: 0.8)
chain.stages.insert(.grammar(grammar.text), at: 0)

// Or let generation compile the schema itself.
var options = GenerationOptions(maxTokens: 128)
options.format = .jsonSchema(["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]])
// snippet.end
print(grammar.text, chain.stages.count, options.maxTokens)
