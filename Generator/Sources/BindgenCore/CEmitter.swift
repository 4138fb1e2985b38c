import Foundation

// Renders the IR as C declarations: types, enums, typedefs, a function-pointer type per
// function, constants and layout assertions. No function is declared, so nothing links.

/// Renders a C type around a declarator (`inner` is the name, or "" for an abstract type).
func cDeclaration(_ type: CType, _ inner: String, indent: String = "") -> String {
    func join(_ base: String, _ inner: String) -> String {
        inner.isEmpty ? base : base + " " + inner
    }
    switch type {
    case .void: return join("void", inner)
    case .builtin(let b): return join(b, inner)
    case .typedef(let name, _): return join(name, inner)
    case .record(let kind, let name, _): return join("\(kind.rawValue) \(name)", inner)
    case .enumeration(let name): return join("enum \(name)", inner)
    case .anonymousRecord(let r): return join(cRecordBody(r, indent: indent), inner)
    case .anonymousEnum(let e): return join(cEnumBody(e, indent: indent), inner)
    case .const, .volatile, .restrict:
        let (qualifiers, base) = type.qualifiers
        let spelled = qualifiers.joined(separator: " ")
        if case .pointer(let p) = base {
            return cPointer(p, "* " + spelled + (inner.isEmpty ? "" : " " + inner), indent: indent)
        }
        return spelled + " " + cDeclaration(base, inner, indent: indent)
    case .pointer(let p): return cPointer(p, "*" + inner, indent: indent)
    case .array(let e, let n): return cDeclaration(e, "\(inner)[\(n.map(String.init) ?? "")]", indent: indent)
    case .function(let f):
        let params = f.parameters.isEmpty && !f.isVariadic ? "void"
            : (f.parameters.map { cDeclaration($0.type, $0.name ?? "", indent: indent) } + (f.isVariadic ? ["..."] : []))
                .joined(separator: ", ")
        return cDeclaration(f.result, "\(inner)(\(params))", indent: indent)
    }
}

private func cPointer(_ pointee: CType, _ declarator: String, indent: String) -> String {
    switch pointee {
    case .function, .array: return cDeclaration(pointee, "(\(declarator))", indent: indent)
    default: return cDeclaration(pointee, declarator, indent: indent)
    }
}

func cRecordBody(_ r: Record, indent: String) -> String {
    let inner = indent + "    "
    var lines = ["\(r.kind.rawValue)\(r.name.map { " " + $0 } ?? "") {"]
    for f in r.fields {
        let bits = f.bitWidth.map { " : \($0)" } ?? ""
        lines.append(inner + cDeclaration(f.type, f.name ?? "", indent: inner) + bits + ";")
    }
    lines.append(indent + "}")
    return lines.joined(separator: "\n")
}

func cEnumBody(_ e: EnumDecl, indent: String) -> String {
    let inner = indent + "    "
    var lines = ["enum\(e.name.map { " " + $0 } ?? "") {"]
    lines += e.constants.map { "\(inner)\($0.name) = \(cIntegerLiteral($0.value)),"
    }
    lines.append(indent + "}")
    return lines.joined(separator: "\n")
}

/// An integer literal that keeps its value whatever the width: large unsigned values get a suffix.
func cIntegerLiteral(_ value: String, type: String = "int") -> String {
    let suffix: String
    switch type {
    case "unsigned int": suffix = "U"
    case "long": suffix = "L"
    case "unsigned long": suffix = "UL"
    case "long long": suffix = "LL"
    case "unsigned long long": suffix = "ULL"
    default: suffix = ""
    }
    if value.hasPrefix("-") {
        // The most negative value has no literal of its own.
        if let v = Int64(value), v == Int64.min { return "(-9223372036854775807LL - 1)" }
        return "(\(value)\(suffix))"
    }
    if suffix.isEmpty, let v = UInt64(value), v > UInt64(Int32.max) {
        return value + (v > UInt64(UInt32.max) ? "ULL" : "U")
    }
    return value + suffix
}

func cStringLiteral(_ s: String) -> String {
    var out = "\""
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "\""): out += "\\\""
        case UInt8(ascii: "\\"): out += "\\\\"
        case 0x20..<0x7f: out += String(UnicodeScalar(b))
        default: out += "\\" + String(b, radix: 8).leftPadded(to: 3)
        }
    }
    return out + "\""
}

extension String {
    func leftPadded(to n: Int, with c: Character = "0") -> String {
        count >= n ? self : String(repeating: c, count: n - count) + self
    }
}

/// Options for the C emitter.
public struct CEmitterOptions: Sendable {
    public var banner: String
    public var guardName: String
    public init(banner: String, guardName: String) {
        self.banner = banner
        self.guardName = guardName
    }
}

/// The name of the function-pointer typedef emitted for a function.
public func functionPointerTypeName(_ function: String) -> String { function + "_fn" }

/// The C library's typedefs that bound headers may use, and the header that declares each.
public let systemTypeHeaders: [String: String] = {
    var table: [String: String] = [:]
    for name in ["size_t", "ptrdiff_t", "wchar_t", "max_align_t"] { table[name] = "stddef.h" }
    for bits in [8, 16, 32, 64] {
        for sign in ["", "u"] {
            for form in ["int", "int_least", "int_fast"] { table["\(sign)\(form)\(bits)_t"] = "stdint.h" }
        }
    }
    for name in ["intptr_t", "uintptr_t", "intmax_t", "uintmax_t"] { table[name] = "stdint.h" }
    for name in ["va_list", "__gnuc_va_list"] { table[name] = "stdarg.h" }
    for name in ["FILE", "fpos_t"] { table[name] = "stdio.h" }
    for name in ["off_t", "ssize_t", "pid_t", "mode_t", "uid_t", "gid_t", "dev_t", "ino_t", "nlink_t",
                 "blksize_t", "blkcnt_t", "useconds_t", "suseconds_t", "id_t", "key_t"] {
        table[name] = "sys/types.h"
    }
    for name in ["time_t", "clock_t", "clockid_t", "timer_t"] { table[name] = "time.h" }
    for name in ["pthread_t", "pthread_mutex_t", "pthread_cond_t", "pthread_attr_t", "pthread_once_t", "pthread_key_t"] {
        table[name] = "pthread.h"
    }
    table["sig_atomic_t"] = "signal.h"
    table["wint_t"] = "wchar.h"
    return table
}()

/// Headers the generated C always includes: what `bool`, `size_t` and the fixed-width integers need.
let baseIncludes = ["stdbool.h", "stddef.h", "stdint.h"]

/// Every typedef name a type refers to, looking into records, pointers and function types.
func typedefNames(in type: CType) -> [String] {
    switch type {
    case .void, .builtin, .record, .enumeration, .anonymousEnum: return []
    case .typedef(let name, _): return [name]
    case .anonymousRecord(let r): return r.fields.flatMap { typedefNames(in: $0.type) }
    case .pointer(let t), .array(let t, _), .const(let t), .volatile(let t), .restrict(let t): return typedefNames(in: t)
    case .function(let f): return typedefNames(in: f.result) + f.parameters.flatMap { typedefNames(in: $0.type) }
    }
}

/// The system headers that declare the typedefs the module uses but does not declare; a typedef
/// that no known system header declares is an error at its first use.
func systemIncludes(_ module: APIModule, diagnostics: inout Diagnostics) -> [String] {
    let declared = Set(module.declarations.compactMap { if case .typedef(let t) = $0 { t.name } else { nil } })
    var headers = Set(baseIncludes)
    var reported: Set<String> = []
    for d in module.declarations {
        let (types, location): ([CType], SourceLocation?) = switch d {
        case .record(let r): (r.fields.map(\.type), r.location)
        case .typedef(let t): ([t.underlying], t.location)
        case .function(let f): ([.function(f.type)], f.location)
        case .opaqueRecord, .enumeration, .constant: ([], nil)
        }
        for name in types.flatMap(typedefNames(in:)) where !declared.contains(name) {
            if let header = systemTypeHeaders[name] {
                headers.insert(header)
            } else if reported.insert(name).inserted {
                diagnostics.error("\(name) is declared outside the bound headers, in no system header the generator "
                                  + "knows (systemTypeHeaders): bind the header that declares it", at: location)
            }
        }
    }
    return headers.sorted()
}

public func emitC(_ module: APIModule, options: CEmitterOptions, diagnostics: inout Diagnostics) -> String {
    var out: [String] = [options.banner, "#ifndef \(options.guardName)", "#define \(options.guardName)", ""]
    out += systemIncludes(module, diagnostics: &diagnostics).map { "#include <\($0)>" } + [""]

    let taken = Set(module.declarations.compactMap(\.name))
    var forward: [String] = []
    for d in module.declarations {
        switch d {
        case .record(let r): if let n = r.name { forward.append("\(r.kind.rawValue) \(n);") }
        case .opaqueRecord(let k, let n, _): forward.append("\(k.rawValue) \(n);")
        default: break
        }
    }
    if !forward.isEmpty { out += ["/* Tagged records, declared ahead of use. */"] + forward + [""] }

    for d in module.declarations {
        switch d {
        case .record(let r):
            out += ["/* \(r.location) */", cRecordBody(r, indent: "") + ";", ""]
        case .opaqueRecord:
            break
        case .enumeration(let e):
            out += ["/* \(e.location) */", cEnumBody(e, indent: "") + ";", ""]
        case .typedef(let t):
            out += ["/* \(t.location) */", "typedef " + cDeclaration(t.underlying, t.name) + ";", ""]
        case .function(let f):
            let typeName = functionPointerTypeName(f.name)
            if taken.contains(typeName) {
                diagnostics.error("the function-pointer type name \(typeName) collides with a declaration", at: f.location)
            }
            out += ["/* \(f.location) */",
                    "typedef " + cDeclaration(.function(f.type), "(*\(typeName))") + ";", ""]
        case .constant(let c):
            let value: String
            switch c.value {
            case .integer(let v, let type): value = cIntegerLiteral(v, type: type)
            case .float(let v): value = "\(v)"
            case .string(let s): value = cStringLiteral(s)
            }
            out += ["/* \(c.location) */", "#define \(c.name) \(value)", ""]
        }
    }

    out += ["/* Layout computed by libclang from the original headers, for LP64 targets. */",
            "#if defined(__LP64__)"]
    for r in module.declarations.compactMap(layoutSubject) {
        out += layoutAssertions(r.record, spelled: r.spelling)
    }
    out += ["#endif", "", "#endif /* \(options.guardName) */", ""]
    return out.joined(separator: "\n")
}

/// Records whose layout can be asserted, with the C spelling of their type.
func layoutSubject(_ d: Declaration) -> (record: Record, spelling: String, swiftName: String)? {
    switch d {
    case .record(let r):
        guard let n = r.name, r.size >= 0 else { return nil }
        return (r, "\(r.kind.rawValue) \(n)", n)
    case .typedef(let t):
        if case .anonymousRecord(let r) = t.underlying, r.size >= 0 { return (r, t.name, t.name) }
        return nil
    default:
        return nil
    }
}

/// Named, byte-aligned fields of a record with their byte offsets, looking into anonymous members.
func layoutFields(_ r: Record, base: Int = 0, prefix: String = "") -> [(path: String, offset: Int)] {
    var result: [(String, Int)] = []
    for f in r.fields where f.bitWidth == nil {
        let offset = base + f.offsetBits
        if let n = f.name {
            result.append((prefix + n, offset / 8))
        } else if case .anonymousRecord(let inner) = f.type {
            result += layoutFields(inner, base: offset, prefix: prefix)
        }
    }
    return result
}

private func layoutAssertions(_ r: Record, spelled: String) -> [String] {
    let tag = spelled.replacingOccurrences(of: " ", with: "_")
    var lines = [
        "_Static_assert(sizeof(\(spelled)) == \(r.size), \"size of \(tag)\");",
        "_Static_assert(_Alignof(\(spelled)) == \(r.alignment), \"alignment of \(tag)\");",
    ]
    for (path, offset) in layoutFields(r) {
        lines.append("_Static_assert(offsetof(\(spelled), \(path)) == \(offset), \"offset of \(tag).\(path)\");")
    }
    return lines
}
