import Foundation
import LlamaJinja
import Testing

/// Our Jinja engine against the references, on the same inputs in the same run: Python's jinja2
/// set up as transformers sets it up (tools/jinja_reference.py), over every chat template of the
/// pinned source's `models/templates` and SmolLM2's own, each with the conversations of
/// Fixtures/conversations.json; and the cases of the pinned `tests/test-jinja.cpp`.
/// Nothing upstream is committed: templates, model and cases are read from the cache.
@Suite("Jinja engine against jinja2 and llama.cpp's cases", .serialized, .timeLimit(.minutes(10)))
struct ReferenceTests {
    /// The conversations fixture: shared defaults, the fixed clock, and each conversation's context.
    struct Corpus {
        var now: String
        var defaults: JSONObject
        var conversations: [(name: String, context: JSONObject)]

        static func load() throws -> Corpus {
            let url = ReferenceEnvironment.fixtures.appendingPathComponent("conversations.json")
            let doc = try JSONValue(parsing: try Data(contentsOf: url))
            guard let now = doc["now"]?.stringValue, let defaults = doc["defaults"]?.objectValue,
                  let list = doc["conversations"]?.arrayValue else {
                throw ReferenceEnvironment.Missing(description: "\(url.path): expected now, defaults and conversations")
            }
            let conversations = try list.map { c -> (String, JSONObject) in
                guard let name = c["name"]?.stringValue, let context = c["context"]?.objectValue else {
                    throw ReferenceEnvironment.Missing(description: "\(url.path): a conversation without name or context")
                }
                return (name, context)
            }
            return Corpus(now: now, defaults: defaults, conversations: conversations)
        }

        /// What a template sees: the defaults, the conversation's context over them, then
        /// add_generation_prompt.
        func context(_ conversation: JSONObject, addGenerationPrompt: Bool) -> JSONObject {
            var context = defaults
            for (key, value) in conversation { context[key] = value }
            context["add_generation_prompt"] = .bool(addGenerationPrompt)
            return context
        }
    }

    /// A template of the corpus: its name, its text, and the file jinja2 reads it from (if any).
    struct Template {
        var name: String
        var source: String
        var path: String?
    }

    /// Every `models/templates/*.jinja` of the pinned source, in name order, then the default
    /// model's own `tokenizer.chat_template`.
    static func templates() async throws -> [Template] {
        let dir = try ReferenceEnvironment.source().appendingPathComponent("models/templates")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jinja") }.sorted()
        guard !names.isEmpty else {
            throw ReferenceEnvironment.Missing(description: "\(dir.path) holds no .jinja templates: run `make headers` to refetch the pinned source")
        }
        var templates = try names.map { name -> Template in
            let url = dir.appendingPathComponent(name)
            guard let source = String(data: try Data(contentsOf: url), encoding: .utf8) else {
                throw ReferenceEnvironment.Missing(description: "\(url.path) is not UTF-8")
            }
            return Template(name: String(name.dropLast(".jinja".count)), source: source, path: url.path)
        }
        let model = try ReferenceEnvironment.model()
        templates.append(Template(name: "SmolLM2-135M-Instruct (GGUF)", source: try await Jinja2.chatTemplate(ofModel: model), path: nil))
        return templates
    }

    enum PairOutcome {
        case identical, bothError, differing(String), onlyWeError(String), onlyJinja2Errors(String)
    }

    @Test("every chat template × every conversation renders byte-identical to jinja2, and errors where jinja2 raises")
    func templatesMatchJinja2() async throws {
        let version = try await Jinja2.version()
        let corpus = try Corpus.load()
        var templates = try await Self.templates()
        // For quick iteration on the engine: JINJA_REFERENCE_TEMPLATES=Qwen,gemma renders only
        // the templates whose name contains one of the words.
        if let only = ProcessInfo.processInfo.environment["JINJA_REFERENCE_TEMPLATES"], !only.isEmpty {
            let words = only.split(separator: ",").map { $0.lowercased() }
            templates = templates.filter { t in words.contains { t.name.lowercased().contains($0) } }
            print("JINJA_REFERENCE_TEMPLATES=\(only): \(templates.count) templates")
        }
        let options = ReferenceClock.options(now: corpus.now)

        var jobs: [Jinja2.Job] = []
        for template in templates {
            for conversation in corpus.conversations {
                for generationPrompt in [true, false] {
                    jobs.append(Jinja2.Job(
                        id: "\(template.name)|\(conversation.name)|\(generationPrompt)",
                        templatePath: template.path, source: template.path == nil ? template.source : nil,
                        context: corpus.context(conversation.context, addGenerationPrompt: generationPrompt), now: corpus.now))
                }
            }
        }
        let reference = try await Jinja2.render(jobs)

        var table: [(name: String, counts: [Int])] = []  // identical, differing, both-error, only-we-error, only-jinja2-errors
        var totals = [0, 0, 0, 0, 0]
        var problems: [String] = []
        var rendered = 0
        for template in templates {
            let parsed: Result<JinjaTemplate, JinjaError>
            do throws(JinjaError) {
                parsed = .success(try JinjaTemplate(template.source, options: options))
            } catch {
                parsed = .failure(error)
            }
            var counts = [0, 0, 0, 0, 0]
            var templateProblems: [String] = []
            for conversation in corpus.conversations {
                for generationPrompt in [true, false] {
                    let id = "\(template.name)|\(conversation.name)|\(generationPrompt)"
                    let variables = Dictionary(uniqueKeysWithValues: corpus.context(conversation.context, addGenerationPrompt: generationPrompt).map { ($0.key, $0.value) })
                    let ours: Result<String, JinjaError>
                    switch parsed {
                    case .failure(let error): ours = .failure(error)
                    case .success(let compiled):
                        switch runWithDeadline(seconds: 20, { () -> Result<String, JinjaError> in
                            do throws(JinjaError) { return .success(try compiled.render(variables)) } catch { return .failure(error) }
                        }) {
                        case .finished(let result, _): ours = result
                        case .timedOut: ours = .failure(JinjaError(.limitExceeded, "the test's 20 s deadline passed (the render is still running)"))
                        }
                    }
                    let outcome = Self.compare(jinja2: reference[id], ours: ours)
                    switch outcome {
                    case .identical: counts[0] += 1; rendered += 1
                    case .differing(let detail): counts[1] += 1; templateProblems.append("\(id): differs\n\(detail)")
                    case .bothError: counts[2] += 1
                    case .onlyWeError(let detail): counts[3] += 1; templateProblems.append("\(id): only we error: \(detail)")
                    case .onlyJinja2Errors(let detail): counts[4] += 1; templateProblems.append("\(id): only jinja2 errors: \(detail)")
                    }
                }
            }
            table.append((template.name, counts))
            for i in 0..<5 { totals[i] += counts[i] }
            if !templateProblems.isEmpty {
                problems.append(contentsOf: templateProblems.prefix(3))
                Issue.record("\(template.name): \(templateProblems.count) of \(corpus.conversations.count * 2) renderings disagree with jinja2; first:\n\(templateProblems[0])")
            }
        }

        print(Self.formatTable(table, totals: totals, conversations: corpus.conversations.count))
        print("jinja2 \(version): \(templates.count) templates × \(corpus.conversations.count) conversations × 2 = \(jobs.count) renderings: "
              + "\(totals[0]) identical, \(totals[1]) differing, \(totals[2]) both-error, \(totals[3]) only-we-error, \(totals[4]) only-jinja2-errors")
        if !problems.isEmpty {
            print("first disagreements (up to 3 per template):\n" + problems.joined(separator: "\n"))
        }
        #expect(totals[1] + totals[3] + totals[4] == 0, "renderings that disagree with jinja2: see the table")
        #expect(rendered > jobs.count / 2, "too few renderings to prove anything: \(rendered) of \(jobs.count)")
    }

    static func compare(jinja2: Jinja2.Outcome?, ours: Result<String, JinjaError>) -> PairOutcome {
        switch (jinja2, ours) {
        case (nil, _):
            return .differing("jinja2 returned no result for this job")
        case (.output(let expected)?, .success(let actual)):
            // Byte-identical: Swift's String equality would accept canonically equivalent text.
            return expected.utf8.elementsEqual(actual.utf8) ? .identical : .differing(firstDifference(expected: expected, actual: actual))
        case (.error?, .failure):
            return .bothError
        case (.output?, .failure(let error)):
            return .onlyWeError("\(error.code) at \(error.line):\(error.column): \(error.message)")
        case (.error(let type, let message, let line)?, .success(let actual)):
            return .onlyJinja2Errors("\(type) (line \(line.map(String.init) ?? "?")): \(message); we rendered \(actual.utf8.count) bytes: \(escaped(String(actual.prefix(120))))")
        }
    }

    static func formatTable(_ rows: [(name: String, counts: [Int])], totals: [Int], conversations: Int) -> String {
        let headers = ["identical", "differing", "both-error", "only-we-error", "only-jinja2-errors"]
        let width = max(24, rows.map(\.name.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        var out = "template × \(conversations) conversations × add_generation_prompt (true, false)\n"
        out += pad("template", width) + headers.map { "  " + $0 }.joined() + "\n"
        for row in rows + [(name: "total", counts: totals)] {
            let flag = row.counts[1] + row.counts[3] + row.counts[4] > 0 ? "  ✗" : ""
            out += pad(row.name, width) + zip(headers, row.counts).map { "  " + lpad(String($1), $0.count) }.joined() + flag + "\n"
        }
        return out
    }

    // MARK: - llama.cpp's tests/test-jinja.cpp

    struct Case {
        var group: String
        var name: String
        var template: String
        var vars: JSONObject
        var expect: String
    }

    /// The cases of the pinned test-jinja.cpp, as our C++ harness dumps them (one JSON line each:
    /// {"group", "name", "template", "vars", "expect"}).
    static func llamaCppCases() async throws -> [Case] {
        let program = try ReferenceEnvironment.jinjaReferenceProgram()
        let r = try await runReferenceProcess(program.path, ["cases"])
        guard r.status == 0 else {
            throw ReferenceEnvironment.Missing(description: "\(program.path) cases failed (exit \(r.status)): \(r.stderr)")
        }
        var cases: [Case] = []
        for line in r.stdoutText.split(separator: "\n", omittingEmptySubsequences: true) {
            let value = try JSONValue(parsing: String(line))
            guard let template = value["template"]?.stringValue, let expect = value["expect"]?.stringValue else {
                throw ReferenceEnvironment.Missing(description: "a case line without template or expect: \(line.prefix(200))")
            }
            cases.append(Case(group: value["group"]?.stringValue ?? "", name: value["name"]?.stringValue ?? "",
                              template: template, vars: value["vars"]?.objectValue ?? JSONObject(), expect: expect))
        }
        guard !cases.isEmpty else { throw ReferenceEnvironment.Missing(description: "\(program.path) cases printed no case") }
        return cases
    }

    @Test("the cases of the pinned tests/test-jinja.cpp pass (jinja2 decides where it disagrees with llama.cpp's expectation)")
    func llamaCppJinjaCases() async throws {
        let version = try await Jinja2.version()
        let cases = try await Self.llamaCppCases()
        let now = "2025-03-14T09:26:53Z"
        let options = ReferenceClock.options(now: now)
        let reference = try await Jinja2.render(cases.enumerated().map { i, c in
            Jinja2.Job(id: String(i), templatePath: nil, source: c.template, context: c.vars, now: now)
        })

        var agreeing = 0, passed = 0
        var disagreements: [String] = [], failures: [String] = []
        for (i, c) in cases.enumerated() {
            let label = "\(c.group) / \(c.name)"
            let jinja2 = reference[String(i)]
            let expected: Jinja2.Outcome
            if case .output(let text)? = jinja2, text.utf8.elementsEqual(c.expect.utf8) {
                agreeing += 1
                expected = .output(c.expect)
            } else if let jinja2 {
                expected = jinja2
                let said: String
                switch jinja2 {
                case .output(let text): said = "renders \"\(escaped(text))\""
                case .error(let type, let message, _): said = "raises \(type): \(message)"
                }
                disagreements.append("\(label): llama.cpp expects \"\(escaped(c.expect))\", jinja2 \(said)")
            } else {
                failures.append("\(label): jinja2 returned no result")
                continue
            }
            let variables = Dictionary(uniqueKeysWithValues: c.vars.map { ($0.key, $0.value) })
            let ours: Result<String, JinjaError>
            switch renderWithDeadline(c.template, variables, options: options, seconds: 10) {
            case .finished(let result, _): ours = result
            case .timedOut: failures.append("\(label): our render did not finish in 10 s"); continue
            }
            switch (expected, ours) {
            case (.output(let text), .success(let actual)) where text.utf8.elementsEqual(actual.utf8):
                passed += 1
            case (.error, .failure):
                passed += 1
            case (.output(let text), .success(let actual)):
                failures.append("\(label): template \"\(escaped(c.template))\"\n\(firstDifference(expected: text, actual: actual))")
            case (.output, .failure(let error)):
                failures.append("\(label): template \"\(escaped(c.template))\": we raise \(error.code) at \(error.line):\(error.column): \(error.message)")
            case (.error(let type, let message, _), .success(let actual)):
                failures.append("\(label): template \"\(escaped(c.template))\": jinja2 raises \(type): \(message); we render \"\(escaped(actual))\"")
            }
        }
        print("test-jinja.cpp with jinja2 \(version): \(cases.count) cases; jinja2 agrees with llama.cpp's expectation on \(agreeing), "
              + "disagrees on \(disagreements.count) (jinja2 decides those); ours: \(passed) pass, \(failures.count) fail")
        if !disagreements.isEmpty {
            print("where llama.cpp's expectation is not jinja2's (transformers' setup):\n  " + disagreements.joined(separator: "\n  "))
        }
        if !failures.isEmpty {
            print("failing cases:\n  " + failures.joined(separator: "\n  "))
        }
        #expect(failures.isEmpty, "\(failures.count) of \(cases.count) test-jinja.cpp cases fail; first: \(failures.first ?? "")")
    }
}
