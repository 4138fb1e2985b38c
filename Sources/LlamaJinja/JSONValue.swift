public import Foundation

/// A JSON value that keeps what `JSONSerialization` loses: the order of an object's keys, and
/// whether a number was written as an integer. Chat templates print tool schemas and arguments
/// in the order they were given, as Python's `json.dumps` does.
public enum JSONValue: Sendable, Hashable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number without a fraction or exponent.
    case int(Int)
    /// An integer outside 64 bits, kept as its digits (Python's ints are unbounded).
    case bigInteger(String)
    /// Any other number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object, keys in order.
    case object(JSONObject)

    /// The value at `key` when this is an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// The string, when the value is one.
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// The items, when the value is an array.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    /// The object, when the value is one.
    public var objectValue: JSONObject? { if case .object(let o) = self { return o }; return nil }
}

/// A JSON object: keys in insertion order, as Python's `dict`.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    /// The keys, in insertion order.
    public private(set) var keys: [String] = []
    private var storage: [String: JSONValue] = [:]

    /// An empty object.
    public init() {}
    /// An object of these pairs, in order (a repeated key keeps its first place and its last value).
    public init(_ pairs: [(String, JSONValue)]) { for (k, v) in pairs { self[k] = v } }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self.init(elements) }

    /// The value of a key; setting nil removes the key.
    public subscript(key: String) -> JSONValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// The number of keys.
    public var count: Int { keys.count }
    /// Whether the object has no key.
    public var isEmpty: Bool { keys.isEmpty }
    /// The values, in key order.
    public var values: [JSONValue] { keys.map { storage[$0]! } }
    public func makeIterator() -> some IteratorProtocol<(key: String, value: JSONValue)> {
        keys.map { (key: $0, value: storage[$0]!) }.makeIterator()
    }

    public static func == (a: JSONObject, b: JSONObject) -> Bool { a.keys == b.keys && a.storage == b.storage }
    public func hash(into h: inout Hasher) { h.combine(keys); for k in keys { h.combine(storage[k]) } }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}

/// A JSON text that does not parse: where, and why.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The byte offset in the UTF-8 text.
    public let offset: Int
    /// What is wrong with the text.
    public let message: String
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

extension JSONValue {
    /// Parses JSON text (RFC 8259), keeping key order; a repeated key keeps its first position
    /// and its last value, as Python's `json.loads`.
    public init(parsing text: String) throws(JSONParseError) {
        var p = JSONParser(bytes: Array(text.utf8))
        self = try p.parseDocument()
    }

    /// Parses JSON text, keeping the keys' order.
    public init(parsing data: Data) throws(JSONParseError) {
        var p = JSONParser(bytes: Array(data))
        self = try p.parseDocument()
    }

    /// Compact JSON text (no spaces), keys in order, non-ASCII written as is.
    public var jsonText: String { JSONWriter(indent: nil, itemSeparator: ",", keySeparator: ":", asciiOnly: false).write(self) }
}

/// Writes JSON as Python's `json.dumps` does, with its options.
public struct JSONWriter: Sendable {
    /// The indentation of nested lines (`json.dumps`'s `indent`); nil writes one line.
    public var indent: String?
    /// Between items (`json.dumps`'s first separator).
    public var itemSeparator: String
    /// Between a key and its value (`json.dumps`'s second separator).
    public var keySeparator: String
    /// Write non-ASCII characters as `\u` escapes (`ensure_ascii`).
    public var asciiOnly: Bool
    /// Write object keys sorted (`sort_keys`).
    public var sortKeys: Bool

    /// A writer with `json.dumps`'s options; every parameter is the property of the same name.
    public init(indent: String?, itemSeparator: String, keySeparator: String, asciiOnly: Bool, sortKeys: Bool = false) {
        self.indent = indent
        self.itemSeparator = itemSeparator
        self.keySeparator = keySeparator
        self.asciiOnly = asciiOnly
        self.sortKeys = sortKeys
    }

    /// The JSON text of a value, as `json.dumps` writes it (floats as Python's `repr`).
    public func write(_ value: JSONValue) -> String {
        var out = ""
        do { try write(value, depth: 0, limit: .max, into: &out) } catch { preconditionFailure("no limit to pass") }
        return out
    }

    /// The text grew past the limit given to ``write(_:limit:)``.
    struct TooLarge: Error {}

    /// The JSON text, or `TooLarge` as soon as it would pass `limit` UTF-8 bytes: a large
    /// indentation times the nesting depth makes text far larger than the value.
    func write(_ value: JSONValue, limit: Int) throws(TooLarge) -> String {
        var out = ""
        try write(value, depth: 0, limit: limit, into: &out)
        return out
    }

    func write(_ value: JSONValue, depth: Int, limit: Int, into out: inout String) throws(TooLarge) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .bigInteger(let digits): out += digits
        case .double(let d): out += JSONWriter.pythonFloat(d, json: true)
        case .string(let s): JSONWriter.quote(s, asciiOnly: asciiOnly, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += itemSeparator }
                try newline(depth + 1, limit: limit, into: &out)
                try write(item, depth: depth + 1, limit: limit, into: &out)
            }
            try newline(depth, limit: limit, into: &out)
            out += "]"
        case .object(let object):
            if object.isEmpty { out += "{}"; return }
            out += "{"
            let keys = sortKeys ? object.keys.sorted { Array($0.unicodeScalars.map(\.value)).lexicographicallyPrecedes($1.unicodeScalars.map(\.value)) } : object.keys
            for (i, key) in keys.enumerated() {
                if i > 0 { out += itemSeparator }
                try newline(depth + 1, limit: limit, into: &out)
                JSONWriter.quote(key, asciiOnly: asciiOnly, into: &out)
                out += keySeparator
                try write(object[key]!, depth: depth + 1, limit: limit, into: &out)
            }
            try newline(depth, limit: limit, into: &out)
            out += "}"
        }
        if out.utf8.count > limit { throw TooLarge() }
    }

    private func newline(_ depth: Int, limit: Int, into out: inout String) throws(TooLarge) {
        if out.utf8.count > limit { throw TooLarge() }
        guard let indent else { return }
        let (width, overflow) = indent.utf8.count.multipliedReportingOverflow(by: depth)
        if overflow || width > limit - out.utf8.count { throw TooLarge() }
        out += "\n"
        for _ in 0..<depth { out += indent }
    }

    /// A string in double quotes with JSON escapes, as Python's encoder writes it.
    public static func quote(_ s: String, asciiOnly: Bool, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || (asciiOnly && scalar.value > 0x7E) {
                    if scalar.value > 0xFFFF {
                        let v = scalar.value - 0x10000
                        out += hex4(0xD800 + (v >> 10)) + hex4(0xDC00 + (v & 0x3FF))
                    } else {
                        out += hex4(scalar.value)
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    private static func hex4(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
    }

    /// A float as Python's `repr` writes it (shortest round-trip digits, `1e+16` style
    /// exponents, `inf`/`nan`); `json` gives `Infinity`/`NaN` as `json.dumps` does.
    public static func pythonFloat(_ d: Double, json: Bool = false) -> String {
        if d.isNaN { return json ? "NaN" : "nan" }
        if d.isInfinite { return json ? (d < 0 ? "-Infinity" : "Infinity") : (d < 0 ? "-inf" : "inf") }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description is the shortest round-trip form; Python switches to exponent
        // notation when the decimal exponent is < -4 or >= 16.
        let repr = "\(d)"
        var mantissa = repr, exponent = 0
        if let e = repr.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(repr[..<e])
            exponent = Int(repr[repr.index(after: e)...])!
        }
        let negative = mantissa.hasPrefix("-")
        if negative { mantissa.removeFirst() }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        var intPart = String(parts[0]), fracPart = parts.count > 1 ? String(parts[1]) : ""
        if fracPart == "0" { fracPart = "" }
        // digits and decimal point position
        var digits = intPart + fracPart
        var point = intPart.count + exponent
        while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); point -= 1 }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        intPart = ""; fracPart = ""
        let decExp = point - 1
        var out = negative ? "-" : ""
        if decExp < -4 || decExp >= 16 {
            out += String(digits.first!)
            if digits.count > 1 { out += "." + digits.dropFirst() }
            out += "e" + (decExp < 0 ? "-" : "+") + (abs(decExp) < 10 ? "0" : "") + String(abs(decExp))
        } else if point <= 0 {
            out += "0." + String(repeating: "0", count: -point) + digits
        } else if point >= digits.count {
            out += digits + String(repeating: "0", count: point - digits.count) + ".0"
        } else {
            out += digits.prefix(point) + "." + digits.dropFirst(point)
        }
        return out
    }
}

struct JSONParser {
    let bytes: [UInt8]
    var i = 0
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        skipSpace()
        let v = try parseValue()
        skipSpace()
        guard i == bytes.count else { throw fail("unexpected text after the value") }
        return v
    }

    func fail(_ message: String) -> JSONParseError { JSONParseError(offset: i, message: message) }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard i < bytes.count else { throw fail("unexpected end of text") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            depth += 1
            defer { depth -= 1 }
            guard depth <= 512 else { throw fail("nested too deeply") }
            i += 1
            var object = JSONObject()
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(object) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                object[key] = try parseValue()
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(object) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            depth += 1
            defer { depth -= 1 }
            guard depth <= 512 else { throw fail("nested too deeply") }
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try parseValue())
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: return try parseNumber()
        }
    }

    mutating func literal(_ word: String) throws(JSONParseError) {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w else { throw fail("unexpected character") }
        i += w.count
    }

    mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = i
        var isFloat = false
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, (0x30...0x39).contains(bytes[i]) else { throw fail("unexpected character") }
        if bytes[i] == 0x30 { i += 1 } else { while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 } }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isFloat = true
            i += 1
            guard i < bytes.count, (0x30...0x39).contains(bytes[i]) else { throw fail("expected a digit") }
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isFloat = true
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, (0x30...0x39).contains(bytes[i]) else { throw fail("expected a digit") }
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if !isFloat { return Int(text).map(JSONValue.int) ?? .bigInteger(text.hasPrefix("-0") ? text : text) }
        guard let d = Double(text) else { throw fail("bad number") }
        return .double(d)
    }

    mutating func parseString() throws(JSONParseError) -> String {
        i += 1
        var out = [UInt8]()
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; break }
            if b < 0x20 { throw fail("control character in string") }
            if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800...0xDBFF).contains(code), i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                    let save = i
                    i += 2
                    let low = try hex4()
                    if (0xDC00...0xDFFF).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        i = save
                    }
                }
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: throw fail("bad escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
        return s
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16) else {
            throw fail("bad \\u escape")
        }
        i += 4
        return v
    }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        // Keyed containers do not keep the text's key order (Foundation's list them in the hash
        // order of the process, which changes from run to run): the keys are sorted, so that the
        // same text decodes to the same object in every process. `JSONValue(parsing:)` keeps the order.
        let keyed = try decoder.container(keyedBy: AnyKey.self)
        var o = JSONObject()
        for key in keyed.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
            o[key.stringValue] = try keyed.decode(JSONValue.self, forKey: key)
        }
        self = .object(o)
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null: var c = encoder.singleValueContainer(); try c.encodeNil()
        case .bool(let b): var c = encoder.singleValueContainer(); try c.encode(b)
        case .int(let i): var c = encoder.singleValueContainer(); try c.encode(i)
        case .bigInteger(let digits): var c = encoder.singleValueContainer(); try c.encode(Double(digits) ?? 0)
        case .double(let d): var c = encoder.singleValueContainer(); try c.encode(d)
        case .string(let s): var c = encoder.singleValueContainer(); try c.encode(s)
        case .array(let a): var c = encoder.singleValueContainer(); try c.encode(a)
        case .object(let o):
            var c = encoder.container(keyedBy: AnyKey.self)
            for (k, v) in o { try c.encode(v, forKey: AnyKey(k)) }
        }
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}
