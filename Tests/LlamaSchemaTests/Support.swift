import Foundation
import LlamaJinja
import LlamaRaw
import LlamaSchema
import LlamaTestSupport
import Testing

/// The references these tests need, found the way `make test` provides them: our C++ harness
/// over llama.cpp's converter and grammar engine (`make reference`), and Python's jsonschema
/// (`make deps`). A missing one is a failure that says what to run, never a skip.
enum SchemaReference {
    struct Missing: Error, CustomStringConvertible { var description: String }

    static func program() throws -> URL {
        let dir = ProcessInfo.processInfo.environment["LLAMA_REFERENCE_DIR"].map { URL(fileURLWithPath: $0) }
            ?? TestEnvironment.pinnedTagFolder.appendingPathComponent("reference")
        let program = dir.appendingPathComponent("schema-reference")
        guard FileManager.default.isExecutableFile(atPath: program.path) else {
            throw Missing(description: "\(program.path) is not there (from LLAMA_REFERENCE_DIR or its default): run `make reference`, or `make test-package`, which runs it")
        }
        return program
    }

    static var python: String { ProcessInfo.processInfo.environment["PYTHON"] ?? "python3" }

    /// llama.cpp's grammar for a schema, or its one-line error.
    static func convert(_ schema: String) async throws -> Result<String, Missing> {
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("schema.json")
        try Data(schema.utf8).write(to: file)
        let r = try await runProcess(try program(), ["convert", file.path])
        return r.status == 0 ? .success(r.stdout) : .failure(Missing(description: r.stderr))
    }

    /// llama.cpp's grammar for `schema` straight into its grammar engine, its bytes untouched
    /// (a Swift String would repair invalid UTF-8): which of `inputs` it accepts, or why not.
    static func convertAndAccept(_ schema: String, _ inputs: [String]) async throws -> Result<[Bool], Missing> {
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("schema.json"), grammar = dir.appendingPathComponent("grammar.gbnf")
        try Data(schema.utf8).write(to: file)
        let program = try program().path
        let r = try await runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "\"$0\" convert \"$1\" > \"$2\" && \"$0\" accepts \"$2\"", program, file.path, grammar.path],
                               stdin: inputs.map { JSONValue.string($0).jsonText + "\n" }.joined())
        guard r.status == 0 else { return .failure(Missing(description: r.stderr)) }
        return .success(r.stdout.split(separator: "\n").map { $0 == "true" })
    }

    /// Which of `inputs` llama.cpp's grammar engine accepts whole under `grammar` (rule root).
    static func accepts(_ grammar: String, _ inputs: [String]) async throws -> [Bool] {
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = dir.appendingPathComponent("grammar.gbnf")
        try Data(grammar.utf8).write(to: g)
        let r = try await runProcess(try program(), ["accepts", g.path], stdin: inputs.map { JSONValue.string($0).jsonText + "\n" }.joined())
        guard r.status == 0 else { throw Missing(description: "schema-reference accepts failed: \(r.stderr)") }
        let lines = r.stdout.split(separator: "\n").map(String.init)
        guard lines.count == inputs.count else { throw Missing(description: "schema-reference accepts gave \(lines.count) answers for \(inputs.count) inputs") }
        return lines.map { $0 == "true" }
    }
}

/// The whitespace-trimmed form in which llama.cpp's test compares grammars.
func trimmedGrammar(_ s: String) -> String {
    s.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n", omittingEmptySubsequences: false)
        .map { line in String(line.drop { $0 == " " || $0 == "\t" }) }.joined(separator: "\n")
}

/// A small deterministic generator (SplitMix64), so documents are the same on every run.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// JSON documents for a schema: values built from its `SchemaNode` (mostly valid), and
/// mutations of them (mostly invalid), written with varying whitespace.
struct DocumentGenerator {
    let document: SchemaDocument
    var rng: SeededRandom

    mutating func string(maxLength: Int = 6) -> String {
        let alphabet = Array("abcXYZ019 _-\"\\é\n")
        return String((0..<Int.random(in: 0...maxLength, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
    }

    mutating func value(_ node: SchemaNode, depth: Int = 0) -> JSONValue {
        switch node {
        case .any:
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: return .int(Int.random(in: -50...50, using: &rng))
            case 1: return .string(string())
            case 2: return .bool(Bool.random(using: &rng))
            default: return .null
            }
        case .ref(let ref):
            guard let target = document.definitions[ref], depth < 4 else { return .null }
            return value(target, depth: depth + 1)
        case .anyOf(let alts): return value(alts.randomElement(using: &rng)!, depth: depth + 1)
        case .allOf(let children):
            var merged = JSONObject()
            for child in children {
                if case .object(let o) = value(child, depth: depth + 1) { for (k, v) in o { merged[k] = v } }
            }
            return .object(merged)
        case .constant(let v): return v
        case .enumeration(let values): return values.randomElement(using: &rng)!
        case .null: return .null
        case .boolean: return .bool(Bool.random(using: &rng))
        case .number:
            return Bool.random(using: &rng) ? .int(Int.random(in: -1000...1000, using: &rng))
                : .double(Double(Int.random(in: -100000...100000, using: &rng)) / 100)
        case .integer(let minimum, let maximum):
            let lo = max(minimum ?? -1000, -1_000_000), hi = min(maximum ?? 1000, 1_000_000)
            return .int(Int(Int64.random(in: min(lo, hi)...max(lo, hi), using: &rng)))
        case .string(let s):
            if let pattern = s.pattern { return .string(PatternSampler.sample(pattern, using: &rng) ?? string()) }
            switch s.format {
            case .date?: return .string(String(format: "20%02d-%02d-%02d", Int.random(in: 0...99, using: &rng), Int.random(in: 1...12, using: &rng), Int.random(in: 1...28, using: &rng)))
            case .time?: return .string(String(format: "%02d:%02d:%02dZ", Int.random(in: 0...23, using: &rng), Int.random(in: 0...59, using: &rng), Int.random(in: 0...59, using: &rng)))
            case .dateTime?: return .string("2024-05-0\(Int.random(in: 1...9, using: &rng))T12:30:00+02:00")
            case .uuid?: return .string(UUID(uuid: (0...15).map { _ in UInt8.random(in: 0...255, using: &rng) }.withUnsafeBytes { $0.load(as: uuid_t.self) }).uuidString)
            case nil:
                let lo = s.minLength, hi = max(s.maxLength ?? lo + 6, lo)
                var text = string(maxLength: hi)
                while text.count < lo { text += "x" }
                return .string(String(text.prefix(hi)))
            }
        case .array(let items, let minItems, let maxItems):
            let n = Int.random(in: minItems...max(minItems, min(maxItems ?? minItems + 3, minItems + 3)), using: &rng)
            return .array((0..<n).map { _ in value(items, depth: depth + 1) })
        case .tuple(let items): return .array(items.map { value($0, depth: depth + 1) })
        case .object(let properties, let additional):
            var o = JSONObject()
            for p in properties where p.required || (depth < 4 && Bool.random(using: &rng)) {
                o[p.name] = value(p.schema, depth: depth + 1)
            }
            if let additional, Int.random(in: 0..<3, using: &rng) == 0 { o["extra_" + string(maxLength: 3)] = value(additional, depth: depth + 1) }
            return .object(o)
        }
    }

    /// The text of `value` with spaces or newlines between tokens, sometimes.
    mutating func text(_ value: JSONValue) -> String {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: return value.jsonText
        case 1: return JSONWriter(indent: nil, itemSeparator: ", ", keySeparator: ": ", asciiOnly: false).write(value)
        default: return JSONWriter(indent: "  ", itemSeparator: ",", keySeparator: ": ", asciiOnly: false).write(value)
        }
    }

    /// A document changed so that it is usually invalid: a character dropped, changed or
    /// added, a value of another type, or text around it.
    mutating func mutate(_ text: String) -> String {
        var chars = Array(text)
        switch Int.random(in: 0..<5, using: &rng) {
        case 0 where !chars.isEmpty: chars.remove(at: Int.random(in: 0..<chars.count, using: &rng))
        case 1 where !chars.isEmpty: chars[Int.random(in: 0..<chars.count, using: &rng)] = Array("x\"{}[],:1 -").randomElement(using: &rng)!
        case 2: chars.insert(Array("x\"{}[],:1 .e").randomElement(using: &rng)!, at: Int.random(in: 0...chars.count, using: &rng))
        case 3: return ["null", "1", "\"s\"", "[]", "{}", "true", "1.5", "-0"].randomElement(using: &rng)!
        default: return text + (Bool.random(using: &rng) ? "x" : " ,")
        }
        return String(chars)
    }

    /// `count` documents: half generated, half mutated.
    mutating func documents(_ count: Int) -> [String] {
        var docs: [String] = []
        for i in 0..<count {
            let t = text(value(document.root))
            docs.append(i % 2 == 0 ? t : mutate(t))
        }
        return docs
    }
}

/// Strings for the anchored patterns of our corpus: a tiny sampler for literals, classes,
/// groups, alternation and quantifiers (nil when it cannot).
enum PatternSampler {
    static func sample(_ pattern: String, using rng: inout SeededRandom) -> String? {
        var chars = Array(pattern)
        guard chars.first == "^", chars.last == "$" else { return nil }
        chars = Array(chars.dropFirst().dropLast())
        var i = 0
        func atom() -> [[Character]]? {
            // returns the alternatives' choices for one atom
            let c = chars[i]
            if c == "[" {
                var set: [Character] = []
                i += 1
                var negate = false
                if i < chars.count && chars[i] == "^" { negate = true; i += 1 }
                while i < chars.count && chars[i] != "]" {
                    if chars[i] == "\\" { set.append(chars[i + 1]); i += 2; continue }
                    if i + 2 < chars.count && chars[i + 1] == "-" && chars[i + 2] != "]" {
                        let lo = chars[i].unicodeScalars.first!.value, hi = chars[i + 2].unicodeScalars.first!.value
                        for v in lo...hi { set.append(Character(Unicode.Scalar(v)!)) }
                        i += 3
                    } else { set.append(chars[i]); i += 1 }
                }
                i += 1
                if negate { set = Array("abcXYZ019").filter { !set.contains($0) } }
                return set.map { [$0] }
            }
            if c == "(" {
                i += 1
                if i + 1 < chars.count && chars[i] == "?" && chars[i + 1] == ":" { i += 2 }
                var alts: [[Character]] = [[]]
                while i < chars.count && chars[i] != ")" {
                    if chars[i] == "|" { alts.append([]); i += 1; continue }
                    guard let piece = quantified() else { return nil }
                    alts[alts.count - 1] += piece
                }
                i += 1
                return alts
            }
            if c == "\\" { i += 2; return [[chars[i - 1] == "d" ? "7" : chars[i - 1]]] }
            if c == "." { i += 1; return [["z"]] }
            i += 1
            return [[c]]
        }
        func quantified() -> [Character]? {
            guard let choices = atom() else { return nil }
            var lo = 1, hi = 1
            if i < chars.count {
                switch chars[i] {
                case "?": lo = 0; hi = 1; i += 1
                case "*": lo = 0; hi = 3; i += 1
                case "+": lo = 1; hi = 3; i += 1
                case "{":
                    let end = chars[i...].firstIndex(of: "}")!
                    let parts = String(chars[(i + 1)..<end]).split(separator: ",", omittingEmptySubsequences: false)
                    lo = Int(parts[0]) ?? 0
                    hi = parts.count == 1 ? lo : (Int(parts[1]) ?? lo + 3)
                    i = end + 1
                default: break
                }
            }
            var out: [Character] = []
            for _ in 0..<Int.random(in: lo...hi, using: &rng) { out += choices.randomElement(using: &rng)! }
            return out
        }
        var out: [Character] = []
        var alts: [[Character]] = [[]]
        while i < chars.count {
            if chars[i] == "|" { alts.append([]); i += 1; continue }
            guard let piece = quantified() else { return nil }
            alts[alts.count - 1] += piece
        }
        out = alts.randomElement(using: &rng)!
        return String(out)
    }
}
