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
    ] + orderingCases + rangeCases + groupbySliceCases + lazyFilterCases + scopingCases + pythonCases

    static let sequences: JSONObject = [
        "l": [], "strs": [], "s": "", "d": ["a": 1, "b": 2],
        "m": [["role": "user", "c": 1], ["role": "User", "c": 2], ["role": "asst", "c": 3], ["c": 4]],
    ]

    /// Python's rich comparisons: `<=`/`>=` are their own operators (not `==` or `<`), lists and
    /// tuples compare item by item, other mixed types raise, chains run left to right.
    static let orderingCases: [Case] = [
        Case(source: "{{ 1 <= 2 }}|{{ 2 <= 1 }}|{{ 1 >= 1 }}|{{ 'a' >= 'b' }}|{{ 1.5 <= 1 }}|{{ true >= 1 }}", note: "<= and >= on numbers and strings"),
        Case(source: "{{ l <= strs }}|{{ l >= strs }}|{{ l < strs }}", context: sequences, note: "empty lists order as equal"),
        Case(source: "{{ [1, 2] >= [1] }}|{{ (1, 2) < (1, 3) }}|{{ [1, 'a'] < [2, 'a'] }}|{{ [[1]] <= [[1], 2] }}|{{ [{}] <= [{}] }}", note: "lists and tuples item by item"),
        Case(source: "{{ [1, 'a'] <= [1, 2] }}", note: "the first unequal items do not order"),
        Case(source: "{{ 1 <= s }}", context: sequences, note: "int <= str raises"),
        Case(source: "{{ s <= 1 }}", context: sequences, note: "str <= int raises"),
        Case(source: "{%- set x = s <= 1 %}", context: sequences, note: "the TypeError in a set"),
        Case(source: "{% if 0 %}{% elif 1 is le s %}{% endif %}", context: sequences, note: "the le test raises too"),
        Case(source: "{{ 1 <= 1 > u }}", note: "a chain goes on while true: the undefined operand raises"),
        Case(source: "{{ 2 < 1 < u }}|{{ 1 == 2 > u }}", note: "a chain stops at the first false link"),
        Case(source: "{{ none <= none }}", note: "None does not order"),
        Case(source: "{{ {} <= {} }}", note: "dicts do not order"),
        Case(source: "{{ d <= 'x' }}", context: sequences, note: "dict and str do not order"),
        Case(source: "{{ [1, 2] < (1, 3) }}", note: "list and tuple do not order"),
        Case(source: "{{ d.keys() <= d.keys() }}|{{ d.keys() < d.keys() }}|{{ d.items() >= d.items() }}", context: sequences, note: "dict views order as sets"),
        Case(source: "{{ d.values() <= d.values() }}", context: sequences, note: "dict values do not order"),
        Case(source: "{{ [3, 1, 2]|sort }}|{{ ['b', 'a']|max }}|{{ [2, 1.5]|min }}", note: "sort, min and max"),
    ]

    /// `range()` is a sequence of its own that prints as Python prints it.
    static let rangeCases: [Case] = [
        Case(source: "{{ range(1) }}|{{ range(1, 1) }}|{{ range(1, 1, 1) }}|{{ range(-1, 4) }}|{{ range(0, 6, 2) }}|{{ range(5, 0, -2) }}", note: "range prints as range(a, b[, step])"),
        Case(source: "{{ range(5)[1:3] }}|{{ range(3)[::-1] }}|{{ range(10)[2:8:3] }}|{{ range(3)[5:] }}|{{ range(10, 0, -3)[::-2] }}", note: "a slice of a range is a range"),
        Case(source: "{{ range(5)[1] }}|{{ range(5)[-1] }}|{{ range(5)[9] }}|{{ range(3)|length }}|{{ range(3)|list }}|{{ range(3)|join(',') }}|{{ range(3)|sum }}|{{ range(3)|first }}{{ range(3)|last }}", note: "indexing, length and iteration"),
        Case(source: "{{ range(3) == range(0, 3) }}|{{ range(0) == range(2, 1) }}|{{ range(2) == [0, 1] }}|{{ 1 in range(3) }}|{{ range(3) is sequence }}|{{ [range(2)] }}|{{ range(3)|pprint }}|{{ range(1, 9, 2).step }}|{{ range(3).index(2) }}", note: "equality, membership, repr, attributes"),
        Case(source: "{% for i in range(3) %}{{ loop.index }}{{ i }}{% endfor %}{{ range(3)|batch(2)|list }}", note: "loops over a range"),
        Case(source: "{{ range(3)|tojson }}", note: "a range is not JSON"),
        Case(source: "{{ range(3) + [1] }}", note: "range + list raises"),
        Case(source: "{%- if (range(-1)) <= 1_000 %}{% endif %}", note: "range <= int raises"),
    ]

    /// jinja2's `groupby` (sorted runs with `.grouper` and `.list`) and `slice`.
    static let groupbySliceCases: [Case] = [
        Case(source: "{{ m|groupby('role', default='zz') }}", context: sequences, note: "groupby with a default"),
        Case(source: "{% for g in m|groupby('role', default='x') %}{{ g.grouper }}={{ g.list|length }};{{ g[0] }}{{ g.count(1) }}|{% endfor %}", context: sequences, note: "grouper and list attributes"),
        Case(source: "{% for grouper, list in m|groupby('role', 'x', true) %}{{ grouper }}={{ list|map(attribute='c')|join }};{% endfor %}", context: sequences, note: "case_sensitive groups"),
        Case(source: "{{ m|groupby('role') }}", context: sequences, note: "an undefined key does not sort"),
        Case(source: "{{ (m|groupby('role', default='x'))[0]|tojson }}|{{ u|groupby('x') }}", context: sequences, note: "a group as JSON; groups of undefined"),
        Case(source: "{{ 5|groupby('x') }}", note: "groupby of an int"),
        Case(source: "{{ [{'a': {'b': 2}}, {'a': {'b': 1}}, {'a': {'b': 2}}]|groupby('a.b') }}", note: "an attribute path"),
        Case(source: "{{ [1, 2, 3]|slice(2)|list }}|{{ [1, 2, 3]|slice(2, 'x')|list }}|{{ [1, 2, 3]|slice(5)|list }}|{{ [1, 2, 3]|slice(-2)|list }}|{{ range(7)|slice(3, 0)|list }}", note: "slice"),
        Case(source: "{{ [1]|slice(0)|list }}", note: "slice(0) divides by zero"),
        Case(source: "{% if 1|slice(1) %}lazy{% endif %}", note: "slice of an int fails only when iterated"),
        Case(source: "{{ 1|slice(1)|list }}", note: "slice of an int"),
    ]

    /// jinja2's filters that are generators: errors wait for the first iteration, and a
    /// generator is iterated once.
    static let lazyFilterCases: [Case] = [
        Case(source: "{{- not 1|reject(1) }}|{% set x = 1|select(1) %}|{{ 1 == 1|batch(1, 1) > 1 }}|{% set y = 10|items %}", note: "lazy errors never iterated"),
        Case(source: "{{ [0]|select(1)|list }}", note: "a test that is not a name"),
        Case(source: "{{ 1|batch(1)|list }}", note: "batch of an int"),
        Case(source: "{{ 10|items|list }}", note: "items of an int"),
        Case(source: "{{ u|items|list }}|{{ d|items|list }}", context: sequences, note: "items of undefined, of a dict"),
        Case(source: "{% set g = [1, 2, 3]|select %}{{ g|first }}{{ g|list }}{{ g|list }}", note: "a generator is iterated once"),
        Case(source: "{% set g = [1, 2, 3]|map('string') %}{{ 2 in g }}{{ '2' in g }}{{ g|list }}", note: "in takes items up to the match"),
        Case(source: "{{ [1, 'a']|select('odd')|first }}", note: "first stops before the failing item"),
        Case(source: "{% set g = [1, 'a']|select('odd') %}{{ g|first }}{{ g|list }}", note: "the rest reaches it"),
        Case(source: "{{ [1, 2]|batch(0)|list }}|{{ [1, 2]|batch(-1)|list }}|{{ [1, 2]|batch('x')|list }}|{{ [1, 2, 3]|batch(2, 'x')|list }}", note: "batch as jinja2 loops"),
        Case(source: "{{ [1]|map|list }}", note: "map without a filter"),
        Case(source: "{{ 0|map('nope')|list }}|{{ m|map(attribute='role.x', default='dd')|list }}", context: sequences, note: "map of a false value; default after each part"),
        Case(source: "{{ l|select|last }}", context: ["l": [1]], note: "a generator is not reversible"),
        Case(source: "{{ {'a': 1, 'b': 2}|last }}|{{ {'a': 1, 'b': 2}|reverse|list }}|{{ d.items()|reverse|list }}", context: sequences, note: "dicts and their views reverse"),
        Case(source: "{{ [[1], [1]]|unique|list }}", note: "unique needs hashable items"),
        Case(source: "{{ (1, 2).copy() }}", note: "tuples have no copy"),
    ]

    /// jinja2's idtracking: a name a frame assigns before reading it starts undefined there, and
    /// frames nested inside read that variable.
    static let scopingCases: [Case] = {
        let s: JSONObject = ["s": "S"]
        return [
            Case(source: "{{ s }}{% set s = 1 %}{{ s }}|{% if true %}{{ s }}{% endif %}", context: s, note: "read first at the top level: the caller's value"),
            Case(source: "{% for x in [1] %}{{ [s] }}{% endfor %}{% set s = 1 %}{{ s }}", context: s, note: "a loop before the top level assigns"),
            Case(source: "{% for x in [1] %}{% for y in [2] %}{{ s|default('D') }}{{ s is defined }}{% endfor %}{% endfor %}{% set s, t = 1, 2 %}", context: s, note: "nested loops, a tuple assignment"),
            Case(source: "{% macro m() %}{{ s }}{% endmacro %}{{ m() }}{% set s = 1 %}{{ m() }}", context: s, note: "a macro reads the variable when called"),
            Case(source: "{% with %}{{ s }}{% endwith %}{% filter upper %}{{ s }}{% endfilter %}{% set y %}{{ s }}{% endset %}{{ y }}{% macro s() %}{% endmacro %}", context: s, note: "with, filter and block set bodies; a macro assigns its name"),
            Case(source: "{% for x in [1] %}{{ s }}{% endfor %}{% if true %}{% set s = 1 %}{% elif 1 %}{% set s = 3 %}{% else %}{% set s = 2 %}{% endif %}", context: s, note: "assigned inside if: the caller's value"),
            Case(source: "{% for x in [1] %}{{ s }}{% set s = 2 %}{{ s }}{% endfor %}{{ s }}|{% for x in [1] %}{{ s }}{% endfor %}{% for s in [1] %}{% endfor %}{% with s = 1 %}{% endwith %}", context: s, note: "loop and with targets are their own frames'"),
            Case(source: "{% for x in [1] %}{% for y in [1] %}{{ s }}{% endfor %}{% set s = 2 %}{% endfor %}", context: s, note: "a loop body is a frame too"),
            Case(source: "{% for x in [] %}{% set y = 1 %}{% else %}{% set y = 2 %}{{ y }}{% endfor %}{{ y }}", note: "for-else is a frame of its own"),
            Case(source: "{% macro m(x) %}{{ caller() }}{% endmacro %}{% call m(1) %}{% for x in [1] %}{{ s }}{% endfor %}{% set s = 1 %}{% endcall %}", context: s, note: "a call block body"),
        ]
    }()

    /// Python details the second fuzzing round found.
    static let pythonCases: [Case] = [
        Case(source: "{{ s.encode() }}|{{ 'ü'.encode() }}|{{ 'a'.encode()|length }}|{{ 'a'.encode() == 'a' }}|{{ 'ab'.encode()[0] }}|{{ 'ab'.encode()|list }}|{{ 'a\\'b\\t'.encode() }}|{{ 'ab'.encode()[::-1] }}|{{ 'ab'.encode().decode() }}", context: ["s": "line1\nline2"], note: "str.encode gives bytes"),
        Case(source: "{{ 'a'.encode()|tojson }}", note: "bytes are not JSON"),
        Case(source: "{{ 'Hello World'.istitle() }}{{ 'hello'.istitle() }}{{ 'ǅa'.istitle() }}{{ ''.istitle() }}{{ 'A1 B'.istitle() }}{{ 'AB'.istitle() }}", note: "str.istitle"),
        Case(source: "{{ 'hello' % [1] }}|{{ '%s' % [1] }}|{{ '{}' % ['abc'] }}|{{ 'x' % {} }}|{{ 'x' % u }}|{{ '%s' % u }}|{{ '%s' % range(2) }}", note: "% leaves a subscriptable argument alone"),
        Case(source: "{{ 'x' % 1 }}", note: "% with an unused int raises"),
        Case(source: "{{ 1 * (1, 1) }}|{{ (1,) * 2 }}", note: "int * tuple"),
        Case(source: "{{ 'assistant'|sort(attribute='role') }}|{{ [{}, {}]|sort }}|{{ m|sort(attribute='c,role') }}", context: ["m": [["role": "b", "c": 2], ["role": "a", "c": 1]]], note: "sort keys are lists of attribute paths"),
        Case(source: "{{ u is callable }}", note: "Undefined is callable"),
        Case(source: "{% for x in 1.__class__ %}{% endfor %}{{ (1).__class__|length }}{{ (1).__class__|list }}{{ 'a' in (1).__class__ }}{{ (1).__class__|upper }}{{ (1).__class__|truncate(3) }}", note: "an unsafe attribute is undefined until used"),
        Case(source: "{{ (1).__class__|int }}", note: "using it raises"),
        Case(source: "{{ 1[1::0] }}", note: "an int does not slice before the step is checked"),
        Case(source: "{{ 'abc'[1::0] }}", note: "a zero step"),
        Case(source: "{{ 0 ** -1 }}", note: "0 to a negative power"),
        Case(source: "{% if False ** f %}{% endif %}", context: ["f": -1.25], note: "0.0 to a negative power"),
        Case(source: "{{ range(1)|truncate(5) }}", note: "truncate of a short range"),
        // jinja2's optimizer folds constant subexpressions whose value has a literal form,
        // through the sandbox's getitem (which makes `1[::-1]` undefined).
        Case(source: "{%- set s = 1[::-1]|groupby(1) %}{{ s }}|{{ t ~ ((0x10[::-1])|sum) }}|{{ dict(a='%-5s|' % 1[::-1], b=1) }}|{% set x = (1[::-1] ~ 'a') %}{{ x }}", context: ["t": "T"], note: "folded subexpressions"),
        Case(source: "{{ (-0.5|trim is eq 'content')[::-1] }}|{{ 1[::-1]|default('D') }}|{{ [1[::-1]]|length }}", note: "folded outputs with filters"),
        Case(source: "{% set x = 1[::-1]|map('string')|list %}", note: "map reads the context: not folded"),
        Case(source: "{{ t ~ 1[::-1] }}", context: ["t": "T"], note: "not constant: not folded"),
        Case(source: "{{ (1 or s)[::-1] }}|{{ 1 == 1[::-1] != s }}", note: "and, or and comparisons fold as far as they evaluate"),
        Case(source: "{{ 1 if 1[::-1] }}", note: "an if without else does not fold when false"),
        Case(source: "{{ s.__class__ }}|{% if u.__class__ %}x{% endif %}", note: "Undefined has a __class__ (the sandbox refuses it)"),
        Case(source: "{{ u._x }}", note: "other attributes of Undefined raise"),
        Case(source: "{{ {'role': 1, 1: 1}|attr('role') }}|{{ {'role': 1}|attr('items') is callable }}", note: "attr reads attributes, not keys"),
        Case(source: "{{ 1|round(-1) }}{{ 15|round(-1) }}{{ 25|round(-1) }}{{ -15|round(-1) }}{{ 1|round(2) }}{{ true|round(-1) }}", note: "round of an int to a negative precision"),
        Case(source: "{{ '<%s>'|safe % '<a>' }}|{{ (1|safe) % u }}|{{ 1|escape * 2 }}", note: "Markup's % escapes its arguments; Markup * int"),
        Case(source: "{% macro m1(a='x') %}{{ kwargs }}{% endmacro %}{% call m1() %}{{ m1(1, b=2) }}{% endcall %}", note: "a call block's caller is an anonymous macro"),
        Case(source: "{{ 1|safe|pprint }}", note: "pprint of Markup"),
        Case(source: "{{ -0.5 ** t is integer }}|{{ (-0.0) ** (not t) }}|{{ -2 ** 2 }}", context: ["t": "T"], note: "jinja2 writes a folded negative base without parentheses"),
        Case(source: "{{ 'ﬁx'|capitalize }}{{ 'ﬁx'.capitalize() }}{{ 'ﬁx ǆa'|title }}", note: "capitalize titlecases, the title filter upper-cases"),
        Case(source: "{{ 1 % -0.5 }}|{{ -1 % 0.5 }}|{{ 1.5 % -1 }}", note: "a float remainder of zero has the divisor's sign"),
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
