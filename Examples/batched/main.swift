// Batched generation: several prompts decoded together, one sequence each, greedy, in one
// llama_decode per step.
import Llama

let prompts = ["The capital of France is", "Water boils at", "The first planet from the sun is"]
let steps = 16

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 1024, batchSize: 512,
                                                                     maxSequences: UInt32(prompts.count)))
let tokenized = try prompts.map { try model.vocab.tokenize($0, addSpecial: true, parseSpecial: false) }
var batch = LlamaBatch()
for (sequence, tokens) in tokenized.enumerated() { batch.add(prompt: tokens, sequence: Int32(sequence)) }
var positions = tokenized.map { Int32($0.count) }
var generated = [[LlamaToken]](repeating: [], count: prompts.count)
for _ in 0..<steps {
    try await context.decode(batch)
    let outputs = batch.outputIndexes
    var next = LlamaBatch()
    for sequence in prompts.indices {
        let token = try await context.withLogits(at: outputs[sequence]) { logits in
            LlamaToken(logits.indices.max { logits[$0] < logits[$1] }!)
        }
        generated[sequence].append(token)
        next.add(token, position: positions[sequence], sequences: [Int32(sequence)], output: true)
        positions[sequence] += 1
    }
    batch = next
}
for (prompt, tokens) in zip(prompts, generated) {
    print("\(prompt)\(try model.vocab.detokenize(tokens))")
}
