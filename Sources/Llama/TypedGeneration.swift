public import Foundation
public import LlamaJinja
public import LlamaSchema

/// Why generated text did not become a value: the text itself, the type it was meant for, and
/// the decoder's reason. The ``LlamaError`` of code `.decodingFailed` carries it as `underlying`.
public struct UndecodableOutput: Error, Sendable, CustomStringConvertible {
    /// The generated text, as it came.
    public let text: String
    /// The type it was to decode into.
    public let typeName: String
    /// What the decoder said (or that the text was cut short).
    public let reason: String
    /// Why generation stopped.
    public let stopReason: StopReason

    public var description: String { "\(typeName): \(reason); the text was \(text.debugDescription)" }
}

extension LlamaContext {
    /// Generates a value of a `Generable` type after a prompt: generation is constrained to
    /// JSON that `T.generationSchema` describes, and the text decodes with `JSONDecoder`.
    ///
    /// The prompt is used as it is: telling the model what to write (or showing it the schema)
    /// helps a small model fill the fields well; the grammar only makes the shape right.
    /// Errors: `.invalidSchema` when the schema does not compile to a grammar (before anything
    /// is generated), `.decodingFailed` when the text does not decode (``UndecodableOutput`` as
    /// `underlying`, with the text), `.cancelled`, and the errors of generation.
    public nonisolated func generate<T: Generable>(prompt: String, generating type: T.Type,
                                                   sampling: SamplerChain = .greedy,
                                                   options: GenerationOptions = GenerationOptions()) async throws(LlamaError) -> T {
        try await generate(prompt: prompt, generating: type, schema: T.generationSchema, sampling: sampling, options: options)
    }

    /// Generates a value of any `Decodable` type, with a hand-written JSON Schema of its JSON form
    /// (see ``generate(prompt:generating:sampling:options:)``).
    public nonisolated func generate<T: Decodable>(prompt: String, generating type: T.Type, schema: JSONValue,
                                                   sampling: SamplerChain = .greedy,
                                                   options: GenerationOptions = GenerationOptions()) async throws(LlamaError) -> T {
        let options = try TypedGeneration.constrained(options, schema)
        let summary = try await TypedGeneration.summary(of: generate(prompt: prompt, sampling: sampling, options: options))
        return try TypedGeneration.decode(type, summary, maxTokens: options.maxTokens)
    }
}

extension ChatSession {
    /// Adds the user's message and generates the reply as a value of a `Generable` type (see
    /// ``LlamaContext/generate(prompt:generating:sampling:options:)``). The reply's JSON text
    /// joins the history as the assistant's message, also when it does not decode; a schema that
    /// does not compile is reported before the history changes.
    public func respond<T: Generable>(to text: String, generating type: T.Type, sampling: SamplerChain = .greedy,
                                      options: GenerationOptions = GenerationOptions()) async throws(LlamaError) -> T {
        try await respond(to: text, generating: type, schema: T.generationSchema, sampling: sampling, options: options)
    }

    /// Adds the user's message and generates the reply as a value of any `Decodable` type, with a
    /// hand-written JSON Schema of its JSON form.
    public func respond<T: Decodable>(to text: String, generating type: T.Type, schema: JSONValue,
                                      sampling: SamplerChain = .greedy,
                                      options: GenerationOptions = GenerationOptions()) async throws(LlamaError) -> T {
        let options = try TypedGeneration.constrained(options, schema)
        let summary = try await TypedGeneration.summary(of: respond(to: text, sampling: sampling, options: options))
        return try TypedGeneration.decode(type, summary, maxTokens: options.maxTokens)
    }
}

enum TypedGeneration {
    /// `options` with the schema as its format, after checking that the schema compiles.
    static func constrained(_ options: GenerationOptions, _ schema: JSONValue) throws(LlamaError) -> GenerationOptions {
        var options = options
        options.format = .jsonSchema(schema)
        _ = try options.format.grammarText()
        return options
    }

    static func summary(of stream: AsyncThrowingStream<GenerationEvent, any Error>) async throws(LlamaError) -> GenerationSummary {
        do {
            return try await stream.summary()
        } catch let error as LlamaError {
            throw error
        } catch is CancellationError {
            throw LlamaError(.cancelled, "the generation was cancelled")
        } catch {
            throw LlamaError(.decodeFailed, "the generation failed: \(error)", underlying: error)
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ summary: GenerationSummary, maxTokens: Int) throws(LlamaError) -> T {
        let name = String(reflecting: type)
        func failure(_ reason: String) -> LlamaError {
            let output = UndecodableOutput(text: summary.text, typeName: name, reason: reason, stopReason: summary.stopReason)
            return LlamaError(.decodingFailed, "the generated text does not decode into \(name): \(reason); "
                + "the text was \(summary.text.debugDescription)", underlying: output)
        }
        switch summary.stopReason {
        case .cancelled:
            throw LlamaError(.cancelled, "the generation was cancelled before the \(name) was complete")
        case .maxTokens:
            throw failure("the output was cut at maxTokens (\(maxTokens)) before the JSON was complete: raise "
                + "GenerationOptions.maxTokens")
        case .contextFull:
            throw failure("the context window filled before the JSON was complete: create the context with a larger "
                + "contextLength, or reset the session")
        case .stopSequence(let stop):
            throw failure("a stop sequence (\(stop.debugDescription)) ended the output before the JSON was complete: "
                + "remove it from GenerationOptions.stopSequences")
        default:
            break
        }
        do {
            return try JSONDecoder().decode(type, from: Data(summary.text.utf8))
        } catch {
            throw failure(describe(error))
        }
    }

    /// A decoding error in a sentence: what was wrong, and where (the coding path).
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "at the top" : "at \(p)"
        }
        switch error {
        case .typeMismatch(let type, let context): return "expected \(type) \(path(context)): \(context.debugDescription)"
        case .valueNotFound(let type, let context): return "missing \(type) \(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, let context): return "missing key \(key.stringValue.debugDescription) \(path(context))"
        case .dataCorrupted(let context): return "\(context.debugDescription) \(path(context))"
        @unknown default: return "\(error)"
        }
    }
}
