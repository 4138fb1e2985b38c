// Embeddings of a few texts, ranked by cosine similarity to a query.
import Llama

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)

// snippet.show
let context = try LlamaContext(model: model, options: ContextOptions(embeddings: true, pooling: .mean))
let documents = ["The cat sat on the mat.", "Stocks fell sharply today.", "A kitten rested on the rug."]
let vectors = try await context.embeddings(for: ["Where is the cat?"] + documents)   // normalized
let ranked = zip(documents, vectors.dropFirst())
    .map { (text: $0, score: cosineSimilarity(vectors[0], $1)) }
    .sorted { $0.score > $1.score }
for (text, score) in ranked { print(String(format: "%.3f", score), text) }
// snippet.end
