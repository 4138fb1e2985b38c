// Semantic search: embed a few documents and a query, rank the documents by cosine similarity.
import Foundation
import Llama

let documents = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "A kitten is a young cat.",
    "The stock market fell sharply on Monday.",
]
let query = "Which document is about a baby cat?"

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 512, batchSize: 512, embeddings: true,
                                                                     pooling: .mean))
let vectors = try await context.embeddings(for: documents + [query])
let queryVector = vectors.last!
let ranked = zip(documents, vectors).map { ($0, cosineSimilarity($1, queryVector)) }.sorted { $0.1 > $1.1 }
print("query: \(query)")
for (document, score) in ranked { print(String(format: "%.3f  ", score) + document) }
guard ranked.first?.0 == documents[2] else { fatalError("the kitten document should rank first") }
