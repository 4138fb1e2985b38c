/// Tokens → AST, following jinja2's grammar and operator precedence.
struct Parser {
    var tokens: [Token]
    var i = 0
    let lexer: Lexer
    /// jinja2 checks filter and test names when compiling, except inside `if` statements and
    /// conditional expressions, where an unknown name fails only when evaluated.
    var soft = false
    /// Names read inside the macro being parsed (for `caller`, `varargs`, `kwargs`).
    var namesRead: [Set<String>] = []
    var loopDepth = 0
    /// Current nesting, bounded by `Limits.maxNesting`.
    var depth = 0
    let maxNesting: Int

    /// Enters one level of nesting; a template nested deeper than the limit is a syntax error.
    mutating func enter(_ extra: Int = 1) throws(JinjaError) {
        depth += extra
        if depth > maxNesting {
            throw error("the template nests deeper than \(maxNesting) levels (brackets, operators, filters or blocks)").with(code: .limitExceeded)
        }
    }

    static func parse(_ source: String, options: JinjaTemplate.Options) throws(JinjaError) -> ([Node], Lexer) {
        var lexer = Lexer(source: source, options: options)
        let tokens = try lexer.tokenize()
        var parser = Parser(tokens: tokens, lexer: lexer, maxNesting: options.limits.maxNesting)
        let (body, end) = try parser.parseBody(until: [])
        if let end { throw parser.error("unexpected '\(end)': no block is open", at: parser.tokens[parser.i].offset) }
        return (body, lexer)
    }

    var current: Token { tokens[i] }
    func peek(_ k: Int = 1) -> Token { tokens[min(i + k, tokens.count - 1)] }

    func error(_ message: String, at offset: Int? = nil) -> JinjaError {
        lexer.error(message, at: offset ?? current.offset)
    }

    mutating func advance() -> Token {
        let t = tokens[i]
        if i < tokens.count - 1 { i += 1 }
        return t
    }

    func isOp(_ s: String) -> Bool { if case .op(let o) = current.kind { return o == s }; return false }
    func isName(_ s: String) -> Bool { if case .name(let n) = current.kind { return n == s }; return false }

    mutating func expectOp(_ s: String) throws(JinjaError) {
        guard isOp(s) else { throw error("expected '\(s)', got \(describe(current))") }
        _ = advance()
    }

    mutating func expectName() throws(JinjaError) -> String {
        guard case .name(let n) = current.kind else { throw error("expected a name, got \(describe(current))") }
        _ = advance()
        return n
    }

    mutating func expectBlockEnd() throws(JinjaError) {
        guard current.kind == .blockEnd else { throw error("expected the end of the tag ('%}'), got \(describe(current))") }
        _ = advance()
    }

    func describe(_ t: Token) -> String {
        switch t.kind {
        case .data: return "template text"
        case .varBegin: return "'{{'"
        case .varEnd: return "'}}'"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .name(let n): return "'\(n)'"
        case .string: return "a string"
        case .integer(let n): return "'\(n)'"
        case .float(let d): return "'\(d)'"
        case .op(let o): return "'\(o)'"
        case .eof: return "the end of the template"
        }
    }

    // MARK: statements

    /// Parses nodes until a block tag whose name is in `ends`; returns that name (its tag's
    /// `{%` and name consumed) or nil at the end of the template.
    mutating func parseBody(until ends: Set<String>) throws(JinjaError) -> ([Node], String?) {
        var nodes: [Node] = []
        while true {
            switch current.kind {
            case .eof:
                return (nodes, nil)
            case .data(let text):
                _ = advance()
                nodes.append(.output(text))
            case .varBegin:
                _ = advance()
                let e = try parseTuple(allowCondition: true)
                guard current.kind == .varEnd else { throw error("expected the end of the expression ('}}'), got \(describe(current))") }
                _ = advance()
                nodes.append(.expression(e))
            case .blockBegin:
                let begin = advance()
                guard case .name(let tag) = current.kind else { throw error("expected a tag name, got \(describe(current))") }
                if ends.contains(tag) {
                    _ = advance()
                    return (nodes, tag)
                }
                nodes.append(try parseStatement(tag, offset: begin.offset))
            default:
                throw error("unexpected \(describe(current))")
            }
        }
    }

    static let endTags: Set<String> = ["endif", "endfor", "endset", "endmacro", "endcall", "endfilter", "endwith",
                                       "endraw", "endgeneration", "else", "elif", "endblock"]

    mutating func parseStatement(_ tag: String, offset: Int) throws(JinjaError) -> Node {
        try enter()
        defer { depth -= 1 }
        let tagOffset = current.offset
        _ = advance()
        switch tag {
        case "if": return try parseIf()
        case "for": return try parseFor(offset: offset)
        case "set": return try parseSet(offset: offset)
        case "macro": return try parseMacro(offset: offset)
        case "call": return try parseCallBlock(offset: offset)
        case "filter": return try parseFilterBlock()
        case "with": return try parseWith()
        case "generation":
            // transformers' AssistantTracker: a call block, so its body has a scope of its own.
            try expectBlockEnd()
            let saved = soft
            soft = false
            defer { soft = saved }
            let (body, end) = try parseBody(until: ["endgeneration"])
            guard end != nil else { throw error("unexpected end of template: 'generation' is not closed (missing '{% endgeneration %}')", at: offset) }
            try expectBlockEnd()
            return .filterBlock(filters: [], body: body)
        case "break", "continue":
            guard loopDepth > 0 else { throw error("'\(tag)' outside of a loop", at: tagOffset) }
            try expectBlockEnd()
            return tag == "break" ? .breakLoop(offset: offset) : .continueLoop(offset: offset)
        default:
            if Parser.endTags.contains(tag) {
                throw error("unexpected '\(tag)': no block it could close is open", at: tagOffset)
            }
            throw error("unknown tag '\(tag)'", at: tagOffset)
        }
    }

    mutating func parseIf() throws(JinjaError) -> Node {
        let saved = soft
        soft = true
        defer { soft = saved }
        var branches: [(Expr, [Node])] = []
        var orElse: [Node] = []
        // jinja2's parse_if: `parse_tuple(with_condexpr=False)`, so `{% if a if b %}` is an error.
        var test = try parseTuple(allowCondition: false)
        try expectBlockEnd()
        while true {
            let (body, end) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((test, body))
            switch end {
            case "elif":
                test = try parseTuple(allowCondition: false)
                try expectBlockEnd()
            case "else":
                try expectBlockEnd()
                let (body, end) = try parseBody(until: ["endif"])
                guard end != nil else { throw error("unexpected end of template: 'if' is not closed (missing '{% endif %}')") }
                orElse = body
                try expectBlockEnd()
                return .ifNode(branches: branches, orElse: orElse)
            case "endif":
                try expectBlockEnd()
                return .ifNode(branches: branches, orElse: orElse)
            default:
                throw error("unexpected end of template: 'if' is not closed (missing '{% endif %}')")
            }
        }
    }

    mutating func parseFor(offset: Int) throws(JinjaError) -> Node {
        let target = try parseAssignTarget(allowNamespace: false, extraEnd: ["in"])
        guard isName("in") else { throw error("expected 'in' in the for loop, got \(describe(current))") }
        _ = advance()
        let iter = try parseTuple(allowCondition: false, extraEnd: ["recursive"])
        let saved = soft
        soft = false
        defer { soft = saved }
        var filter: Expr? = nil
        if isName("if") {
            _ = advance()
            filter = try parseExpression(allowCondition: true)  // jinja2: parse_expression, not a tuple
        }
        var recursive = false
        if isName("recursive") { _ = advance(); recursive = true }
        try expectBlockEnd()
        loopDepth += 1
        let (body, end) = try parseBody(until: ["endfor", "else"])
        loopDepth -= 1
        var orElse: [Node] = []
        switch end {
        case "else":
            try expectBlockEnd()
            let (e, end2) = try parseBody(until: ["endfor"])
            guard end2 != nil else { throw error("unexpected end of template: 'for' is not closed (missing '{% endfor %}')", at: offset) }
            orElse = e
            try expectBlockEnd()
        case "endfor":
            try expectBlockEnd()
        default:
            throw error("unexpected end of template: 'for' is not closed (missing '{% endfor %}')", at: offset)
        }
        return .forNode(target: target, iter: iter, filter: filter, body: body, orElse: orElse, recursive: recursive, offset: offset)
    }

    mutating func parseSet(offset: Int) throws(JinjaError) -> Node {
        let target = try parseAssignTarget(allowNamespace: true, extraEnd: [])
        if isOp("=") {
            _ = advance()
            let value = try parseTuple(allowCondition: true)
            try expectBlockEnd()
            return .set(target: target, value: value, offset: offset)
        }
        let saved = soft
        soft = false
        defer { soft = saved }
        var filters: [FilterCall] = []
        while isOp("|") {
            _ = advance()
            filters.append(try parseFilterCall())
        }
        try expectBlockEnd()
        let (body, end) = try parseBody(until: ["endset"])
        guard end != nil else { throw error("unexpected end of template: 'set' is not closed (missing '{% endset %}')", at: offset) }
        try expectBlockEnd()
        return .setBlock(target: target, filters: filters, body: body, offset: offset)
    }

    mutating func parseSignature() throws(JinjaError) -> [(name: String, defaultValue: Expr?)] {
        var params: [(name: String, defaultValue: Expr?)] = []
        try expectOp("(")
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let name = try expectName()
            var def: Expr? = nil
            if isOp("=") {
                _ = advance()
                def = try parseExpression(allowCondition: true)
            } else if params.contains(where: { $0.defaultValue != nil }) {
                throw error("non-default argument '\(name)' follows default argument")
            }
            params.append((name, def))
        }
        _ = advance()
        return params
    }

    mutating func parseMacroBody(name: String, params: [(name: String, defaultValue: Expr?)], end: String, offset: Int) throws(JinjaError) -> Macro {
        let saved = soft, savedLoop = loopDepth
        soft = false
        loopDepth = 0
        namesRead.append([])
        defer { soft = saved; loopDepth = savedLoop }
        let (body, closed) = try parseBody(until: [end])
        guard closed != nil else { throw error("unexpected end of template: '\(name)' is not closed (missing '{% \(end) %}')", at: offset) }
        try expectBlockEnd()
        let read = namesRead.removeLast()
        if !namesRead.isEmpty { namesRead[namesRead.count - 1].formUnion(read) }
        return Macro(name: name, parameters: params, body: body, offset: offset,
                     usesVarargs: read.contains("varargs"), usesKwargs: read.contains("kwargs"), usesCaller: read.contains("caller"))
    }

    mutating func parseMacro(offset: Int) throws(JinjaError) -> Node {
        let name = try expectName()
        let params = try parseSignature()
        try expectBlockEnd()
        return .macro(try parseMacroBody(name: name, params: params, end: "endmacro", offset: offset))
    }

    mutating func parseCallBlock(offset: Int) throws(JinjaError) -> Node {
        let params = isOp("(") ? try parseSignature() : []
        let call = try parseExpression(allowCondition: true)
        guard case .call = call else { throw error("expected a call after 'call'", at: offset) }
        try expectBlockEnd()
        let caller = try parseMacroBody(name: "caller", params: params, end: "endcall", offset: offset)
        return .callBlock(call: call, caller: caller, offset: offset)
    }

    mutating func parseFilterBlock() throws(JinjaError) -> Node {
        let saved = soft
        soft = false
        defer { soft = saved }
        var filters = [try parseFilterCall()]
        while isOp("|") {
            _ = advance()
            filters.append(try parseFilterCall())
        }
        try expectBlockEnd()
        let (body, end) = try parseBody(until: ["endfilter"])
        guard end != nil else { throw error("unexpected end of template: 'filter' is not closed (missing '{% endfilter %}')") }
        try expectBlockEnd()
        return .filterBlock(filters: filters, body: body)
    }

    mutating func parseWith() throws(JinjaError) -> Node {
        let saved = soft
        soft = false
        defer { soft = saved }
        var assignments: [(Target, Expr)] = []
        while current.kind != .blockEnd {
            if !assignments.isEmpty { try expectOp(",") }
            let t = try parseAssignTarget(allowNamespace: false, extraEnd: [])
            try expectOp("=")
            assignments.append((t, try parseExpression(allowCondition: true)))
        }
        try expectBlockEnd()
        let (body, end) = try parseBody(until: ["endwith"])
        guard end != nil else { throw error("unexpected end of template: 'with' is not closed (missing '{% endwith %}')") }
        try expectBlockEnd()
        return .with(assignments: assignments, body: body)
    }

    mutating func parseAssignTarget(allowNamespace: Bool, extraEnd: Set<String>) throws(JinjaError) -> Target {
        if allowNamespace, case .name(let a) = current.kind, case .op(".") = peek().kind, case .name(let b) = peek(2).kind {
            i += 3
            return .attribute(object: a, name: b)
        }
        var items: [Target] = []
        var sawComma = false
        while true {
            if !items.isEmpty {
                guard isOp(",") else { break }
                _ = advance()
                sawComma = true
            }
            if case .name(let n) = current.kind, extraEnd.contains(n) { break }
            if current.kind == .blockEnd || isOp("=") { break }
            if isOp("(") {
                _ = advance()
                let inner = try parseAssignTarget(allowNamespace: false, extraEnd: [])
                try expectOp(")")
                items.append(inner)
            } else {
                let n = try expectName()
                guard !["true", "false", "none", "True", "False", "None"].contains(n) else {
                    throw error("can't assign to '\(n)'")
                }
                items.append(.name(n))
            }
        }
        guard !items.isEmpty else { throw error("expected a name to assign to, got \(describe(current))") }
        return items.count == 1 && !sawComma ? items[0] : .tuple(items)
    }

    // MARK: expressions

    /// A comma-separated list becomes a tuple (`{{ a, b }}`, `set x = 1, 2`).
    mutating func parseTuple(allowCondition: Bool, extraEnd: Set<String> = []) throws(JinjaError) -> Expr {
        var items: [Expr] = []
        var sawComma = false
        while true {
            if !items.isEmpty {
                guard isOp(",") else { break }
                _ = advance()
                sawComma = true
            }
            if current.kind == .blockEnd || current.kind == .varEnd || isOp(")") || isOp("]") || isOp("}") { break }
            if case .name(let n) = current.kind, extraEnd.contains(n) { break }
            items.append(try parseExpression(allowCondition: allowCondition))
        }
        if items.isEmpty {
            throw error("expected an expression, got \(describe(current))")
        }
        return items.count == 1 && !sawComma ? items[0] : .tuple(items)
    }

    mutating func parseExpression(allowCondition: Bool) throws(JinjaError) -> Expr {
        try enter()
        defer { depth -= 1 }
        return allowCondition ? try parseCondition() : try parseOr()
    }

    /// Counts one more link of a left-nested chain (`a + b + c`, `x|f|g`, `a.b.c`): each adds a
    /// level to the tree.
    mutating func chain(_ links: inout Int) throws(JinjaError) {
        links += 1
        try enter()
    }

    mutating func parseCondition() throws(JinjaError) -> Expr {
        var expr = try parseOr()
        while isName("if") {
            _ = advance()
            let saved = soft
            soft = true
            defer { soft = saved }
            let test = try parseOr()
            var orElse: Expr? = nil
            if isName("else") {
                _ = advance()
                orElse = try parseCondition()
            }
            expr = .conditional(test: test, then: expr, orElse: orElse)
        }
        return expr
    }

    mutating func parseOr() throws(JinjaError) -> Expr {
        try parseBooleanChain("or", Expr.or) { (p: inout Parser) throws(JinjaError) in try p.parseAnd() }
    }

    mutating func parseAnd() throws(JinjaError) -> Expr {
        try parseBooleanChain("and", Expr.and) { (p: inout Parser) throws(JinjaError) in try p.parseNot() }
    }

    /// `a or b or c` / `a and b and c`, left-nested.
    mutating func parseBooleanChain(_ keyword: String, _ make: (Expr, Expr) -> Expr,
                                    _ operand: (inout Parser) throws(JinjaError) -> Expr) throws(JinjaError) -> Expr {
        var left = try operand(&self)
        var links = 0
        defer { depth -= links }
        while isName(keyword) {
            try chain(&links)
            _ = advance()
            left = make(left, try operand(&self))
        }
        return left
    }

    mutating func parseNot() throws(JinjaError) -> Expr {
        if isName("not") {
            _ = advance()
            try enter()
            defer { depth -= 1 }
            return .not(try parseNot())
        }
        return try parseCompare()
    }

    mutating func parseCompare() throws(JinjaError) -> Expr {
        let offset = current.offset
        let first = try parseMath1()
        var ops: [(String, Expr)] = []
        var links = 0
        defer { depth -= links }
        while true {
            try chain(&links)
            if case .op(let o) = current.kind, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                _ = advance()
                ops.append((o, try parseMath1()))
            } else if isName("in") {
                _ = advance()
                ops.append(("in", try parseMath1()))
            } else if isName("not"), case .name("in") = peek().kind {
                i += 2
                ops.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : .compare(first, ops, offset: offset)
    }

    mutating func parseMath1() throws(JinjaError) -> Expr {
        var left = try parseConcat()
        var links = 0
        defer { depth -= links }
        while case .op(let o) = current.kind, o == "+" || o == "-" {
            try chain(&links)
            let off = advance().offset
            left = .binary(o, left, try parseConcat(), offset: off)
        }
        return left
    }

    mutating func parseConcat() throws(JinjaError) -> Expr {
        var items = [try parseMath2()]
        var links = 0
        defer { depth -= links }
        while isOp("~") {
            try chain(&links)
            _ = advance()
            items.append(try parseMath2())
        }
        return items.count == 1 ? items[0] : .concat(items)
    }

    mutating func parseMath2() throws(JinjaError) -> Expr {
        var left = try parsePow()
        var links = 0
        defer { depth -= links }
        while case .op(let o) = current.kind, ["*", "/", "//", "%"].contains(o) {
            try chain(&links)
            let off = advance().offset
            left = .binary(o, left, try parsePow(), offset: off)
        }
        return left
    }

    mutating func parsePow() throws(JinjaError) -> Expr {
        var left = try parseUnary(withFilter: true)
        var links = 0
        defer { depth -= links }
        while isOp("**") {
            try chain(&links)
            let off = advance().offset
            left = .binary("**", left, try parseUnary(withFilter: true), offset: off)
        }
        return left
    }

    mutating func parseUnary(withFilter: Bool) throws(JinjaError) -> Expr {
        var node: Expr
        if isOp("-") || isOp("+") {
            try enter()
            defer { depth -= 1 }
            let t = advance()
            guard case .op(let o) = t.kind else { fatalError() }
            node = .unary(o, try parseUnary(withFilter: false), offset: t.offset)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    mutating func parsePrimary() throws(JinjaError) -> Expr {
        let t = current
        switch t.kind {
        case .name(let n):
            _ = advance()
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default:
                if !namesRead.isEmpty { namesRead[namesRead.count - 1].insert(n) }
                return .name(n, offset: t.offset)
            }
        case .string(let s):
            _ = advance()
            var value = s
            while case .string(let more) = current.kind { value += more; _ = advance() }
            return .literal(.string(value))
        case .integer(let n):
            _ = advance()
            return .literal(.int(n))
        case .float(let d):
            _ = advance()
            return .literal(.double(d))
        case .op("("):
            _ = advance()
            if isOp(")") { _ = advance(); return .tuple([]) }
            let e = try parseTuple(allowCondition: true)
            try expectOp(")")
            return e
        case .op("["):
            _ = advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression(allowCondition: true))
            }
            _ = advance()
            return .list(items)
        case .op("{"):
            _ = advance()
            var items: [(Expr, Expr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let k = try parseExpression(allowCondition: true)
                try expectOp(":")
                items.append((k, try parseExpression(allowCondition: true)))
            }
            _ = advance()
            return .dict(items)
        default:
            throw error("unexpected \(describe(t))")
        }
    }

    mutating func parsePostfix(_ node: Expr) throws(JinjaError) -> Expr {
        var node = node
        var links = 0
        defer { depth -= links }
        while true {
            if isOp(".") || isOp("[") || isOp("(") { try chain(&links) }
            if isOp(".") {
                let off = advance().offset
                switch current.kind {
                case .name(let n):
                    _ = advance()
                    node = .attribute(node, n, offset: off)
                case .integer(let k):
                    _ = advance()
                    node = .item(node, .literal(.int(k)), offset: off)
                default:
                    throw error("expected an attribute name after '.', got \(describe(current))")
                }
            } else if isOp("[") {
                let off = advance().offset
                node = try parseSubscript(node, offset: off)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    mutating func parseSubscript(_ node: Expr, offset: Int) throws(JinjaError) -> Expr {
        var parts: [Expr?] = []
        var isSlice = false
        var current: Expr? = nil
        var items: [Expr] = []
        // a[i], a[i:j:k], a[i, j]
        while !isOp("]") {
            if isOp(":") {
                _ = advance()
                isSlice = true
                parts.append(current)
                current = nil
                continue
            }
            if isOp(",") {
                _ = advance()
                guard !isSlice else { throw error("unexpected ',' in a slice") }
                if let c = current { items.append(c) }
                current = nil
                continue
            }
            guard current == nil else { throw error("expected ']' , got \(describe(self.current))") }
            current = try parseExpression(allowCondition: true)
        }
        _ = advance()
        if isSlice {
            parts.append(current)
            guard parts.count <= 3 else { throw error("too many ':' in a slice", at: offset) }
            while parts.count < 3 { parts.append(nil) }
            return .slice(node, start: parts[0], stop: parts[1], step: parts[2], offset: offset)
        }
        if !items.isEmpty {
            if let c = current { items.append(c) }
            return .item(node, .tuple(items), offset: offset)
        }
        // jinja2 reads `a[]` as `a[()]`.
        guard let index = current else { return .item(node, .tuple([]), offset: offset) }
        return .item(node, index, offset: offset)
    }

    mutating func parseArguments() throws(JinjaError) -> Arguments {
        try expectOp("(")
        var args = Arguments()
        var first = true
        while !isOp(")") {
            if !first { try expectOp(",") }
            first = false
            if isOp(")") { break }
            if isOp("*") {
                _ = advance()
                args.star = try parseExpression(allowCondition: true)
            } else if isOp("**") {
                _ = advance()
                args.doubleStar = try parseExpression(allowCondition: true)
            } else if case .name(let n) = current.kind, case .op("=") = peek().kind {
                i += 2
                args.keywords.append((n, try parseExpression(allowCondition: true)))
            } else {
                guard args.keywords.isEmpty else { throw error("positional argument after a keyword argument") }
                args.positional.append(try parseExpression(allowCondition: true))
            }
        }
        _ = advance()
        return args
    }

    mutating func parseCall(_ node: Expr) throws(JinjaError) -> Expr {
        let off = current.offset
        return .call(node, try parseArguments(), offset: off)
    }

    /// A filter or test name (`name`, `a.b`); unknown names are refused here outside `if`.
    mutating func parseBuiltinName(known: (String) -> Bool, kind: String, at off: Int) throws(JinjaError) -> String {
        var name = try expectName()
        while isOp(".") {
            _ = advance()
            name += "." + (try expectName())
        }
        guard soft || known(name) else { throw error("no \(kind) named '\(name)'", at: off).with(code: .unknownName) }
        return name
    }

    /// `(args...)` when present.
    mutating func parseOptionalArguments() throws(JinjaError) -> ([Expr], [(String, Expr)])? {
        guard isOp("(") else { return nil }
        let a = try parseArguments()
        return (a.positional, a.keywords)
    }

    mutating func parseFilterCall() throws(JinjaError) -> FilterCall {
        let off = current.offset
        let name = try parseBuiltinName(known: { Builtins.filters[$0] != nil }, kind: "filter", at: off)
        let (args, kwargs) = try parseOptionalArguments() ?? ([], [])
        return FilterCall(name: name, args: args, kwargs: kwargs, offset: off)
    }

    mutating func parseFilterExpr(_ node: Expr) throws(JinjaError) -> Expr {
        var node = node
        var links = 0
        defer { depth -= links }
        while true {
            if isOp("|") || isName("is") || isOp("(") { try chain(&links) }
            if isOp("|") {
                _ = advance()
                node = .filter(node, try parseFilterCall())
            } else if isName("is") {
                let off = advance().offset
                var negated = false
                if isName("not") { _ = advance(); negated = true }
                let name = try parseBuiltinName(known: { Builtins.tests[$0] != nil }, kind: "test", at: off)
                var args: [Expr] = [], kwargs: [(String, Expr)] = []
                if let (a, k) = try parseOptionalArguments() {
                    args = a
                    kwargs = k
                } else {
                    var startsArg = false
                    switch current.kind {
                    case .name(let n): startsArg = !["else", "or", "and"].contains(n)
                        if n == "is" { throw error("you cannot chain multiple tests with 'is'") }
                    case .string, .integer, .float, .op("("), .op("["), .op("{"): startsArg = true
                    default: break
                    }
                    if startsArg {
                        args = [try parsePostfix(try parsePrimary())]
                    }
                }
                node = .test(node, name: name, args: args, kwargs: kwargs, negated: negated, offset: off)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }
}

extension JinjaError {
    func with(code: Code) -> JinjaError { JinjaError(code, message, line: line, column: column) }
}
