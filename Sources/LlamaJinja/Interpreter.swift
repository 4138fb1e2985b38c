import Foundation

/// Walks the AST with jinja2's scoping: a for-loop iteration, a macro call, `with`, block
/// `set` and `filter` bodies get a scope of their own; `if` does not; `namespace` objects are
/// the only values a template can change across scopes.
final class Interpreter {
    let options: JinjaTemplate.Options
    let lexer: Lexer
    var out = ""
    var outBytes = 0
    var callDepth = 0
    var iterations = 0
    /// The source offset of what is being evaluated, for error positions.
    var offset = 0
    /// Evaluating a constant `{{ ... }}`, which jinja2 folds at compile time.
    var foldingConstant = false

    enum Flow { case normal, breakLoop, continueLoop }

    init(options: JinjaTemplate.Options, lexer: Lexer) {
        self.options = options
        self.lexer = lexer
    }

    func fail(_ code: JinjaError.Code, _ message: String, at offset: Int? = nil) -> JinjaError {
        let (l, c) = lexer.location(offset ?? self.offset)
        return JinjaError(code, message, line: l, column: c)
    }

    func undefinedError(_ u: Undefined) -> JinjaError {
        u.security != nil ? fail(.security, u.message) : fail(.undefined, u.message)
    }

    func render(_ nodes: [Node], variables: [String: JSONValue]) throws(JinjaError) -> String {
        let globals = Scope(parent: nil)
        for (name, fn) in Builtins.globals(options: options) { globals.vars[name] = .callable(fn) }
        let root = Scope(parent: globals)
        for (k, v) in variables { root.vars[k] = Value(v) }
        _ = try exec(nodes, root)
        return out
    }

    func write(_ s: String) throws(JinjaError) {
        outBytes += s.utf8.count
        if outBytes > options.limits.maxOutputBytes {
            throw fail(.limitExceeded, "the output is larger than \(options.limits.maxOutputBytes) bytes")
        }
        out += s
    }

    /// Renders nodes into a string of their own (macro bodies, block set, filter blocks).
    func capture(_ nodes: [Node], _ scope: Scope) throws(JinjaError) -> (String, Flow) {
        let saved = out
        out = ""
        defer { out = saved }
        let flow = try exec(nodes, scope)
        return (out, flow)
    }

    func exec(_ nodes: [Node], _ scope: Scope) throws(JinjaError) -> Flow {
        for node in nodes {
            switch node {
            case .output(let text):
                try write(text)
            case .expression(let e):
                if Interpreter.isConstant(e) {
                    // jinja2 folds a constant `{{ ... }}` at compile time (only there, not in `set` or `if`).
                    foldingConstant = true
                    defer { foldingConstant = false }
                    try write(try eval(e, scope).str)
                } else {
                    try write(try eval(e, scope).str)
                }
            case .ifNode(let branches, let orElse):
                var done = false
                for (test, body) in branches where try eval(test, scope).truthy {
                    let f = try exec(body, scope)
                    if f != .normal { return f }
                    done = true
                    break
                }
                if !done {
                    let f = try exec(orElse, scope)
                    if f != .normal { return f }
                }
            case .forNode(let target, let iterExpr, let filter, let body, let orElse, let recursive, let off):
                offset = off
                let iterable = try eval(iterExpr, scope)
                let f = try runLoop(target: target, iterable: iterable, filter: filter, body: body, orElse: orElse,
                                    recursive: recursive, scope: scope, depth0: 0, offset: off)
                if f != .normal { return f }
            case .set(let target, let valueExpr, let off):
                let value = try eval(valueExpr, scope)
                offset = off
                try assign(target, value, scope)
            case .setBlock(let target, let filters, let body, let off):
                var (text, _) = try capture(body, Scope(parent: scope))
                var value = Value.string(text)
                for f in filters { value = try applyFilter(f, value, scope) }
                if case .string(let s) = value { text = s }
                offset = off
                try assign(target, value, scope)
            case .macro(let m):
                scope.vars[m.name] = .callable(Callable(name: m.name, kind: .macro(m, scope)))
            case .callBlock(let call, let caller, let off):
                offset = off
                guard case .call(let fnExpr, var args, let callOff) = call else { continue }
                let callerFn = Callable(name: "caller", kind: .macro(caller, scope))
                args.keywords.append(("caller", .literal(.callable(callerFn))))
                try write(try eval(.call(fnExpr, args, offset: callOff), scope).str)
            case .filterBlock(let filters, let body):
                let (text, flow) = try capture(body, Scope(parent: scope))
                var value = Value.string(text)
                for f in filters { value = try applyFilter(f, value, scope) }
                try write(value.str)
                if flow != .normal { return flow }
            case .with(let assignments, let body):
                let inner = Scope(parent: scope)
                var values: [(Target, Value)] = []
                for (t, e) in assignments { values.append((t, try eval(e, scope))) }
                for (t, v) in values { try assign(t, v, inner) }
                let f = try exec(body, inner)
                if f != .normal { return f }
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            }
        }
        return .normal
    }

    func runLoop(target: Target, iterable: Value, filter: Expr?, body: [Node], orElse: [Node], recursive: Bool,
                 scope: Scope, depth0: Int, offset off: Int) throws(JinjaError) -> Flow {
        var items = try iterate(iterable)
        if let filter {
            var kept: [Value] = []
            for item in items {
                let s = Scope(parent: scope)
                try assign(target, item, s)
                if try eval(filter, s).truthy { kept.append(item) }
            }
            items = kept
        }
        var recurse: Callable? = nil
        if recursive {
            recurse = Callable(name: "loop", kind: .builtin { interp, args, _ in
                guard let first = args.first else { throw interp.fail(.type, "loop() takes one argument") }
                let (text, _) = try interp.captureLoop(target: target, iterable: first, filter: filter, body: body,
                                                        scope: scope, depth0: depth0 + 1, offset: off)
                return .string(text)
            })
        }
        let loop = LoopContext(items: items, depth0: depth0, recurse: recurse)
        // jinja2 runs `else` unless some iteration reached the end of the body: after only
        // `break` or `continue` it runs too.
        var completed = false
        for (k, item) in items.enumerated() {
            iterations += 1
            if iterations > options.limits.maxIterations {
                throw fail(.limitExceeded, "the template ran more than \(options.limits.maxIterations) loop iterations", at: off)
            }
            loop.index0 = k
            let s = Scope(parent: scope)
            s.vars["loop"] = .loop(loop)
            offset = off
            try assign(target, item, s)
            let f = try exec(body, s)
            if f == .breakLoop { break }
            if f == .normal { completed = true }
        }
        if !completed {
            let f = try exec(orElse, scope)
            if f != .normal { return f }
        }
        return .normal
    }

    func captureLoop(target: Target, iterable: Value, filter: Expr?, body: [Node], scope: Scope, depth0: Int,
                     offset: Int) throws(JinjaError) -> (String, Flow) {
        let saved = out
        out = ""
        defer { out = saved }
        let f = try runLoop(target: target, iterable: iterable, filter: filter, body: body, orElse: [], recursive: true,
                            scope: scope, depth0: depth0, offset: offset)
        return (out, f)
    }

    func assign(_ target: Target, _ value: Value, _ scope: Scope) throws(JinjaError) {
        switch target {
        case .name(let n):
            scope.vars[n] = value
        case .tuple(let targets):
            let items = try iterate(value)
            guard items.count == targets.count else {
                throw fail(.value, items.count < targets.count
                    ? "not enough values to unpack (expected \(targets.count), got \(items.count))"
                    : "too many values to unpack (expected \(targets.count))")
            }
            for (t, v) in zip(targets, items) { try assign(t, v, scope) }
        case .attribute(let object, let name):
            guard case .namespace(let ns)? = scope.lookup(object) else {
                throw fail(.type, "cannot assign attribute on non-namespace object")
            }
            ns.attributes[.string(name)] = value
        }
    }

    // MARK: expressions

    func eval(_ expr: Expr, _ scope: Scope) throws(JinjaError) -> Value {
        switch expr {
        case .literal(let v):
            return v
        case .name(let n, let off):
            if let v = scope.lookup(n) { return v }
            offset = off
            return .undefined(.named(n))
        case .list(let items):
            var out: [Value] = []
            for e in items { out.append(try eval(e, scope)) }
            return .list(out)
        case .tuple(let items):
            var out: [Value] = []
            for e in items { out.append(try eval(e, scope)) }
            return .tuple(out)
        case .dict(let pairs):
            var d = Dict()
            for (k, v) in pairs {
                let key = try eval(k, scope)
                guard Dict.hashKey(key) != nil else { throw fail(.type, "unhashable type: '\(key.typeName)'") }
                d[key] = try eval(v, scope)
            }
            return .dict(d)
        case .attribute(let e, let name, let off):
            let v = try eval(e, scope)
            offset = off
            return try getattr(v, name)
        case .item(let e, let keyExpr, let off):
            let v = try eval(e, scope)
            let key = try eval(keyExpr, scope)
            offset = off
            return try getitem(v, key)
        case .slice(let e, let a, let b, let c, let off):
            let v = try eval(e, scope)
            let start = try evalOptional(a, scope)
            let stop = try evalOptional(b, scope)
            let step = try evalOptional(c, scope)
            offset = off
            do { return try slice(v, start, stop, step) } catch where error.code == .type && foldingConstant {
                // jinja2 folds a constant output through the sandbox's getitem, which turns the
                // TypeError into an undefined value (`{{ 1[::-1] }}` is empty).
                return .undefined(Undefined(hint: error.message))
            }
        case .call(let fnExpr, let args, let off):
            let fn = try eval(fnExpr, scope)
            var positional: [Value] = []
            for a in args.positional { positional.append(try eval(a, scope)) }
            var keywords: [(String, Value)] = []
            for (k, a) in args.keywords { keywords.append((k, try eval(a, scope))) }
            if let star = args.star { positional += try iterate(try eval(star, scope)) }
            if let ds = args.doubleStar {
                guard case .dict(let d) = try eval(ds, scope) else { throw fail(.type, "argument after ** must be a mapping") }
                for (k, v) in d { keywords.append((k.str, v)) }
            }
            offset = off
            return try call(fn, positional, keywords)
        case .filter(let e, let f):
            let v = try evalOptional(e, scope) ?? .undefinedValue
            return try applyFilter(f, v, scope)
        case .test(let e, let name, let argExprs, let kwExprs, let negated, let off):
            let v = try eval(e, scope)
            var args: [Value] = []
            for a in argExprs { args.append(try eval(a, scope)) }
            var kwargs: [(String, Value)] = []
            for (k, a) in kwExprs { kwargs.append((k, try eval(a, scope))) }
            offset = off
            guard let test = Builtins.tests[name] else { throw fail(.unknownName, "no test named '\(name)' found") }
            let subject = name == "escaped" ? v : v.plain
            let r = try lift { try test(self, subject, args + kwargs.map(\.1)) }
            return .bool(negated ? !r : r)
        case .unary(let op, let e, let off):
            let v = try eval(e, scope)
            offset = off
            return try unary(op, v)
        case .binary(let op, let l, let r, let off):
            let a = try eval(l, scope)
            let b = try eval(r, scope)
            offset = off
            return try binary(op, a, b)
        case .and(let l, let r):
            let a = try eval(l, scope)
            return a.truthy ? try eval(r, scope) : a
        case .or(let l, let r):
            let a = try eval(l, scope)
            return a.truthy ? a : try eval(r, scope)
        case .not(let e):
            return .bool(!(try eval(e, scope)).truthy)
        case .compare(let first, let ops, let off):
            var left = try eval(first, scope)
            for (op, e) in ops {
                let right = try eval(e, scope)
                offset = off
                if !(try compare(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .concat(let items):
            var s = ""
            for e in items { s += try eval(e, scope).str }
            return try checkedString(s)
        case .conditional(let test, let then, let orElse):
            if try eval(test, scope).truthy { return try eval(then, scope) }
            if let orElse { return try eval(orElse, scope) }
            return .undefined(Undefined(hint: "the inline if-expression evaluated to false and no else section was defined"))
        }
    }

    func applyFilter(_ f: FilterCall, _ value: Value, _ scope: Scope) throws(JinjaError) -> Value {
        var args: [Value] = []
        for a in f.args { args.append(try eval(a, scope)) }
        var kwargs: [(String, Value)] = []
        for (k, a) in f.kwargs { kwargs.append((k, try eval(a, scope))) }
        offset = f.offset
        guard let filter = Builtins.filters[f.name] else { throw fail(.unknownName, "no filter named '\(f.name)' found") }
        let subject = ["safe", "escape", "e", "forceescape", "string"].contains(f.name) ? value : value.plain
        return try lift { try filter(self, subject, args, kwargs) }
    }

    func evalOptional(_ e: Expr?, _ scope: Scope) throws(JinjaError) -> Value? {
        guard let e else { return nil }
        return try eval(e, scope)
    }

    // MARK: Python semantics

    /// Python's iteration: a list's items, a dict's keys, a string's characters; Undefined is empty.
    func iterate(_ v: Value) throws(JinjaError) -> [Value] {
        switch v.plain {
        case .iterator(let items, _): return items
        case .list(let a), .tuple(let a): return a
        case .dict(let d): return d.keys
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined(let u):
            if u.security != nil { throw undefinedError(u) }
            return []
        case .namespace, .callable, .loop, .none, .bool, .int, .bigInt, .double, .markup:
            throw fail(.type, "'\(v.typeName)' object is not iterable")
        }
    }

    func getattr(_ v: Value, _ name: String) throws(JinjaError) -> Value {
        let v = v.plain
        if case .undefined(let u) = v { throw undefinedError(u) }
        if name.hasPrefix("_") {
            return .undefined(Undefined(security: "access to attribute '\(name)' of '\(v.typeName)' object is unsafe."))
        }
        switch v {
        case .dict(let d):
            if let m = Builtins.method(self, v, name) { return m }
            return d[.string(name)] ?? .undefined(.attribute(name, of: v))
        case .namespace(let ns):
            return ns.attributes[.string(name)] ?? .undefined(.attribute(name, of: v))
        case .loop(let l):
            return loopAttribute(l, name) ?? .undefined(.attribute(name, of: v))
        default:
            return Builtins.method(self, v, name) ?? .undefined(.attribute(name, of: v))
        }
    }

    func loopAttribute(_ l: LoopContext, _ name: String) -> Value? {
        switch name {
        case "index": return .int(l.index0 + 1)
        case "index0": return .int(l.index0)
        case "revindex": return .int(l.length - l.index0)
        case "revindex0": return .int(l.length - l.index0 - 1)
        case "first": return .bool(l.index0 == 0)
        case "last": return .bool(l.index0 == l.length - 1)
        case "length": return .int(l.length)
        case "depth": return .int(l.depth0 + 1)
        case "depth0": return .int(l.depth0)
        case "previtem": return l.index0 > 0 ? l.items[l.index0 - 1] : .undefined(Undefined(hint: "there is no previous item"))
        case "nextitem": return l.index0 + 1 < l.length ? l.items[l.index0 + 1] : .undefined(Undefined(hint: "there is no next item"))
        case "cycle":
            return .callable(Callable(name: "cycle", owner: "LoopContext", kind: .builtin { interp, args, _ in
                guard !args.isEmpty else { throw interp.fail(.type, "no items for cycling given") }
                return args[l.index0 % args.count]
            }))
        case "changed":
            return .callable(Callable(name: "changed", owner: "LoopContext", kind: .builtin { interp, args, _ in
                if let last = l.lastChanged, interp.equal(.list(last), .list(args)) { return .bool(false) }
                l.lastChanged = args
                return .bool(true)
            }))
        default: return nil
        }
    }

    func getitem(_ v: Value, _ key: Value) throws(JinjaError) -> Value {
        let v = v.plain, key = key.plain
        switch v {
        case .undefined(let u): throw undefinedError(u)
        case .dict(let d):
            if let x = d[key] { return x }
        case .list(let a), .tuple(let a):
            if let i = key.integer {
                let j = i < 0 ? i + a.count : i
                if j >= 0 && j < a.count { return a[j] }
                return .undefined(.item(key, of: v))
            }
        case .string(let s):
            if let i = key.integer {
                let scalars = Array(s.unicodeScalars)
                let j = i < 0 ? i + scalars.count : i
                if j >= 0 && j < scalars.count { return .string(String(scalars[j])) }
                return .undefined(.item(key, of: v))
            }
        case .namespace(let ns):
            if let x = ns.attributes[key] { return x }
        case .loop(let l):
            if case .string(let name) = key, let x = loopAttribute(l, name) { return x }
        default: break
        }
        if case .string(let name) = key {
            if name.hasPrefix("_") {
                return .undefined(Undefined(security: "access to attribute '\(name)' of '\(v.typeName)' object is unsafe."))
            }
            if case .dict = v { return Builtins.method(self, v, name) ?? .undefined(.attribute(name, of: v)) }
            if case .namespace = v { return .undefined(.attribute(name, of: v)) }
            return try getattr(v, name)
        }
        return .undefined(.item(key, of: v))
    }

    func slice(_ v: Value, _ start: Value?, _ stop: Value?, _ step: Value?) throws(JinjaError) -> Value {
        let v = v.plain
        func bound(_ x: Value?) throws(JinjaError) -> Int? {
            guard let x else { return nil }
            if case .none = x { return nil }
            guard let i = x.integer else { throw fail(.type, "slice indices must be integers or None") }
            return i
        }
        let st = try bound(step) ?? 1
        guard st != 0 else { throw fail(.value, "slice step cannot be zero") }
        func indices(_ n: Int) throws(JinjaError) -> [Int] {
            func clamp(_ x: Int?, _ def: Int) -> Int {
                guard var x else { return def }
                if x < 0 { x += n }
                if st > 0 { return min(max(x, 0), n) }
                return min(max(x, -1), n - 1)
            }
            let a = clamp(try bound(start), st > 0 ? 0 : n - 1)
            let b = clamp(try bound(stop), st > 0 ? n : -1)
            var out: [Int] = []
            var k = a
            while st > 0 ? k < b : k > b { out.append(k); k += st }
            return out
        }
        switch v {
        case .undefined(let u): throw undefinedError(u)
        case .list(let a): return .list(try indices(a.count).map { a[$0] })
        case .tuple(let a): return .tuple(try indices(a.count).map { a[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            var out = String.UnicodeScalarView()
            for k in try indices(scalars.count) { out.append(scalars[k]) }
            return .string(String(out))
        // jinja2 compiles a slice to a plain Python subscript (not the sandbox's getitem), so
        // anything else raises.
        case .dict: throw fail(.type, "unhashable type: 'slice'")
        default: throw fail(.type, "'\(v.typeName)' object is not subscriptable")
        }
    }

    /// Whether jinja2's optimizer can fold the expression to a constant (the simple cases).
    static func isConstant(_ e: Expr) -> Bool {
        switch e {
        case .literal: return true
        case .list(let items), .tuple(let items), .concat(let items): return items.allSatisfy(isConstant)
        case .dict(let pairs): return pairs.allSatisfy { isConstant($0.0) && isConstant($0.1) }
        case .unary(_, let x, _), .not(let x): return isConstant(x)
        case .binary(_, let x, let y, _), .and(let x, let y), .or(let x, let y): return isConstant(x) && isConstant(y)
        case .slice(let x, let a, let b, let c, _): return [x, a, b, c].allSatisfy { $0.map(isConstant) ?? true }
        case .item(let x, let key, _): return isConstant(x) && isConstant(key)
        case .conditional(let test, let then, let orElse): return isConstant(test) && isConstant(then) && (orElse.map(isConstant) ?? true)
        case .compare(let x, let rest, _): return isConstant(x) && rest.allSatisfy { isConstant($0.1) }
        case .test(let x, _, let args, let kwargs, _, _): return isConstant(x) && args.allSatisfy(isConstant) && kwargs.allSatisfy { isConstant($0.1) }
        default: return false
        }
    }

    func call(_ fn: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws(JinjaError) -> Value {
        switch fn {
        case .undefined(let u): throw undefinedError(u)
        case .callable(let c):
            switch c.kind {
            case .builtin(let f): return try lift { try f(self, args, kwargs) }
            case .macro(let m, let scope): return try callMacro(m, scope, args, kwargs)
            }
        case .loop(let l):
            guard let r = l.recurse else { throw fail(.type, "the loop is not recursive: add 'recursive' to the for tag") }
            return try call(.callable(r), args, kwargs)
        default:
            throw fail(.type, "'\(fn.typeName)' object is not callable")
        }
    }

    func callMacro(_ m: Macro, _ defining: Scope, _ args: [Value], _ kwargs: [(String, Value)]) throws(JinjaError) -> Value {
        callDepth += 1
        defer { callDepth -= 1 }
        guard callDepth <= options.limits.maxCallDepth else {
            throw fail(.limitExceeded, "macro calls nested deeper than \(options.limits.maxCallDepth) (runaway recursion in '\(m.name)'?)")
        }
        let s = Scope(parent: defining)
        if args.count > m.parameters.count, !m.usesVarargs {
            throw fail(.type, "macro '\(m.name)' takes not more than \(m.parameters.count) argument(s)")
        }
        var given: [String: Value] = [:]
        var extra = Dict()
        for (k, v) in kwargs {
            if m.parameters.contains(where: { $0.name == k }) { given[k] = v }
            else if k == "caller" && m.usesCaller { s.vars["caller"] = v }
            else if m.usesKwargs { extra[.string(k)] = v }
            else { throw fail(.type, "macro '\(m.name)' takes no keyword argument '\(k)'") }
        }
        for (k, p) in m.parameters.enumerated() {
            if k < args.count {
                if given[p.name] != nil { throw fail(.type, "macro '\(m.name)' got multiple values for argument '\(p.name)'") }
                s.vars[p.name] = args[k]
            } else if let v = given[p.name] {
                s.vars[p.name] = v
            } else if let d = p.defaultValue {
                s.vars[p.name] = try eval(d, s)
            } else {
                s.vars[p.name] = .undefined(Undefined(hint: "parameter '\(p.name)' was not provided"))
            }
        }
        if m.usesVarargs { s.vars["varargs"] = .tuple(Array(args.dropFirst(m.parameters.count))) }
        if m.usesKwargs { s.vars["kwargs"] = .dict(extra) }
        if m.usesCaller, s.vars["caller"] == nil { s.vars["caller"] = .undefined(.named("caller")) }
        let (text, _) = try capture(m.body, s)
        return .string(text)
    }

    func unary(_ op: String, _ v: Value) throws(JinjaError) -> Value {
        switch (op, v) {
        case (_, .undefined(let u)): throw undefinedError(u)
        case ("-", .int(let i)): return .int(-i)
        case ("-", .bool(let b)): return .int(b ? -1 : 0)
        case ("-", .double(let d)): return .double(-d)
        case ("+", .int), ("+", .double): return v
        case ("+", .bool(let b)): return .int(b ? 1 : 0)
        default: throw fail(.type, "bad operand type for unary \(op): '\(v.typeName)'")
        }
    }

    func binary(_ op: String, _ a: Value, _ b: Value) throws(JinjaError) -> Value {
        if case .undefined(let u) = a { throw undefinedError(u) }
        if case .undefined(let u) = b { throw undefinedError(u) }
        func typeError() -> JinjaError {
            fail(.type, "unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
        switch op {
        case "+":
            switch (a, b) {
            case (.markup(let x), .markup(let y)): return .markup(x + y)
            case (.markup(let x), .string(let y)): return .markup(x + Builtins.htmlEscape(y))
            case (.string(let x), .markup(let y)): return .markup(Builtins.htmlEscape(x) + y)
            case (.string(let x), .string(let y)): return try checkedString(x + y)
            case (.list(let x), .list(let y)):
                guard x.count + y.count <= options.limits.maxSequenceLength else {
                    throw fail(.limitExceeded, "a list longer than \(options.limits.maxSequenceLength) items")
                }
                return .list(x + y)
            case (.tuple(let x), .tuple(let y)): return .tuple(x + y)
            default: break
            }
        case "*":
            switch (a, b) {
            case (.string(let s), _) where b.integer != nil: return try repeatString(s, b.integer!)
            case (_, .string(let s)) where a.integer != nil: return try repeatString(s, a.integer!)
            case (.list(let l), _) where b.integer != nil: return .list(try repeatList(l, b.integer!))
            case (_, .list(let l)) where a.integer != nil: return .list(try repeatList(l, a.integer!))
            case (.tuple(let l), _) where b.integer != nil: return .tuple(try repeatList(l, b.integer!))
            default: break
            }
        case "%":
            if case .string(let s) = a { return .string(try Builtins.percentFormat(self, s, b)) }
        default: break
        }
        if let x = a.integer, let y = b.integer {
            switch op {
            case "+": let (r, o) = x.addingReportingOverflow(y); if !o { return .int(r) }
            case "-": let (r, o) = x.subtractingReportingOverflow(y); if !o { return .int(r) }
            case "*": let (r, o) = x.multipliedReportingOverflow(by: y); if !o { return .int(r) }
            case "/":
                guard y != 0 else { throw fail(.value, "division by zero") }
                return .double(Double(x) / Double(y))
            case "//":
                guard y != 0 else { throw fail(.value, "integer division or modulo by zero") }
                var q = x / y
                if (x % y != 0) && ((x < 0) != (y < 0)) { q -= 1 }
                return .int(q)
            case "%":
                guard y != 0 else { throw fail(.value, "integer division or modulo by zero") }
                var r = x % y
                if r != 0 && ((r < 0) != (y < 0)) { r += y }
                return .int(r)
            case "**":
                if y < 0 { return .double(pow(Double(x), Double(y))) }
                var result = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        guard !o else { throw fail(.limitExceeded, "integer result of ** is too large") }
                        result = r
                    }
                    e >>= 1
                    if e > 0 {
                        let (r, o) = base.multipliedReportingOverflow(by: base)
                        guard !o else { throw fail(.limitExceeded, "integer result of ** is too large") }
                        base = r
                    }
                }
                return .int(result)
            default: break
            }
            throw fail(.limitExceeded, "integer result of \(op) is too large")
        }
        if let x = a.number, let y = b.number {
            switch op {
            case "+": return .double(x + y)
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "/":
                guard y != 0 else { throw fail(.value, "float division by zero") }
                return .double(x / y)
            case "//":
                guard y != 0 else { throw fail(.value, "float floor division by zero") }
                return .double((x / y).rounded(.down))
            case "%":
                guard y != 0 else { throw fail(.value, "float modulo") }
                var r = fmod(x, y)
                if r != 0 && ((r < 0) != (y < 0)) { r += y }
                return .double(r)
            case "**": return .double(pow(x, y))
            default: break
            }
        }
        throw typeError()
    }

    /// A string the template built, refused past the output limit (doubling a string in a
    /// loop would otherwise exhaust memory).
    func checkedString(_ s: String) throws(JinjaError) -> Value {
        guard s.utf8.count <= options.limits.maxOutputBytes else {
            throw fail(.limitExceeded, "a string larger than \(options.limits.maxOutputBytes) bytes")
        }
        return .string(s)
    }

    func repeatString(_ s: String, _ n: Int) throws(JinjaError) -> Value {
        guard n > 0 else { return .string("") }
        guard s.utf8.count.multipliedReportingOverflow(by: n).partialValue <= options.limits.maxOutputBytes,
              !s.utf8.count.multipliedReportingOverflow(by: n).overflow else {
            throw fail(.limitExceeded, "a string repeated \(n) times is larger than \(options.limits.maxOutputBytes) bytes")
        }
        return .string(String(repeating: s, count: n))
    }

    func repeatList(_ l: [Value], _ n: Int) throws(JinjaError) -> [Value] {
        guard n > 0 else { return [] }
        guard !l.count.multipliedReportingOverflow(by: n).overflow, l.count * n <= options.limits.maxSequenceLength else {
            throw fail(.limitExceeded, "a list repeated \(n) times is longer than \(options.limits.maxSequenceLength) items")
        }
        return Array([[Value]](repeating: l, count: n).joined())
    }

    /// Python's `==`.
    func equal(_ a: Value, _ b: Value) -> Bool {
        switch (a.plain, b.plain) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.dict(let x), .dict(let y)):
            guard x.count == y.count else { return false }
            for (k, v) in x { guard let w = y[k], equal(v, w) else { return false } }
            return true
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.callable(let x), .callable(let y)): return x === y
        case (.loop(let x), .loop(let y)): return x === y
        case (.iterator(let x, let k), .iterator(let y, let l)): return k == l && k.hasPrefix("dict_") && equal(.list(x), .list(y))
        default:
            if let x = a.integer, let y = b.integer { return x == y }
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }

    /// Python's `<`; a TypeError between values that do not order.
    func less(_ a: Value, _ b: Value) throws(JinjaError) -> Bool {
        let a = a.plain, b = b.plain
        if case .undefined(let u) = a { throw undefinedError(u) }
        if case .undefined(let u) = b { throw undefinedError(u) }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !equal(p, q) { return try less(p, q) }
            return x.count < y.count
        default:
            if let x = a.integer, let y = b.integer { return x < y }
            if let x = a.number, let y = b.number { return x < y }
            throw fail(.type, "'<' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    func contains(_ container: Value, _ item: Value) throws(JinjaError) -> Bool {
        switch container.plain {
        case .iterator(let items, _): return items.contains { equal($0, item) }
        case .string(let s):
            guard case .string(let sub) = item.plain else {
                if case .undefined(let u) = item { throw undefinedError(u) }
                throw fail(.type, "'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return sub.isEmpty || s.contains(sub)
        case .list(let a), .tuple(let a): return a.contains { equal($0, item) }
        case .dict(let d):
            // Python hashes the key: a list or dict raises.
            if case .list = item.plain { throw fail(.type, "unhashable type: 'list'") }
            if case .dict = item.plain { throw fail(.type, "unhashable type: 'dict'") }
            return d[item] != nil
        case .undefined(let u):
            if u.security != nil { throw undefinedError(u) }
            return false
        case .namespace: throw fail(.type, "argument of type 'Namespace' is not iterable")
        default: throw fail(.type, "argument of type '\(container.typeName)' is not iterable")
        }
    }

    func compare(_ op: String, _ a: Value, _ b: Value) throws(JinjaError) -> Bool {
        switch op {
        case "==": return equal(a, b)
        case "!=": return !equal(a, b)
        case "<": return try less(a, b)
        case ">": return try less(b, a)
        case "<=", ">=" where a.isUndefined || b.isUndefined:
            // Undefined's ordering operators raise, even against another undefined value.
            if case .undefined(let u) = a { throw undefinedError(u) }
            if case .undefined(let u) = b { throw undefinedError(u) }
            return false
        case "<=": return equal(a, b) && !isNaN(a) ? true : try less(a, b)
        case ">=": return equal(a, b) && !isNaN(a) ? true : try less(b, a)
        case "in": return try contains(b, a)
        case "notin": return !(try contains(b, a))
        default: throw fail(.syntax, "unknown comparison \(op)")
        }
    }

    func isNaN(_ v: Value) -> Bool { if case .double(let d) = v { return d.isNaN }; return false }
}
