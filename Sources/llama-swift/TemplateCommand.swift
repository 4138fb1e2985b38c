import ArgumentParser
import Foundation
import Llama
import LlamaJinja

/// `llama-swift template`: chat templates rendered and model output parsed, as `run` and `chat` do.
struct Template: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a chat template, or parse a model's output into content, reasoning and tool calls.",
        subcommands: [Render.self, Parse.self])

    /// Where a template comes from: a model's GGUF or a file.
    struct Source: ParsableArguments {
        @Option(name: [.short, .long], help: "A GGUF model whose chat template (and BOS/EOS texts) to use.")
        var model: String?
        @Option(help: "A template file (.jinja, or JSON with a \"chat_template\" string).")
        var template: String?
        @Option(help: "A named template variant of the model (e.g. tool_use).")
        var templateName: String?
        @Option(help: "The folder of an unpacked llama.cpp release to load (with --model; default: as `run`).")
        var libDir: String?
        @OptionGroup var install: InstallFlags

        /// Called by the commands' `validate()` (render's `--jobs` needs no source).
        func check() throws {
            guard (model == nil) != (template == nil) else { throw ValidationError("give --model GGUF or --template FILE") }
        }

        /// The template, and the model's BOS/EOS texts when it came from a model.
        func load() async throws -> (ChatTemplate, bos: String?, eos: String?) {
            if let template {
                guard FileManager.default.fileExists(atPath: template) else { throw CLI.Failure(description: "\(template) does not exist") }
                do { return (try ChatTemplate(contentsOf: URL(fileURLWithPath: template)), nil, nil) } catch let e as JinjaError {
                    throw CLI.Failure(description: "\(template): \(e.description)")
                }
            }
            let path = model!
            guard FileManager.default.fileExists(atPath: path) else { throw CLI.Failure(description: "\(path) does not exist") }
            let runtime = try await CLI.loadRuntime(libDir: libDir, options: install.options())
            return try await CLI.run { () async throws(LlamaError) in
                var options = ModelOptions()
                options.vocabularyOnly = true
                let m = try LlamaModel(runtime: runtime, paths: [path], options: options)
                guard let t = try m.jinjaChatTemplate(named: templateName) else {
                    throw LlamaError(.unsupported, "\(path) has no chat template" + (templateName.map { " named \($0)" } ?? ""))
                }
                let (bos, eos) = m.specialTokenTexts
                return (t, bos, eos)
            }
        }
    }

    struct Render: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a conversation rendered through a chat template, exactly (no newline added).")
        @OptionGroup var source: Source
        @Option(help: "A JSON file with the messages (OpenAI's shape: an array, or an object with \"messages\").")
        var messages: String?
        @Option(help: "A JSON file with the tools (OpenAI's shape).")
        var tools: String?
        @Flag(help: "End with the start of an assistant turn.")
        var addGenerationPrompt = false
        @Option(help: "The bos_token text (default: the model's, else empty).")
        var bos: String?
        @Option(help: "The eos_token text (default: the model's, else empty).")
        var eos: String?
        @Option(name: .customLong("var"), help: "A template variable as KEY=JSON (repeatable), e.g. enable_thinking=false.")
        var variables: [String] = []
        @Option(help: "The time strftime_now reads, ISO 8601 (default: now).")
        var now: String?
        @Option(help: .hidden)
        var benchmark: Int?
        /// Batch mode for differential testing (tools/fuzz_jinja.py): the jobs file of
        /// `tools/jinja_reference.py render`, rendered with the bare engine, the results in its shape.
        @Option(help: .hidden)
        var jobs: String?

        func validate() throws {
            guard jobs == nil else { return }
            try source.check()
            guard messages != nil else { throw ValidationError("give --messages FILE") }
        }

        func run() async throws {
            if let jobs {
                do { try Template.renderJobs(path: jobs) } catch {
                    CLI.note("error: \(error)")
                    throw ExitCode(1)
                }
                return
            }
            guard let messages else { throw ValidationError("give --messages FILE") }
            do {
                let vars = try templateVariables(variables)
                var date: Date? = nil
                if let now {
                    let f = ISO8601DateFormatter()
                    guard let d = f.date(from: now) ?? { f.formatOptions = [.withFullDate]; return f.date(from: now) }() else {
                        throw CLI.Failure(description: "--now \(now) is not an ISO 8601 date (e.g. 2026-11-29T10:00:00Z)")
                    }
                    date = d
                }
                let conversation = try ChatMessage.conversation(json: try read(messages))
                let toolList = try tools.map { try ToolDefinition.list(json: try read($0)) } ?? []
                let (template, modelBOS, modelEOS) = try await source.load()
                let text = try template.render(messages: conversation, tools: toolList, addGenerationPrompt: addGenerationPrompt,
                                               bosToken: bos ?? modelBOS ?? "", eosToken: eos ?? modelEOS ?? "",
                                               variables: vars, now: date)
                if let runs = benchmark {
                    // Median wall time of `runs` renders, as one JSON line (make bench-template).
                    var times: [Double] = []
                    for _ in 0..<max(1, runs) {
                        let start = ContinuousClock.now
                        _ = try template.render(messages: conversation, tools: toolList, addGenerationPrompt: addGenerationPrompt,
                                                bosToken: bos ?? modelBOS ?? "", eosToken: eos ?? modelEOS ?? "",
                                                variables: vars, now: date)
                        let d = ContinuousClock.now - start
                        times.append(Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15)
                    }
                    times.sort()
                    print("{\"runs\":\(times.count),\"median_ms\":\(times[times.count / 2]),\"min_ms\":\(times[0]),\"bytes\":\(text.utf8.count)}")
                    return
                }
                FileHandle.standardOutput.write(Data(text.utf8))
            } catch let error as ExitCode {
                throw error
            } catch {
                CLI.note("error: \(error)")
                throw ExitCode(1)
            }
        }
    }

    /// `--jobs FILE`: `[{"id", "source" | "template", "context", "now"}]` in, `[{"id", "output"} |
    /// {"id", "error", "type", "line"}]` out on stdout, in the order of the jobs. Each job renders
    /// with its own fixed clock (UTC); a template is parsed once.
    static func renderJobs(path: String) throws {
        guard case .array(let list) = try JSONValue(parsing: try read(path)) else {
            throw CLI.Failure(description: "\(path): expected a JSON array of jobs")
        }
        var parsed: [String: Result<JinjaTemplate, JinjaError>] = [:]
        var files: [String: String] = [:]
        var results: [JSONValue] = []
        let formatter = ISO8601DateFormatter()
        for job in list {
            let id = job["id"] ?? .null
            let source: String
            if let text = job["source"]?.stringValue {
                source = text
            } else if let file = job["template"]?.stringValue {
                if files[file] == nil { files[file] = try read(file) }
                source = files[file]!
            } else {
                throw CLI.Failure(description: "\(path): a job has neither \"source\" nor \"template\"")
            }
            var options = JinjaTemplate.Options()
            options.timeZone = TimeZone(identifier: "UTC")!
            var date: Date? = nil
            if let now = job["now"]?.stringValue {
                guard let d = formatter.date(from: now) else { throw CLI.Failure(description: "\(path): \(now) is not an ISO 8601 date") }
                date = d
            }
            if parsed[source] == nil {
                do throws(JinjaError) { parsed[source] = .success(try JinjaTemplate(source, options: options)) } catch {
                    parsed[source] = .failure(error)
                }
            }
            var variables: [String: JSONValue] = [:]
            for (k, v) in job["context"]?.objectValue ?? JSONObject() { variables[k] = v }
            var entry = JSONObject()
            entry["id"] = id
            do throws(JinjaError) {
                let template = try parsed[source]!.get()
                entry["output"] = .string(try template.render(variables, now: date))
            } catch {
                entry["error"] = .string(error.message)
                entry["type"] = .string(error.code.rawValue)
                if error.line > 0 { entry["line"] = .int(error.line) }
            }
            results.append(.object(entry))
        }
        FileHandle.standardOutput.write(Data(JSONValue.array(results).jsonText.utf8))
    }

    struct Parse: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Parse a model's output (as the chat template's format writes it) into an OpenAI message: content, reasoning_content, tool_calls.")
        @OptionGroup var source: Source
        @Option(help: "A file with the model's output (default: stdin).")
        var text: String?
        @Flag(help: "The output is cut short (streaming): keep back what may be the start of a tag.")
        var partial = false
        @Option(help: "A JSON file with the tools offered (their schemas type the arguments).")
        var tools: String?
        @Option(name: .customLong("var"), help: "A template variable as KEY=JSON (repeatable), e.g. enable_thinking=false: it decides whether the reply starts inside a reasoning block.")
        var variables: [String] = []

        func validate() throws { try source.check() }

        func run() async throws {
            do {
                let output = try text.map(read) ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                let (template, _, _) = try await source.load()
                let vars = try templateVariables(variables)
                let toolList = try tools.map { try ToolDefinition.list(json: try read($0)) } ?? []
                let parser = template.outputParser(tools: toolList, variables: vars)
                let parsed = parser.parse(output, isPartial: partial)
                for w in parsed.warnings { CLI.note("warning: \(w)") }
                let message = ChatMessage(role: "assistant", content: parsed.content.isEmpty && !parsed.toolCalls.isEmpty ? .none : .text(parsed.content),
                                          toolCalls: parsed.toolCalls, reasoning: parsed.reasoning)
                print(message.openAIValue.jsonText)
            } catch let error as ExitCode {
                throw error
            } catch {
                CLI.note("error: \(error)")
                throw ExitCode(1)
            }
        }
    }
}

/// `--var KEY=JSON` options as template variables.
func templateVariables(_ options: [String]) throws -> [String: JSONValue] {
    var vars: [String: JSONValue] = [:]
    for v in options {
        guard let eq = v.firstIndex(of: "=") else { throw CLI.Failure(description: "--var \(v): expected KEY=JSON") }
        let key = String(v[..<eq]), text = String(v[v.index(after: eq)...])
        do { vars[key] = try JSONValue(parsing: text) } catch {
            throw CLI.Failure(description: "--var \(key): \(error.description) (strings need JSON quotes: \(key)='\"text\"')")
        }
    }
    return vars
}

func read(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else { throw CLI.Failure(description: "cannot read \(path)") }
    guard let s = String(data: data, encoding: .utf8) else { throw CLI.Failure(description: "\(path) is not UTF-8 text") }
    return s
}

