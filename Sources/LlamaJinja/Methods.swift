import Foundation

/// Methods of strings, dicts and lists that templates call, as Python defines them. Methods
/// that change a list or dict are refused, as in transformers' immutable sandbox.
extension Builtins {
    static let unsafeListMethods: Set<String> = ["append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"]
    static let unsafeDictMethods: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]

    static func method(_ interp: Interpreter, _ receiver: Value, _ name: String) -> Value? {
        let body: ((Interpreter, Args) throws -> Value)?
        switch receiver {
        case .string(let s): body = stringMethod(s, name)
        case .dict(let d):
            if unsafeDictMethods.contains(name) {
                return .undefined(Undefined(security: "access to attribute '\(name)' of 'dict' object is unsafe."))
            }
            body = dictMethod(d, name)
        case .list(let l):
            if unsafeListMethods.contains(name) {
                return .undefined(Undefined(security: "access to attribute '\(name)' of 'list' object is unsafe."))
            }
            body = name == "copy" ? { _, _ in .list(l) } : sequenceMethod(l, name)
        case .tuple(let l): body = sequenceMethod(l, name)
        case .range(let r): body = sequenceMethod(r.values, name)
        case .bytes(let b) where name == "decode": body = { interp, _ in
            guard let s = String(validating: b, as: UTF8.self) else { throw interp.fail(.value, "'utf-8' codec can't decode the bytes") }
            return .string(s)
        }
        default: body = nil
        }
        guard let body else { return nil }
        return .callable(Callable(name: name, owner: receiver.typeName, kind: .builtin { interp, p, k in
            try body(interp, Args(positional: p, keywords: k, fn: name, interp: interp))
        }))
    }

    static func dictMethod(_ d: Dict, _ name: String) -> ((Interpreter, Args) throws -> Value)? {
        switch name {
        case "get": return { interp, a in
            guard let key = a.get(0, "key") else { throw interp.fail(.type, "get expected at least 1 argument, got 0") }
            return d[key] ?? a.get(1, "default") ?? .none
        }
        case "items": return { _, _ in .iterator(d.items.map { .tuple([$0.0, $0.1]) }, kind: "dict_items") }
        case "keys": return { _, _ in .iterator(d.keys, kind: "dict_keys") }
        case "values": return { _, _ in .iterator(d.allValues, kind: "dict_values") }
        case "copy": return { _, _ in .dict(d) }
        default: return nil
        }
    }

    /// The methods of every sequence (list, tuple, range): `count` and `index`.
    static func sequenceMethod(_ l: [Value], _ name: String) -> ((Interpreter, Args) throws -> Value)? {
        switch name {
        case "count": return { interp, a in
            guard let x = a.get(0, "value") else { throw interp.fail(.type, "count() takes exactly one argument") }
            return .int(l.filter { interp.equal($0, x) }.count)
        }
        case "index": return { interp, a in
            guard let x = a.get(0, "value") else { throw interp.fail(.type, "index() takes at least 1 argument") }
            guard let i = l.firstIndex(where: { interp.equal($0, x) }) else { throw interp.fail(.value, "\(x.repr) is not in list") }
            return .int(i)
        }
        default: return nil
        }
    }

    static func pythonSplit(_ s: String, _ sep: String?, _ maxsplit: Int, fromRight: Bool) -> [String] {
        let scalars = Array(s.unicodeScalars)
        func str(_ a: ArraySlice<Unicode.Scalar>) -> String { String(String.UnicodeScalarView(a)) }
        if let sep {
            let pat = Array(sep.unicodeScalars)
            var parts: [String] = []
            if !fromRight {
                var start = 0, i = 0
                while i + pat.count <= scalars.count, maxsplit < 0 || parts.count < maxsplit {
                    if Array(scalars[i..<i + pat.count]) == pat {
                        parts.append(str(scalars[start..<i]))
                        i += pat.count
                        start = i
                    } else { i += 1 }
                }
                parts.append(str(scalars[start...]))
                return parts
            }
            var end = scalars.count, i = scalars.count - pat.count
            while i >= 0, maxsplit < 0 || parts.count < maxsplit {
                if Array(scalars[i..<i + pat.count]) == pat {
                    parts.append(str(scalars[(i + pat.count)..<end]))
                    end = i
                    i -= pat.count
                } else { i -= 1 }
            }
            parts.append(str(scalars[0..<end]))
            return parts.reversed()
        }
        // Runs of whitespace, no empty strings.
        var words: [(Int, Int)] = []
        var i = 0
        while i < scalars.count {
            while i < scalars.count, isPythonSpace(scalars[i]) { i += 1 }
            if i >= scalars.count { break }
            let st = i
            while i < scalars.count, !isPythonSpace(scalars[i]) { i += 1 }
            words.append((st, i))
        }
        guard maxsplit >= 0, words.count > maxsplit + 0, maxsplit < words.count else {
            return words.map { str(scalars[$0.0..<$0.1]) }
        }
        if fromRight {
            let tail = words.suffix(maxsplit)
            let headEnd = words[words.count - maxsplit - 1].1
            var head = scalars[0..<headEnd]
            while let f = head.first, isPythonSpace(f) { head = head.dropFirst() }
            return [str(head)] + tail.map { str(scalars[$0.0..<$0.1]) }
        }
        let headWords = words.prefix(maxsplit)
        var rest = scalars[words[maxsplit].0...]
        while let l = rest.last, isPythonSpace(l) { rest = rest.dropLast() }
        return headWords.map { str(scalars[$0.0..<$0.1]) } + [str(rest)]
    }

    static func stringMethod(_ s: String, _ name: String) -> ((Interpreter, Args) throws -> Value)? {
        func affix(_ prefix: Bool) -> (Interpreter, Args) throws -> Value {
            { interp, a in
                guard let arg = a.get(0, prefix ? "prefix" : "suffix") else { throw interp.fail(.type, "\(name)() takes at least 1 argument") }
                var candidates: [String] = []
                switch arg {
                case .string(let x): candidates = [x]
                case .tuple(let t):
                    for x in t {
                        guard case .string(let y) = x else { throw interp.fail(.type, "tuple for \(name) must only contain str") }
                        candidates.append(y)
                    }
                default: throw interp.fail(.type, "\(name) first arg must be str or a tuple of str, not \(arg.typeName)")
                }
                var scalars = Array(s.unicodeScalars)[...]
                if let st = try a.int(1, "start") { scalars = scalars.dropFirst(st < 0 ? max(0, scalars.count + st) : st) }
                let sub = Array(scalars)
                return .bool(candidates.contains { c in
                    let cs = Array(c.unicodeScalars)
                    return prefix ? sub.starts(with: cs) : (sub.count >= cs.count && Array(sub.suffix(cs.count)) == cs)
                })
            }
        }
        func strip(_ l: Bool, _ r: Bool) -> (Interpreter, Args) throws -> Value {
            { _, a in .string(pythonStrip(s, try a.string(0, "chars"), left: l, right: r)) }
        }
        func predicate(_ p: @escaping (String) -> Bool) -> (Interpreter, Args) throws -> Value {
            { _, _ in .bool(p(s)) }
        }
        switch name {
        case "strip": return strip(true, true)
        case "lstrip": return strip(true, false)
        case "rstrip": return strip(false, true)
        case "split", "rsplit": return { interp, a in
            let sep = try a.string(0, "sep")
            if sep == "" { throw interp.fail(.value, "empty separator") }
            return .list(pythonSplit(s, sep, try a.int(1, "maxsplit") ?? -1, fromRight: name == "rsplit").map(Value.string))
        }
        case "splitlines": return { _, a in .list(splitLines(s, keepEnds: a.bool(0, "keepends", false)).map(Value.string)) }
        case "startswith": return affix(true)
        case "endswith": return affix(false)
        case "replace": return { interp, a in
            guard let old = try a.string(0, "old"), let new = try a.string(1, "new") else { throw interp.fail(.type, "replace() takes at least 2 arguments") }
            return .string(pythonReplace(s, old, new, try a.int(2, "count") ?? -1))
        }
        case "upper": return { _, _ in .string(s.uppercased()) }
        case "lower": return { _, _ in .string(s.lowercased()) }
        case "casefold": return { _, _ in .string(s.lowercased()) }
        case "capitalize": return { _, _ in .string(capitalize(s)) }
        case "swapcase": return { _, _ in
            .string(String(s.unicodeScalars.map { c -> String in
                c.properties.isUppercase ? String(c).lowercased() : c.properties.isLowercase ? String(c).uppercased() : String(c)
            }.joined()))
        }
        case "title": return { _, _ in
            var out = "", prevCased = false
            for c in s.unicodeScalars {
                let cased = c.properties.isCased
                out += prevCased ? String(c).lowercased() : c.properties.titlecaseMapping
                prevCased = cased
            }
            return .string(out)
        }
        case "format": return { interp, a in .string(try formatMethod(interp, s, a)) }
        case "join": return { interp, a in
            guard let seq = a.get(0, "iterable") else { throw interp.fail(.type, "join() takes exactly one argument") }
            var parts: [String] = []
            for x in try interp.iterate(seq) {
                guard case .string(let y) = x else { throw interp.fail(.type, "sequence item \(parts.count): expected str instance, \(x.typeName) found") }
                parts.append(y)
            }
            return .string(parts.joined(separator: s))
        }
        case "find", "rfind", "index", "rindex": return { interp, a in
            guard let sub = try a.string(0, "sub") else { throw interp.fail(.type, "\(name)() takes at least 1 argument") }
            let hay = Array(s.unicodeScalars), needle = Array(sub.unicodeScalars)
            var found = -1
            if needle.count <= hay.count {
                let range = Array(0...(hay.count - needle.count))
                for i in (name.hasPrefix("r") ? range.reversed() : range) where Array(hay[i..<i + needle.count]) == needle { found = i; break }
            }
            if found < 0, name.hasSuffix("index") { throw interp.fail(.value, "substring not found") }
            return .int(found)
        }
        case "count": return { interp, a in
            guard let sub = try a.string(0, "sub") else { throw interp.fail(.type, "count() takes at least 1 argument") }
            if sub.isEmpty { return .int(s.unicodeScalars.count + 1) }
            return .int(pythonSplit(s, sub, -1, fromRight: false).count - 1)
        }
        case "isdigit", "isnumeric", "isdecimal":
            return predicate { !$0.isEmpty && $0.unicodeScalars.allSatisfy { $0.properties.numericType != nil } }
        case "isalpha": return predicate { !$0.isEmpty && $0.unicodeScalars.allSatisfy { $0.properties.isAlphabetic } }
        case "isalnum": return predicate { !$0.isEmpty && $0.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil } }
        case "isspace": return predicate { !$0.isEmpty && $0.unicodeScalars.allSatisfy(isPythonSpace) }
        case "isupper": return predicate { $0.unicodeScalars.contains { $0.properties.isCased } && $0 == $0.uppercased() }
        case "islower": return predicate { $0.unicodeScalars.contains { $0.properties.isCased } && $0 == $0.lowercased() }
        case "istitle": return predicate { s in
            // Upper- and titlecase only after uncased characters, lowercase only after cased.
            var cased = false, previousCased = false
            for c in s.unicodeScalars {
                if c.properties.isUppercase || c.properties.generalCategory == .titlecaseLetter {
                    if previousCased { return false }
                    previousCased = true
                    cased = true
                } else if c.properties.isLowercase {
                    if !previousCased { return false }
                    previousCased = true
                    cased = true
                } else {
                    previousCased = false
                }
            }
            return cased
        }
        case "encode": return { interp, a in
            let encoding = (try a.string(0, "encoding") ?? "utf-8").lowercased().replacingOccurrences(of: "_", with: "-")
            switch encoding {
            case "utf-8", "utf8": return .bytes(Array(s.utf8))
            case "ascii", "us-ascii":
                guard let bad = s.unicodeScalars.firstIndex(where: { !$0.isASCII }) else { return .bytes(Array(s.utf8)) }
                throw interp.fail(.value, "'ascii' codec can't encode character \(Value.string(String(s.unicodeScalars[bad])).repr)")
            default: throw interp.fail(.value, "encode(): only utf-8 and ascii are supported, not '\(encoding)'")
            }
        }
        case "center", "ljust", "rjust": return { interp, a in
            guard let width = try a.int(0, "width") else { throw interp.fail(.type, "\(name)() takes at least 1 argument") }
            let fill = try a.string(1, "fillchar") ?? " "
            let n = s.unicodeScalars.count
            guard width > n else { return .string(s) }
            let total = width - n
            let left = name == "ljust" ? 0 : name == "rjust" ? total : total / 2 + (total & width & 1)
            return .string(String(repeating: fill, count: left) + s + String(repeating: fill, count: total - left))
        }
        case "zfill": return { interp, a in
            guard let width = try a.int(0, "width") else { throw interp.fail(.type, "zfill() takes exactly one argument") }
            var scalars = Array(s.unicodeScalars)
            guard width > scalars.count else { return .string(s) }
            var sign: [Unicode.Scalar] = []
            if let f = scalars.first, f == "+" || f == "-" { sign = [f]; scalars.removeFirst() }
            let zeros = Array(repeating: Unicode.Scalar("0"), count: width - scalars.count - sign.count)
            return .string(String(String.UnicodeScalarView(sign + zeros + scalars)))
        }
        case "partition", "rpartition": return { interp, a in
            guard let sep = try a.string(0, "sep"), !sep.isEmpty else { throw interp.fail(.value, "empty separator") }
            let parts = pythonSplit(s, sep, 1, fromRight: name == "rpartition")
            if parts.count == 2 { return .tuple([.string(parts[0]), .string(sep), .string(parts[1])]) }
            return name == "partition" ? .tuple([.string(s), .string(""), .string("")]) : .tuple([.string(""), .string(""), .string(s)])
        }
        default: return nil
        }
    }

    /// Python's `str.format`: `{}`, `{0}`, `{name}`, `{x.attr}`, `{x[key]}`, `!r`/`!s`, and
    /// format specs with fill, alignment, sign, width and precision.
    static func formatMethod(_ interp: Interpreter, _ format: String, _ a: Args) throws(JinjaError) -> String {
        var out = ""
        let chars = Array(format.unicodeScalars)
        var i = 0, auto = 0
        while i < chars.count {
            let c = chars[i]
            if c == "{" {
                if i + 1 < chars.count, chars[i + 1] == "{" { out += "{"; i += 2; continue }
                var field = String.UnicodeScalarView()
                var depth = 1
                i += 1
                while i < chars.count {
                    if chars[i] == "{" { depth += 1 }
                    if chars[i] == "}" { depth -= 1; if depth == 0 { break } }
                    field.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw interp.fail(.value, "Single '{' encountered in format string") }
                i += 1
                var text = String(field), spec = "", conversion: Character? = nil
                if let colon = text.firstIndex(of: ":") { spec = String(text[text.index(after: colon)...]); text = String(text[..<colon]) }
                if let bang = text.firstIndex(of: "!") {
                    conversion = text[text.index(after: bang)...].first
                    text = String(text[..<bang])
                }
                // field name: first part, then .attr / [key]
                var head = "", rest = Substring("")
                if let idx = text.firstIndex(where: { $0 == "." || $0 == "[" }) { head = String(text[..<idx]); rest = text[idx...] } else { head = text }
                var value: Value
                if head.isEmpty {
                    guard auto < a.positional.count else { throw interp.fail(.value, "Replacement index \(auto) out of range for positional args tuple") }
                    value = a.positional[auto]
                    auto += 1
                } else if let n = Int(head) {
                    guard n < a.positional.count else { throw interp.fail(.value, "Replacement index \(n) out of range for positional args tuple") }
                    value = a.positional[n]
                } else {
                    guard let v = a.keywords.first(where: { $0.0 == head })?.1 else { throw interp.fail(.value, "format: no argument named '\(head)'") }
                    value = v
                }
                while !rest.isEmpty {
                    if rest.first == "." {
                        rest = rest.dropFirst()
                        let name = rest.prefix { $0 != "." && $0 != "[" }
                        rest = rest.dropFirst(name.count)
                        value = try interp.getattr(value, String(name))
                    } else {
                        rest = rest.dropFirst()
                        let key = rest.prefix { $0 != "]" }
                        rest = rest.dropFirst(key.count + 1)
                        value = try interp.getitem(value, Int(key).map(Value.int) ?? .string(String(key)))
                    }
                }
                if conversion == "r" { value = .string(value.repr) } else if conversion == "s" { value = .string(value.str) }
                out += try formatSpec(interp, value, spec)
            } else if c == "}" {
                guard i + 1 < chars.count, chars[i + 1] == "}" else { throw interp.fail(.value, "Single '}' encountered in format string") }
                out += "}"
                i += 2
            } else {
                out.unicodeScalars.append(c)
                i += 1
            }
        }
        return out
    }

    static func formatSpec(_ interp: Interpreter, _ v: Value, _ spec: String) throws(JinjaError) -> String {
        if spec.isEmpty { return v.str }
        var s = Array(spec)
        var fill: Character = " ", align: Character? = nil
        if s.count >= 2, "<>^=".contains(s[1]) { fill = s[0]; align = s[1]; s.removeFirst(2) } else if let f = s.first, "<>^=".contains(f) { align = f; s.removeFirst() }
        var sign: Character? = nil
        if let f = s.first, "+- ".contains(f) { sign = f; s.removeFirst() }
        if s.first == "0" { if align == nil { fill = "0"; align = "=" }; s.removeFirst() }
        var width = 0
        while let f = s.first, f.isNumber { width = width * 10 + f.wholeNumberValue!; s.removeFirst() }
        if s.first == "," || s.first == "_" { s.removeFirst() }
        var precision: Int? = nil
        if s.first == "." {
            s.removeFirst()
            var p = 0
            while let f = s.first, f.isNumber { p = p * 10 + f.wholeNumberValue!; s.removeFirst() }
            precision = p
        }
        let type = s.first
        var body: String
        switch type {
        case "d"?:
            guard let x = v.integer else { throw interp.fail(.value, "Unknown format code 'd' for object of type '\(v.typeName)'") }
            body = String(x)
        case "f"?, "F"?:
            guard let x = v.number else { throw interp.fail(.value, "Unknown format code 'f' for object of type '\(v.typeName)'") }
            body = String(format: "%.\(precision ?? 6)f", x)
        case "e"?:
            guard let x = v.number else { throw interp.fail(.value, "Unknown format code 'e' for object of type '\(v.typeName)'") }
            body = String(format: "%.\(precision ?? 6)e", x)
        case "%"?:
            guard let x = v.number else { throw interp.fail(.value, "Unknown format code '%' for object of type '\(v.typeName)'") }
            body = String(format: "%.\(precision ?? 6)f", x * 100) + "%"
        case "s"?, nil:
            body = v.str
            if let precision, type == "s" || v.number == nil { body = String(body.prefix(precision)) }
        default:
            throw interp.fail(.value, "unsupported format spec '\(spec)'")
        }
        if let sign, v.number != nil, !body.hasPrefix("-"), sign != "-" { body = String(sign == "+" ? "+" : " ") + body }
        let n = body.unicodeScalars.count
        guard width > n else { return body }
        let pad = width - n
        let defaultAlign: Character = v.number != nil && !({ if case .string = v { return true }; return false }()) ? ">" : "<"
        switch align ?? defaultAlign {
        case "<": return body + String(repeating: fill, count: pad)
        case "^": return String(repeating: fill, count: pad / 2) + body + String(repeating: fill, count: pad - pad / 2)
        case "=":
            if let f = body.first, f == "-" || f == "+" { return String(f) + String(repeating: fill, count: pad) + body.dropFirst() }
            return String(repeating: fill, count: pad) + body
        default: return String(repeating: fill, count: pad) + body
        }
    }
}
