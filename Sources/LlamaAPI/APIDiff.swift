import Foundation

// The API diff: two API listings (api.txt) compared entity by entity, as Markdown a reviewer
// reads in a version bump's pull request.

/// An API listing read back into its entities.
public struct APIListing: Equatable, Sendable {
    public struct Function: Equatable, Sendable {
        public var signature: String
        public var deprecation: String?
    }
    public struct FieldInfo: Equatable, Sendable {
        public var type: String
        public var offset: String
    }
    public struct RecordInfo: Equatable, Sendable {
        public var size: String
        public var alignment: String
        public var fields: [(name: String, info: FieldInfo)]

        public static func == (a: RecordInfo, b: RecordInfo) -> Bool {
            a.size == b.size && a.alignment == b.alignment && a.fields.map(\.name) == b.fields.map(\.name)
                && a.fields.map(\.info) == b.fields.map(\.info)
        }
    }

    public var functions: [String: Function] = [:]
    public var records: [String: RecordInfo] = [:]
    public var opaque: Set<String> = []
    public var enums: [String: [(name: String, value: String)]] = [:]
    public var constants: [String: String] = [:]
    public var typedefs: [String: String] = [:]
    public var skipped: [String: String] = [:]

    public static func == (a: APIListing, b: APIListing) -> Bool {
        a.functions == b.functions && a.records == b.records && a.opaque == b.opaque && a.constants == b.constants
            && a.typedefs == b.typedefs && a.skipped == b.skipped
            && a.enums.mapValues { $0.map { "\($0.name)=\($0.value)" } } == b.enums.mapValues { $0.map { "\($0.name)=\($0.value)" } }
    }

    /// Reads a listing as `emitAPIListing` writes it.
    public init(parsing text: String) {
        for raw in text.split(separator: "\n") {
            let line = String(raw)
            if line.hasPrefix("func ") {
                parseFunction(line)
            } else if line.hasPrefix("const ") {
                let (name, value) = split(line.dropFirst(6), " = ")
                constants[name] = value
            } else if line.hasPrefix("opaque ") {
                opaque.insert(String(line.dropFirst(7)))
            } else if line.hasPrefix("skipped ") {
                let (name, reason) = split(line.dropFirst(8), ": ")
                skipped[name] = reason
            } else if line.hasPrefix("enum ") {
                let rest = line.dropFirst(5)
                if let eq = rest.range(of: " = "), let dot = rest[..<eq.lowerBound].firstIndex(of: ".") {
                    let enumName = "enum " + rest[..<dot]
                    enums[enumName, default: []].append((String(rest[rest.index(after: dot)..<eq.lowerBound]),
                                                          String(rest[eq.upperBound...])))
                } else {
                    enums["enum " + rest, default: []] += []
                }
            } else if line.hasPrefix("struct ") || line.hasPrefix("union ") || line.hasPrefix("typedef ") {
                parseRecordOrTypedef(line)
            }
        }
    }

    private func split(_ s: Substring, _ separator: String) -> (String, String) {
        guard let r = s.range(of: separator) else { return (String(s), "") }
        return (String(s[..<r.lowerBound]), String(s[r.upperBound...]))
    }

    private mutating func parseFunction(_ line: String) {
        var body = Substring(line.dropFirst(5))
        var deprecation: String?
        if let r = body.range(of: " [deprecated") {
            let tail = body[r.upperBound...].dropLast()  // "]"
            deprecation = tail.hasPrefix(": ") ? String(tail.dropFirst(2)) : ""
            body = body[..<r.lowerBound]
        }
        guard let paren = body.firstIndex(of: "(") else { return }
        functions[String(body[..<paren])] = Function(signature: String(body), deprecation: deprecation)
    }

    private mutating func parseRecordOrTypedef(_ line: String) {
        let kindEnd = line.firstIndex(of: " ")!
        let kind = line[..<kindEnd]
        let rest = line[line.index(after: kindEnd)...]
        if kind == "typedef", let eq = rest.range(of: " = ") {
            typedefs[String(rest[..<eq.lowerBound])] = String(rest[eq.upperBound...])
            return
        }
        if let space = rest.firstIndex(of: " "), rest[space...].hasPrefix(" size="),
           !rest[..<space].contains(".") {
            let name = "\(kind) \(rest[..<space])"
            let attributes = rest[rest.index(after: space)...].split(separator: " ")
            let size = attributes.first { $0.hasPrefix("size=") }.map { String($0.dropFirst(5)) } ?? "?"
            let alignment = attributes.first { $0.hasPrefix("align=") }.map { String($0.dropFirst(6)) } ?? "?"
            let fields = records[name]?.fields ?? []
            records[name] = RecordInfo(size: size, alignment: alignment, fields: fields)
            return
        }
        // A field: "<kind> <record>.<path>: <type> @<offset>"
        guard let dot = rest.firstIndex(of: "."), let colon = rest.range(of: ": "),
              let at = rest.range(of: " @", options: .backwards) else { return }
        let name = "\(kind) \(rest[..<dot])"
        let path = String(rest[rest.index(after: dot)..<colon.lowerBound])
        let info = FieldInfo(type: String(rest[colon.upperBound..<at.lowerBound]), offset: String(rest[at.upperBound...]))
        records[name, default: RecordInfo(size: "?", alignment: "?", fields: [])].fields.append((path, info))
    }
}

/// The Markdown report of what changed from one listing to another.
public func apiDiffMarkdown(from old: APIListing, to new: APIListing, fromLabel: String, toLabel: String) -> String {
    var sections: [String] = []
    var counts: [String] = []

    func keys<V>(_ a: [String: V], _ b: [String: V]) -> (added: [String], removed: [String], common: [String]) {
        (Set(b.keys).subtracting(a.keys).sorted(), Set(a.keys).subtracting(b.keys).sorted(),
         Set(a.keys).intersection(b.keys).sorted())
    }
    func code(_ s: String) -> String { "`\(s)`" }

    // Functions.
    let f = keys(old.functions, new.functions)
    let changed = f.common.filter { old.functions[$0]!.signature != new.functions[$0]!.signature }
    let deprecated = f.common.filter { old.functions[$0]!.deprecation == nil && new.functions[$0]!.deprecation != nil }
    let undeprecated = f.common.filter { old.functions[$0]!.deprecation != nil && new.functions[$0]!.deprecation == nil }
    var functionLines: [String] = []
    if !f.added.isEmpty {
        functionLines += ["### Added", ""] + f.added.map { "- \(code(new.functions[$0]!.signature))" } + [""]
    }
    if !f.removed.isEmpty {
        functionLines += ["### Removed", ""] + f.removed.map { "- \(code(old.functions[$0]!.signature))" } + [""]
    }
    if !changed.isEmpty {
        functionLines += ["### Changed", ""] + changed.flatMap {
            ["- \(code($0)):", "  - before: \(code(old.functions[$0]!.signature))",
             "  - after: \(code(new.functions[$0]!.signature))"]
        } + [""]
    }
    if !deprecated.isEmpty {
        functionLines += ["### Newly deprecated", ""] + deprecated.map {
            let message = new.functions[$0]!.deprecation!
            return "- \(code($0))" + (message.isEmpty ? "" : ": \(message)")
        } + [""]
    }
    if !undeprecated.isEmpty {
        functionLines += ["### No longer deprecated", ""] + undeprecated.map { "- \(code($0))" } + [""]
    }
    if !functionLines.isEmpty { sections.append((["## Functions", ""] + functionLines).joined(separator: "\n")) }
    counts.append("\(f.added.count) functions added, \(f.removed.count) removed, \(changed.count) changed, "
                  + "\(deprecated.count) newly deprecated")

    // Records.
    let r = keys(old.records, new.records)
    var recordLines: [String] = []
    recordLines += r.added.map { "- \(code($0)) added (size \(new.records[$0]!.size))" }
    recordLines += r.removed.map { "- \(code($0)) removed" }
    var changedRecords = 0
    for name in r.common where old.records[name]! != new.records[name]! {
        changedRecords += 1
        let a = old.records[name]!, b = new.records[name]!
        var line = "- \(code(name))"
        if a.size != b.size || a.alignment != b.alignment {
            line += ": size \(a.size) → \(b.size)" + (a.alignment != b.alignment ? ", alignment \(a.alignment) → \(b.alignment)" : "")
        }
        recordLines.append(line)
        let oldFields = Dictionary(a.fields.map { ($0.name, $0.info) }, uniquingKeysWith: { x, _ in x })
        let newFields = Dictionary(b.fields.map { ($0.name, $0.info) }, uniquingKeysWith: { x, _ in x })
        for field in b.fields where oldFields[field.name] == nil {
            recordLines.append("  - field \(code(field.name)) added: \(code(field.info.type)) @\(field.info.offset)")
        }
        for field in a.fields where newFields[field.name] == nil {
            recordLines.append("  - field \(code(field.name)) removed (was \(code(field.info.type)) @\(field.info.offset))")
        }
        for field in b.fields {
            guard let before = oldFields[field.name] else { continue }
            if before.type != field.info.type {
                recordLines.append("  - field \(code(field.name)) retyped: \(code(before.type)) → \(code(field.info.type))")
            }
            if before.offset != field.info.offset {
                recordLines.append("  - field \(code(field.name)) moved: @\(before.offset) → @\(field.info.offset)")
            }
        }
    }
    let o = (added: new.opaque.subtracting(old.opaque).sorted(), removed: old.opaque.subtracting(new.opaque).sorted())
    recordLines += o.added.map { "- opaque \(code($0)) added" } + o.removed.map { "- opaque \(code($0)) removed" }
    if !recordLines.isEmpty { sections.append((["## Structs and unions", ""] + recordLines + [""]).joined(separator: "\n")) }
    counts.append("\(r.added.count + o.added.count) records added, \(r.removed.count + o.removed.count) removed, "
                  + "\(changedRecords) changed")

    // Enums.
    let e = keys(old.enums, new.enums)
    var enumLines: [String] = []
    enumLines += e.added.map { name in
        "- \(code(name)) added: " + new.enums[name]!.map { "\($0.name) = \($0.value)" }.joined(separator: ", ")
    }
    enumLines += e.removed.map { "- \(code($0)) removed" }
    var valueChanges = 0
    for name in e.common {
        let a = Dictionary(old.enums[name]!.map { ($0.name, $0.value) }, uniquingKeysWith: { x, _ in x })
        let b = Dictionary(new.enums[name]!.map { ($0.name, $0.value) }, uniquingKeysWith: { x, _ in x })
        var parts: [String] = []
        parts += new.enums[name]!.filter { a[$0.name] == nil }.map { "added \(code("\($0.name) = \($0.value)"))" }
        parts += old.enums[name]!.filter { b[$0.name] == nil }.map { "removed \(code($0.name))" }
        parts += new.enums[name]!.compactMap { c in
            a[c.name].flatMap { $0 != c.value ? "renumbered \(code(c.name)): \($0) → \(c.value)" : nil }
        }
        if !parts.isEmpty {
            valueChanges += parts.count
            enumLines.append("- \(code(name)): " + parts.joined(separator: "; "))
        }
    }
    if !enumLines.isEmpty { sections.append((["## Enums", ""] + enumLines + [""]).joined(separator: "\n")) }
    counts.append("\(e.added.count) enums added, \(e.removed.count) removed, \(valueChanges) value changes")

    // Constants, typedefs, skipped.
    func simple(_ title: String, _ a: [String: String], _ b: [String: String], noun: String) {
        let k = keys(a, b)
        let changes = k.common.filter { a[$0] != b[$0] }
        var lines = k.added.map { "- \(code($0)) added: \(code(b[$0]!))" }
        lines += k.removed.map { "- \(code($0)) removed (was \(code(a[$0]!)))" }
        lines += changes.map { "- \(code($0)): \(code(a[$0]!)) → \(code(b[$0]!))" }
        if !lines.isEmpty { sections.append((["## \(title)", ""] + lines + [""]).joined(separator: "\n")) }
        counts.append("\(k.added.count) \(noun) added, \(k.removed.count) removed, \(changes.count) changed")
    }
    simple("Constants", old.constants, new.constants, noun: "constants")
    simple("Typedefs", old.typedefs, new.typedefs, noun: "typedefs")
    simple("Not bound", old.skipped, new.skipped, noun: "skipped declarations")

    var out = ["# llama.cpp API changes: \(fromLabel) → \(toLabel)", ""]
    if sections.isEmpty {
        out += ["No API changes.", ""]
    } else {
        out += counts.map { "- \($0)" } + [""] + sections
    }
    return out.joined(separator: "\n")
}
