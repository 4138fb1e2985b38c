import Foundation

/// A value while rendering, with Python's behaviour: how it prints, compares, and is true.
enum Value {
    case undefined(Undefined)
    case none
    case bool(Bool)
    case int(Int)
    /// An integer beyond 64 bits, as its digits: it prints and serializes exactly; arithmetic
    /// treats it as a float.
    case bigInt(String)
    case double(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(Dict)
    case namespace(Namespace)
    case callable(Callable)
    case loop(LoopContext)
    /// A string marked safe (`|safe`, `|escape`): jinja2's `Markup`, which escapes plain
    /// strings added to it.
    case markup(String)
    /// A dict view (`dict_keys`, `dict_values`, `dict_items`): iterable any number of times.
    case iterator([Value], kind: String)
    /// A single-pass iterator: what jinja2's lazy filters (`map`, `select`, `batch`, `items`...)
    /// and `reverse` return.
    case generator(Generator)
    /// Python's `bytes` (what `str.encode()` returns).
    case bytes([UInt8])
    /// Python's `range(start, stop, step)`: a sequence of integers that prints as `range(0, 3)`.
    case range(PyRange)
    /// The `(grouper, list)` pairs of `groupby`: a tuple with the attributes `grouper` and `list`.
    indirect case group(grouper: Value, list: [Value])

    nonisolated(unsafe) static let undefinedValue = Value.undefined(Undefined())
    /// Where Python's repr of an object shows its memory address, which nothing but that
    /// process can reproduce: a placeholder of the usual length, so that the text around it
    /// (its length, its case, its escaping) is as jinja2's.
    static let placeholderAddress = "0x000000000000"

    init(_ json: JSONValue) {
        switch json {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .bigInteger(let digits): self = .bigInt(digits)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map(Value.init))
        case .object(let o):
            var d = Dict()
            for (k, v) in o { d[.string(k)] = Value(v) }
            self = .dict(d)
        }
    }

    /// Markup as the plain string it is (a `str` subclass in Python), a `groupby` pair as the
    /// tuple it is.
    var plain: Value {
        switch self {
        case .markup(let s): return .string(s)
        case .group(let g, let l): return .tuple([g, .list(l)])
        default: return self
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }
    var isNone: Bool { if case .none = self { return true }; return false }

    /// Python's truth value.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .bigInt: return true
        case .double(let d): return d != 0
        case .string(let s), .markup(let s): return !s.isEmpty
        case .iterator(let items, _): return !items.isEmpty
        case .generator, .group: return true
        case .range(let r): return r.count > 0
        case .bytes(let b): return !b.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return d.count > 0
        case .namespace, .callable, .loop: return true
        }
    }

    /// The name Python gives the type, for messages (`'dict object' has no attribute ...`).
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .double: return "float"
        case .string: return "str"
        case .markup: return "Markup"
        case .iterator(_, let kind): return kind
        case .generator(let g): return g.kind
        case .range: return "range"
        case .bytes: return "bytes"
        case .group: return "_GroupTuple"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .callable(let c): return c.typeName
        case .loop: return "LoopContext"
        }
    }

    /// Python's `str()`.
    var str: String {
        switch self {
        case .undefined: return ""
        case .string(let s), .markup(let s): return s
        default: return repr
        }
    }

    /// Python's `repr()`.
    var repr: String {
        var out = ""
        writeRepr(into: &out)
        return out
    }

    /// The render's bound on any one text made from a value (the output limit). A value can hold
    /// the same list many times over (`[v, v]` nested 40 deep is 2^40 items), so a text is cut
    /// where it passes the bound and the budget marks the render, which then stops with
    /// `.limitExceeded`: no cut text reaches a result.
    final class TextBudget: @unchecked Sendable {
        let limit: Int
        /// What one value costs when converted to JSON: the output limit over the sequence limit,
        /// so that a conversion also stays within the sequence limit's count of values.
        let valueCost: Int
        var exceeded = false
        init(limit: Int, values: Int) {
            self.limit = limit
            valueCost = max(1, limit / max(1, values))
        }
    }

    @TaskLocal static var textBudget: TextBudget?

    func writeRepr(into out: inout String) {
        guard let budget = Value.textBudget else {
            _ = writeRepr(into: &out, limit: .max)
            return
        }
        if !writeRepr(into: &out, limit: budget.limit) { budget.exceeded = true }
    }

    /// False when the text passed `limit` and was cut there.
    private func writeRepr(into out: inout String, limit: Int) -> Bool {
        if out.utf8.count > limit { return false }
        switch self {
        case .undefined: out += "Undefined"  // jinja2's Undefined.__repr__, inside containers
        case .none: out += "None"
        case .bool(let b): out += b ? "True" : "False"
        case .int(let i): out += String(i)
        case .bigInt(let digits): out += digits
        case .double(let d): out += JSONWriter.pythonFloat(d)
        case .string(let s): Value.pythonQuote(s, into: &out)
        case .list(let items):
            out += "["
            for (k, v) in items.enumerated() {
                if k > 0 { out += ", " }
                guard v.writeRepr(into: &out, limit: limit) else { return false }
            }
            out += "]"
        case .tuple(let items):
            out += "("
            for (k, v) in items.enumerated() {
                if k > 0 { out += ", " }
                guard v.writeRepr(into: &out, limit: limit) else { return false }
            }
            if items.count == 1 { out += "," }
            out += ")"
        case .dict(let d):
            out += "{"
            for (k, (key, v)) in d.enumerated() {
                if k > 0 { out += ", " }
                guard key.writeRepr(into: &out, limit: limit) else { return false }
                out += ": "
                guard v.writeRepr(into: &out, limit: limit) else { return false }
            }
            out += "}"
        case .namespace(let ns):
            out += "<Namespace "
            guard Value.dict(ns.attributes).writeRepr(into: &out, limit: limit) else { return false }
            out += ">"
        case .callable(let c): out += c.reprText
        case .loop(let l): out += "<LoopContext \(l.index0 + 1)/\(l.length)>"
        case .markup(let s): out += "Markup("; Value.pythonQuote(s, into: &out); out += ")"
        case .iterator(let items, let kind):
            out += kind + "("
            guard Value.list(items).writeRepr(into: &out, limit: limit) else { return false }
            out += ")"
        case .generator(let g):
            out += "<\(g.kind) object"
            if let f = g.function { out += " " + f }
            out += " at \(Value.placeholderAddress)>"
        case .range(let r):
            out += "range(\(r.start), \(r.stop)"
            if r.step != 1 { out += ", \(r.step)" }
            out += ")"
        case .group: return plain.writeRepr(into: &out, limit: limit)
        case .bytes(let b): Value.pythonBytes(b, into: &out)
        }
        return out.utf8.count <= limit
    }

    /// A string as Python's `repr` quotes it.
    static func pythonQuote(_ s: String, into out: inout String) {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        out.append(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(scalar) == quote {
                    out += "\\"
                    out.unicodeScalars.append(scalar)
                } else if Value.isPrintable(scalar) {
                    out.unicodeScalars.append(scalar)
                } else {
                    let v = scalar.value
                    let hex = String(v, radix: 16)
                    if v < 0x100 { out += "\\x" + String(repeating: "0", count: 2 - hex.count) + hex }
                    else if v < 0x10000 { out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex }
                    else { out += "\\U" + String(repeating: "0", count: 8 - hex.count) + hex }
                }
            }
        }
        out.append(quote)
    }

    /// Bytes as Python's `repr` writes them: `b'...'`, printable ASCII as is, the rest escaped.
    static func pythonBytes(_ bytes: [UInt8], into out: inout String) {
        let quote: UInt8 = bytes.contains(0x27) && !bytes.contains(0x22) ? 0x22 : 0x27
        out += "b"
        out.unicodeScalars.append(Unicode.Scalar(quote))
        for c in bytes {
            switch c {
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case quote: out += "\\"; out.unicodeScalars.append(Unicode.Scalar(c))
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(c))
            default:
                let hex = String(c, radix: 16)
                out += "\\x" + (hex.count < 2 ? "0" : "") + hex
            }
        }
        out.unicodeScalars.append(Unicode.Scalar(quote))
    }

    /// Python's `str.isprintable` for one character.
    static func isPrintable(_ s: Unicode.Scalar) -> Bool {
        if s == " " { return true }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// The value as JSON, for `tojson`; nil when Python's `json.dumps` would refuse it.
    /// The JSON value, or nil when a value is not JSON serializable. Under a render's text budget,
    /// a value that expands past the output limit (shared lists nested deep) stops early and
    /// marks the budget (the result is then not used).
    func json() -> JSONValue? {
        guard let budget = Value.textBudget else { var unlimited = Int.max; return json(budget: &unlimited, cost: 0) }
        var left = budget.limit
        let result = json(budget: &left, cost: budget.valueCost)
        if left < 0 { budget.exceeded = true }
        return result
    }

    /// `budget`: what is left; each value costs `cost`, a string its bytes too.
    private func json(budget: inout Int, cost: Int) -> JSONValue? {
        budget -= cost
        if budget < 0 { return .null }
        switch self {
        case .none: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .bigInt(let digits): return .bigInteger(digits)
        case .double(let d): return .double(d)
        case .string(let s), .markup(let s):
            budget -= s.utf8.count
            return .string(s)
        case .group: return plain.json(budget: &budget, cost: cost)
        case .list(let a), .tuple(let a):
            var out: [JSONValue] = []
            for v in a {
                guard let j = v.json(budget: &budget, cost: cost) else { return nil }
                if budget < 0 { return .null }
                out.append(j)
            }
            return .array(out)
        case .dict(let d):
            var o = JSONObject()
            for (k, v) in d {
                let key: String
                switch k {
                case .string(let s): key = s
                case .int(let i): key = String(i)
                case .double(let x): key = JSONWriter.pythonFloat(x, json: true)
                case .bool(let b): key = b ? "true" : "false"
                case .none: key = "null"
                default: return nil
                }
                guard let j = v.json(budget: &budget, cost: cost) else { return nil }
                if budget < 0 { return .null }
                o[key] = j
            }
            return .object(o)
        default: return nil
        }
    }

    /// The number as a Double, for arithmetic (bools count as 0 and 1, as in Python).
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .bigInt(let digits): return Double(digits)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// The value as an Int when it is an int or bool.
    var integer: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
}

/// jinja2's default `Undefined`: prints as nothing, is false, iterates as empty, and raises
/// when used otherwise.
struct Undefined {
    /// Why it is undefined, for the message when it is used.
    var hint: String? = nil
    /// Set when the sandbox refused an attribute: using it raises a security error.
    var security: String? = nil

    var message: String { security ?? hint ?? "value is undefined" }

    static func named(_ name: String) -> Undefined { Undefined(hint: "'\(name)' is undefined") }
    static func attribute(_ name: String, of value: Value) -> Undefined {
        if case .none = value { return Undefined(hint: "'None' has no attribute '\(name)'") }
        return Undefined(hint: "'\(value.typeName) object' has no attribute '\(name)'")
    }
    static func item(_ key: Value, of value: Value) -> Undefined {
        Undefined(hint: "'\(value.typeName) object' has no attribute \(key.repr)")
    }
}

/// A Python dict: keys in insertion order.
struct Dict: Sequence {
    /// Python identity (`is sameas`): copies of one dict share it; the sandbox forbids changing
    /// a dict in place, so a copy is as good as a reference.
    final class Identity {}
    var identity = Identity()
    private(set) var keys: [Value] = []
    private var values: [Value] = []
    private var index: [HashKey: Int] = [:]

    /// Python hashes 1, 1.0 and True alike.
    enum HashKey: Hashable {
        case none, number(Double), string(String), tuple([HashKey]), other(ObjectIdentifier)
        /// Equal ranges hash alike: by length, first item and step.
        case range(Int, Int, Int)
        case bytes([UInt8])
    }

    static func hashKey(_ v: Value) -> HashKey? {
        switch v {
        case .none: return HashKey.none
        case .bool(let b): return .number(b ? 1 : 0)
        case .int(let i): return .number(Double(i))
        case .double(let d): return .number(d)
        case .string(let s): return .string(s)
        case .tuple(let t):
            var keys: [HashKey] = []
            for x in t { guard let k = hashKey(x) else { return nil }; keys.append(k) }
            return .tuple(keys)
        case .group: return hashKey(v.plain)
        case .range(let r): return .range(r.count, r.count > 0 ? r.start : 0, r.count > 1 ? r.step : 0)
        case .generator(let g): return .other(ObjectIdentifier(g))
        case .bytes(let b): return .bytes(b)
        case .callable(let c): return .other(ObjectIdentifier(c))
        case .namespace(let n): return .other(ObjectIdentifier(n))
        default: return nil
        }
    }

    var count: Int { keys.count }

    subscript(key: Value) -> Value? {
        get {
            guard let h = Dict.hashKey(key), let i = index[h] else { return nil }
            return values[i]
        }
        set {
            guard let h = Dict.hashKey(key) else { return }
            if let i = index[h] {
                if let newValue { values[i] = newValue } else {
                    keys.remove(at: i)
                    values.remove(at: i)
                    index = [:]
                    for (k, key) in keys.enumerated() { index[Dict.hashKey(key)!] = k }
                }
            } else if let newValue {
                index[h] = keys.count
                keys.append(key)
                values.append(newValue)
            }
        }
    }

    var items: [(Value, Value)] { Array(zip(keys, values)) }
    var allValues: [Value] { values }

    func makeIterator() -> Zip2Sequence<[Value], [Value]>.Iterator { zip(keys, values).makeIterator() }
}

/// Python's `range`: its bounds, and its items computed when iterated.
struct PyRange {
    let start: Int, stop: Int, step: Int

    /// The number of items of `range(start, stop, step)`, without overflow for any bounds;
    /// `step` is not 0.
    static func length(_ start: Int, _ stop: Int, _ step: Int) -> UInt {
        let distance = step > 0 ? (stop > start ? UInt(bitPattern: stop &- start) : 0)
                                : (start > stop ? UInt(bitPattern: start &- stop) : 0)
        return distance == 0 ? 0 : (distance - 1) / step.magnitude + 1
    }
    /// Python's `len(range(...))`: an Int, as `range` refuses long ranges and slicing shortens.
    var count: Int { Int(PyRange.length(start, stop, step)) }
    /// The item at `i` (or the bound just past either end), nil beyond Int.
    func item(_ i: Int) -> Int? {
        let (offset, o1) = i.multipliedReportingOverflow(by: step)
        let (x, o2) = start.addingReportingOverflow(offset)
        return o1 || o2 ? nil : x
    }
    /// The items; the sandbox keeps a range short (`range` refuses more than 100,000 items).
    var values: [Value] { (0..<count).map { .int(start &+ $0 &* step) } }
}

/// A single-pass iterator, as jinja2's generators are: `first` takes one item, `list` takes the
/// rest, and a second loop over it finds nothing. Its items are computed when it is made; an
/// error met while computing them is kept and raised where iteration reaches it, as the lazy
/// generator would (and never when nothing iterates it).
final class Generator {
    /// Python's type name: `generator`, `list_reverseiterator`...
    let kind: String
    /// The generator function of a `generator` (`sync_do_map`...), for the repr.
    let function: String?
    private let items: [Value]
    private var position = 0
    private var error: JinjaError?

    init(kind: String = "generator", function: String? = nil, items: [Value], error: JinjaError? = nil) {
        self.kind = kind
        self.function = function
        self.items = items
        self.error = error
    }

    /// The next item, nil at the end; the kept error once, where the generator raised it.
    func next() throws(JinjaError) -> Value? {
        if position < items.count {
            position += 1
            return items[position - 1]
        }
        if let e = error {
            error = nil
            throw e
        }
        return nil
    }

    /// The items not taken yet (Python's `list(gen)`).
    func drain() throws(JinjaError) -> [Value] {
        let rest = Array(items[position...])
        position = items.count
        if let e = error {
            error = nil
            throw e
        }
        return rest
    }
}

/// `namespace(...)`: the one object a template may change across scopes.
final class Namespace {
    var attributes = Dict()
    init(_ d: Dict) { attributes = d }
}

/// A macro, a global function, or a method bound to its receiver.
final class Callable {
    enum Kind {
        case macro(Macro, Scope)
        case builtin((Interpreter, [Value], [(String, Value)]) throws -> Value)
    }
    let name: String
    let kind: Kind
    /// The receiver's type for methods ("str", "dict"...), nil for functions.
    let owner: String?
    init(name: String, owner: String? = nil, kind: Kind) {
        self.name = name
        self.kind = kind
        self.owner = owner
    }
    var typeName: String {
        if case .macro = kind { return "Macro" }
        return owner == nil ? "builtin_function_or_method" : "builtin_function_or_method"
    }
    var reprText: String {
        switch kind {
        // A call block's body is jinja2's anonymous macro.
        case .macro(let m, _): return m.name == "caller" ? "<Macro anonymous>" : "<Macro '\(name)'>"
        case .builtin:
            return owner.map { "<built-in method \(name) of \($0) object at \(Value.placeholderAddress)>" } ?? "<built-in function \(name)>"
        }
    }
}

/// The `loop` variable of a for loop.
final class LoopContext {
    let items: [Value]
    var index0 = 0
    let depth0: Int
    var lastChanged: [Value]? = nil
    let recurse: Callable?
    init(items: [Value], depth0: Int, recurse: Callable?) {
        self.items = items
        self.depth0 = depth0
        self.recurse = recurse
    }
    var length: Int { items.count }
}

/// A variable scope: a for-loop iteration, a macro call, a `with` block.
final class Scope {
    var vars: [String: Value] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var s: Scope? = self
        while let cur = s {
            if let v = cur.vars[name] { return v }
            s = cur.parent
        }
        return nil
    }
}

/// Runs a builtin (filters, tests and methods are stored as plain throwing closures) and keeps
/// its `JinjaError`.
func lift<T>(_ body: () throws -> T) throws(JinjaError) -> T {
    do { return try body() } catch let e as JinjaError { throw e } catch { throw JinjaError(.type, "\(error)") }
}
