import ArgumentParser
import Foundation
import LlamaJinja
import LlamaSchema

/// `llama-swift grammar`: GBNF grammars for constrained generation.
struct Grammar: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with GBNF grammars for constrained generation.",
        subcommands: [FromSchema.self])

    struct FromSchema: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "from-schema",
            abstract: "Print the GBNF grammar of a JSON schema (the grammar `run --json-schema` uses).",
            discussion: """
                With the default whitespace the grammar is the text llama.cpp's converter writes \
                for the same schema. What the grammar does not enforce (ignored keywords, unknown \
                formats, unsupported patterns) is reported on stderr with its JSON pointer.
                """)

        @Argument(help: "A JSON schema file, or - for stdin.")
        var file: String
        @Option(help: "Whitespace between JSON tokens: llama-cpp (default), compact (none), single-space.")
        var whitespace: WhitespaceFlag = .llamaCpp
        @Flag(help: "Fail on keywords the grammar does not enforce, instead of warning.")
        var strict = false

        func run() throws {
            let text = try SchemaInput.read(file)
            let grammar = try SchemaInput.compile(text, origin: file == "-" ? "stdin" : file,
                                                  options: .init(whitespace: whitespace.policy, rejectIgnoredKeywords: strict))
            print(grammar.text, terminator: "")
        }
    }
}

enum WhitespaceFlag: String, ExpressibleByArgument, CaseIterable {
    case llamaCpp = "llama-cpp", compact, singleSpace = "single-space"
    var policy: WhitespacePolicy {
        switch self {
        case .llamaCpp: return .llamaCpp
        case .compact: return .compact
        case .singleSpace: return .singleSpace
        }
    }
}

/// A schema from a file, stdin or the command line, compiled with its warnings on stderr.
enum SchemaInput {
    static func read(_ file: String) throws -> String {
        if file == "-" { return String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) }
        guard let data = FileManager.default.contents(atPath: file) else { throw CLI.Failure(description: "cannot read \(file)") }
        return String(decoding: data, as: UTF8.self)
    }

    /// `FILE` when it names a file, else the argument itself as JSON (`{...}`).
    static func fileOrJSON(_ argument: String) throws -> (text: String, origin: String) {
        let trimmed = argument.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("{") || trimmed.hasPrefix("[") || trimmed == "true" || trimmed == "false" {
            return (argument, "--json-schema")
        }
        return (try read(argument), argument)
    }

    static func compile(_ text: String, origin: String, options: JSONSchemaGrammar.Options = .init()) throws -> JSONSchemaGrammar {
        do {
            let grammar = try JSONSchemaGrammar(schemaText: text, options: options)
            for warning in grammar.warnings {
                FileHandle.standardError.write(Data("warning: \(origin): \(warning.description)\n".utf8))
            }
            return grammar
        } catch {
            throw CLI.Failure(description: "\(origin): \(error.description)")
        }
    }
}
