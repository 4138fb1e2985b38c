import Foundation
import Llama
import LlamaGenerable
import LlamaTestSupport
import Testing

/// A Generable type whose hand-written schema does not compile.
struct Misspelt: Generable {
    static var generationSchema: JSONValue { ["type": "strnig"] }
}

/// A Decodable type with a hand-written schema, no macro.
struct Pair: Decodable, Equatable {
    var left: Int
    var right: Bool
}

/// SmolLM2 generates @Generable values with seeded sampling at temperature 1.0: every value
/// decodes, and every JSON text validates with Python's jsonschema against the type's schema.
/// (Recursive types are checked in SchemaTests only: no grammar bounds their depth, and a small
/// model at temperature 1.0 nests until maxTokens.)
@Suite("Typed generation with SmolLM2", .serialized)
struct TypedGenerationTests {
    static let valuesPerType = 10

    static func model() throws -> LlamaModel {
        let runtime = try LlamaRuntime(libraryDirectory: try TestEnvironment.libraryDirectory())
        return try LlamaModel(runtime: runtime, path: try TestEnvironment.model().path)
    }

    static func session(_ model: LlamaModel) throws -> ChatSession {
        try ChatSession(model: model, options: ContextOptions(contextLength: 1024, batchSize: 512, threads: 2))
    }

    /// Generates `valuesPerType` values of `T` through a chat session; returns the JSON texts.
    static func generate<T: Generable & Equatable>(_ type: T.Type, _ what: String, _ model: LlamaModel, seed: UInt32) async throws -> (texts: [String], tokens: Int) {
        let session = try session(model)
        let prompt = "Write \(what) as one JSON value that follows this JSON schema, nothing else.\n\(T.generationSchema.jsonText)"
        var texts: [String] = []
        var tokens = 0
        for i in 0..<valuesPerType {
            await session.reset()
            let value = try await session.respond(to: prompt, generating: T.self,
                                                  sampling: .standard(temperature: 1.0, seed: seed + UInt32(i)),
                                                  options: GenerationOptions(maxTokens: 200))
            let messages = await session.messages
            #expect(messages.count == 2, "\(T.self) #\(i): the session holds the question and the JSON reply")
            let text = try #require(messages.last?.text)
            #expect(messages.last?.role == "assistant")
            // The reply in the history is the text the value came from.
            #expect(try JSONDecoder().decode(T.self, from: Data(text.utf8)) == value, "\(T.self) #\(i): \(text)")
            texts.append(text)
            tokens += text.utf8.count
        }
        return (texts, tokens)
    }

    @Test("SmolLM2 generates @Generable values: all decode, all validate with jsonschema")
    func generatedValuesValidate() async throws {
        let model = try Self.model()
        let started = ContinuousClock.now
        var records: [JSONValue] = []
        var count = 0
        func add<T: Generable & Equatable>(_ type: T.Type, _ what: String, seed: UInt32) async throws {
            let (texts, _) = try await Self.generate(type, what, model, seed: seed)
            count += texts.count
            records.append(.object(["name": .string("\(T.self)"), "schema": T.generationSchema,
                                    "valid": .array(texts.map { .string($0) })]))
        }
        try await add(Recipe.self, "a recipe", seed: 100)
        try await add(Ticket.self, "a support ticket", seed: 200)
        try await add(Point.self, "a point", seed: 300)
        try await add(Shape.self, "a shape", seed: 400)
        try await add(Colour.self, "a colour", seed: 500)
        let elapsed = ContinuousClock.now - started
        #expect(count == 5 * Self.valuesPerType)
        let r = try await JSONSchemaValidator.validate(records)
        print("typed generation: \(count) values of 5 @Generable types decoded in \(elapsed); jsonschema: "
            + r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    }

    @Test("a Decodable type with a hand-written schema, through the context")
    func handWrittenSchema() async throws {
        let model = try Self.model()
        let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 512, batchSize: 512, threads: 2))
        let schema: JSONValue = ["type": "object", "properties": ["left": ["type": "integer", "minimum": 0, "maximum": 9],
                                                                   "right": ["type": "boolean"]],
                                 "required": ["left", "right"], "additionalProperties": false]
        let prompt = try model.formatChat([.user("Write a JSON object with a digit \"left\" and a boolean \"right\".")])
        let pair = try await context.generate(prompt: prompt, generating: Pair.self, schema: schema,
                                              sampling: .standard(temperature: 1.0, seed: 7))
        #expect((0...9).contains(pair.left))
        let colour = try await context.generate(prompt: try model.formatChat([.user("Name a colour.")]), generating: Colour.self)
        #expect([Colour.red, .green, .blue].contains(colour))
    }

    @Test("a schema that does not compile is .invalidSchema, before the history changes")
    func invalidSchema() async throws {
        let session = try Self.session(try Self.model())
        let error = await #expect(throws: LlamaError.self) {
            _ = try await session.respond(to: "Write a value.", generating: Misspelt.self)
        }
        #expect(error?.code == .invalidSchema, "\(String(describing: error))")
        #expect(error?.message.contains("strnig") == true, "\(String(describing: error))")
        #expect(await session.messages.isEmpty)
    }

    @Test("text that does not decode is .decodingFailed with the text; the history keeps the reply")
    func decodingFailed() async throws {
        let session = try Self.session(try Self.model())
        // The schema asks for a string; the type is an Int: the text cannot decode.
        let error = await #expect(throws: LlamaError.self) {
            _ = try await session.respond(to: "Say hello in JSON.", generating: Int.self, schema: ["type": "string", "maxLength": 10])
        }
        #expect(error?.code == .decodingFailed, "\(String(describing: error))")
        let output = try #require(error?.underlying as? UndecodableOutput)
        #expect(output.text.hasPrefix("\""), "\(output)")
        #expect(output.typeName == "Swift.Int")
        let messages = await session.messages
        #expect(messages.map(\.role) == ["user", "assistant"])
        #expect(messages.last?.text == output.text)
        #expect(error?.message.contains(output.text.debugDescription) == true)

        // Cut short by maxTokens: the reason says what to raise.
        let cut = await #expect(throws: LlamaError.self) {
            _ = try await session.respond(to: "Write a recipe.", generating: Recipe.self, options: GenerationOptions(maxTokens: 4))
        }
        #expect(cut?.code == .decodingFailed)
        #expect((cut?.underlying as? UndecodableOutput)?.stopReason == .maxTokens)
        #expect(cut?.message.contains("maxTokens") == true, "\(String(describing: cut))")
        #expect(await session.messages.count == 4)
    }
}
