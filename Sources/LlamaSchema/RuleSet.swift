/// The rule IR between a schema and GBNF text: named rules whose bodies are GBNF expressions.
/// Adding a rule deduplicates it: the same body under the same name is one rule; a different
/// body under a taken name gets a numbered name (`name0`, `name1`…). The text lists the rules
/// by name, byte order, one per line, as llama.cpp's converter writes them.
public struct RuleSet: Sendable, Equatable {
    /// The rules' bodies, by name.
    public private(set) var rules: [String: String] = [:]

    /// An empty rule set.
    public init() {}

    /// `name` with every run of characters outside `[a-zA-Z0-9-]` replaced by one `-`.
    public static func ruleName(_ name: String) -> String {
        var out = [UInt8]()
        var inRun = false
        for b in name.utf8 {
            let ok = (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D
            if ok {
                out.append(b)
                inRun = false
            } else if !inRun {
                out.append(0x2D)
                inRun = true
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Adds `body` under `name` (escaped), or under a numbered variant when the name holds
    /// another body; returns the name used.
    @discardableResult
    public mutating func add(_ name: String, _ body: String) -> String {
        let escaped = Self.ruleName(name)
        if rules[escaped] == nil || rules[escaped] == body {
            rules[escaped] = body
            return escaped
        }
        var i = 0
        while let existing = rules[escaped + String(i)], existing != body { i += 1 }
        let key = escaped + String(i)
        rules[key] = body
        return key
    }

    /// Whether a rule of this name exists.
    public func contains(_ name: String) -> Bool { rules[name] != nil }

    /// The rule names in byte order.
    public var names: [String] { rules.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }

    /// GBNF text: `name ::= body`, one rule a line.
    public var text: String {
        var out = ""
        for name in names { out += name + " ::= " + rules[name]! + "\n" }
        return out
    }
}

/// How much whitespace the grammar allows between JSON tokens (the `space` rule).
public enum WhitespacePolicy: Sendable, Equatable {
    /// llama.cpp's rule: nothing, one space, or one or two newlines and up to 20 spaces or tabs.
    case llamaCpp
    /// No whitespace at all: the most compact JSON, and the fewest tokens.
    case compact
    /// At most one space.
    case singleSpace

    var spaceRule: String {
        switch self {
        case .llamaCpp: return "| \" \" | \"\\n\"{1,2} [ \\t]{0,20}"
        case .compact: return "\"\""
        case .singleSpace: return "\" \"?"
        }
    }
}
