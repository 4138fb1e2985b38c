import Foundation

/// Arguments of a filter, test, function or method: positional, then by keyword, with defaults.
struct Args {
    let positional: [Value]
    let keywords: [(String, Value)]
    let fn: String
    let interp: Interpreter

    func get(_ index: Int, _ name: String) -> Value? {
        if index >= 0, index < positional.count { return positional[index] }
        return keywords.first { $0.0 == name }?.1
    }
    func string(_ index: Int, _ name: String) throws(JinjaError) -> String? {
        guard let v = get(index, name) else { return nil }
        if case .none = v { return nil }
        guard case .string(let s) = v else { throw interp.fail(.type, "\(fn)(): '\(name)' must be a string, not \(v.typeName)") }
        return s
    }
    func bool(_ index: Int, _ name: String, _ def: Bool) -> Bool { get(index, name)?.truthy ?? def }
    func int(_ index: Int, _ name: String) throws(JinjaError) -> Int? {
        guard let v = get(index, name) else { return nil }
        if case .none = v { return nil }
        guard let i = v.integer else { throw interp.fail(.type, "\(fn)(): '\(name)' must be an integer, not \(v.typeName)") }
        return i
    }
}

typealias Filter = (Interpreter, Value, [Value], [(String, Value)]) throws -> Value
typealias Test = (Interpreter, Value, [Value]) throws -> Bool

enum Builtins {
    // MARK: globals

    static func globals(options: JinjaTemplate.Options) -> [String: Callable] {
        var g: [String: Callable] = [:]
        func add(_ name: String, _ f: @escaping (Interpreter, Args) throws -> Value) {
            g[name] = Callable(name: name, kind: .builtin { interp, p, k in
                try f(interp, Args(positional: p, keywords: k, fn: name, interp: interp))
            })
        }
        add("range") { interp, a in
            var nums: [Int] = []
            for v in a.positional {
                guard let i = v.integer else { throw interp.fail(.type, "'\(v.typeName)' object cannot be interpreted as an integer") }
                nums.append(i)
            }
            let (start, stop, step): (Int, Int, Int)
            switch nums.count {
            case 1: (start, stop, step) = (0, nums[0], 1)
            case 2: (start, stop, step) = (nums[0], nums[1], 1)
            case 3: (start, stop, step) = (nums[0], nums[1], nums[2])
            default: throw interp.fail(.type, "range expected 1 to 3 arguments, got \(nums.count)")
            }
            guard step != 0 else { throw interp.fail(.value, "range() arg 3 must not be zero") }
            // jinja2's sandbox refuses ranges over 100000 items (MAX_RANGE).
            let limit = min(100_000, interp.options.limits.maxSequenceLength)
            guard PyRange.length(start, stop, step) <= limit else {
                throw interp.fail(.limitExceeded, "range too big: the sandbox allows at most \(limit) items")
            }
            return .range(PyRange(start: start, stop: stop, step: step))
        }
        add("dict") { interp, a in
            var d = Dict()
            if let first = a.positional.first {
                switch first {
                case .dict(let x): d = x
                default:
                    for item in try interp.iterate(first) {
                        let pair = try interp.iterate(item)
                        guard pair.count == 2 else { throw interp.fail(.value, "dictionary update sequence element has length \(pair.count); 2 is required") }
                        d[pair[0]] = pair[1]
                    }
                }
            }
            for (k, v) in a.keywords { d[.string(k)] = v }
            return .dict(d)
        }
        add("namespace") { interp, a in
            var d = Dict()
            for p in a.positional {
                guard case .dict(let x) = p else { throw interp.fail(.type, "namespace() takes a mapping") }
                for (k, v) in x { d[k] = v }
            }
            for (k, v) in a.keywords { d[.string(k)] = v }
            return .namespace(Namespace(d))
        }
        add("raise_exception") { interp, a in
            throw interp.fail(.raised, a.get(0, "message")?.str ?? "")
        }
        add("strftime_now") { interp, a in
            guard let format = try a.string(0, "format") else { throw interp.fail(.type, "strftime_now() needs a format") }
            return .string(strftime(format, interp.options.now(), interp.options.timeZone))
        }
        add("joiner") { _, a in
            let sep = a.get(0, "sep")?.str ?? ", "
            final class State { var used = false }
            let state = State()
            return .callable(Callable(name: "joiner", kind: .builtin { _, _, _ in
                if state.used { return .string(sep) }
                state.used = true
                return .string("")
            }))
        }
        return g
    }

    /// C's strftime for the fields chat templates use, in the C locale.
    static func strftime(_ format: String, _ date: Date, _ zone: TimeZone) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday, .nanosecond], from: date)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        func pad(_ n: Int, _ w: Int = 2, _ ch: Character = "0") -> String {
            let s = String(n)
            return String(repeating: ch, count: max(0, w - s.count)) + s
        }
        let year = c.year!, month = c.month!, day = c.day!, hour = c.hour!, minute = c.minute!, second = c.second!
        let weekday = c.weekday! - 1
        let yday = cal.ordinality(of: .day, in: .year, for: date) ?? 1
        var out = ""
        var it = format.makeIterator()
        while let ch = it.next() {
            guard ch == "%" else { out.append(ch); continue }
            guard let f = it.next() else { out.append("%"); break }
            switch f {
            case "Y": out += String(year)
            case "y": out += pad(year % 100)
            case "m": out += pad(month)
            case "d": out += pad(day)
            case "e": out += pad(day, 2, " ")
            case "B": out += months[month - 1]
            case "b", "h": out += String(months[month - 1].prefix(3))
            case "A": out += days[weekday]
            case "a": out += String(days[weekday].prefix(3))
            case "H": out += pad(hour)
            case "I": out += pad(hour % 12 == 0 ? 12 : hour % 12)
            case "M": out += pad(minute)
            case "S": out += pad(second)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "j": out += pad(yday, 3)
            case "f": out += pad((c.nanosecond ?? 0) / 1000, 6)
            case "w": out += String(weekday)
            case "u": out += String(weekday == 0 ? 7 : weekday)
            case "F": out += "\(year)-\(pad(month))-\(pad(day))"
            case "T": out += "\(pad(hour)):\(pad(minute)):\(pad(second))"
            case "D": out += "\(pad(month))/\(pad(day))/\(pad(year % 100))"
            case "R": out += "\(pad(hour)):\(pad(minute))"
            case "Z": out += zone.abbreviation(for: date) ?? zone.identifier
            case "z":
                let s = zone.secondsFromGMT(for: date)
                out += (s < 0 ? "-" : "+") + pad(abs(s) / 3600) + pad(abs(s) % 3600 / 60)
            case "%": out += "%"
            case "n": out += "\n"
            case "t": out += "\t"
            default: out += "%" + String(f)
            }
        }
        return out
    }

    // MARK: tests

    nonisolated(unsafe) static let tests: [String: Test] = {
        var t: [String: Test] = [:]
        t["defined"] = { _, v, _ in !v.isUndefined }
        t["undefined"] = { _, v, _ in v.isUndefined }
        t["none"] = { _, v, _ in if case .none = v { return true }; return false }
        t["boolean"] = { _, v, _ in if case .bool = v { return true }; return false }
        t["true"] = { _, v, _ in if case .bool(true) = v { return true }; return false }
        t["false"] = { _, v, _ in if case .bool(false) = v { return true }; return false }
        t["integer"] = { _, v, _ in if case .int = v { return true }; return false }
        t["float"] = { _, v, _ in if case .double = v { return true }; return false }
        t["number"] = { _, v, _ in v.number != nil }
        t["string"] = { _, v, _ in if case .string = v { return true }; return false }
        t["mapping"] = { _, v, _ in if case .dict = v { return true }; return false }
        t["sequence"] = { _, v, _ in
            switch v {
            // Undefined has a length and an item getter (that raises), so jinja2 calls it a sequence.
            case .list, .tuple, .string, .dict, .undefined, .range, .group, .iterator, .bytes: return true
            default: return false
            }
        }
        t["iterable"] = { _, v, _ in
            switch v {
            case .list, .tuple, .string, .dict, .undefined, .iterator, .generator, .range, .group, .bytes: return true
            default: return false
            }
        }
        t["callable"] = { _, v, _ in
            switch v {
            // Undefined has a `__call__` (that raises), so Python calls it callable.
            case .callable, .undefined: return true
            case .loop(let l): return l.recurse != nil
            default: return false
            }
        }
        // jinja2: `value % 2 == 1`, `value % 2 == 0`, `value % num == 0`, with Python's `%` (floats
        // and strings included).
        t["odd"] = { interp, v, _ in interp.equal(try interp.binary("%", v, .int(2)), .int(1)) }
        t["even"] = { interp, v, _ in interp.equal(try interp.binary("%", v, .int(2)), .int(0)) }
        t["divisibleby"] = { interp, v, a in
            guard let n = a.first else { throw interp.fail(.type, "'divisibleby' needs an argument") }
            return interp.equal(try interp.binary("%", v, n), .int(0))
        }
        // jinja2: `str(value).islower()` / `.isupper()`: at least one cased character, for any value.
        t["lower"] = { _, v, _ in let s = v.str; return s.unicodeScalars.contains { $0.properties.isCased } && s == s.lowercased() }
        t["upper"] = { _, v, _ in let s = v.str; return s.unicodeScalars.contains { $0.properties.isCased } && s == s.uppercased() }
        t["escaped"] = { _, v, _ in if case .markup = v { return true }; return false }
        t["sameas"] = { interp, v, a in
            guard let o = a.first else { throw interp.fail(.type, "'sameas' needs an argument") }
            switch (v, o) {
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            // CPython keeps one object for each small integer.
            case (.int(let x), .int(let y)): return x == y && (-5...256).contains(x)
            case (.dict(let x), .dict(let y)): return x.identity === y.identity
            case (.namespace(let x), .namespace(let y)): return x === y
            case (.callable(let x), .callable(let y)): return x === y
            default: return false
            }
        }
        let eq: Test = { interp, v, a in
            guard let o = a.first else { throw interp.fail(.type, "the test needs an argument") }
            return interp.equal(v, o)
        }
        t["eq"] = eq; t["equalto"] = eq; t["=="] = eq
        let ne: Test = { interp, v, a in
            guard let o = a.first else { throw interp.fail(.type, "the test needs an argument") }
            return !interp.equal(v, o)
        }
        t["ne"] = ne; t["!="] = ne
        func ordered(_ op: String) -> Test {
            { interp, v, a in
                guard let o = a.first else { throw interp.fail(.type, "the test needs an argument") }
                return try interp.compare(op, v, o)
            }
        }
        t["lt"] = ordered("<"); t["lessthan"] = ordered("<"); t["<"] = ordered("<")
        t["le"] = ordered("<="); t["<="] = ordered("<=")
        t["gt"] = ordered(">"); t["greaterthan"] = ordered(">"); t[">"] = ordered(">")
        t["ge"] = ordered(">="); t[">="] = ordered(">=")
        t["in"] = { interp, v, a in
            guard let o = a.first else { throw interp.fail(.type, "'in' needs an argument") }
            return try interp.contains(o, v)
        }
        t["filter"] = { _, v, _ in if case .string(let s) = v { return filters[s] != nil }; return false }
        t["test"] = { _, v, _ in if case .string(let s) = v { return tests[s] != nil }; return false }
        // jinja2's tests are Python functions: another number of arguments is a TypeError
        // (`x is filter 1` passes one).
        let oneArgument: Set = ["divisibleby", "sameas", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<",
                                "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in"]
        for (name, test) in t {
            let n = oneArgument.contains(name) ? 1 : 0
            t[name] = { interp, v, a in
                guard a.count == n else {
                    throw interp.fail(.type, "test '\(name)' takes \(n) argument\(n == 1 ? "" : "s") but \(a.count) were given")
                }
                return try test(interp, v, a)
            }
        }
        return t
    }()

    // MARK: filters

    static func pythonStrip(_ s: String, _ chars: String?, left: Bool, right: Bool) -> String {
        let scalars = Array(s.unicodeScalars)
        let set: (Unicode.Scalar) -> Bool
        if let chars { let c = Set(chars.unicodeScalars); set = { c.contains($0) } } else { set = isPythonSpace }
        var a = 0, b = scalars.count
        if left { while a < b, set(scalars[a]) { a += 1 } }
        if right { while b > a, set(scalars[b - 1]) { b -= 1 } }
        var v = String.UnicodeScalarView()
        v.append(contentsOf: scalars[a..<b])
        return String(v)
    }

    static func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x1F, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// Attribute paths as jinja2's `make_attrgetter` reads them: `a.b`, digits as indexes, None
    /// as the item itself; `default` (unless None) replaces an undefined value after each part.
    static func attrGetter(_ interp: Interpreter, _ attribute: Value, default def: Value? = nil) -> (Value) throws(JinjaError) -> Value {
        let parts: [Value]
        switch attribute {
        case .string(let s):
            parts = s.split(separator: ".", omittingEmptySubsequences: false).map { p in
                !p.isEmpty && p.unicodeScalars.allSatisfy { ("0"..."9").contains($0) } ? Int(p).map(Value.int) ?? .string(String(p)) : .string(String(p))
            }
        case .none: parts = []
        default: parts = [attribute]
        }
        let def = def?.isNone == true ? nil : def
        return { v in
            var cur = v
            for p in parts {
                cur = try interp.getitem(cur, p)
                if cur.isUndefined, let def { cur = def }
            }
            return cur
        }
    }

    /// Whether Python can hash the value (a set or dict key): not lists, dicts or dict views.
    static func isHashable(_ v: Value) -> Bool {
        switch v {
        case .list, .dict, .iterator: return false
        case .tuple(let items): return items.allSatisfy(isHashable)
        case .group: return false  // its second item is a list
        default: return true
        }
    }

    /// The result of one of jinja2's lazy filters (`function`, the Python generator function's
    /// name, for its repr): `body` produces the items now, and an error it meets is kept and
    /// raised only when iteration reaches it.
    static func generator(_ function: String, _ body: (inout [Value]) throws -> Void) -> Value {
        var items: [Value] = []
        do {
            try body(&items)
        } catch {
            let e = error as? JinjaError ?? JinjaError(.type, "\(error)")
            return .generator(Generator(function: function, items: items, error: e))
        }
        return .generator(Generator(function: function, items: items))
    }

    static func sortKey(_ v: Value, caseSensitive: Bool) -> Value {
        if !caseSensitive, case .string(let s) = v { return .string(s.lowercased()) }
        return v
    }

    static func sortValues(_ interp: Interpreter, _ items: [Value], key: (Value) throws(JinjaError) -> Value, reverse: Bool) throws(JinjaError) -> [Value] {
        var keyed: [(Value, Value)] = []
        for item in items { keyed.append((try key(item), item)) }
        // A stable merge sort that can throw (Python's sort is stable; reverse keeps stability).
        func merge(_ a: ArraySlice<(Value, Value)>) throws(JinjaError) -> [(Value, Value)] {
            if a.count <= 1 { return Array(a) }
            let mid = a.startIndex + a.count / 2
            let l = try merge(a[a.startIndex..<mid]), r = try merge(a[mid..<a.endIndex])
            var out: [(Value, Value)] = []
            out.reserveCapacity(a.count)
            var i = 0, j = 0
            while i < l.count && j < r.count {
                let takeRight = reverse ? try interp.less(l[i].0, r[j].0) : try interp.less(r[j].0, l[i].0)
                if takeRight { out.append(r[j]); j += 1 } else { out.append(l[i]); i += 1 }
            }
            out += l[i...]
            out += r[j...]
            return out
        }
        return try merge(keyed[...]).map(\.1)
    }

    static func htmlEscape(_ s: String) -> String {
        var out = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Python's `str.splitlines()`.
    static func splitLines(_ s: String, keepEnds: Bool = false) -> [String] {
        var lines: [String] = []
        var cur = String.UnicodeScalarView()
        let scalars = Array(s.unicodeScalars)
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            switch c.value {
            case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
                var end = [c]
                if c.value == 0x0D, i + 1 < scalars.count, scalars[i + 1].value == 0x0A { end.append(scalars[i + 1]); i += 1 }
                if keepEnds { cur.append(contentsOf: end) }
                lines.append(String(cur))
                cur = String.UnicodeScalarView()
            default:
                cur.append(c)
            }
            i += 1
        }
        if !cur.isEmpty { lines.append(String(cur)) }
        return lines
    }

    static func toJSON(_ interp: Interpreter, _ v: Value, indent: Value?, separators: Value?, sortKeys: Bool, asciiOnly: Bool) throws(JinjaError) -> String {
        let json = v.json()
        try interp.checkTextBudget()
        guard let json else {
            throw interp.fail(.type, "Object of type \(v.typeName) is not JSON serializable")
        }
        // json.dumps returns a string's encoding before it looks at indent and separators.
        if case .string = json {
            return JSONWriter(indent: nil, itemSeparator: ",", keySeparator: ":", asciiOnly: asciiOnly).write(json)
        }
        var indentText: String? = nil
        switch indent {
        case .int(let n)?:
            try interp.checkWidth(n, "tojson's indent")
            indentText = String(repeating: " ", count: max(0, n))
        case .bool(let b)?: indentText = b ? " " : ""  // `" " * True`
        case .string(let s)?: indentText = s
        case .none?, nil: indentText = nil
        case .undefined(let u)?: throw interp.undefinedError(u)
        case let other?: throw interp.fail(.type, "tojson: indent must be an integer or a string, not \(other.typeName)")
        }
        var item = indentText == nil ? ", " : ",", key = ": "
        if let separators, !(separators.isUndefined), { if case .none = separators { return false }; return true }() {
            let parts = try interp.iterate(separators)
            guard parts.count == 2, case .string(let a) = parts[0], case .string(let b) = parts[1] else {
                throw interp.fail(.type, "tojson: separators must be a pair of strings")
            }
            item = a
            key = b
        }
        let limit = interp.options.limits.maxOutputBytes
        do {
            return try JSONWriter(indent: indentText, itemSeparator: item, keySeparator: key, asciiOnly: asciiOnly, sortKeys: sortKeys)
                .write(json, limit: limit)
        } catch {
            throw interp.fail(.limitExceeded, "tojson's text is larger than the output limit of \(limit) bytes")
        }
    }

    nonisolated(unsafe) static let filters: [String: Filter] = {
        var f: [String: Filter] = [:]
        func add(_ name: String, _ body: @escaping (Interpreter, Value, Args) throws -> Value) {
            f[name] = { interp, v, p, k in try body(interp, v, Args(positional: p, keywords: k, fn: name, interp: interp)) }
        }
        // jinja2's string filters take `str(value)`: an undefined value (even one the sandbox
        // refused) is the empty string.
        func strictString(_ interp: Interpreter, _ v: Value) throws(JinjaError) -> String { v.str }
        add("tojson") { interp, v, a in
            // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
            .string(try toJSON(interp, v, indent: a.get(1, "indent"), separators: a.get(2, "separators"),
                               sortKeys: a.bool(3, "sort_keys", false), asciiOnly: a.bool(0, "ensure_ascii", false)))
        }
        add("length") { interp, v, _ in
            switch v {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .list(let a), .tuple(let a): return .int(a.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            case .iterator(let items, _): return .int(items.count)
            case .range(let r): return .int(r.count)
            case .bytes(let b): return .int(b.count)
            default: throw interp.fail(.type, "object of type '\(v.typeName)' has no len()")
            }
        }
        f["count"] = f["length"]
        add("string") { interp, v, _ in .string(try strictString(interp, v)) }
        add("trim") { interp, v, a in
            .string(pythonStrip(try strictString(interp, v), try a.string(0, "chars"), left: true, right: true))
        }
        add("upper") { interp, v, _ in .string(try strictString(interp, v).uppercased()) }
        add("lower") { interp, v, _ in .string(try strictString(interp, v).lowercased()) }
        add("capitalize") { interp, v, _ in .string(capitalize(try strictString(interp, v))) }
        add("title") { interp, v, _ in
            // jinja2 splits at runs of spaces, '-', '(', '{', '[', '<' and capitalizes each piece.
            let s = try strictString(interp, v)
            var out = "", word = String.UnicodeScalarView(), sep = String.UnicodeScalarView()
            func flushWord() { if !word.isEmpty { out += capitalize(String(word), upperFirst: true); word = String.UnicodeScalarView() } }
            func flushSep() { if !sep.isEmpty { out += String(sep); sep = String.UnicodeScalarView() } }
            for c in s.unicodeScalars {
                if isPythonSpace(c) || "-({[<".unicodeScalars.contains(c) { flushWord(); sep.append(c) } else { flushSep(); word.append(c) }
            }
            flushWord(); flushSep()
            return .string(out)
        }
        add("replace") { interp, v, a in
            guard let old = a.get(0, "old"), let new = a.get(1, "new") else { throw interp.fail(.type, "replace() needs old and new") }
            return .string(pythonReplace(try strictString(interp, v), old.str, new.str, try a.int(2, "count") ?? -1))
        }
        add("default") { _, v, a in
            let def = a.get(0, "default_value") ?? .string("")
            if v.isUndefined || (a.bool(1, "boolean", false) && !v.truthy) { return def }
            return v
        }
        f["d"] = f["default"]
        add("join") { interp, v, a in
            let sep = a.get(0, "d")?.str ?? ""
            var items = try interp.iterate(v)
            if let attr = a.get(1, "attribute") {
                let get = attrGetter(interp, attr)
                var mapped: [Value] = []
                for i in items { mapped.append(try get(i)) }
                items = mapped
            }
            var out = ""
            for (k, i) in items.enumerated() {
                if k > 0 { out += sep }
                out += try strictString(interp, i)
            }
            return .string(out)
        }
        add("first") { interp, v, _ in
            // `next(iter(value))`: a generator gives up one item.
            let first = if case .generator(let g) = v { try g.next() } else { try interp.iterate(v).first }
            return first ?? .undefined(Undefined(hint: "No first item, sequence was empty."))
        }
        add("last") { interp, v, _ in
            // `next(reversed(value))`: dicts and their views reverse, iterators do not.
            if case .generator(let g) = v { throw interp.fail(.type, "'\(g.kind)' object is not reversible") }
            return try interp.iterate(v).last ?? .undefined(Undefined(hint: "No last item, sequence was empty."))
        }
        add("items") { interp, v, _ in
            // A generator in jinja2: even the TypeError waits for the first iteration.
            generator("do_items") { out in
                switch v {
                case .undefined: return
                case .dict(let d): out = d.items.map { .tuple([$0.0, $0.1]) }
                default: throw interp.fail(.type, "Can only get item pairs from a mapping.")
                }
            }
        }
        add("list") { interp, v, _ in .list(try interp.iterate(v)) }
        add("reverse") { interp, v, _ in
            // `reversed(value)` where Python reverses it, else a reversed list.
            func reversed(_ items: [Value], _ kind: String) -> Value { .generator(Generator(kind: kind, items: items.reversed())) }
            switch v {
            case .string(let s): return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed())))
            case .list(let l): return reversed(l, "list_reverseiterator")
            case .tuple(let l): return reversed(l, "reversed")
            case .range(let r): return reversed(r.values, "range_iterator")
            case .bytes(let b): return reversed(b.map { .int(Int($0)) }, "reversed")
            case .dict(let d): return reversed(d.keys, "dict_reversekeyiterator")
            case .iterator(let items, let kind): return reversed(items, "dict_reverse" + kind.dropFirst(5).dropLast() + "iterator")
            case .undefined: return reversed([], "reversed")
            default: return .list(try interp.iterate(v).reversed())
            }
        }
        add("safe") { _, v, _ in .markup(v.str) }
        add("escape") { interp, v, _ in
            if case .markup = v { return v }
            return .markup(htmlEscape(try strictString(interp, v)))
        }
        f["e"] = f["escape"]
        f["forceescape"] = f["escape"]
        add("wordcount") { interp, v, _ in
            var n = 0, inWord = false
            for c in try strictString(interp, v).unicodeScalars {
                let w = c.properties.isAlphabetic || c.properties.numericType != nil || c == "_"
                if w && !inWord { n += 1 }
                inWord = w
            }
            return .int(n)
        }
        add("int") { interp, v, a in
            let def = a.get(0, "default") ?? .int(0)
            let base = try a.int(1, "base") ?? 10
            switch v {
            case .undefined(let u): throw interp.undefinedError(u)  // Undefined.__int__ raises
            case .int, .bool: return .int(v.integer!)
            case .double(let d): return d.isFinite ? .int(Int(d.rounded(.towardZero))) : def
            case .string(let s):
                let t = pythonStrip(s, nil, left: true, right: true).replacingOccurrences(of: "_", with: "")
                if let i = Int(t, radix: base) { return .int(i) }
                if base == 10, let d = Double(t), d.isFinite { return .int(Int(d.rounded(.towardZero))) }
                return def
            default: return def
            }
        }
        add("float") { interp, v, a in
            let def = a.get(0, "default") ?? .double(0)
            switch v {
            case .undefined(let u): throw interp.undefinedError(u)  // Undefined.__float__ raises
            case .int, .bool, .double: return .double(v.number!)
            case .string(let s):
                let t = pythonStrip(s, nil, left: true, right: true).lowercased()
                if let d = Double(t) { return .double(d) }
                if ["inf", "+inf", "infinity"].contains(t) { return .double(.infinity) }
                if ["-inf", "-infinity"].contains(t) { return .double(-.infinity) }
                if t == "nan" { return .double(.nan) }
                return def
            default: return def
            }
        }
        add("abs") { interp, v, _ in
            switch v {
            case .int(let i): return .int(abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return .double(abs(d))
            default: throw interp.fail(.type, "bad operand type for abs(): '\(v.typeName)'")
            }
        }
        add("round") { interp, v, a in
            let precision = try a.int(0, "precision") ?? 0
            let method = try a.string(1, "method") ?? "common"
            guard let x = v.number else { throw interp.fail(.type, "type \(v.typeName) doesn't define __round__ method") }
            let scale = pow(10.0, Double(precision))
            switch method {
            case "common":
                // Python's round of an int (or bool) is an int, to a multiple of 10^-precision.
                if let i = v.integer {
                    guard precision < 0 else { return .int(i) }
                    guard precision > -19 else { return .int(0) }
                    var m = 1
                    for _ in 0 ..< -precision { m *= 10 }
                    var q = i / m, r = i % m
                    if r < 0 { q -= 1; r += m }
                    if 2 * r > m || (2 * r == m && q % 2 != 0) { q += 1 }
                    let (x, o) = q.multipliedReportingOverflow(by: m)
                    return .int(o ? i : x)
                }
                // Python's round: half to even on the decimal value.
                let shifted = x * scale
                var r = shifted.rounded(.toNearestOrEven)
                if abs(shifted - shifted.rounded(.towardZero)) != 0.5 { r = shifted.rounded() }
                return .double(r / scale)
            case "ceil": return .double((x * scale).rounded(.up) / scale)
            case "floor": return .double((x * scale).rounded(.down) / scale)
            default: throw interp.fail(.value, "method must be common, ceil or floor")
            }
        }
        add("indent") { interp, v, a in
            var indention = "    "
            switch a.get(0, "width") {
            case .string(let s)?: indention = s
            case let w? where w.integer != nil:
                try interp.checkWidth(w.integer!, "indent()'s width")
                indention = String(repeating: " ", count: max(0, w.integer!))
            case nil: break
            case let w?: throw interp.fail(.type, "indent(): width must be an integer or a string, not \(w.typeName)")
            }
            let first = a.bool(1, "first", false), blank = a.bool(2, "blank", false)
            // jinja2 does `s += "\n"`: anything but a string raises.
            switch v {
            case .string, .markup: break
            case .undefined(let u): throw interp.undefinedError(u)
            default: throw interp.fail(.type, "unsupported operand type(s) for +=: '\(v.typeName)' and 'str'")
            }
            let s = v.str + "\n"
            var lines = splitLines(s)
            var rv: String
            if blank {
                rv = lines.joined(separator: "\n" + indention)
            } else {
                rv = lines.isEmpty ? "" : lines.removeFirst()
                if !lines.isEmpty { rv += "\n" + lines.map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n") }
            }
            if first { rv = indention + rv }
            return .string(rv)
        }
        add("center") { interp, v, a in
            let s = try strictString(interp, v)
            let width = try a.int(0, "width") ?? 80
            try interp.checkWidth(width, "center()'s width")
            let n = s.unicodeScalars.count
            guard width > n else { return .string(s) }
            let total = width - n
            // Python puts the extra space on the left when the string's length is odd... as str.center does.
            let left = total / 2 + (total & width & 1)
            return .string(String(repeating: " ", count: left) + s + String(repeating: " ", count: total - left))
        }
        add("batch") { interp, v, a in
            guard let linecount = a.get(0, "linecount") else { throw interp.fail(.type, "batch() missing required argument: 'linecount'") }
            let fill = a.get(1, "fill_with")
            // jinja2's loop, lazily: a chunk is yielded when `len(tmp) == linecount`; the last
            // one is filled up to `linecount`.
            return generator("do_batch") { out in
                var tmp: [Value] = []
                for item in try interp.iterate(v) {
                    if interp.equal(.int(tmp.count), linecount) {
                        out.append(.list(tmp))
                        tmp = []
                    }
                    tmp.append(item)
                }
                guard !tmp.isEmpty else { return }
                if let fill, !fill.isNone, try interp.less(.int(tmp.count), linecount) {
                    guard let n = linecount.integer else {
                        throw interp.fail(.type, "can't multiply sequence by non-int of type '\(linecount.typeName)'")
                    }
                    tmp += try interp.repeatList([fill], n - tmp.count)
                }
                out.append(.list(tmp))
            }
        }
        add("dictsort") { interp, v, a in
            guard case .dict(let d) = v else { throw interp.fail(.type, "You can only sort by either \"key\" or \"value\"") }
            let cs = a.bool(0, "case_sensitive", false)
            let by = try a.string(1, "by") ?? "key"
            guard by == "key" || by == "value" else { throw interp.fail(.value, "You can only sort by either \"key\" or \"value\"") }
            let items: [Value] = d.items.map { .tuple([$0.0, $0.1]) }
            return .list(try sortValues(interp, items, key: { (item) throws(JinjaError) -> Value in
                guard case .tuple(let t) = item else { return item }
                return sortKey(by == "key" ? t[0] : t[1], caseSensitive: cs)
            }, reverse: a.bool(2, "reverse", false)))
        }
        add("sort") { interp, v, a in
            let cs = a.bool(1, "case_sensitive", false)
            // jinja2's make_multi_attrgetter: `attribute` may name several paths ("a,b.c"), and the
            // key is the list of their values (so equal items never need `<`).
            let paths: [Value]
            switch a.get(2, "attribute") {
            case .string(let s)?: paths = s.split(separator: ",", omittingEmptySubsequences: false).map { .string(String($0)) }
            case let other?: paths = [other]
            case nil: paths = [.none]
            }
            let getters = paths.map { attrGetter(interp, $0) }
            return .list(try sortValues(interp, try interp.iterate(v), key: { (item) throws(JinjaError) -> Value in
                var key: [Value] = []
                for get in getters { key.append(sortKey(try get(item), caseSensitive: cs)) }
                return .list(key)
            }, reverse: a.bool(0, "reverse", false)))
        }
        add("unique") { interp, v, a in
            let cs = a.bool(0, "case_sensitive", false)
            let attribute = a.get(1, "attribute")
            return generator("sync_do_unique") { out in
                let get = attrGetter(interp, attribute ?? .none)
                var seen: [Value] = []
                for item in try interp.iterate(v) {
                    let key = sortKey(try get(item), caseSensitive: cs)
                    guard isHashable(key) else { throw interp.fail(.type, "unhashable type: '\(key.typeName)'") }
                    if !seen.contains(where: { interp.equal($0, key) }) { seen.append(key); out.append(item) }
                }
            }
        }
        func minMax(_ name: String, _ wantMax: Bool) {
            add(name) { interp, v, a in
                let cs = a.bool(0, "case_sensitive", false)
                let get = a.get(1, "attribute").map { attrGetter(interp, $0) }
                var best: (Value, Value)? = nil
                for item in try interp.iterate(v) {
                    let key = sortKey(try get?(item) ?? item, caseSensitive: cs)
                    if let b = best {
                        if wantMax ? try interp.less(b.0, key) : try interp.less(key, b.0) { best = (key, item) }
                    } else {
                        best = (key, item)
                    }
                }
                return best?.1 ?? .undefined(Undefined(hint: "No aggregated item, sequence was empty."))
            }
        }
        minMax("min", false)
        minMax("max", true)
        add("sum") { interp, v, a in
            var total = a.get(1, "start") ?? .int(0)
            let get = a.get(0, "attribute").map { attrGetter(interp, $0) }
            for item in try interp.iterate(v) { total = try interp.binary("+", total, try get?(item) ?? item) }
            return total
        }
        add("map") { interp, v, a in
            // jinja2's map is a generator that yields nothing for a false value; a filter
            // name is looked up for each item.
            generator("sync_do_map") { out in
                guard v.truthy else { return }
                let items = try interp.iterate(v)
                if a.positional.isEmpty, let attr = a.keywords.first(where: { $0.0 == "attribute" })?.1 {
                    if let other = a.keywords.first(where: { $0.0 != "attribute" && $0.0 != "default" }) {
                        throw interp.fail(.type, "Unexpected keyword argument '\(other.0)'")
                    }
                    let get = attrGetter(interp, attr, default: a.keywords.first { $0.0 == "default" }?.1)
                    for i in items { out.append(try get(i)) }
                    return
                }
                guard let name = a.positional.first else { throw interp.fail(.type, "map requires a filter argument") }
                let rest = Array(a.positional.dropFirst())
                for i in items {
                    guard case .string(let n) = name, let filter = filters[n] else {
                        throw interp.fail(.unknownName, "No filter named \(name.repr).")
                    }
                    out.append(try filter(interp, i, rest, a.keywords))
                }
            }
        }
        func selectReject(_ name: String, select: Bool, attribute: Bool) {
            add(name) { interp, v, a in
                // A generator in jinja2: the arguments are checked when the first item is.
                generator("select_or_reject") { out in
                    guard v.truthy else { return }
                    var p = a.positional
                    var get: ((Value) throws -> Value)? = nil
                    if attribute {
                        guard !p.isEmpty else { throw interp.fail(.type, "Missing parameter for attribute name") }
                        get = attrGetter(interp, p.removeFirst())
                    }
                    let testName = p.isEmpty ? nil : p.removeFirst()
                    let args = p + a.keywords.map(\.1)
                    for item in try interp.iterate(v) {
                        let x = (try get?(item) ?? item).plain
                        var passed = x.truthy
                        if let testName {
                            guard case .string(let tn) = testName, let test = tests[tn] else {
                                throw interp.fail(.unknownName, "No test named \(testName.repr).")
                            }
                            passed = try test(interp, x, args)
                        }
                        if passed == select { out.append(item) }
                    }
                }
            }
        }
        selectReject("select", select: true, attribute: false)
        selectReject("reject", select: false, attribute: false)
        selectReject("selectattr", select: true, attribute: true)
        selectReject("rejectattr", select: false, attribute: true)
        add("groupby") { interp, v, a in
            guard let attribute = a.get(0, "attribute") else { throw interp.fail(.type, "groupby() missing required argument: 'attribute'") }
            let cs = a.bool(2, "case_sensitive", false)
            let get = attrGetter(interp, attribute, default: a.get(1, "default"))
            let key = { (item: Value) throws(JinjaError) -> Value in sortKey(try get(item), caseSensitive: cs) }
            // itertools.groupby over the items sorted by key: runs of equal keys; without
            // case_sensitive the grouper is the first item's value as it is.
            var groups: [(Value, [Value])] = []
            for item in try sortValues(interp, try interp.iterate(v), key: key, reverse: false) {
                let k = try key(item)
                if let last = groups.last, interp.equal(last.0, k) { groups[groups.count - 1].1.append(item) } else { groups.append((k, [item])) }
            }
            var out: [Value] = []
            for (k, items) in groups { out.append(.group(grouper: cs ? k : try get(items[0]), list: items)) }
            return .list(out)
        }
        add("slice") { interp, v, a in
            guard let slices = a.get(0, "slices") else { throw interp.fail(.type, "slice() missing required argument: 'slices'") }
            let fill = a.get(1, "fill_with")
            // jinja2's generator: `slices` lists, the first `len % slices` one item longer, the
            // others filled with `fill_with` when given.
            return generator("sync_do_slice") { out in
                let seq = try interp.iterate(v)
                guard let n = slices.integer else {
                    throw interp.fail(.type, "'\(slices.typeName)' object cannot be interpreted as an integer")
                }
                guard n != 0 else { throw interp.fail(.value, "integer division or modulo by zero") }
                guard n <= interp.options.limits.maxSequenceLength else {
                    throw interp.fail(.limitExceeded, "more than \(interp.options.limits.maxSequenceLength) slices")
                }
                var perSlice = seq.count / n, extra = seq.count % n
                if extra != 0 && (extra < 0) != (n < 0) { perSlice -= 1; extra += n }  // Python's // and %
                var offset = 0
                for k in 0..<max(0, n) {
                    let start = offset + k * perSlice
                    if k < extra { offset += 1 }
                    let end = min(offset + (k + 1) * perSlice, seq.count)
                    var chunk = start < end ? Array(seq[start..<end]) : []
                    if let fill, !fill.isNone, k >= extra { chunk.append(fill) }
                    out.append(.list(chunk))
                }
            }
        }
        add("attr") { interp, v, a in
            guard let name = try a.string(0, "name") else { throw interp.fail(.type, "attr() needs a name") }
            // Python's getattr only: a dict's keys are not attributes.
            if case .dict = v, !name.hasPrefix("_") { return Builtins.method(interp, v, name) ?? .undefined(.attribute(name, of: v)) }
            return try interp.getattr(v, name)
        }
        add("format") { interp, v, a in
            let s = try strictString(interp, v)
            if !a.keywords.isEmpty {
                var d = Dict()
                for (k, x) in a.keywords { d[.string(k)] = x }
                return .string(try percentFormat(interp, s, .dict(d)))
            }
            return .string(try percentFormat(interp, s, .tuple(a.positional)))
        }
        add("truncate") { interp, v, a in
            let length = try a.int(0, "length") ?? 255
            // jinja2 takes `len(s)` first: a sequence that fits is returned as is, one that does
            // not fails on `.rsplit`; something without a length is a TypeError.
            switch v {
            case .string, .markup: break
            case .undefined: return v
            case .list(let x), .tuple(let x):
                if x.count <= length + (try a.int(3, "leeway") ?? 5) { return v }
                throw interp.fail(.type, "'\(v.typeName)' object has no attribute 'rsplit'")
            case .dict(let d):
                if d.count <= length + (try a.int(3, "leeway") ?? 5) { return v }
                throw interp.fail(.type, "'dict' object has no attribute 'rsplit'")
            case .range(let r):
                if r.count <= length + (try a.int(3, "leeway") ?? 5) { return v }
                throw interp.fail(.type, "'range' object has no attribute 'rsplit'")
            default: throw interp.fail(.type, "object of type '\(v.typeName)' has no len()")
            }
            let s = try strictString(interp, v)
            let killwords = a.bool(1, "killwords", false)
            let end = try a.string(2, "end") ?? "..."
            let leeway = try a.int(3, "leeway") ?? 5
            guard length >= end.unicodeScalars.count else {
                throw interp.fail(.value, "expected length >= \(end.unicodeScalars.count), got \(length)")
            }
            let scalars = Array(s.unicodeScalars)
            if scalars.count <= length + leeway { return .string(s) }
            let cut = max(0, length - end.unicodeScalars.count)
            var head = String(String.UnicodeScalarView(scalars[0..<cut]))
            if !killwords, let space = head.lastIndex(of: " ") { head = String(head[..<space]) }
            return .string(head + end)
        }
        add("pprint") { _, v, _ in .string(v.repr) }
        add("striptags") { interp, v, _ in
            var out = "", inTag = false
            for c in try strictString(interp, v) {
                if c == "<" { inTag = true } else if c == ">" { inTag = false } else if !inTag { out.append(c) }
            }
            return .string(out.split(whereSeparator: { $0.isWhitespace }).joined(separator: " "))
        }
        return f
    }()

    /// Python's `str.capitalize`: the first character in titlecase (`ﬁ` is `Fi`), the rest
    /// lowercase; jinja2's `title` filter upper-cases the first instead (`item[0].upper()`).
    static func capitalize(_ s: String, upperFirst: Bool = false) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        let head = upperFirst ? String(first).uppercased() : first.properties.titlecaseMapping
        return head + String(String.UnicodeScalarView(s.unicodeScalars.dropFirst())).lowercased()
    }

    /// Python's `str.replace(old, new, count)`.
    static func pythonReplace(_ s: String, _ old: String, _ new: String, _ count: Int) -> String {
        if old.isEmpty {
            var out = "", n = 0
            for c in s.unicodeScalars {
                if count < 0 || n < count { out += new; n += 1 }
                out.unicodeScalars.append(c)
            }
            if count < 0 || n < count { out += new }
            return out
        }
        let src = Array(s.unicodeScalars), pat = Array(old.unicodeScalars)
        var out = String.UnicodeScalarView(), i = 0, n = 0
        while i < src.count {
            if (count < 0 || n < count), i + pat.count <= src.count, Array(src[i..<i + pat.count]) == pat {
                out.append(contentsOf: new.unicodeScalars)
                i += pat.count
                n += 1
            } else {
                out.append(src[i])
                i += 1
            }
        }
        return String(out)
    }

    /// Python's `%` formatting of a string: `%s`, `%r`, `%d`, `%i`, `%f`, `%x`, `%%`, `%(name)s`.
    static func percentFormat(_ interp: Interpreter, _ format: String, _ args: Value) throws(JinjaError) -> String {
        var positional: [Value]
        var mapping: Dict? = nil
        // Python leaves unused arguments alone when they are one object with `__getitem__`
        // (not a tuple or string): a list, a range, Undefined...
        var subscriptable = false
        switch args {
        case .tuple(let t): positional = t
        case .group: positional = Array(try interp.iterate(args))
        case .dict(let d): positional = [args]; mapping = d
        case .list, .range, .bytes, .undefined: positional = [args]; subscriptable = true
        default: positional = [args]
        }
        var out = ""
        let chars = Array(format.unicodeScalars)
        var i = 0, next = 0
        while i < chars.count {
            let c = chars[i]
            guard c == "%" else { out.unicodeScalars.append(c); i += 1; continue }
            i += 1
            guard i < chars.count else { throw interp.fail(.value, "incomplete format") }
            var value: Value? = nil
            if chars[i] == "(" {
                var name = ""
                i += 1
                while i < chars.count, chars[i] != ")" { name.unicodeScalars.append(chars[i]); i += 1 }
                i += 1
                guard let mapping else { throw interp.fail(.type, "format requires a mapping") }
                guard let v = mapping[.string(name)] else { throw interp.fail(.value, "format key '\(name)' not found") }
                value = v
            }
            var flags = ""
            while i < chars.count, "-+ 0#".unicodeScalars.contains(chars[i]) { flags.unicodeScalars.append(chars[i]); i += 1 }
            var width = ""
            while i < chars.count, ("0"..."9").contains(chars[i]) { width.unicodeScalars.append(chars[i]); i += 1 }
            var precision: Int? = nil
            if i < chars.count, chars[i] == "." {
                i += 1
                var p = ""
                while i < chars.count, ("0"..."9").contains(chars[i]) { p.unicodeScalars.append(chars[i]); i += 1 }
                precision = Int(p) ?? 0
            }
            guard i < chars.count else { throw interp.fail(.value, "incomplete format") }
            try interp.checkWidth(Int(width) ?? (width.isEmpty ? 0 : .max), "a % format's width")
            try interp.checkWidth(precision ?? 0, "a % format's precision")
            let conv = chars[i]
            i += 1
            if conv == "%" { out += "%"; continue }
            if value == nil {
                guard next < positional.count else { throw interp.fail(.type, "not enough arguments for format string") }
                value = positional[next]
                next += 1
            }
            let v = value!
            var piece: String
            switch conv {
            case "s": piece = v.str
            case "r", "a": piece = v.repr
            case "d", "i", "u":
                guard let x = v.number else { throw interp.fail(.type, "%\(conv) format: a number is required, not \(v.typeName)") }
                piece = String(Int(x.rounded(.towardZero)))
            case "f", "F":
                guard let x = v.number else { throw interp.fail(.type, "must be real number, not \(v.typeName)") }
                piece = String(format: "%.\(precision ?? 6)f", x)
            case "x", "X", "o":
                guard let x = v.integer else { throw interp.fail(.type, "%\(conv) format: an integer is required") }
                piece = String(x, radix: conv == "o" ? 8 : 16, uppercase: conv == "X")
            default:
                throw interp.fail(.value, "unsupported format character '\(conv)'")
            }
            if let w = Int(width), piece.count < w {
                let padding = String(repeating: flags.contains("0") && !flags.contains("-") ? "0" : " ", count: w - piece.count)
                piece = flags.contains("-") ? piece + padding : padding + piece
            }
            out += piece
        }
        if mapping == nil, !subscriptable, next < positional.count {
            throw interp.fail(.type, "not all arguments converted during string formatting")
        }
        return out
    }
}
