import LlamaJinja

/// GBNF string literals and JSON text written as llama.cpp writes them.
public enum GBNF {
    /// `"text"` with `\r`, `\n`, `"` and `\` escaped: a GBNF string literal as llama.cpp's converter writes it.
    public static func literal(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\r": out += "\\r"
            case "\n": out += "\\n"
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Compact JSON as nlohmann::json's `dump()` writes it (llama.cpp's JSON library): keys in
    /// order, non-ASCII as is, control characters as `\u00xx`, floats with `.0` or an exponent.
    static func dump(_ value: JSONValue) -> String {
        var out = ""
        dump(value, into: &out)
        return out
    }

    static func dump(_ value: JSONValue, into out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .bigInteger(let digits):
            // nlohmann keeps integers that fit 64 bits (unsigned too), and reads others as doubles
            if !digits.hasPrefix("-"), UInt64(digits) != nil { out += digits } else { out += float(Double(digits) ?? 0) }
        case .double(let d): out += float(d)
        case .string(let s): JSONWriter.quote(s, asciiOnly: false, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                dump(item, into: &out)
            }
            out += "]"
        case .object(let object):
            out += "{"
            for (i, (key, item)) in object.enumerated() {
                if i > 0 { out += "," }
                JSONWriter.quote(key, asciiOnly: false, into: &out)
                out += ":"
                dump(item, into: &out)
            }
            out += "}"
        }
    }

    /// nlohmann's double format: shortest round-trip digits; plain notation while the decimal
    /// point falls within (-4, 15] digits, with `.0` for integral values; otherwise `d.ddde+XX`.
    static func float(_ d: Double) -> String {
        if !d.isFinite { return "null" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        let repr = "\(d.magnitude)"
        var mantissa = repr, exponent = 0
        if let e = repr.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(repr[..<e])
            exponent = Int(repr[repr.index(after: e)...])!
        }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        let intPart = String(parts[0])
        let fracPart = parts.count > 1 ? String(parts[1]) : ""
        var digits = intPart + fracPart
        var n = intPart.count + exponent
        while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); n -= 1 }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        let k = digits.count
        var out = d < 0 ? "-" : ""
        if k <= n && n <= 15 {
            out += digits + String(repeating: "0", count: n - k) + ".0"
        } else if 0 < n && n <= 15 {
            out += digits.prefix(n) + "." + digits.dropFirst(n)
        } else if -4 < n && n <= 0 {
            out += "0." + String(repeating: "0", count: -n) + digits
        } else {
            let e = n - 1
            out += String(digits.first!)
            if k > 1 { out += "." + digits.dropFirst() }
            out += "e" + (e < 0 ? "-" : "+") + (abs(e) < 10 ? "0" : "") + String(abs(e))
        }
        return out
    }
}
