// Renders the Swift side: the symbol table (one typed pointer per function, resolved by the
// loader), thin wrappers callable like the C API, and the layout table. The pointer types are
// the C typedefs that the C emitter wrote, so Swift's clang importer decides their signatures;
// the wrappers spell the same types in Swift, and the compiler checks that they agree.

private let standardTypedefs: [String: String] = [
    "int8_t": "Int8", "int16_t": "Int16", "int32_t": "Int32", "int64_t": "Int64",
    "uint8_t": "UInt8", "uint16_t": "UInt16", "uint32_t": "UInt32", "uint64_t": "UInt64",
    "size_t": "Int", "ssize_t": "Int", "ptrdiff_t": "Int", "intptr_t": "Int", "uintptr_t": "UInt",
    "FILE": "FILE", "va_list": "CVaListPointer",
]

private let builtinTypes: [String: String] = [
    "bool": "Bool", "char": "CChar", "signed char": "CSignedChar", "unsigned char": "CUnsignedChar",
    "short": "CShort", "unsigned short": "CUnsignedShort", "int": "CInt", "unsigned int": "CUnsignedInt",
    "long": "CLong", "unsigned long": "CUnsignedLong", "long long": "CLongLong",
    "unsigned long long": "CUnsignedLongLong", "float": "CFloat", "double": "CDouble",
]

struct SwiftTypeError: Error, CustomStringConvertible {
    var description: String
}

/// The Swift type that the clang importer gives a C type in a function signature.
func swiftType(_ type: CType) throws -> String {
    switch type {
    case .void: return "Void"
    case .builtin(let b):
        guard let s = builtinTypes[b] else { throw SwiftTypeError(description: "no Swift type for \(b)") }
        return s
    case .typedef(let name, let canonical):
        if let s = standardTypedefs[name] {
            // va_list is imported as CVaListPointer, which is not optional.
            return s
        }
        switch canonical.canonical {
        case .pointer: return name + "?"
        default: return name
        }
    case .record(_, let name, _): return name
    case .enumeration(let name): return name
    case .anonymousRecord, .anonymousEnum:
        throw SwiftTypeError(description: "a type without a name cannot appear in a signature")
    case .const(let t), .volatile(let t), .restrict(let t): return try swiftType(t)
    case .array(let e, _): return try swiftPointer(to: e)
    case .pointer(let p): return try swiftPointer(to: p)
    case .function(let f):
        let params = try f.parameters.map { try swiftType($0.type) }.joined(separator: ", ")
        return "@convention(c) (\(params)) -> \(try swiftType(f.result))"
    }
}

private func swiftPointer(to pointee: CType) throws -> String {
    let constant = pointee.isConst
    switch pointee.canonical {
    case .void: return constant ? "UnsafeRawPointer?" : "UnsafeMutableRawPointer?"
    case .function: return "(\(try swiftType(pointee.canonical)))?"
    case .record(_, _, complete: false): return "OpaquePointer?"
    default:
        let element = try swiftType(pointee)
        return "\(constant ? "UnsafePointer" : "UnsafeMutablePointer")<\(element)>?"
    }
}

private let swiftKeywords: Set<String> = [
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init", "inout",
    "internal", "let", "open", "operator", "private", "protocol", "public", "rethrows", "static", "struct",
    "subscript", "typealias", "var", "break", "case", "continue", "default", "defer", "do", "else", "fallthrough",
    "for", "guard", "if", "in", "repeat", "return", "switch", "where", "while", "as", "Any", "catch", "false", "is",
    "nil", "super", "self", "Self", "throw", "throws", "true", "try", "_", "some", "any", "consume", "copy", "borrowing",
]

func swiftIdentifier(_ name: String) -> String { swiftKeywords.contains(name) ? "`\(name)`" : name }

/// A Swift string literal for arbitrary text.
func swiftStringLiteral(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += "\\u{\(String(scalar.value, radix: 16))}"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// A Swift identifier for a library name from the manifest (`ggml-base` → `ggmlBase`).
public func swiftLibraryCase(_ library: String) -> String {
    let parts = library.split(separator: "-")
    return parts.enumerated().map { i, p in i == 0 ? String(p) : p.prefix(1).uppercased() + p.dropFirst() }.joined()
}

public struct SwiftEmitterOptions: Sendable {
    public var banner: String
    public var cModule: String
    /// The llama.cpp tag, named in error messages.
    public var tag: String
    public init(banner: String, cModule: String, tag: String) {
        self.banner = banner
        self.cModule = cModule
        self.tag = tag
    }
}

/// Which libraries exist, and whether each is required; drives required/optional symbols.
public struct LibrarySet: Sendable {
    public var libraries: [(name: String, required: Bool)]
    public init(_ libraries: [(name: String, required: Bool)]) { self.libraries = libraries }
    func isRequired(_ name: String) -> Bool { libraries.first { $0.name == name }?.required ?? false }
}

/// The symbol table and wrappers.
public func emitSwiftSymbols(_ module: APIModule, libraries: LibrarySet, options: SwiftEmitterOptions,
                             diagnostics: inout Diagnostics) -> String {
    let functions = module.functions
    // An import that no public declaration uses is a warning; a module without functions has none.
    var out = [options.banner, "\(functions.isEmpty ? "" : "public ")import \(options.cModule)", ""]
    out += ["/// A library of the llama.cpp distribution that exports functions of the bound headers.",
            "public enum LlamaLibraryID: String, CaseIterable, Sendable {"]
    for l in libraries.libraries {
        out.append("    case \(swiftLibraryCase(l.name)) = \(swiftStringLiteral(l.name))")
    }
    out += ["", "    /// Whether loading fails without this library's symbols.",
            "    public var isRequired: Bool {", "        switch self {"]
    for l in libraries.libraries {
        out.append("        case .\(swiftLibraryCase(l.name)): return \(l.required)")
    }
    out += ["        }", "    }", "}", ""]

    // LlamaSymbolError and LlamaSymbolSpec do not depend on the headers: they are handwritten
    // (Sources/LlamaRaw/LlamaSymbolSupport.swift).
    out += ["extension LlamaSymbols {",
            "    /// The llama.cpp tag the table was generated from.",
            "    public static let tag = \(swiftStringLiteral(options.tag))", "",
            "    /// Every bound function, in header order.",
            "    public static let specs: [LlamaSymbolSpec] = ["]
    for f in functions {
        out.append("        LlamaSymbolSpec(name: \(swiftStringLiteral(f.name)), library: .\(swiftLibraryCase(f.library)), "
                   + "isRequired: \(libraries.isRequired(f.library)), isDeprecated: \(f.deprecation != nil), "
                   + "declaration: \(swiftStringLiteral(f.location.description))),")
    }
    out += ["    ]", "}", ""]

    // The table.
    out += ["/// The resolved llama.cpp functions: one C function pointer each, called through its typed",
            "/// `<name>_fn` type from the generated C declarations.",
            "///",
            "/// The pointers are stored untyped: a stored property of an imported C function-pointer type",
            "/// crashes Swift 6.3's module deserializer when another module lays out this class.",
            "///",
            "/// Required symbols are always present; optional ones (from optional libraries) may be",
            "/// absent, and their wrappers throw ``LlamaSymbolError/unavailable(name:library:)``.",
            "public final class LlamaSymbols: @unchecked Sendable {"]
    for f in functions {
        let optional = libraries.isRequired(f.library) ? "" : "?"
        out.append("    private let _\(f.name): UnsafeMutableRawPointer\(optional)")
    }
    out += ["",
            "    /// Resolves every symbol with `resolve`; throws once, naming every missing required symbol.",
            "    public init(resolve: (LlamaSymbolSpec) -> UnsafeMutableRawPointer?) throws(LlamaSymbolError) {",
            "        var missing: [LlamaSymbolSpec] = []",
            "        var index = 0",
            "        func optional() -> UnsafeMutableRawPointer? {",
            "            let spec = LlamaSymbols.specs[index]",
            "            index += 1",
            "            return resolve(spec)",
            "        }",
            "        func required() -> UnsafeMutableRawPointer {",
            "            if let p = optional() { return p }",
            "            missing.append(LlamaSymbols.specs[index - 1])",
            "            return LlamaSymbols.placeholder",
            "        }"]
    for f in functions {
        out.append("        _\(f.name) = \(libraries.isRequired(f.library) ? "required" : "optional")()")
    }
    out += ["        if !missing.isEmpty { throw .missingRequired(missing) }",
            "    }", "",
            "    /// Stands in for missing required symbols until the initializer throws; never called.",
            "    private static var placeholder: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x1)! }",
            "}", ""]

    // The wrappers.
    out += ["extension LlamaSymbols {"]
    for f in functions {
        do {
            out += try wrapper(f, required: libraries.isRequired(f.library))
        } catch {
            diagnostics.error("cannot render \(f.name) in Swift: \(error)", at: f.location)
        }
    }
    out += ["}", ""]
    return out.joined(separator: "\n")
}

private func wrapper(_ f: Function, required: Bool) throws -> [String] {
    var names: [String] = []
    for (i, p) in f.type.parameters.enumerated() {
        var n = p.name ?? "arg\(i)"
        while names.contains(n) { n += "_" }
        names.append(n)
    }
    var params: [String] = []
    for (n, p) in zip(names, f.type.parameters) {
        params.append("_ \(swiftIdentifier(n)): \(try swiftType(p.type))")
    }
    let result = try swiftType(f.type.result)
    let args = names.map(swiftIdentifier).joined(separator: ", ")
    var lines = ["", "    /// The corresponding C function is `\(f.name)` (\(f.location), lib\(f.library))."]
    if let message = f.deprecation {
        lines.append("    @available(*, deprecated\(message.isEmpty ? "" : ", message: \(swiftStringLiteral(message))"))")
    }

    let signature = "public func \(f.name)(\(params.joined(separator: ", ")))"
    let returns = result == "Void" ? "" : " -> \(result)"
    if required {
        lines.append("    \(signature)\(returns) {")
        lines.append("        unsafeBitCast(_\(f.name), to: \(functionPointerTypeName(f.name)).self)(\(args))")
    } else {
        lines.append("    \(signature) throws(LlamaSymbolError)\(returns) {")
        lines.append("        guard let pointer = _\(f.name) else {")
        lines.append("            throw .unavailable(name: \(swiftStringLiteral(f.name)), library: .\(swiftLibraryCase(f.library)))")
        lines.append("        }")
        lines.append("        return unsafeBitCast(pointer, to: \(functionPointerTypeName(f.name)).self)(\(args))")
    }
    lines.append("    }")
    return lines
}

/// The layout table: size, alignment and field offsets that libclang computed, for a Swift test
/// against `MemoryLayout`.
public func emitSwiftLayout(_ module: APIModule, options: SwiftEmitterOptions) -> String {
    // The LlamaRecordLayout type itself is handwritten (Sources/LlamaRaw/LlamaSymbolSupport.swift).
    var out = [options.banner, "import \(options.cModule)", "",
               "extension LlamaRecordLayout {",
               "    /// Every record of the headers: libclang's layout beside the one Swift imported.",
               "    public static let all: [LlamaRecordLayout] = ["]
    for d in module.declarations {
        guard let subject = layoutSubject(d) else { continue }
        let t = subject.swiftName
        let direct = subject.record.fields.compactMap { f -> String? in
            // Swift imports neither bitfields nor flexible array members as stored properties.
            guard let n = f.name, f.bitWidth == nil else { return nil }
            if case .array(_, count: nil) = f.type { return nil }
            return ".init(name: \(swiftStringLiteral(n)), offset: \(f.offsetBits / 8), "
                + "swiftOffset: MemoryLayout<\(t)>.offset(of: \\\(t).\(swiftIdentifier(n))))"
        }
        out.append("        LlamaRecordLayout(")
        out.append("            name: \(swiftStringLiteral(t)), size: \(subject.record.size), alignment: \(subject.record.alignment),")
        out.append("            swiftStride: MemoryLayout<\(t)>.stride, swiftAlignment: MemoryLayout<\(t)>.alignment,")
        out.append("            fields: [" + (direct.isEmpty ? "]),": ""))
        if !direct.isEmpty {
            out += direct.map { "                \($0)," }
            out.append("            ]),")
        }
    }
    out += ["    ]", "}", ""]
    return out.joined(separator: "\n")
}
