// @Generable: a Swift type's JSON Schema derived by a macro, generation constrained to it, decoded.
import Llama
import LlamaGenerable

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
let session = try ChatSession(model: model)

// snippet.show
@Generable(description: "An ingredient")
struct Ingredient: Codable {
    var name: String
    @Guide(.range(1...1000)) var grams: Int
}

@Generable(description: "A recipe")
struct Recipe: Codable {
    @Guide(description: "The dish", .pattern("[A-Z][a-z ]+")) var title: String
    @Guide(.range(1...12)) var servings: Int
    @Guide(.count(1...5)) var ingredients: [Ingredient]   // another @Generable type
    var note: String?                                        // optional: may be left out
}

let recipe = try await session.respond(to: "A recipe for pancakes.", generating: Recipe.self)
// snippet.end
print(recipe.title, recipe.servings, recipe.ingredients.map(\.name), recipe.note ?? "")
