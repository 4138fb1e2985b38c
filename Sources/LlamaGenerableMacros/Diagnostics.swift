import SwiftDiagnostics
import SwiftSyntax

/// What `@Generable` and `@Guide` report: each message says what is wrong and what to do.
enum GenerableDiagnostic: DiagnosticMessage {
    case notStructOrEnum(kind: String)
    case generic
    case missingTypeAnnotation(String)
    case patternBinding
    case lazyProperty(String)
    case letWithDefault(String)
    case unsupportedRawType(String)
    case rawValueNotLiteral(String)
    case guideOnComputed(String)
    case guideOnStatic(String)
    case emptyRange(String)
    case constraintDoesNotApply(constraint: String, type: String)
    case codingKeyNotLiteral(String)
    case countWithPattern

    var message: String {
        switch self {
        case .notStructOrEnum(let kind):
            return "@Generable applies to structs and enums, not to \(kind) declarations; conform to Generable by hand "
                + "with a written generationSchema"
        case .generic:
            return "@Generable does not support generic types; conform to Generable by hand (for example in an "
                + "extension with 'where' clauses) with a written generationSchema"
        case .missingTypeAnnotation(let name):
            return "stored property '\(name)' needs a type annotation for @Generable to derive its schema"
        case .patternBinding:
            return "@Generable does not support tuple patterns in property declarations; declare each property on its own"
        case .lazyProperty(let name):
            return "lazy property '\(name)' is not supported by @Generable; make it a stored or computed property"
        case .letWithDefault(let name):
            return "'\(name)' is a 'let' with a default value, which decoding keeps: it is left out of the schema "
                + "(make it a 'var' to have it generated)"
        case .unsupportedRawType(let type):
            return "@Generable supports enums without raw values, or with String or Int raw values, not \(type); "
                + "conform to Generable by hand"
        case .rawValueNotLiteral(let name):
            return "the raw value of case '\(name)' must be a literal for @Generable to put it in the schema"
        case .guideOnComputed(let name):
            return "@Guide on computed property '\(name)' has no effect: only stored properties are generated"
        case .guideOnStatic(let name):
            return "@Guide on static property '\(name)' has no effect: only stored instance properties are generated"
        case .emptyRange(let text):
            return "\(text) is an empty range: its lower bound is above its upper bound"
        case .constraintDoesNotApply(let constraint, let type):
            return ".\(constraint) does not apply to \(type): ranges apply to numbers, counts to arrays and strings, "
                + "patterns and allowed strings to strings"
        case .codingKeyNotLiteral(let name):
            return "the raw value of coding key '\(name)' must be a string literal for @Generable to name the property"
        case .countWithPattern:
            return "a string's .count is not enforced together with a .pattern (the grammar follows the pattern): "
                + "write the length into the pattern, for example \"[a-z]{2,8}\""
        }
    }

    var diagnosticID: MessageID {
        let id: String
        switch self {
        case .notStructOrEnum: id = "notStructOrEnum"
        case .generic: id = "generic"
        case .missingTypeAnnotation: id = "missingTypeAnnotation"
        case .patternBinding: id = "patternBinding"
        case .lazyProperty: id = "lazyProperty"
        case .letWithDefault: id = "letWithDefault"
        case .unsupportedRawType: id = "unsupportedRawType"
        case .rawValueNotLiteral: id = "rawValueNotLiteral"
        case .guideOnComputed: id = "guideOnComputed"
        case .guideOnStatic: id = "guideOnStatic"
        case .emptyRange: id = "emptyRange"
        case .constraintDoesNotApply: id = "constraintDoesNotApply"
        case .codingKeyNotLiteral: id = "codingKeyNotLiteral"
        case .countWithPattern: id = "countWithPattern"
        }
        return MessageID(domain: "LlamaGenerable", id: id)
    }

    var severity: DiagnosticSeverity {
        switch self {
        case .letWithDefault, .guideOnComputed, .guideOnStatic: return .warning
        default: return .error
        }
    }
}
