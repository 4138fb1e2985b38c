import ArgumentParser
import Foundation
import Llama

/// `chat --tools FILE`: the tools a file declares (OpenAI's shape), run by shell-free built-ins.
enum ChatTools {
    /// The built-in tools, by name: what `--tools` can run.
    static let builtins: [String: @Sendable (JSONValue) async throws -> JSONValue] = [
        "echo": { arguments in arguments },
        "calculator": { arguments in
            guard let expression = arguments["expression"]?.stringValue
                ?? arguments.objectValue?.values.first(where: { $0.stringValue != nil })?.stringValue else {
                throw ToolMessage("calculator needs {\"expression\": \"...\"}, an arithmetic expression such as \"(2 + 3) * 4\"")
            }
            return try Arithmetic.evaluate(expression)
        },
    ]

    struct ToolMessage: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The definitions of a tools file: a JSON array of tools (`{"type": "function", "function": {...}}`
    /// or the bare function objects), or an object with such an array under `tools`.
    static func definitions(file path: String) throws -> [ToolDefinition] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ValidationError("--tools: cannot read \(path): \(error.localizedDescription)")
        }
        let value: JSONValue
        do { value = try JSONValue(parsing: data) } catch {
            throw ValidationError("--tools: \(path) is not JSON: \(error.description)")
        }
        guard let list = value.arrayValue ?? value["tools"]?.arrayValue else {
            throw ValidationError("--tools: \(path) must hold a JSON array of tools ({\"type\": \"function\", \"function\": "
                + "{\"name\": ..., \"description\": ..., \"parameters\": {...}}}), or an object with one under \"tools\"")
        }
        return try list.enumerated().map { index, item in
            // Read as parsed, in the file's key order: the template prints the schemas, and a
            // Decodable round trip would order their keys by the process's hash seed (another
            // prompt in each run, and greedy output that changes with it).
            do { return try ToolDefinition(json: item) } catch {
                throw ValidationError("--tools: tool \(index) of \(path): \(error) (\(item.jsonText))")
            }
        }
    }

    /// The tools for the definitions: built-ins where the name is one, else a tool whose result
    /// says there is no implementation (with a warning now).
    static func tools(_ definitions: [ToolDefinition]) -> [any Tool] {
        definitions.map { definition in
            if let body = builtins[definition.name] { return DynamicTool(definition, call: body) }
            CLI.note("warning: --tools: \"\(definition.name)\" is not a built-in tool (\(builtins.keys.sorted().joined(separator: ", "))): "
                + "the model gets a \"no implementation\" result when it calls it")
            let name = definition.name
            return DynamicTool(definition) { _ in
                throw ToolMessage("no implementation: llama-swift has no tool named \(name) (its built-ins: "
                    + "\(builtins.keys.sorted().joined(separator: ", ")))")
            }
        }
    }

    /// One turn with tools: text on stdout as it comes, calls and results on stderr as they happen.
    static func respond(_ session: ChatSession, to message: ChatMessage, tools: [any Tool], choice: ToolChoice,
                        maxToolRounds: Int, sampling: SamplerChain, options: GenerationOptions) async throws {
        let events = try await CLI.run { () async throws(LlamaError) in
            try await session.respondStreaming(to: message, tools: tools, toolChoice: choice, maxToolRounds: maxToolRounds,
                                               sampling: sampling, options: options)
        }
        let dim = isatty(STDERR_FILENO) == 1
        func show(_ line: String) { CLI.note(dim ? "\u{1B}[2m\(line)\u{1B}[0m" : line) }
        do {
            for try await event in events {
                switch event {
                case .text(let piece): FileHandle.standardOutput.write(Data(piece.utf8))
                case .reasoning(let piece): FileHandle.standardError.write(Data((dim ? "\u{1B}[2m\(piece)\u{1B}[0m" : piece).utf8))
                case .toolCall(let call): show("[tool call \(call.id ?? "")] \(call.name) \(call.arguments)")
                case .toolResult(let result):
                    show("[tool result \(result.callID ?? "")] \(result.name)\(result.isError ? " (error)" : ""): \(result.content)")
                case .generation, .finished: break
                }
            }
        } catch let error as LlamaError {
            CLI.note("\nerror: \(error.description)")
            throw ExitCode(1)
        }
    }
}

/// Arithmetic on numbers: `+ - * /`, unary minus, parentheses. A parser of its own: no shell, no eval.
enum Arithmetic {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The value of `expression`: an integer when it is one, else a double.
    static func evaluate(_ expression: String) throws -> JSONValue {
        var parser = Parser(Array(expression.utf8))
        let value = try parser.expression()
        parser.skipSpaces()
        guard parser.index == parser.bytes.count else {
            throw Failure(description: "unexpected \"\(parser.rest)\" in \(expression.debugDescription): only numbers, "
                + "+ - * / and parentheses")
        }
        guard value.isFinite else { throw Failure(description: "\(expression.debugDescription) has no finite value (division by zero?)") }
        if value == value.rounded(), abs(value) < 1e15 { return .int(Int(value)) }
        return .double(value)
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0
        var depth = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var rest: String { String(decoding: bytes[index...], as: UTF8.self) }

        mutating func skipSpaces() { while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 } }

        mutating func peek() -> UInt8? {
            skipSpaces()
            return index < bytes.count ? bytes[index] : nil
        }

        /// term (("+" | "-") term)*
        mutating func expression() throws -> Double {
            var value = try term()
            while let op = peek(), op == UInt8(ascii: "+") || op == UInt8(ascii: "-") {
                index += 1
                let right = try term()
                value = op == UInt8(ascii: "+") ? value + right : value - right
            }
            return value
        }

        /// factor (("*" | "/") factor)*
        mutating func term() throws -> Double {
            var value = try factor()
            while let op = peek(), op == UInt8(ascii: "*") || op == UInt8(ascii: "/") {
                index += 1
                let right = try factor()
                value = op == UInt8(ascii: "*") ? value * right : value / right
            }
            return value
        }

        /// "-" factor | "(" expression ")" | number
        mutating func factor() throws -> Double {
            guard let c = peek() else { throw Failure(description: "the expression ends where a number was expected") }
            if c == UInt8(ascii: "-") || c == UInt8(ascii: "+") {
                index += 1
                let v = try factor()
                return c == UInt8(ascii: "-") ? -v : v
            }
            if c == UInt8(ascii: "(") {
                depth += 1
                guard depth <= 100 else { throw Failure(description: "parentheses nested too deep") }
                index += 1
                let v = try expression()
                guard peek() == UInt8(ascii: ")") else { throw Failure(description: "a \"(\" is never closed") }
                index += 1
                depth -= 1
                return v
            }
            let start = index
            while index < bytes.count, (bytes[index] >= 0x30 && bytes[index] <= 0x39) || bytes[index] == UInt8(ascii: ".") {
                index += 1
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E"), index > start {
                var j = index + 1
                if j < bytes.count, bytes[j] == UInt8(ascii: "-") || bytes[j] == UInt8(ascii: "+") { j += 1 }
                if j < bytes.count, bytes[j] >= 0x30 && bytes[j] <= 0x39 {
                    index = j
                    while index < bytes.count, bytes[index] >= 0x30 && bytes[index] <= 0x39 { index += 1 }
                }
            }
            guard index > start, let v = Double(String(decoding: bytes[start..<index], as: UTF8.self)) else {
                throw Failure(description: "expected a number at \"\(rest)\"")
            }
            return v
        }
    }
}
