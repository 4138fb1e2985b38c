import Foundation

// The API listing: one normalized declaration per line, sorted, with no line numbers, so that
// the diff between two listings reads as the API diff between two llama.cpp versions.

func oneLine(_ s: String) -> String {
    s.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
}

func listingType(_ t: CType) -> String { oneLine(cDeclaration(t, "")) }

public func emitAPIListing(_ module: APIModule) -> String {
    var lines: [String] = []
    for d in module.declarations {
        switch d {
        case .record(let r):
            let name = "\(r.kind.rawValue) \(r.name ?? "?")"
            lines.append("\(name) size=\(r.size) align=\(r.alignment)")
            lines += listingFields(r, prefix: name + ".")
        case .opaqueRecord(let k, let n, _):
            lines.append("opaque \(k.rawValue) \(n)")
        case .enumeration(let e):
            let name = "enum \(e.name ?? "_")"
            lines.append(name)
            lines += e.constants.map { "\(name).\($0.name) = \($0.value)" }
        case .typedef(let t):
            lines.append("typedef \(t.name) = \(listingType(t.underlying))")
            if case .anonymousRecord(let r) = t.underlying {
                lines.append("typedef \(t.name) size=\(r.size) align=\(r.alignment)")
                lines += listingFields(r, prefix: "typedef \(t.name).")
            }
        case .function(let f):
            let params = f.type.parameters.map { listingType($0.type) + ($0.name.map { " " + $0 } ?? "") }
            var line = "func \(f.name)(\(params.joined(separator: ", "))) -> \(listingType(f.type.result)) [lib\(f.library)]"
            if let message = f.deprecation { line += " [deprecated\(message.isEmpty ? "" : ": " + oneLine(message))]" }
            lines.append(line)
        case .constant(let c):
            let value: String
            switch c.value {
            case .integer(let v, let type): value = "\(v) (\(type))"
            case .float(let v): value = "\(v) (double)"
            case .string(let s): value = cStringLiteral(s)
            }
            lines.append("const \(c.name) = \(value)")
        }
    }
    lines += module.skipped.map { "skipped \($0.name): \($0.reason)" }
    return lines.sorted().joined(separator: "\n") + "\n"
}

private func listingFields(_ r: Record, prefix: String) -> [String] {
    var lines: [String] = []
    for (i, f) in r.fields.enumerated() {
        let offset = "@\(f.offsetBits / 8)" + (f.offsetBits % 8 == 0 ? "" : "+\(f.offsetBits % 8)b")
        let bits = f.bitWidth.map { " : \($0)" } ?? ""
        if let n = f.name {
            lines.append("\(prefix)\(n): \(listingType(f.type))\(bits) \(offset)")
        } else if case .anonymousRecord(let inner) = f.type {
            lines.append("\(prefix)<anonymous \(i)>: \(inner.kind.rawValue) size=\(inner.size) \(offset)")
            lines += listingFields(inner, prefix: "\(prefix)<anonymous \(i)>.")
        }
    }
    return lines
}
