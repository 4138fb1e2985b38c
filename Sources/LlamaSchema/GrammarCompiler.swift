import LlamaJinja

/// Built-in rules and the rules they use.
struct BuiltinRule {
    let body: String
    let deps: [String]
}

let primitiveRules: [String: BuiltinRule] = [
    "boolean": .init(body: "(\"true\" | \"false\")", deps: []),
    "decimal-part": .init(body: "[0-9]{1,16}", deps: []),
    "integral-part": .init(body: "[0] | [1-9] [0-9]{0,15}", deps: []),
    "number": .init(body: "(\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)?", deps: ["integral-part", "decimal-part"]),
    "integer": .init(body: "(\"-\"? integral-part)", deps: ["integral-part"]),
    "value": .init(body: "object | array | string | number | boolean | null", deps: ["object", "array", "string", "number", "boolean", "null"]),
    "object": .init(body: "\"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? space \"}\"", deps: ["string", "value"]),
    "array": .init(body: "\"[\" space ( value (\",\" space value)* )? space \"]\"", deps: ["value"]),
    "uuid": .init(body: "\"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12} \"\\\"\"", deps: []),
    "char": .init(body: "[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4})", deps: []),
    "string": .init(body: "\"\\\"\" char* \"\\\"\"", deps: ["char"]),
    "null": .init(body: "\"null\"", deps: []),
]

let stringFormatRules: [String: BuiltinRule] = [
    "date": .init(body: "[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )", deps: []),
    "time": .init(body: "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{3} )? ( \"Z\" | ( \"+\" | \"-\" ) ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )", deps: []),
    "date-time": .init(body: "date \"T\" time", deps: ["date", "time"]),
    "date-string": .init(body: "\"\\\"\" date \"\\\"\"", deps: ["date"]),
    "time-string": .init(body: "\"\\\"\" time \"\\\"\"", deps: ["time"]),
    "date-time-string": .init(body: "\"\\\"\" date-time \"\\\"\"", deps: ["date-time"]),
]

let reservedNames: Set<String> = Set(["root"]).union(primitiveRules.keys).union(stringFormatRules.keys)

/// The second stage: a `SchemaDocument` to rules, visiting nodes as llama.cpp's converter
/// does (rule names from property paths, built-in rules added on first use), so that the
/// GBNF text is the same.
final class GrammarCompiler {
    let document: SchemaDocument
    let dotAll: Bool
    var rules = RuleSet()
    var refsBeingResolved = Set<String>()
    var errors: [SchemaError] = []
    var warnings: [SchemaWarning] = []

    init(document: SchemaDocument, whitespace: WhitespacePolicy, dotAll: Bool) {
        self.document = document
        self.dotAll = dotAll
        rules.add("space", whitespace.spaceRule)
    }

    func addPrimitive(_ name: String, _ rule: BuiltinRule) -> String {
        let n = rules.add(name, rule.body)
        for dep in rule.deps {
            guard let depRule = primitiveRules[dep] ?? stringFormatRules[dep] else { continue }
            if !rules.contains(dep) { _ = addPrimitive(dep, depRule) }
        }
        return n
    }

    func visitPrimitive(_ ruleName: String, _ type: String) -> String {
        addPrimitive(ruleName == "root" ? "root" : type, primitiveRules[type]!)
    }

    static func constantRule(_ value: JSONValue) -> String { GBNF.literal(GBNF.dump(value)) }

    func unionRule(_ name: String, _ alternatives: [SchemaNode]) -> String {
        alternatives.enumerated().map { i, alt in
            visit(alt, name + (name.isEmpty ? "alternative-" : "-") + String(i))
        }.joined(separator: " | ")
    }

    func visitPattern(_ s: SchemaNode.StringSchema, _ pattern: String, _ name: String) -> String {
        let snapshot = rules
        var compiler = PatternCompiler(pattern: pattern, name: name, dotAll: dotAll)
        do {
            return try compiler.compile(into: &rules)
        } catch {
            rules = snapshot
            switch error {
            case .unsupported(let why):
                warnings.append(SchemaWarning(at: s.patternPointer, "pattern \(pattern) is not supported (\(why)), accepting any string"))
                return rules.add(name, addPrimitive("string", primitiveRules["string"]!))
            case .invalid(let why):
                errors.append(SchemaError(.invalidPattern, at: s.patternPointer, "invalid pattern \(pattern): \(why)"))
                return ""
            }
        }
    }

    /// A JSON string that is none of `strings`, through a trie of their characters.
    func notStrings(_ strings: [String]) -> String {
        final class Node {
            var children: [(UInt32, Node)] = []
            var terminal = false
            func child(_ c: UInt32) -> Node {
                if let n = children.first(where: { $0.0 == c }) { return n.1 }
                let n = Node()
                children.append((c, n))
                children.sort { $0.0 < $1.0 }
                return n
            }
        }
        let root = Node()
        for s in strings {
            var node = root
            for scalar in s.unicodeScalars { node = node.child(scalar.value) }
            node.terminal = true
        }
        let charRule = addPrimitive("char", primitiveRules["char"]!)
        var out = "[\"] ( "
        /// A character inside a GBNF character class where llama.cpp's converter writes text its own
        /// parser rejects: `]` and `\\` escaped, a NUL (which ends the C string) as `\\x00`, and `^`
        /// as `\\x5E` when it opens a class (`[^]`). Everything else as llama.cpp writes it, so the
        /// text stays the converter's (a `-` among the rejected characters can form a range there too).
        func classChar(_ cpt: UInt32, opening: Bool) -> String {
            switch cpt {
            case 0x5D, 0x5C: return "\\" + String(Unicode.Scalar(cpt)!)
            case 0: return "\\x00"
            case 0x5E where opening: return "\\x5E"
            default: return String(Unicode.Scalar(cpt)!)
            }
        }
        func visit(_ node: Node) {
            var rejects = ""
            for (i, (cpt, child)) in node.children.enumerated() {
                rejects += classChar(cpt, opening: false)
                if i > 0 { out += " | " }
                out += "[" + classChar(cpt, opening: true) + "]"
                if !child.children.isEmpty {
                    out += " ("
                    visit(child)
                    out += ")"
                } else {
                    out += " " + charRule + "+"
                }
            }
            if !node.children.isEmpty { out += " | [^\"" + rejects + "] " + charRule + "*" }
        }
        visit(root)
        out += " )"
        if !root.terminal { out += "?" }
        return out + " [\"]"
    }

    func resolveRef(_ ref: String) -> String {
        let fragment = ref.firstIndex(of: "#").map { String(ref[ref.index(after: $0)...]) } ?? ref
        var refName = "ref" + RuleSet.ruleName(fragment)
        if !rules.contains(refName) && !refsBeingResolved.contains(ref) {
            guard let target = document.definitions[ref] else {
                errors.append(SchemaError(.unresolvedReference, at: ref, "unresolved $ref \(ref)"))
                return ""
            }
            refsBeingResolved.insert(ref)
            refName = visit(target, refName)
            refsBeingResolved.remove(ref)
        }
        return refName
    }

    func objectRule(_ properties: [(String, SchemaNode)], required: Set<String>, name: String, additional: SchemaNode?) -> String {
        var requiredProps: [String] = [], optionalProps: [String] = [], propNames: [String] = []
        var kvRuleNames: [String: String] = [:]
        let prefix = name + (name.isEmpty ? "" : "-")
        for (propName, propSchema) in properties {
            let propRuleName = visit(propSchema, prefix + propName)
            kvRuleNames[propName] = rules.add(prefix + propName + "-kv",
                                              GBNF.literal(GBNF.dump(.string(propName))) + " space \":\" space " + propRuleName)
            if required.contains(propName) { requiredProps.append(propName) } else { optionalProps.append(propName) }
            propNames.append(propName)
        }
        if let additional {
            let subName = prefix + "additional"
            let valueRule: String
            if case .any = additional {
                valueRule = addPrimitive("value", primitiveRules["value"]!)
            } else {
                valueRule = visit(additional, subName + "-value")
            }
            let keyRule = propNames.isEmpty ? addPrimitive("string", primitiveRules["string"]!) : rules.add(subName + "-k", notStrings(propNames))
            kvRuleNames["*"] = rules.add(subName + "-kv", keyRule + " \":\" space " + valueRule)
            optionalProps.append("*")
        }
        if requiredProps.isEmpty && optionalProps.isEmpty { return "\"{\" space \"}\"" }
        var rule = "\"{\" space "
        rule += requiredProps.map { kvRuleNames[$0]! }.joined(separator: " \",\" space ")
        if !optionalProps.isEmpty {
            rule += " ("
            if !requiredProps.isEmpty { rule += " \",\" space ( " }
            func recursiveRefs(_ ks: ArraySlice<String>, firstIsOptional: Bool) -> String {
                guard let k = ks.first else { return "" }
                let kvRule = kvRuleNames[k]!
                let commaRef = "( \",\" space " + kvRule + " )"
                var res = firstIsOptional ? commaRef + (k == "*" ? "*" : "?") : kvRule + (k == "*" ? " " + commaRef + "*" : "")
                if ks.count > 1 {
                    res += " " + rules.add(prefix + k + "-rest", recursiveRefs(ks.dropFirst(), firstIsOptional: true))
                }
                return res
            }
            rule += optionalProps.indices.map { recursiveRefs(optionalProps[$0...], firstIsOptional: false) }.joined(separator: " | ")
            if !requiredProps.isEmpty { rule += " )" }
            rule += " )?"
        }
        return rule + " space \"}\""
    }

    func visitAllOf(_ children: [SchemaNode], _ name: String, _ ruleName: String) -> String {
        var required = Set<String>()
        var properties: [(String, SchemaNode)] = []
        var enumValues: [String: Int] = [:]
        func addComponent(_ comp: SchemaNode, _ isRequired: Bool) {
            switch comp {
            case .ref(let ref):
                if let target = document.definitions[ref] { addComponent(target, isRequired) }
            case .object(let props, _):
                for p in props {
                    properties.append((p.name, p.schema))
                    if isRequired { required.insert(p.name) }
                }
            case .enumeration(let values):
                for v in values { enumValues[Self.constantRule(v), default: 0] += 1 }
            default: break
            }
        }
        for child in children {
            if case .anyOf(let alts) = child {
                for alt in alts { addComponent(alt, false) }
            } else {
                addComponent(child, true)
            }
        }
        let intersection = enumValues.filter { $0.value == children.count }.keys
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        if !intersection.isEmpty {
            return rules.add(ruleName, "(" + intersection.joined(separator: " | ") + ")")
        }
        return rules.add(ruleName, objectRule(properties, required: required, name: name, additional: nil))
    }

    func visit(_ schema: SchemaNode, _ name: String) -> String {
        let ruleName = reservedNames.contains(name) ? name + "-" : name.isEmpty ? "root" : name
        let subName = name + (name.isEmpty ? "" : "-")
        switch schema {
        case .ref(let ref):
            return rules.add(ruleName, resolveRef(ref))
        case .anyOf(let alts):
            return rules.add(ruleName, unionRule(name, alts))
        case .allOf(let children):
            return visitAllOf(children, name, ruleName)
        case .constant(let value):
            return rules.add(ruleName, Self.constantRule(value))
        case .enumeration(let values):
            return rules.add(ruleName, "(" + values.map(Self.constantRule).joined(separator: " | ") + ")")
        case .object(let props, let additional):
            if props.isEmpty, case .any? = additional {
                return rules.add(ruleName, addPrimitive("object", primitiveRules["object"]!))
            }
            let required = Set(props.filter(\.required).map(\.name))
            return rules.add(ruleName, objectRule(props.map { ($0.name, $0.schema) }, required: required, name: name, additional: additional))
        case .tuple(let items):
            var rule = "\"[\" space "
            rule += items.enumerated().map { i, item in visit(item, subName + "tuple-" + String(i)) }.joined(separator: " \",\" space ")
            return rules.add(ruleName, rule + " space \"]\"")
        case .array(let items, let minItems, let maxItems):
            if case .any = items, minItems == 0, maxItems == nil { return visitPrimitive(ruleName, "array") }
            let itemRuleName = visit(items, subName + "item")
            return rules.add(ruleName, "\"[\" space " + repetition(itemRuleName, min: minItems, max: maxItems, separator: "\",\" space") + " space \"]\"")
        case .string(let s):
            if let pattern = s.pattern, !pattern.isEmpty { return visitPattern(s, pattern, ruleName) }
            if s.format == .uuid { return visitPrimitive(ruleName, "uuid") }
            if let format = s.format {
                let primName = format.rawValue + "-string"
                return rules.add(ruleName, addPrimitive(primName, stringFormatRules[primName]!))
            }
            if s.minLength > 0 || s.maxLength != nil {
                let charRule = addPrimitive("char", primitiveRules["char"]!)
                return rules.add(ruleName, "\"\\\"\" " + repetition(charRule, min: s.minLength, max: s.maxLength) + " \"\\\"\"")
            }
            return visitPrimitive(ruleName, "string")
        case .integer(let minimum, let maximum):
            if minimum == nil && maximum == nil { return visitPrimitive(ruleName, "integer") }
            var range = IntegerRange()
            // the reader has checked that the bounds build
            try? range.build(minimum ?? .min, maximum ?? .max)
            return rules.add(ruleName, "(" + range.out + ")")
        case .number: return visitPrimitive(ruleName, "number")
        case .boolean: return visitPrimitive(ruleName, "boolean")
        case .null: return visitPrimitive(ruleName, "null")
        case .any: return rules.add(ruleName, addPrimitive("value", primitiveRules["value"]!))
        }
    }
}
