public import SwiftSyntax
public import SwiftSyntaxMacros
import SwiftDiagnostics
import SwiftSyntaxBuilder

/// `@Generable(description:)`: an extension that conforms the type to `Generable` with a
/// `generationSchema` derived from its declaration.
///
/// - Structs: the stored instance properties in declaration order (their `CodingKeys` names when
///   the struct declares `CodingKeys`), all required except optionals, which may be left out;
///   `@Guide` adds a description and constraints. Computed and static properties are ignored; a
///   `let` with a default value is left out (decoding keeps the default), with a warning.
/// - Enums without payloads: a string enum of the case names, or of the raw values for `String`
///   raw values, or an integer enum for `Int` raw values. For an enum without raw values the
///   extension also decodes it from the case name (`init(from:)`), unless the enum has its own.
/// - Enums with payloads: `anyOf` the cases in the form Swift's synthesized `Codable` gives them,
///   `{"case": {"label": value}}` (`_0`, `_1`… for unlabelled values).
///
/// Decoding is the type's own `Decodable` (declared, or synthesized through `Generable`, which
/// refines `Decodable`). Types that contain themselves become `$defs`/`$ref` schemas at run time
/// (`GenerationSchema.definition`).
public struct GenerableMacro: ExtensionMacro {
    public static func expansion(
        of node: AttributeSyntax,
        attachedTo declaration: some DeclGroupSyntax,
        providingExtensionsOf type: some TypeSyntaxProtocol,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [ExtensionDeclSyntax] {
        let description = argument(labeled: "description", of: node)
        let access = accessModifier(of: declaration)
        let typeName = type.trimmedDescription
        var members: [String] = []
        let schema: String
        if let s = declaration.as(StructDeclSyntax.self) {
            if s.genericParameterClause != nil {
                context.diagnose(Diagnostic(node: Syntax(s.name), message: GenerableDiagnostic.generic))
                return []
            }
            guard let body = structSchema(s, description: description, context: context) else { return [] }
            schema = body
        } else if let e = declaration.as(EnumDeclSyntax.self) {
            if e.genericParameterClause != nil {
                context.diagnose(Diagnostic(node: Syntax(e.name), message: GenerableDiagnostic.generic))
                return []
            }
            guard let (body, decoder) = enumSchema(e, description: description, access: access, context: context) else { return [] }
            schema = body
            if let decoder { members.append(decoder) }
        } else {
            let kind: String
            switch declaration.kind {
            case .classDecl: kind = "class"
            case .actorDecl: kind = "actor"
            case .protocolDecl: kind = "protocol"
            case .extensionDecl: kind = "extension"
            default: kind = "these"
            }
            context.diagnose(Diagnostic(node: Syntax(node), message: GenerableDiagnostic.notStructOrEnum(kind: kind)))
            return []
        }
        let conformance = protocols.isEmpty ? "" : ": LlamaSchema.Generable"
        let schemaMember = "\(access)static var generationSchema: LlamaJinja.JSONValue {\n"
            + "    LlamaSchema.GenerationSchema.definition(\(stringLiteral(typeName))) {\n"
            + indent(schema, by: 8) + "\n    }\n}"
        let text = "extension \(typeName)\(conformance) {\n"
            + ([schemaMember] + members).map { indent($0, by: 4) }.joined(separator: "\n\n") + "\n}"
        let decl: DeclSyntax = "\(raw: text)"
        guard let ext = decl.as(ExtensionDeclSyntax.self) else { return [] }
        return [ext]
    }

    // MARK: Structs

    struct StoredProperty {
        var name: String
        var type: TypeSyntax
        var attributes: AttributeListSyntax
    }

    static func structSchema(_ s: StructDeclSyntax, description: String?, context: some MacroExpansionContext) -> String? {
        let keys = codingKeys(in: s.memberBlock, context: context)
        var properties: [String] = []
        var failed = false
        for member in s.memberBlock.members {
            guard let variable = member.decl.as(VariableDeclSyntax.self) else { continue }
            guard let stored = storedProperties(variable, context: context, failed: &failed) else { continue }
            for p in stored {
                let key: String
                if let keys {
                    guard let k = keys[p.name] else { continue }
                    key = k
                } else {
                    key = p.name
                }
                let (wrapped, optional) = unwrapOptional(p.type)
                var expr = "LlamaSchema.GenerationSchema.schema(for: \(wrapped.trimmedDescription).self)"
                if let guide = guide(in: p.attributes) {
                    guard let guided = guidedSchema(expr, guide, type: wrapped, context: context) else { failed = true; continue }
                    expr = guided
                }
                properties.append("LlamaSchema.GenerationSchema.Property(\(stringLiteral(key)), \(expr)"
                    + (optional ? ", isRequired: false)" : ")"))
            }
        }
        if failed { return nil }
        let list = properties.isEmpty ? "[]" : "[\n" + properties.map { "    " + $0 + ",\n" }.joined() + "]"
        return "LlamaSchema.GenerationSchema.object(description: \(description ?? "nil"), properties: \(list))"
    }

    /// The stored instance properties a variable declaration declares (nil: none to generate).
    static func storedProperties(_ v: VariableDeclSyntax, context: some MacroExpansionContext, failed: inout Bool) -> [StoredProperty]? {
        let hasGuide = guide(in: v.attributes) != nil
        let firstName = v.bindings.first.flatMap { $0.pattern.as(IdentifierPatternSyntax.self)?.identifier.text } ?? "?"
        if v.modifiers.contains(where: { $0.name.tokenKind == .keyword(.static) || $0.name.tokenKind == .keyword(.class) }) {
            if hasGuide { context.diagnose(Diagnostic(node: Syntax(v), message: GenerableDiagnostic.guideOnStatic(firstName))) }
            return nil
        }
        let isLet = v.bindingSpecifier.tokenKind == .keyword(.let)
        let isLazy = v.modifiers.contains { $0.name.tokenKind == .keyword(.lazy) }
        var result: [StoredProperty] = []
        let bindings = Array(v.bindings)
        for (i, binding) in bindings.enumerated() {
            guard let name = binding.pattern.as(IdentifierPatternSyntax.self)?.identifier.text else {
                context.diagnose(Diagnostic(node: Syntax(binding.pattern), message: GenerableDiagnostic.patternBinding))
                failed = true
                continue
            }
            if let accessors = binding.accessorBlock, isComputed(accessors) {
                if hasGuide { context.diagnose(Diagnostic(node: Syntax(v), message: GenerableDiagnostic.guideOnComputed(name))) }
                continue
            }
            if isLazy {
                context.diagnose(Diagnostic(node: Syntax(binding), message: GenerableDiagnostic.lazyProperty(name)))
                failed = true
                continue
            }
            if isLet && binding.initializer != nil {
                context.diagnose(Diagnostic(node: Syntax(binding), message: GenerableDiagnostic.letWithDefault(name)))
                continue
            }
            // `var a, b: Int`: the type is written on the last binding.
            guard let type = bindings[i...].lazy.compactMap({ $0.typeAnnotation?.type }).first else {
                context.diagnose(Diagnostic(node: Syntax(binding), message: GenerableDiagnostic.missingTypeAnnotation(name)))
                failed = true
                continue
            }
            result.append(StoredProperty(name: name, type: type, attributes: v.attributes))
        }
        return result
    }

    static func isComputed(_ block: AccessorBlockSyntax) -> Bool {
        switch block.accessors {
        case .getter: return true
        case .accessors(let list):
            return list.contains { a in
                switch a.accessorSpecifier.tokenKind {
                case .keyword(.willSet), .keyword(.didSet): return false
                default: return true
                }
            }
        }
    }

    /// Property name → JSON key, from a nested `CodingKeys` enum (nil: none declared).
    static func codingKeys(in block: MemberBlockSyntax, context: some MacroExpansionContext) -> [String: String]? {
        for member in block.members {
            guard let e = member.decl.as(EnumDeclSyntax.self), e.name.text == "CodingKeys" else { continue }
            var keys: [String: String] = [:]
            for c in caseElements(of: e) {
                if let raw = c.rawValue {
                    guard let literal = stringLiteralValue(raw.value) else {
                        context.diagnose(Diagnostic(node: Syntax(raw), message: GenerableDiagnostic.codingKeyNotLiteral(c.name.text)))
                        continue
                    }
                    keys[c.name.text] = literal
                } else {
                    keys[c.name.text] = c.name.text
                }
            }
            return keys
        }
        return nil
    }

    // MARK: Enums

    static let stringRawTypes: Set<String> = ["String", "Swift.String"]
    static let intRawTypes: Set<String> = ["Int", "Swift.Int"]
    static let otherRawTypes: Set<String> = [
        "Character", "Double", "Float", "Float16", "Float80", "Int8", "Int16", "Int32", "Int64", "UInt", "UInt8",
        "UInt16", "UInt32", "UInt64", "Substring", "Swift.Character", "Swift.Double", "Swift.Float",
    ]

    static func caseElements(of e: EnumDeclSyntax) -> [EnumCaseElementSyntax] {
        e.memberBlock.members.flatMap { m -> [EnumCaseElementSyntax] in
            guard let c = m.decl.as(EnumCaseDeclSyntax.self) else { return [] }
            return Array(c.elements)
        }
    }

    /// The schema expression, and an `init(from:)` for enums without raw values or payloads.
    static func enumSchema(_ e: EnumDeclSyntax, description: String?, access: String,
                           context: some MacroExpansionContext) -> (String, String?)? {
        let cases = caseElements(of: e)
        let rawType = e.inheritanceClause?.inheritedTypes.first?.type.trimmedDescription
        let desc = description ?? "nil"
        if cases.contains(where: { $0.parameterClause != nil }) {
            var alternatives: [String] = []
            var failed = false
            for c in cases {
                var values: [String] = []
                for (i, p) in (c.parameterClause?.parameters ?? []).enumerated() {
                    let label = p.firstName.flatMap { $0.tokenKind == .wildcard ? nil : $0.text } ?? "_\(i)"
                    let (wrapped, optional) = unwrapOptional(p.type)
                    values.append("LlamaSchema.GenerationSchema.Property(\(stringLiteral(label)), "
                        + "LlamaSchema.GenerationSchema.schema(for: \(wrapped.trimmedDescription).self)"
                        + (optional ? ", isRequired: false)" : ")"))
                }
                if c.rawValue != nil { failed = true }
                let list = values.isEmpty ? "[]" : "[" + values.joined(separator: ", ") + "]"
                alternatives.append("LlamaSchema.GenerationSchema.enumCase(\(stringLiteral(c.name.text)), \(list))")
            }
            if failed { return nil }
            return ("LlamaSchema.GenerationSchema.anyOf(description: \(desc), [\n"
                + alternatives.map { "    " + $0 + ",\n" }.joined() + "])", nil)
        }
        if let rawType, stringRawTypes.contains(rawType) {
            var values: [String] = []
            for c in cases {
                if let raw = c.rawValue {
                    guard let literal = stringLiteralValue(raw.value) else {
                        context.diagnose(Diagnostic(node: Syntax(raw), message: GenerableDiagnostic.rawValueNotLiteral(c.name.text)))
                        return nil
                    }
                    values.append(literal)
                } else {
                    values.append(c.name.text)
                }
            }
            return ("LlamaSchema.GenerationSchema.enumeration(description: \(desc), [\(values.map(stringLiteral).joined(separator: ", "))])", nil)
        }
        if let rawType, intRawTypes.contains(rawType) {
            var values: [Int] = []
            var next = 0
            for c in cases {
                if let raw = c.rawValue {
                    guard let v = integerLiteralValue(raw.value) else {
                        context.diagnose(Diagnostic(node: Syntax(raw), message: GenerableDiagnostic.rawValueNotLiteral(c.name.text)))
                        return nil
                    }
                    next = v
                }
                values.append(next)
                next += 1
            }
            return ("LlamaSchema.GenerationSchema.enumeration(description: \(desc), [\(values.map(String.init).joined(separator: ", "))])", nil)
        }
        if let rawType, otherRawTypes.contains(rawType) {
            context.diagnose(Diagnostic(node: Syntax(e.inheritanceClause!.inheritedTypes.first!), message: GenerableDiagnostic.unsupportedRawType(rawType)))
            return nil
        }
        // No raw values: the case names, decoded by name.
        let names = cases.map(\.name.text)
        let schema = "LlamaSchema.GenerationSchema.enumeration(description: \(desc), [\(names.map(stringLiteral).joined(separator: ", "))])"
        let hasDecoder = e.memberBlock.members.contains { m in
            guard let i = m.decl.as(InitializerDeclSyntax.self) else { return false }
            return i.signature.parameterClause.parameters.first?.firstName.text == "from"
        }
        if hasDecoder { return (schema, nil) }
        let typeName = e.name.text
        let decoder = """
            \(access)init(from decoder: any Swift.Decoder) throws {
                let container = try decoder.singleValueContainer()
                switch try container.decode(Swift.String.self) {
            \(names.map { "    case \(stringLiteral($0)): self = .\($0)" }.joined(separator: "\n"))
                default:
                    throw Swift.DecodingError.dataCorruptedError(in: container, debugDescription: "not a case of \(typeName): expected one of \(names.joined(separator: ", "))")
                }
            }
            """
        return (schema, decoder)
    }

    // MARK: @Guide

    struct Guide {
        var description: String?
        var constraints: [ExprSyntax]
    }

    static func guide(in attributes: AttributeListSyntax) -> Guide? {
        for element in attributes {
            guard case .attribute(let a) = element else { continue }
            let name = a.attributeName.trimmedDescription
            guard name == "Guide" || name == "LlamaGenerable.Guide" else { continue }
            var g = Guide(description: nil, constraints: [])
            if case .argumentList(let args)? = a.arguments {
                for arg in args {
                    if arg.label?.text == "description" { g.description = arg.expression.trimmedDescription }
                    else { g.constraints.append(arg.expression) }
                }
            }
            return g
        }
        return nil
    }

    /// `schema` wrapped in `GenerationSchema.guided`, after checking what can be checked here:
    /// literal ranges that are empty, and constraints on a basic type they cannot apply to.
    static func guidedSchema(_ schema: String, _ guide: Guide, type: TypeSyntax, context: some MacroExpansionContext) -> String? {
        var ok = true
        let kind = basicKind(type)
        for c in guide.constraints {
            guard let call = c.as(FunctionCallExprSyntax.self),
                  let member = call.calledExpression.as(MemberAccessExprSyntax.self) else { continue }
            let name = member.declName.baseName.text
            if let kind, !applies(name, to: kind) {
                context.diagnose(Diagnostic(node: Syntax(c), message: GenerableDiagnostic.constraintDoesNotApply(constraint: name, type: type.trimmedDescription)))
                ok = false
            }
            for arg in call.arguments {
                if let (lo, hi) = literalClosedRange(arg.expression), lo > hi {
                    context.diagnose(Diagnostic(node: Syntax(arg.expression), message: GenerableDiagnostic.emptyRange(arg.expression.trimmedDescription)))
                    ok = false
                }
            }
        }
        let names = guide.constraints.compactMap {
            $0.as(FunctionCallExprSyntax.self)?.calledExpression.as(MemberAccessExprSyntax.self)?.declName.baseName.text
        }
        if kind == .string, names.contains("count"), names.contains("pattern") {
            context.diagnose(Diagnostic(node: Syntax(guide.constraints[names.firstIndex(of: "count")!]), message: GenerableDiagnostic.countWithPattern))
            ok = false
        }
        guard ok else { return nil }
        let constraints = guide.constraints.map(\.trimmedDescription).joined(separator: ", ")
        return "LlamaSchema.GenerationSchema.guided(\(schema), description: \(guide.description ?? "nil"), [\(constraints)])"
    }

    /// The bounds of `a...b` with number literals (macro arguments are not folded: a sequence
    /// expression of three elements; folded: an infix operator expression).
    static func literalClosedRange(_ expr: ExprSyntax) -> (Double, Double)? {
        if let seq = expr.as(SequenceExprSyntax.self) {
            let items = Array(seq.elements)
            guard items.count == 3, items[1].as(BinaryOperatorExprSyntax.self)?.operator.text == "...",
                  let lo = numberLiteralValue(items[0]), let hi = numberLiteralValue(items[2]) else { return nil }
            return (lo, hi)
        }
        if let infix = expr.as(InfixOperatorExprSyntax.self),
           infix.operator.as(BinaryOperatorExprSyntax.self)?.operator.text == "...",
           let lo = numberLiteralValue(infix.leftOperand), let hi = numberLiteralValue(infix.rightOperand) {
            return (lo, hi)
        }
        return nil
    }

    enum BasicKind { case integer, number, string, boolean, array }

    /// What a written type is, when it is one of the basic types (nil: not known here).
    static func basicKind(_ type: TypeSyntax) -> BasicKind? {
        if type.is(ArrayTypeSyntax.self) { return .array }
        let written = type.trimmedDescription
        let name = written.hasPrefix("Swift.") ? String(written.dropFirst(6)) : written
        switch name {
        case "Int", "Int8", "Int16", "Int32", "Int64", "UInt", "UInt8", "UInt16", "UInt32", "UInt64": return .integer
        case "Double", "Float": return .number
        case "String": return .string
        case "Bool": return .boolean
        default: return name.hasPrefix("Array<") ? .array : nil
        }
    }

    static func applies(_ constraint: String, to kind: BasicKind) -> Bool {
        switch constraint {
        case "range", "minimum", "maximum": return kind == .integer || kind == .number
        case "count": return kind == .array || kind == .string
        case "pattern": return kind == .string
        case "anyOf": return kind == .string || kind == .integer
        case "element": return kind == .array
        default: return true
        }
    }

    // MARK: Syntax helpers

    static func argument(labeled label: String, of node: AttributeSyntax) -> String? {
        guard case .argumentList(let args)? = node.arguments else { return nil }
        return args.first { $0.label?.text == label }?.expression.trimmedDescription
    }

    static func accessModifier(of declaration: some DeclGroupSyntax) -> String {
        for m in declaration.modifiers {
            switch m.name.tokenKind {
            case .keyword(.public), .keyword(.open): return "public "
            case .keyword(.package): return "package "
            default: continue
            }
        }
        return ""
    }

    /// `T?`, `T!` and `Optional<T>` → (`T`, true); anything else → (itself, false).
    static func unwrapOptional(_ type: TypeSyntax) -> (TypeSyntax, Bool) {
        if let o = type.as(OptionalTypeSyntax.self) { return (o.wrappedType, true) }
        if let o = type.as(ImplicitlyUnwrappedOptionalTypeSyntax.self) { return (o.wrappedType, true) }
        if let i = type.as(IdentifierTypeSyntax.self), i.name.text == "Optional",
           let arg = i.genericArgumentClause?.arguments.first, case .type(let wrapped) = arg.argument {
            return (wrapped, true)
        }
        if let m = type.as(MemberTypeSyntax.self), m.baseType.trimmedDescription == "Swift", m.name.text == "Optional",
           let arg = m.genericArgumentClause?.arguments.first, case .type(let wrapped) = arg.argument {
            return (wrapped, true)
        }
        return (type, false)
    }

    static func stringLiteralValue(_ expr: ExprSyntax) -> String? {
        guard let s = expr.as(StringLiteralExprSyntax.self), s.segments.count == 1,
              case .stringSegment(let segment) = s.segments.first else {
            if let s = expr.as(StringLiteralExprSyntax.self), s.segments.isEmpty { return "" }
            return nil
        }
        return segment.content.text
    }

    static func integerLiteralValue(_ expr: ExprSyntax) -> Int? {
        if let p = expr.as(PrefixOperatorExprSyntax.self), p.operator.text == "-" {
            return integerLiteralValue(p.expression).map { -$0 }
        }
        guard let i = expr.as(IntegerLiteralExprSyntax.self) else { return nil }
        var text = String(i.literal.text.filter { $0 != "_" })
        var radix = 10
        for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] where text.hasPrefix(prefix) {
            text = String(text.dropFirst(2))
            radix = r
        }
        return Int(text, radix: radix)
    }

    static func numberLiteralValue(_ expr: ExprSyntax) -> Double? {
        if let i = integerLiteralValue(expr) { return Double(i) }
        if let p = expr.as(PrefixOperatorExprSyntax.self), p.operator.text == "-" {
            return numberLiteralValue(p.expression).map { -$0 }
        }
        if let f = expr.as(FloatLiteralExprSyntax.self) { return Double(String(f.literal.text.filter { $0 != "_" })) }
        return nil
    }

    /// A Swift string literal of `s`.
    static func stringLiteral(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    static func indent(_ text: String, by n: Int) -> String {
        let pad = String(repeating: " ", count: n)
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : pad + $0 }.joined(separator: "\n")
    }
}

/// `@Guide(description:_:)`: a marker read by `@Generable`; it expands to nothing.
public struct GuideMacro: PeerMacro {
    public static func expansion(
        of node: AttributeSyntax,
        providingPeersOf declaration: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        []
    }
}
