import Foundation
import LlamaJinja
import Testing

/// Recursion in a template (a model file's, so untrusted) ends with `.limitExceeded`, never with
/// a stack overflow that ends the process, however small the rendering thread's stack.
@Suite("Jinja recursion against the thread's stack", .timeLimit(.minutes(2)))
struct StackLimitTests {
    /// Renders on a thread of its own with `stackSize` bytes of stack; the error code, or nil when it rendered.
    static func render(_ source: String, stackSize: Int) async throws -> JinjaError.Code? {
        let template = try JinjaTemplate(source)
        return await withCheckedContinuation { (done: CheckedContinuation<JinjaError.Code?, Never>) in
            let thread = Thread {
                do throws(JinjaError) {
                    _ = try template.render([:])
                    done.resume(returning: nil)
                } catch {
                    done.resume(returning: error.code)
                }
            }
            thread.stackSize = stackSize
            thread.start()
        }
    }

    static func recursiveMacro(_ depth: Int) -> String {
        "{% macro down(n) %}{% if n == 0 %}.{% elif n > 0 %}{{ down(n - 1) }}{% endif %}{% endmacro %}{{ down(\(depth)) }}"
    }
    static let recursiveLoop = "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}"

    @Test("a macro recursing 250 deep on a 512 KiB stack, and a recursive loop without end: limitExceeded",
          arguments: [recursiveMacro(250), recursiveLoop])
    func smallStack(source: String) async throws {
        #expect(try await Self.render(source, stackSize: 512 << 10) == .limitExceeded)
    }

    @Test("a macro recursing 100 deep on an 8 MiB stack renders (the guard stops runaway recursion, not deep templates)")
    func largeStack() async throws {
        #expect(try await Self.render(Self.recursiveMacro(100), stackSize: 8 << 20) == nil)
        #expect(try await Self.render(Self.recursiveLoop, stackSize: 8 << 20) == .limitExceeded)
    }
}

/// Values that filters grow without writing output are bounded by the same limits as output.
@Suite("Jinja filters that grow values geometrically", .timeLimit(.minutes(2)))
struct FilterGrowthTests {
    @Test("`| list | string` twelve times over stops with limitExceeded (a fuzzer's input took 2 GiB before)")
    func listStringChain() throws {
        let chain = String(repeating: " | list | string", count: 12)
        let template = try JinjaTemplate("{{ 'abcdefghij'\(chain) }}")
        #expect(throws: JinjaError.self) { try template.render([:]) }
        do {
            _ = try template.render([:])
        } catch {
            #expect(error.code == .limitExceeded, "\(error)")
        }
        // Widths and precisions past the output limit are refused before the padding is made.
        for source in ["{{ '%8888888888888888s' % 'a' }}", "{{ '%.99999999f' % 1.5 }}", "{{ 'a' | center(999999999999) }}",
                       "{{ 'a\nb' | indent(999999999999) }}", "{{ [1] | tojson(indent=999999999999) }}",
                       // each under the limit, but indentation times depth is not: refused as the text grows
                       "{% set ns = namespace(v=[1]) %}{% for i in range(60) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v | tojson(indent=200000) }}"] {
            do {
                _ = try JinjaTemplate(source).render([:])
                Issue.record("\(source) rendered")
            } catch {
                #expect(error.code == .limitExceeded, "\(source): \(error)")
            }
        }
        // A list holding another many times over (2^40 items, shared): every text made from it stops at the
        // output limit with limitExceeded, in moments and without memory to match (it aborted, or ran for minutes).
        let shared = "{% set ns = namespace(v=[1]) %}{% for i in range(40) %}{% set ns.v = [ns.v, ns.v] %}{% endfor %}"
        for use in ["{{ ns.v }}", "{{ ns.v | string | length }}", "{{ ns.v | tojson | length }}", "{{ ns.v | tojson(indent=2) }}",
                    "{{ ns.v | pprint }}", "{{ ns.v | join(',') | length }}", "{{ ns.v | map('string') | list | length }}",
                    "{{ (ns.v ~ '') | length }}", "{{ '%s' % [ns.v] }}"] {
            let started = ContinuousClock.now
            do {
                _ = try JinjaTemplate(shared + use).render([:])
                Issue.record("\(use) rendered")
            } catch {
                #expect(error.code == .limitExceeded, "\(use): \(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(60), "\(use)")
        }
        #expect(try JinjaTemplate(shared + "{{ ns.v | length }}").render([:]) == "2")
        // Short chains still render as jinja2 does.
        #expect(try JinjaTemplate("{{ 'ab' | list | string }}").render([:]) == "['a', 'b']")
        #expect(try JinjaTemplate("{{ [[1]] | tojson(indent=2) }}").render([:]) == "[\n  [\n    1\n  ]\n]")
    }
}
