import Foundation
import Llama
import LlamaTestSupport
import Testing

/// The model's own Jinja template in the library and the CLI: `formatChat`, generation through
/// it, `llama-swift template render|parse`.
@Suite("chat templates with the model", .timeLimit(.minutes(10)))
struct TemplateTests {
    static let conversation: [ChatMessage] = [.system("You are terse."), .user("Name a color 🎨."), .assistant("Blue."),
                                              .user("Another one?")]

    static func write(_ text: String, _ name: String) throws -> URL {
        let url = try TestEnvironment.temporaryDirectory().appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    static func messagesFile(_ messages: [ChatMessage]) throws -> URL {
        try write(JSONValue.array(messages.map(\.openAIValue)).jsonText, "messages.json")
    }

    @Test("SmolLM2's own template runs: with a system message it equals llama.cpp's chatml, and the greedy reply is the same")
    func smolLM2() async throws {
        let model = try Fixture.model.get()
        let jinja = try model.formatChat(Self.conversation)
        let builtin = try model.formatChat(Self.conversation, template: "chatml")
        #expect(jinja == builtin)
        // Without a system message the model's template adds its own, which llama.cpp's chatml does not.
        let bare = try model.formatChat([.user("Hi")])
        #expect(bare.hasPrefix("<|im_start|>system\n") && bare.contains("SmolLM"), "\(bare)")
        #expect(try !model.formatChat([.user("Hi")], template: "chatml").contains("SmolLM"))

        var options = GenerationOptions(maxTokens: 24)
        options.addSpecial = false
        let context = try Fixture.context(ContextOptions(contextLength: 512, threads: 2))
        let a = try await context.generate(prompt: jinja, options: options).summary()
        await context.clearMemory()
        let b = try await context.generate(prompt: builtin, options: options).summary()
        #expect(a.text == b.text)
        #expect(a.generatedTokens == b.generatedTokens)
        #expect(!a.generatedTokens.isEmpty)
    }

    @Test("a template error in formatChat is a typed error with the template's line and column")
    func templateErrors() throws {
        let model = try Fixture.model.get()
        #expect(throws: LlamaError.self) { try model.formatChat([.user("x")], template: "{% for m in messages %}") }
        do {
            _ = try model.formatChat([.user("x")], template: "line one\n{{ raise_exception('no users here') }}")
            Issue.record("a raising template rendered")
        } catch {
            #expect(error.code == .template)
            #expect(error.message.contains("2:") && error.message.contains("no users here"), "\(error.message)")
        }
    }

    @Test("template render prints exactly what formatChat gives (no newline added); errors are one line")
    func render() async throws {
        let messages = try Self.messagesFile(Self.conversation)
        let r = try await CLITests.cli(["template", "render", "--model", try TestEnvironment.model().path, "--messages", messages.path,
                                  "--add-generation-prompt"])
        try #require(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == (try Fixture.model.get().formatChat(Self.conversation)))

        let template = try Self.write("{{ bos_token }}{{ messages[0].content | upper }}|{{ strftime_now('%Y-%m-%d') }}|{{ mode }}"
                                      + "|{{ tools | length }}{% if add_generation_prompt %}>{% endif %}", "t.jinja")
        let tools = try Self.write(#"[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]"#, "tools.json")
        let s = try await CLITests.cli(["template", "render", "--template", template.path, "--messages", messages.path,
                                  "--tools", tools.path, "--bos", "<s>", "--var", #"mode="fast""#, "--now", "2026-11-29T10:00:00Z"])
        try #require(s.status == 0, "\(s.stderr)")
        #expect(s.stdout == "<s>YOU ARE TERSE.|2026-11-29|fast|1")

        let bad = try Self.write("ok\n{% if x %}never closed", "bad.jinja")
        let e = try await CLITests.cli(["template", "render", "--template", bad.path, "--messages", messages.path])
        CLITests.expectFailure(e, mentioning: "bad.jinja")
        #expect(e.stderr.split(separator: "\n").count == 1, "\(e.stderr)")
        #expect(e.stderr.contains("endif"), "\(e.stderr)")
        CLITests.expectFailure(try await CLITests.cli(["template", "render", "--template", template.path, "--messages", messages.path,
                                                 "--var", "mode=fast"]), mentioning: "--var mode")
        CLITests.expectFailure(try await CLITests.cli(["template", "render", "--messages", messages.path]), mentioning: "--model")
    }

    @Test("template parse prints the message as OpenAI JSON: reasoning, content, tool calls")
    func parse() async throws {
        let template = try Self.write("""
            {%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor -%}
            {%- if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>{% endif -%}
            {%- if add_generation_prompt %}<|im_start|>assistant\n{% endif -%}
            {#- <tool_call>{"name": ..., "arguments": ...}</tool_call> and <think> reasoning </think> -#}
            """, "hermes.jinja")
        let output = #"<think>Weather needed.</think>Checking.<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>"#
        let r = try await CLITests.cli(["template", "parse", "--template", template.path], stdin: output)
        try #require(r.status == 0, "\(r.stderr)")
        let value = try JSONValue(parsing: r.stdout)
        let expected = try ChatTemplate(String(contentsOf: template, encoding: .utf8)).outputParser().parse(output)
        #expect(expected.reasoning == "Weather needed." && expected.toolCalls.count == 1, "the Hermes format was detected")
        #expect(value["role"] == "assistant")
        #expect(value["content"]?.stringValue == expected.content)
        #expect(value["reasoning_content"]?.stringValue == expected.reasoning)
        let calls = try #require(value["tool_calls"]?.arrayValue)
        #expect(calls.count == expected.toolCalls.count)
        #expect(calls.first?["function"]?["name"] == "get_weather")
        let arguments = try #require(calls.first?["function"]?["arguments"]?.stringValue)
        #expect(try JSONValue(parsing: arguments) == ["city": "Paris"])
    }
}
