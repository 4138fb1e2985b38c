public import LlamaGenerable

// The @Generable types the tests derive schemas for, decode, and have SmolLM2 generate.

@Generable(description: "A colour")
enum Colour {
    case red, green, blue
}

@Generable
enum Size: String, Codable {
    case small = "S"
    case medium = "M"
    case large
}

@Generable
enum Priority: Int {
    case low = 1, normal, high = 5
}

@Generable(description: "An ingredient and how much of it")
struct Ingredient: Codable, Equatable {
    @Guide(description: "What it is, in lower case", .pattern("[a-z]+( [a-z]+)?"))
    var name: String
    @Guide(.range(1...500))
    var grams: Int
}

@Generable(description: "A recipe")
struct Recipe: Codable, Equatable {
    @Guide(description: "The dish's name", .pattern("[A-Z][a-z ]{2,23}"))
    var title: String
    @Guide(.range(1...12))
    var servings: Int
    @Guide(.count(1...3))
    var ingredients: [Ingredient]
    var vegetarian: Bool
    var note: String?
}

@Generable
struct Ticket: Equatable {
    @Guide(description: "Short summary", .count(1...40))
    var summary: String
    var colour: Colour
    var size: Size
    var priority: Priority
    @Guide(.anyOf(["open", "closed"]))
    var state: String
    @Guide(.count(0...3), .element(.range(0...9)))
    var digits: [Int]
}

@Generable(description: "A point")
struct Point: Equatable, Codable {
    var x: Int8
    var y: UInt8
}

@Generable
enum Shape: Codable, Equatable {
    case circle(radius: Int)
    case square(Int)
    case empty
}

/// Contains itself: its schema uses `$defs`/`$ref`.
@Generable(description: "A tree of words")
struct Tree: Codable, Equatable {
    @Guide(.pattern("[a-z]{1,8}"))
    var word: String
    @Guide(.count(0...2))
    var children: [Tree]
}

@Generable
struct Forest: Codable, Equatable {
    var trees: [Tree]
    var names: [String: Int]
    var best: Tree?
}

@Generable
struct Renamed: Codable, Equatable {
    var firstName: String
    var age: Int
    var cache: Int = 0
    var computed: Int { age * 2 }
    static let shared = 1

    enum CodingKeys: String, CodingKey {
        case firstName = "first_name"
        case age
    }
}

/// Public: the expansion's members are public too.
@Generable
public struct Published: Codable, Equatable {
    public var id: Int
    public var tags: [String]
}

/// Declares Codable itself and has no raw values: decoding is the macro's, by case name.
@Generable
enum Mood: Codable {
    case happy, sad
}
