// The only file that talks to libclang. It turns a translation unit into the IR; no CXCursor
// or CXType leaves this file.
internal import CClang
public import Foundation

/// What to read: headers below a root folder, each with the library that exports its functions.
public struct ReaderInput: Sendable {
    public var root: URL
    /// Header paths relative to `root`, in the order they are included.
    public var headers: [(path: String, library: String)]
    /// Folders relative to `root` to search for `#include "..."`.
    public var includeDirectories: [String]
    /// Preprocessor definitions (`NAME` or `NAME=VALUE`).
    public var defines: [String]
    /// Per-function library overrides.
    public var symbolLibraries: [String: String]

    public init(root: URL, headers: [(path: String, library: String)], includeDirectories: [String],
                defines: [String], symbolLibraries: [String: String] = [:]) {
        self.root = root
        self.headers = headers
        self.includeDirectories = includeDirectories
        self.defines = defines
        self.symbolLibraries = symbolLibraries
    }

    /// The library that exports `function`, declared in `header`: its override, else the header's.
    public func library(of function: String, header: String) -> String? {
        symbolLibraries[function] ?? headers.first { $0.path == header }?.library
    }
}

/// Reads the headers with libclang and returns the IR and the diagnostics.
public func readHeaders(_ input: ReaderInput) -> (APIModule, Diagnostics) {
    let reader = ClangReader(input)
    let module = reader.run()
    return (module, reader.diagnostics)
}

// MARK: - Owning wrappers

/// Copies a CXString and disposes of it.
private func take(_ s: CXString) -> String {
    defer { clang_disposeString(s) }
    guard let c = clang_getCString(s) else { return "" }
    return String(cString: c)
}

private final class Index {
    let raw: CXIndex
    init() { raw = clang_createIndex(0, 0) }
    deinit { clang_disposeIndex(raw) }
}

private final class TranslationUnit {
    let raw: CXTranslationUnit
    let index: Index
    init?(index: Index, mainFile: String, contents: String, arguments: [String]) {
        self.index = index
        var unit: CXTranslationUnit?
        let options = CXTranslationUnit_DetailedPreprocessingRecord.rawValue
            | CXTranslationUnit_SkipFunctionBodies.rawValue
        let code = Array(contents.utf8CString)
        let status: CXErrorCode = mainFile.withCString { name in
            code.withUnsafeBufferPointer { buf in
                var unsaved = CXUnsavedFile(Filename: name, Contents: buf.baseAddress, Length: UInt(buf.count - 1))
                let cargs = arguments.map { strdup($0) }
                defer { cargs.forEach { free($0) } }
                var argv = cargs.map { UnsafePointer<CChar>($0) }
                return argv.withUnsafeMutableBufferPointer { argvBuf in
                    clang_parseTranslationUnit2(index.raw, name, argvBuf.baseAddress, Int32(argvBuf.count),
                                                &unsaved, 1, options, &unit)
                }
            }
        }
        guard status == CXError_Success, let unit else { return nil }
        raw = unit
    }
    deinit { clang_disposeTranslationUnit(raw) }

    var cursor: CXCursor { clang_getTranslationUnitCursor(raw) }

    /// Error-level diagnostics, as text with their location.
    var errors: [String] {
        (0..<clang_getNumDiagnostics(raw)).compactMap { i in
            let d = clang_getDiagnostic(raw, i)
            defer { clang_disposeDiagnostic(d) }
            guard clang_getDiagnosticSeverity(d).rawValue >= CXDiagnostic_Error.rawValue else { return nil }
            return take(clang_formatDiagnostic(d, clang_defaultDiagnosticDisplayOptions()))
        }
    }

    func tokens(of cursor: CXCursor) -> [(kind: CXTokenKind, text: String)] {
        var tokens: UnsafeMutablePointer<CXToken>?
        var count: UInt32 = 0
        clang_tokenize(raw, clang_getCursorExtent(cursor), &tokens, &count)
        guard let tokens else { return [] }
        defer { clang_disposeTokens(raw, tokens, count) }
        return (0..<Int(count)).map { i in
            (clang_getTokenKind(tokens[i]), take(clang_getTokenSpelling(raw, tokens[i])))
        }
    }
}

private func children(_ cursor: CXCursor) -> [CXCursor] {
    final class Box { var items: [CXCursor] = [] }
    let box = Box()
    withExtendedLifetime(box) {
        _ = clang_visitChildren(cursor, { child, _, data in
            Unmanaged<Box>.fromOpaque(data!).takeUnretainedValue().items.append(child)
            return CXChildVisit_Continue
        }, Unmanaged.passUnretained(box).toOpaque())
    }
    return box.items
}

private func spelling(_ c: CXCursor) -> String { take(clang_getCursorSpelling(c)) }

/// Whether a record or enum has no tag. libclang says "not anonymous" for a tagless record that
/// a typedef names, and spells such a record as empty or "(unnamed ...)", so all are checked.
private func isTagless(_ c: CXCursor) -> Bool {
    if clang_Cursor_isAnonymous(c) != 0 { return true }
    let name = spelling(c)
    return name.isEmpty || name.contains("(unnamed") || name.contains("(anonymous")
}

// MARK: - The reader

private final class ClangReader {
    let input: ReaderInput
    let rootPath: String
    var diagnostics = Diagnostics()
    var declarations: [Declaration] = []
    var skipped: [Skipped] = []
    var seen: Set<String> = []
    /// Top-level anonymous enums, by cursor hash, that a typedef may still claim.
    var anonymousEnums: [UInt32: Int] = [:]
    var claimed: Set<Int> = []
    var macroCandidates: [(name: String, location: SourceLocation, isString: Bool)] = []

    init(_ input: ReaderInput) {
        self.input = input
        rootPath = input.root.resolvingSymlinksInPath().path + "/"
    }

    var mainFileName: String { rootPath + "__llama_bindgen_main.c" }

    var arguments: [String] {
        ["-x", "c", "-std=gnu11"] + input.includeDirectories.map { "-I" + rootPath + $0 }
            + input.defines.map { "-D" + $0 }
    }

    var includeLines: String {
        input.headers.map { "#include \"\(rootPath + $0.path)\"\n" }.joined()
    }

    func run() -> APIModule {
        let index = Index()
        guard let unit = TranslationUnit(index: index, mainFile: mainFileName, contents: includeLines,
                                         arguments: arguments) else {
            diagnostics.error("libclang could not parse the headers")
            return APIModule(declarations: [], skipped: [])
        }
        for message in unit.errors { diagnostics.error("clang: \(message)") }
        for cursor in children(unit.cursor) {
            guard let location = location(of: cursor) else { continue }
            visitTopLevel(cursor, at: location, unit: unit)
        }
        declarations = declarations.enumerated().filter { !claimed.contains($0.offset) }.map(\.element)
        evaluateMacros(index: index)
        return APIModule(declarations: declarations, skipped: skipped)
    }

    /// The location of a cursor when it lies in one of the listed headers.
    func location(of cursor: CXCursor) -> SourceLocation? {
        var file: CXFile?
        var line: UInt32 = 0
        clang_getExpansionLocation(clang_getCursorLocation(cursor), &file, &line, nil, nil)
        guard let file else { return nil }
        let path = URL(fileURLWithPath: take(clang_getFileName(file))).resolvingSymlinksInPath().path
        guard path.hasPrefix(rootPath) else { return nil }
        let relative = String(path.dropFirst(rootPath.count))
        guard input.headers.contains(where: { $0.path == relative }) else { return nil }
        return SourceLocation(header: relative, line: Int(line))
    }

    func anyLocation(of cursor: CXCursor) -> SourceLocation {
        var file: CXFile?
        var line: UInt32 = 0
        clang_getExpansionLocation(clang_getCursorLocation(cursor), &file, &line, nil, nil)
        let path = file.map { take(clang_getFileName($0)) } ?? "<unknown>"
        let shown = path.hasPrefix(rootPath) ? String(path.dropFirst(rootPath.count)) : path
        return SourceLocation(header: shown, line: Int(line))
    }

    func once(_ key: String) -> Bool { seen.insert(key).inserted }

    func visitTopLevel(_ c: CXCursor, at loc: SourceLocation, unit: TranslationUnit) {
        switch c.kind {
        case CXCursor_StructDecl, CXCursor_UnionDecl:
            let kind: RecordKind = c.kind == CXCursor_StructDecl ? .struct : .union
            if isTagless(c) { return }  // claimed by the typedef that follows
            let name = spelling(c)
            if clang_isCursorDefinition(c) != 0 {
                addRecord(c)
            } else if clang_Cursor_isNull(clang_getCursorDefinition(c)) != 0, once("opaque \(name)") {
                declarations.append(.opaqueRecord(kind, name, loc))
            }
        case CXCursor_EnumDecl:
            guard clang_isCursorDefinition(c) != 0 else { return }
            let e = buildEnum(c, at: loc)
            if let name = e.name {
                if once("enum \(name)") { declarations.append(.enumeration(e)) }
            } else {
                anonymousEnums[clang_hashCursor(c)] = declarations.count
                declarations.append(.enumeration(e))
            }
        case CXCursor_TypedefDecl:
            let name = spelling(c)
            let underlyingCursor = clang_getTypeDeclaration(clang_getTypedefDeclUnderlyingType(c))
            if underlyingCursor.kind == CXCursor_EnumDecl, let i = anonymousEnums[clang_hashCursor(underlyingCursor)] {
                claimed.insert(i)
            }
            let underlying = convert(clang_getTypedefDeclUnderlyingType(c), at: loc)
            if once("typedef \(name)") {
                declarations.append(.typedef(Typedef(name: name, underlying: underlying, location: loc)))
            }
        case CXCursor_FunctionDecl:
            visitFunction(c, at: loc)
        case CXCursor_VarDecl:
            skipped.append(Skipped(name: spelling(c), reason: "variable: data symbols are not bound", location: loc))
        case CXCursor_MacroDefinition:
            if clang_Cursor_isMacroFunctionLike(c) == 0, clang_Cursor_isMacroBuiltin(c) == 0 {
                considerMacro(c, at: loc, unit: unit)
            }
        default:
            break
        }
    }

    func addRecord(_ c: CXCursor) {
        let name = spelling(c)
        let kind: RecordKind = c.kind == CXCursor_StructDecl ? .struct : .union
        guard !seen.contains("\(kind) \(name)") else { return }
        let record = buildRecord(c)
        if once("\(kind) \(name)") { declarations.append(.record(record)) }
    }

    func buildRecord(_ c: CXCursor) -> Record {
        let loc = location(of: c) ?? anyLocation(of: c)
        let type = clang_getCursorType(c)
        let kind: RecordKind = c.kind == CXCursor_UnionDecl ? .union : .struct
        let anonymous = isTagless(c)
        var fields: [Field] = []
        for child in children(c) {
            switch child.kind {
            case CXCursor_FieldDecl:
                let name = spelling(child)
                let fieldType = convert(clang_getCursorType(child), at: location(of: child) ?? loc)
                let bits: Int? = clang_Cursor_isBitField(child) != 0 ? Int(clang_getFieldDeclBitWidth(child)) : nil
                fields.append(Field(name: name, type: fieldType, offsetBits: Int(clang_Cursor_getOffsetOfField(child)),
                                    bitWidth: bits))
            case CXCursor_StructDecl, CXCursor_UnionDecl:
                if clang_Cursor_isAnonymousRecordDecl(child) != 0 {
                    let inner = buildRecord(child)
                    fields.append(Field(name: nil, type: .anonymousRecord(inner),
                                        offsetBits: anonymousMemberOffset(parent: type, member: inner), bitWidth: nil))
                } else if !isTagless(child), clang_isCursorDefinition(child) != 0 {
                    addRecord(child)  // a tagged record declared inside another is at file scope in C
                }
            case CXCursor_EnumDecl:
                if !isTagless(child), clang_isCursorDefinition(child) != 0 {
                    let e = buildEnum(child, at: location(of: child) ?? loc)
                    if once("enum \(e.name ?? "")") { declarations.append(.enumeration(e)) }
                }
            default:
                break
            }
        }
        return Record(kind: kind, name: anonymous ? nil : spelling(c),
                      size: Int(clang_Type_getSizeOf(type)), alignment: Int(clang_Type_getAlignOf(type)),
                      fields: fields, location: loc)
    }

    /// The bit offset of an anonymous member: found through its first named field, which C
    /// makes visible in the parent.
    func anonymousMemberOffset(parent: CXType, member: Record) -> Int {
        func firstNamed(_ r: Record, base: Int) -> (String, Int)? {
            for f in r.fields {
                if let n = f.name { return (n, base + f.offsetBits) }
                if case .anonymousRecord(let inner) = f.type, let found = firstNamed(inner, base: base + f.offsetBits) {
                    return found
                }
            }
            return nil
        }
        guard let (name, inner) = firstNamed(member, base: 0) else { return 0 }
        let total = name.withCString { clang_Type_getOffsetOf(parent, $0) }
        return Int(total) - inner
    }

    func buildEnum(_ c: CXCursor, at loc: SourceLocation) -> EnumDecl {
        let integer = clang_getCanonicalType(clang_getEnumDeclIntegerType(c)).kind
        let unsigned = [CXType_UInt, CXType_ULong, CXType_ULongLong, CXType_UShort, CXType_UChar, CXType_Char_U]
            .contains(integer)
        let constants = children(c).filter { $0.kind == CXCursor_EnumConstantDecl }.map { k in
            EnumConstant(name: spelling(k),
                         value: unsigned ? String(clang_getEnumConstantDeclUnsignedValue(k))
                                         : String(clang_getEnumConstantDeclValue(k)))
        }
        return EnumDecl(name: isTagless(c) ? nil : spelling(c), constants: constants, location: loc)
    }

    func visitFunction(_ c: CXCursor, at loc: SourceLocation) {
        let name = spelling(c)
        guard once("function \(name)") else { return }
        let exported = children(c).contains { $0.kind == CXCursor_VisibilityAttr }
        if clang_Cursor_getStorageClass(c) == CX_SC_Static {
            skipped.append(Skipped(name: name, reason: "static inline function: defined in the header, not exported",
                                   location: loc))
            return
        }
        if !exported {
            skipped.append(Skipped(name: name, reason: "declared without the header's API macro", location: loc))
            return
        }
        let functionType = clang_getCursorType(c)
        if clang_isFunctionTypeVariadic(functionType) != 0 {
            skipped.append(Skipped(name: name, reason: "variadic function: C varargs cannot be called through a typed pointer",
                                   location: loc))
            return
        }
        let parameters = (0..<max(0, Int(clang_Cursor_getNumArguments(c)))).map { i -> Parameter in
            let arg = clang_Cursor_getArgument(c, UInt32(i))
            let argName = spelling(arg)
            return Parameter(name: argName.isEmpty ? nil : argName, type: convert(clang_getCursorType(arg), at: loc))
        }
        let result = convert(clang_getCursorResultType(c), at: loc)
        var deprecation: String?
        if clang_getCursorAvailability(c) == CXAvailability_Deprecated {
            var alwaysDeprecated: Int32 = 0
            var message = CXString()
            var alwaysUnavailable: Int32 = 0
            var unavailableMessage = CXString()
            _ = clang_getCursorPlatformAvailability(c, &alwaysDeprecated, &message, &alwaysUnavailable,
                                                    &unavailableMessage, nil, 0)
            deprecation = take(message)
            _ = take(unavailableMessage)
        }
        guard let library = input.library(of: name, header: loc.header) else {
            diagnostics.error("no library is known for \(name)", at: loc)
            return
        }
        declarations.append(.function(Function(
            name: name, type: FunctionType(result: result, parameters: parameters, isVariadic: false),
            library: library, deprecation: deprecation, location: loc)))
    }

    // MARK: Types

    static let builtins: [UInt32: String] = [
        CXType_Bool.rawValue: "bool", CXType_Char_S.rawValue: "char", CXType_Char_U.rawValue: "char",
        CXType_SChar.rawValue: "signed char", CXType_UChar.rawValue: "unsigned char",
        CXType_Short.rawValue: "short", CXType_UShort.rawValue: "unsigned short",
        CXType_Int.rawValue: "int", CXType_UInt.rawValue: "unsigned int",
        CXType_Long.rawValue: "long", CXType_ULong.rawValue: "unsigned long",
        CXType_LongLong.rawValue: "long long", CXType_ULongLong.rawValue: "unsigned long long",
        CXType_Float.rawValue: "float", CXType_Double.rawValue: "double", CXType_LongDouble.rawValue: "long double",
    ]

    /// The type with its own qualifiers (restrict, volatile, const, nested in that order, `const`
    /// outermost); a qualifier already applied through an elaborated or attributed type is not repeated.
    func convert(_ t: CXType, at loc: SourceLocation) -> CType {
        var type = convertUnqualified(t, at: loc)
        let present = Set(type.qualifiers.names)
        if clang_isRestrictQualifiedType(t) != 0, !present.contains("restrict") { type = .restrict(type) }
        if clang_isVolatileQualifiedType(t) != 0, !present.contains("volatile") { type = .volatile(type) }
        if clang_isConstQualifiedType(t) != 0, !present.contains("const") { type = .const(type) }
        return type
    }

    func convertUnqualified(_ t: CXType, at loc: SourceLocation) -> CType {
        if let b = Self.builtins[t.kind.rawValue] { return .builtin(b) }
        switch t.kind {
        case CXType_Void:
            return .void
        case CXType_Elaborated:
            return convert(clang_Type_getNamedType(t), at: loc)
        case CXType_Attributed:
            return convert(clang_Type_getModifiedType(t), at: loc)
        case CXType_Typedef:
            let decl = clang_getTypeDeclaration(t)
            // The canonical type of the declaration, not of this use: qualifiers at the use are the caller's.
            return .typedef(spelling(decl), canonical: convert(clang_getCanonicalType(clang_getCursorType(decl)), at: loc))
        case CXType_Pointer:
            return .pointer(convert(clang_getPointeeType(t), at: loc))
        case CXType_Record:
            let decl = clang_getTypeDeclaration(t)
            if isTagless(decl) { return .anonymousRecord(buildRecord(decl)) }
            let kind: RecordKind = decl.kind == CXCursor_UnionDecl ? .union : .struct
            return .record(kind, spelling(decl), complete: clang_Type_getSizeOf(t) >= 0)
        case CXType_Enum:
            let decl = clang_getTypeDeclaration(t)
            if isTagless(decl) { return .anonymousEnum(buildEnum(decl, at: loc)) }
            return .enumeration(spelling(decl))
        case CXType_ConstantArray:
            return .array(convert(clang_getArrayElementType(t), at: loc), count: Int(clang_getArraySize(t)))
        case CXType_IncompleteArray:
            return .array(convert(clang_getArrayElementType(t), at: loc), count: nil)
        case CXType_FunctionProto:
            let parameters = (0..<max(0, Int(clang_getNumArgTypes(t)))).map {
                Parameter(name: nil, type: convert(clang_getArgType(t, UInt32($0)), at: loc))
            }
            return .function(FunctionType(result: convert(clang_getResultType(t), at: loc), parameters: parameters,
                                          isVariadic: clang_isFunctionTypeVariadic(t) != 0))
        case CXType_FunctionNoProto:
            diagnostics.warning("function type without a prototype: \(take(clang_getTypeSpelling(t)))", at: loc)
            return .function(FunctionType(result: convert(clang_getResultType(t), at: loc), parameters: [],
                                          isVariadic: false))
        default:
            let canonical = clang_getCanonicalType(t)
            if canonical.kind != t.kind, canonical.kind != CXType_Unexposed { return convert(canonical, at: loc) }
            diagnostics.error("unsupported type \(take(clang_getTypeSpelling(t))) (kind \(take(clang_getTypeKindSpelling(t.kind))))",
                              at: loc)
            return .void
        }
    }

    // MARK: Macros

    func considerMacro(_ c: CXCursor, at loc: SourceLocation, unit: TranslationUnit) {
        let name = spelling(c)
        let body = unit.tokens(of: c).dropFirst()
        guard !body.isEmpty, !name.hasPrefix("_") else { return }
        let decorations: Set<String> = ["__attribute__", "__declspec", "extern", "static", "inline", "__inline__"]
        guard !body.contains(where: { decorations.contains($0.text) }) else { return }
        let isString = body.allSatisfy { $0.kind == CXToken_Literal && $0.text.hasPrefix("\"") }
        macroCandidates.append((name, loc, isString))
    }

    /// Evaluates each candidate macro as the initializer of a variable in a second translation unit.
    func evaluateMacros(index: Index) {
        guard !macroCandidates.isEmpty else { return }
        let prefix = "__llama_bindgen_value_"
        // A string constant initializes a pointer (libclang evaluates the decayed literal); anything else
        // takes the type of the expression.
        let probes = macroCandidates.map {
            $0.isString ? "static const char *const \(prefix)\($0.name) = \($0.name);\n"
                        : "static const __auto_type \(prefix)\($0.name) = (\($0.name));\n"
        }.joined()
        guard let unit = TranslationUnit(index: index, mainFile: rootPath + "__llama_bindgen_macros.c",
                                         contents: includeLines + probes, arguments: arguments) else {
            diagnostics.error("libclang could not parse the macro probes")
            return
        }
        var values: [String: ConstantValue] = [:]
        for cursor in children(unit.cursor) where cursor.kind == CXCursor_VarDecl {
            let varName = spelling(cursor)
            guard varName.hasPrefix(prefix), let value = evaluate(cursor) else { continue }
            values[String(varName.dropFirst(prefix.count))] = value
        }
        for (name, loc, _) in macroCandidates {
            if let value = values[name] {
                declarations.append(.constant(Constant(name: name, value: value, location: loc)))
            } else {
                skipped.append(Skipped(name: name, reason: "macro is not an integer, floating-point or string constant",
                                       location: loc))
            }
        }
    }

    func evaluate(_ cursor: CXCursor) -> ConstantValue? {
        guard let result = clang_Cursor_Evaluate(cursor) else { return nil }
        defer { clang_EvalResult_dispose(result) }
        switch clang_EvalResult_getKind(result) {
        case CXEval_Int:
            let type = clang_getCanonicalType(clang_getCursorType(cursor))
            guard let cType = Self.builtins[type.kind.rawValue] else { return nil }
            if clang_EvalResult_isUnsignedInt(result) != 0 {
                return .integer(String(clang_EvalResult_getAsUnsigned(result)), type: cType)
            }
            return .integer(String(clang_EvalResult_getAsLongLong(result)), type: cType)
        case CXEval_Float:
            return .float(clang_EvalResult_getAsDouble(result))
        case CXEval_StrLiteral:
            guard let s = clang_EvalResult_getAsStr(result) else { return nil }
            return .string(String(cString: s))
        default:
            return nil
        }
    }
}


