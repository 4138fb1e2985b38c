import Foundation
import LlamaJinja
import Testing

/// Disagreements with jinja2 that the differential fuzzer (tools/fuzz_jinja.py, `make fuzz-jinja`)
/// found, minimised, each rendered here by our engine and by jinja2 (tools/jinja_reference.py)
/// in the same run: the same output, or an error on both sides.
@Suite("Jinja engine against jinja2 on the fuzzer's findings", .serialized, .timeLimit(.minutes(5)))
struct FuzzRegressionTests {
    struct Case {
        var source: String
        var context: JSONObject = [:]
        var note: String
    }

    static let context: JSONObject = ["s": "a\u{2028}b", "n": 3, "z": .null, "e": "emoji 😀🎉", "d": ["a": 1]]

    static let cases: [Case] = [
        // Integer literals: binary, octal and hexadecimal; no leading zeros; `x.0.1` is two subscripts.
        Case(source: "{{ 0b101 }} {{ 0o17 }} {{ 0xFf }} {{ 0x_a }} {{ 1_0.5 }} {{ 1e3 }} {{ [[1, [2, 3]]].0.1.1 }}", note: "number literals"),
        Case(source: "{{ 007 }}", note: "a leading zero is two integers"),
        Case(source: "{{ 0b }}", note: "a prefix without digits"),
        // `if`/`elif` take no conditional expression; a `for` filter is one expression.
        Case(source: "{% if 1 if 0 %}x{% endif %}", note: "if with a conditional expression"),
        Case(source: "{% if 0 %}{% elif 1 if 1 else 0 %}x{% endif %}", note: "elif with a conditional expression"),
        Case(source: "{% for x in [1, 2] if x > 1, 2 %}{{ x }}{% endfor %}", note: "for filter as a tuple"),
        // Tests are Python functions: extra or missing arguments raise.
        Case(source: "{{ 1 is filter 1 }}", note: "extra test argument"),
        Case(source: "{{ 1 is test 1 }}", note: "extra test argument"),
        Case(source: "{{ 1 is divisibleby }}", note: "missing test argument"),
        Case(source: "{{ 3.0 is odd }}|{{ -3.0 is odd }}|{{ 2.5 is even }}|{{ true is odd }}|{{ '%s' is odd }}|{{ 7.0 is divisibleby 3.5 }}", note: "odd/even/divisibleby use Python's %"),
        Case(source: "{{ 'a' is odd }}", note: "str % int raises"),
        Case(source: "{{ ' ' is upper }}|{{ '1' is lower }}|{{ none is lower }}|{{ {'a': 1} is lower }}|{{ s is upper }}", context: context, note: "upper/lower: str(value), at least one cased character"),
        Case(source: "{% for c in s if c is upper %}{{ -s }}{% endfor %}", context: context, note: "upper on an uncased character"),
        // Raw blocks: no trim_blocks after `{% raw %}`, `+%}` is not a raw tag, a raw tag at the end.
        Case(source: "{% raw %}\n{{- y -}}\n{% endraw %}\n x ", note: "newline after raw"),
        Case(source: "{% raw +%}{{ x }}{% endraw %}", note: "raw with +%}"),
        Case(source: "a {%- raw -%}  ", note: "raw at the end of the template"),
        Case(source: "a{#", note: "comment start at the end of the template"),
        // Whitespace control strips Unicode whitespace too (Python's \s and rstrip).
        Case(source: "\u{3000}{{- 1 }}\u{3000}\n\u{3000}{% if 1 %}x{% endif %}\u{a0} {# c -#}\u{2028}\u{2029}y", note: "unicode whitespace"),
        Case(source: "\u{0B}{% set x = 1 -%}\u{0C}\u{1F}a\n\u{2003}\u{a0}{{- 1 }}", note: "vertical tab, form feed, separators"),
        Case(source: "{%- with x = 1 -%}{%- endwith -%}\u{a0}line", note: "no-break space after -%}"),
        // Slicing is a plain subscript in jinja2: a TypeError, except where the optimizer folds it.
        Case(source: "{{ n[::-1] }}", context: context, note: "slicing an int"),
        Case(source: "{{ z[1:] }}", context: context, note: "slicing None"),
        Case(source: "{{ d[1:] }}", context: context, note: "slicing a dict"),
        Case(source: "{{ 1[::-1] }}|{{ none[1:] }}|{{ (1 + 1)[::1] }}|{{ 'a'[1.0:] }}|{{ ('a' is string)[::-1] }}|{{ (1 if true else 2)[1:] }}", note: "constant slices fold to undefined"),
        // Filters on the wrong types.
        Case(source: "{{ 1|indent }}", note: "indent of an int"),
        Case(source: "{{ u|indent }}", note: "indent of undefined"),
        Case(source: "{{ u|int }}", note: "int of undefined"),
        Case(source: "{{ u|float }}", note: "float of undefined"),
        Case(source: "{{ false|truncate(5) }}", note: "truncate of a bool"),
        Case(source: "{{ [1, 2]|truncate(5) }}|{{ u|truncate(5) }}", note: "truncate of a short list, of undefined"),
        Case(source: "{{ range(20)|list|truncate(5) }}", note: "truncate of a long list"),
        Case(source: "{{ e|tojson(indent=u) }}", context: context, note: "tojson of a string ignores indent"),
        Case(source: "{{ [1]|tojson(indent=u) }}", note: "tojson with an undefined indent"),
        Case(source: "{{ [1]|tojson(indent=true) }}", note: "tojson with indent=True"),
        Case(source: "{% set y = 1[::-1] %}", note: "no folding outside {{ }}"),
        Case(source: "{{ [1[::-1]] }}", note: "folding inside a constant output"),
        // for-else runs unless an iteration reached the end of the body.
        Case(source: "{% for x in [1] %}{% break %}{% else %}E{% endfor %}", note: "else after break in the first iteration"),
        Case(source: "{% for x in [1, 2] %}{% continue %}{% else %}E{% endfor %}", note: "else after only continue"),
        Case(source: "{% for x in [1, 2] %}{{ x }}{% if x == 2 %}{% break %}{% endif %}{% else %}E{% endfor %}", note: "no else after a full iteration"),
        Case(source: "{{ false|round(1) }}|{{ true|round }}|{{ 2|round(1, 'floor') }}", note: "round of a bool is an int"),
        // Python semantics of `in` and len().
        Case(source: "{{ [1] in {'a': 1} }}", note: "an unhashable key in a dict"),
        Case(source: "{{ {} not in {} }}", note: "an unhashable key in a dict"),
        Case(source: "{% set ns = namespace(a=1) %}{{ ns|length }}", note: "a namespace has no len()"),
        Case(source: "{% set ns = namespace(a=1) %}{{ 'a' in ns }}", note: "a namespace is not iterable"),
        Case(source: "{{ u >= v }}", note: "ordering two undefined values raises"),
        Case(source: "{{ u <= u }}", note: "ordering two undefined values raises"),
        // Undefined inside containers prints as Undefined.
        Case(source: "{{ [u] }}|{{ (u,) }}|{{ {'a': u} }}|{{ [u]|string }}|{{ [u]|pprint }}|{{ u|pprint }}", note: "repr of undefined"),
    ]

    @Test("each minimised finding renders as jinja2 renders it (or errors where it raises)")
    func findingsMatchJinja2() async throws {
        _ = try await Jinja2.version()
        let now = "2025-03-14T09:26:53Z"
        let jobs = Self.cases.enumerated().map { i, c in
            Jinja2.Job(id: String(i), templatePath: nil, source: c.source, context: c.context, now: now)
        }
        let reference = try await Jinja2.render(jobs)
        for (i, c) in Self.cases.enumerated() {
            let expected = try #require(reference[String(i)], "no jinja2 result for case \(i)")
            var variables: [String: JSONValue] = [:]
            for (k, v) in c.context { variables[k] = v }
            let ours: Result<String, JinjaError>
            switch renderWithDeadline(c.source, variables, options: ReferenceClock.options(now: now), seconds: 10) {
            case .timedOut:
                Issue.record("\(c.note): \(escaped(c.source)) timed out")
                continue
            case .finished(let result, _):
                ours = result
            }
            switch (expected, ours) {
            case (.output(let want), .success(let got)):
                #expect(want == got, "\(c.note): \(escaped(c.source))\n\(firstDifference(expected: want, actual: got))")
            case (.error, .failure):
                break
            case (.output(let want), .failure(let error)):
                Issue.record("\(c.note): \(escaped(c.source)): jinja2 renders \(escaped(want)), ours raises \(error)")
            case (.error(let type, let message, _), .success(let got)):
                Issue.record("\(c.note): \(escaped(c.source)): jinja2 raises \(type): \(message), ours renders \(escaped(got))")
            }
        }
    }
}
