import HTTPTypes
import Foundation
import Llama

/// A JSON request body read field by field: each read names the field in the error it throws,
/// so a bad request gets a 400 that says which field and why.
struct JSONBody {
    let object: JSONObject
    /// The prefix of the fields' names in errors (`response_format.`).
    let path: String

    init(_ value: JSONValue, path: String = "") throws(APIError) {
        guard case .object(let o) = value else {
            throw APIError.invalid(path.isEmpty ? nil : String(path.dropLast()),
                                   path.isEmpty ? "the request body must be a JSON object" : "`\(path.dropLast())` must be an object",
                                   code: "invalid_type")
        }
        object = o
        self.path = path
    }

    func name(_ key: String) -> String { path + key }

    /// The value, nil when absent or null.
    func value(_ key: String) -> JSONValue? {
        guard let v = object[key] else { return nil }
        if case .null = v { return nil }
        return v
    }

    func has(_ key: String) -> Bool { value(key) != nil }

    func typeError(_ key: String, _ expected: String) -> APIError {
        APIError.invalid(name(key), "`\(name(key))` must be \(expected)", code: "invalid_type")
    }

    func string(_ key: String) throws(APIError) -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw typeError(key, "a string") }
        return s
    }

    func requiredString(_ key: String) throws(APIError) -> String {
        guard let s = try string(key) else { throw APIError.missing(name(key)) }
        return s
    }

    func bool(_ key: String) throws(APIError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw typeError(key, "true or false") }
        return b
    }

    func int(_ key: String, in range: ClosedRange<Int>? = nil) throws(APIError) -> Int? {
        guard let v = value(key) else { return nil }
        let n: Int
        switch v {
        case .int(let i): n = i
        case .double(let d) where d == d.rounded() && abs(d) < 1e15: n = Int(d)
        case .bigInteger: throw APIError.invalid(name(key), "`\(name(key))` is out of range")
        default: throw typeError(key, "an integer")
        }
        if let range, !range.contains(n) {
            throw APIError.invalid(name(key), "`\(name(key))` must be within \(range.lowerBound)...\(range.upperBound), not \(n)")
        }
        return n
    }

    func number(_ key: String, in range: ClosedRange<Double>? = nil) throws(APIError) -> Double? {
        guard let v = value(key) else { return nil }
        let d: Double
        switch v {
        case .int(let i): d = Double(i)
        case .double(let x): d = x
        default: throw typeError(key, "a number")
        }
        if let range, !range.contains(d) {
            throw APIError.invalid(name(key), "`\(name(key))` must be within \(range.lowerBound)...\(range.upperBound), not \(d)")
        }
        return d
    }

    func object(_ key: String) throws(APIError) -> JSONBody? {
        guard let v = value(key) else { return nil }
        return try JSONBody(v, path: name(key) + ".")
    }

    func array(_ key: String) throws(APIError) -> [JSONValue]? {
        guard let v = value(key) else { return nil }
        guard case .array(let a) = v else { throw typeError(key, "an array") }
        return a
    }

    /// A string or an array of strings (`stop`, `input`, `prompt`).
    func strings(_ key: String) throws(APIError) -> [String]? {
        guard let v = value(key) else { return nil }
        switch v {
        case .string(let s): return [s]
        case .array(let a):
            var out: [String] = []
            for (i, e) in a.enumerated() {
                guard case .string(let s) = e else {
                    throw APIError.invalid("\(name(key))[\(i)]", "`\(name(key))[\(i)]` must be a string", code: "invalid_type")
                }
                out.append(s)
            }
            return out
        default: throw typeError(key, "a string or an array of strings")
        }
    }
}

extension JSONValue {
    /// `value` as a JSON number.
    static func number(_ value: Double) -> JSONValue { value.isFinite ? .double(value) : .null }
}
