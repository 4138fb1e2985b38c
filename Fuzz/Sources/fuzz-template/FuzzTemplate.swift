import Foundation
import FuzzSupport
import LlamaJinja

// Jinja templates through LlamaJinja: parse, then render with a chat context. Any input must
// parse and render, or fail with a JinjaError; a crash, a hang (libFuzzer's -timeout) or an
// untyped error is a finding. Seeds: the pinned source's chat templates and the test fixtures.

let context: [String: JSONValue] = [
    "messages": [
        ["role": "system", "content": "You are terse."],
        ["role": "user", "content": "What is 2+2? <|im_end|>"],
        ["role": "assistant", "content": "", "tool_calls": [
            ["id": "call_1", "type": "function", "function": ["name": "add", "arguments": ["a": 2, "b": 2]]],
        ]],
        ["role": "tool", "tool_call_id": "call_1", "name": "add", "content": "4"],
        ["role": "assistant", "content": "4", "reasoning_content": "2 and 2"],
        ["role": "user", "content": [["type": "text", "text": "and 3+3?"], ["type": "image"]]],
    ],
    "tools": [
        ["type": "function", "function": ["name": "add", "description": "Adds.", "parameters": [
            "type": "object", "properties": ["a": ["type": "integer"], "b": ["type": "number"]], "required": ["a", "b"],
        ]]],
    ],
    "add_generation_prompt": true,
    "enable_thinking": false,
    "bos_token": "<s>",
    "eos_token": "</s>",
]

let options: JinjaTemplate.Options = {
    var o = JinjaTemplate.Options()
    o.now = { Date(timeIntervalSince1970: 1_700_000_000) }
    o.timeZone = TimeZone(identifier: "UTC")!
    o.limits.maxIterations = 200_000
    o.limits.maxSequenceLength = 200_000
    o.limits.maxOutputBytes = 1 << 20
    return o
}()

@main
enum FuzzTemplate {
    static func main() {
        Fuzz.initialize { dir in
            var i = 0
            let templates = Fuzz.source.appendingPathComponent("models/templates")
            for name in try FileManager.default.contentsOfDirectory(atPath: templates.path).sorted() where name.hasSuffix(".jinja") {
                try Fuzz.seed(try Data(contentsOf: templates.appendingPathComponent(name)), i, in: dir, name: "template")
                i += 1
            }
            // Small templates of our own, each exercising a construct.
            for text in ["{{ messages[0].content | upper }}", "{% for m in messages %}{{ loop.index }}{{ m.role }}{% endfor %}",
                         "{% macro f(x) %}{{ x * 2 }}{% endmacro %}{{ f(3) }}", "{% set ns = namespace(a=1) %}{{ ns.a }}",
                         "{{ tools | tojson(indent=2) }}", "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}",
                         "{{ raise_exception('no') }}", "{{ strftime_now('%Y-%m-%d') }}", "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}"] {
                try Fuzz.seed(Data(text.utf8), i, in: dir, name: "construct")
                i += 1
            }
        }
        Fuzz.run(test)
    }
}

func test(_ input: UnsafeBufferPointer<UInt8>) {
    let source = String(decoding: input, as: UTF8.self)
    let template: JinjaTemplate
    do { template = try JinjaTemplate(source, options: options) } catch { return }
    do { _ = try template.render(context) } catch {}
}
