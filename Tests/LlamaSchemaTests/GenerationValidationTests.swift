import Foundation
import Llama
import LlamaJinja
import LlamaSchema
import LlamaTestSupport
import Testing

/// SmolLM2 writes documents under our grammars with seeded sampling at temperature 1.0, and
/// Python's jsonschema (the reference validator) checks every one.
@Suite("Generated documents validate with jsonschema", .serialized)
struct GenerationValidationTests {
    static let documentsPerSchema = 10
    static let maxTokens = 96

    @Test("SmolLM2 under our grammars: every document parses as JSON and validates")
    func generatedDocumentsValidate() async throws {
        let runtime = try LlamaRuntime(libraryDirectory: try TestEnvironment.libraryDirectory())
        let model = try LlamaModel(runtime: runtime, path: try TestEnvironment.model().path)
        var records: [JSONValue] = []
        var truncated: [String] = []
        var tokens = 0
        let started = ContinuousClock.now
        for (index, (name, schema)) in schemaCorpus.enumerated() {
            let grammar = try JSONSchemaGrammar(schemaText: schema)
            #expect(grammar.warnings.isEmpty, "\(name): the grammar should enforce the whole schema: \(grammar.warnings)")
            let example = generationExamples[name].map { "\nFor example: \($0)" } ?? ""
            let prompt = try model.formatChat([.user("Write one short JSON value that follows this JSON schema, nothing else.\n\(schema)\(example)")])
            let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 1024, batchSize: 512, threads: 2))
            var docs: [JSONValue] = []
            for i in 0..<Self.documentsPerSchema {
                var chain = SamplerChain.standard(temperature: 1.0, seed: UInt32(1000 * index + i + 1))
                chain.stages.insert(.grammar(grammar.text), at: 0)
                let summary = try await context.generate(prompt: prompt, sampling: chain, options: GenerationOptions(maxTokens: Self.maxTokens)).summary()
                tokens += summary.generatedTokens.count
                if summary.generatedTokens.count >= Self.maxTokens { truncated.append("\(name) #\(i): \(summary.text.debugDescription)") }
                docs.append(.string(summary.text))
            }
            records.append(.object(["name": .string(name), "schema": try JSONValue(parsing: schema), "valid": .array(docs)]))
        }
        let elapsed = ContinuousClock.now - started
        #expect(truncated.isEmpty, "documents cut at \(Self.maxTokens) tokens: \(truncated)")

        let r = try await jsonSchemaCheck(records: JSONValue.array(records).jsonText)
        print("jsonschema: \(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)); \(tokens) tokens in \(elapsed)")
        #expect(r.status != 3, "\(r.stdout)")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(records.count >= 40)
    }
}
