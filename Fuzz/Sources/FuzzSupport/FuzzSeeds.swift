public import Foundation

/// Seed inputs read at run time from real material: the pinned llama.cpp source ($LLAMA_SOURCE)
/// and this repository's own test corpora. Nothing of it is stored in git.
public enum FuzzSeeds {
    /// This checkout's root (Fuzz/Sources/FuzzSupport/ is three levels down).
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The raw strings (`R"""( ... )"""`) of llama.cpp's JSON-schema-to-grammar test: schemas and grammars.
    static func converterTestStrings() -> [String] {
        let file = Fuzz.source.appendingPathComponent("tests/test-json-schema-to-grammar.cpp")
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
        var found: [String] = []
        var rest = text[...]
        while let open = rest.range(of: "R\"\"\"("), let close = rest.range(of: ")\"\"\"", range: open.upperBound..<rest.endIndex) {
            found.append(String(rest[open.upperBound..<close.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines))
            rest = rest[close.upperBound...]
        }
        return found
    }

    /// JSON Schemas: LlamaSchemaTests' corpus (the `##"..."##` literals of Corpus.swift) and the
    /// schemas of llama.cpp's converter test.
    public static func schemas() -> [String] {
        var schemas: [String] = []
        let corpus = repositoryRoot.appendingPathComponent("Tests/LlamaSchemaTests/Corpus.swift")
        if let text = try? String(contentsOf: corpus, encoding: .utf8) {
            var rest = text[...]
            while let open = rest.range(of: "##\""), let close = rest.range(of: "\"##", range: open.upperBound..<rest.endIndex) {
                schemas.append(String(rest[open.upperBound..<close.lowerBound]))
                rest = rest[close.upperBound...]
            }
        }
        schemas += converterTestStrings().filter { $0.hasPrefix("{") || $0.hasPrefix("[") || $0.hasPrefix("\"") || $0 == "true" }
        return schemas
    }

    /// GBNF grammars: the pinned source's grammars/*.gbnf and the expected grammars of its converter test.
    public static func grammars() throws -> [String] {
        let dir = Fuzz.source.appendingPathComponent("grammars")
        var grammars = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted().filter { $0.hasSuffix(".gbnf") }.map {
            try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8)
        }
        grammars += converterTestStrings().filter { $0.contains("::=") }
        return grammars
    }
}
