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
    /// Calls in progress (macros, recursive loops, callers, builtins).
    var nesting = 0
    /// Where calls stop for lack of stack: read on the render's thread once a call is made inside
    /// another (a debug build's frames take about 34 KiB per level; reading the bounds costs more
    /// than a render without nested calls, so those never read them).
    lazy var stack = StackGuard()
    var iterations = 0
    /// The source offset of what is being evaluated, for error positions.
    var offset = 0
    /// Evaluating as jinja2's optimizer does when it compiles the template (`as_const`): a name,
    /// a call or a filter that reads the context make the expression not constant (an error),
    /// and slicing goes through the sandbox's getitem (a type error is an undefined value).
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
        let budget = Value.TextBudget(limit: options.limits.maxOutputBytes, values: options.limits.maxSequenceLength)
        let result = Value.$textBudget.withValue(budget) { Result { () throws(JinjaError) in _ = try exec(nodes, root) } }
        try result.get()
        try checkTextBudget()
        return out
    }

    /// Stops the render when a text made from a value passed the output limit (and was cut).
    func checkTextBudget() throws(JinjaError) {
        if Value.textBudget?.exceeded == true {
            throw fail(.limitExceeded, "a value's text is larger than the output limit of \(options.limits.maxOutputBytes) bytes "
                + "(a list holding itself many times over?)")
        }
    }

    func write(_ s: String) throws(JinjaError) {
        try checkTextBudget()
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
                try write(try eval(e, scope).str)
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
            case .declare(let names):
                for n in names { scope.vars[n] = .undefined(.named(n)) }
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
            let f = try exec(orElse, Scope(parent: scope))
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
            if foldingConstant { throw JinjaError(.unknownName, "a name is not constant") }
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
            if foldingConstant { throw JinjaError(.unknownName, "a call is not constant") }
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
            if foldingConstant { throw JinjaError(.unknownName, "an if without else is not constant when false") }
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
        if foldingConstant, Folding.contextFilters.contains(f.name) { throw JinjaError(.unknownName, "the filter reads the context") }
        let subject = ["safe", "escape", "e", "forceescape", "string", "pprint"].contains(f.name) ? value : value.plain
        return try bounded(try lift { try filter(self, subject, args, kwargs) }, by: f.name)
    }

    /// A width or precision a template asks for (padding, indentation), refused past the output
    /// limit before a string that large is made.
    func checkWidth(_ n: Int, _ what: String) throws(JinjaError) {
        guard n <= options.limits.maxOutputBytes else {
            throw fail(.limitExceeded, "\(what) (\(n)) is larger than the output limit of \(options.limits.maxOutputBytes) bytes")
        }
    }

    /// A filter's result within the sandbox's limits: chained filters can otherwise grow a value
    /// geometrically without writing anything (`| list | string` makes each character about five),
    /// until memory runs out.
    func bounded(_ result: Value, by filter: String) throws(JinjaError) -> Value {
        try checkTextBudget()
        switch result {
        case .string(let s) where s.utf8.count > options.limits.maxOutputBytes:
            throw fail(.limitExceeded, "the filter '\(filter)' made a string larger than \(options.limits.maxOutputBytes) bytes")
        case .list(let items) where items.count > options.limits.maxSequenceLength,
             .tuple(let items) where items.count > options.limits.maxSequenceLength:
            throw fail(.limitExceeded, "the filter '\(filter)' made a list longer than \(options.limits.maxSequenceLength) items")
        default:
            return result
        }
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
        case .generator(let g): return try g.drain()
        case .range(let r): return r.values
        case .bytes(let b): return b.map { .int(Int($0)) }
        case .list(let a), .tuple(let a): return a
        case .dict(let d): return d.keys
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined:
            return []
        case .namespace, .callable, .loop, .none, .bool, .int, .bigInt, .double, .markup, .group:
            throw fail(.type, "'\(v.typeName)' object is not iterable")
        }
    }

    func getattr(_ v: Value, _ name: String) throws(JinjaError) -> Value {
        if case .group(let grouper, let list) = v {
            if name == "grouper" { return grouper }
            if name == "list" { return .list(list) }
        }
        let v = v.plain
        if case .undefined(let u) = v {
            // Python finds the attributes the Undefined object really has (the sandbox then
            // refuses them); any other name goes through its `__getattr__`, which raises.
            guard Interpreter.undefinedAttributes.contains(name) else { throw undefinedError(u) }
        }
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
        case .range(let r):
            switch name {
            case "start": return .int(r.start)
            case "stop": return .int(r.stop)
            case "step": return .int(r.step)
            default: return Builtins.method(self, v, name) ?? .undefined(.attribute(name, of: v))
            }
        default:
            return Builtins.method(self, v, name) ?? .undefined(.attribute(name, of: v))
        }
    }

    /// `dir(jinja2.Undefined())`: the attributes an undefined value has.
    static let undefinedAttributes: Set<String> = [
        "__add__", "__aiter__", "__bool__", "__call__", "__class__", "__complex__", "__delattr__", "__dir__", "__div__",
        "__doc__", "__eq__", "__float__", "__floordiv__", "__format__", "__ge__", "__getattr__", "__getattribute__",
        "__getitem__", "__getstate__", "__gt__", "__hash__", "__init__", "__init_subclass__", "__int__", "__iter__", "__le__",
        "__len__", "__lt__", "__mod__", "__module__", "__mul__", "__ne__", "__neg__", "__new__", "__pos__", "__pow__",
        "__radd__", "__rdiv__", "__reduce__", "__reduce_ex__", "__repr__", "__rfloordiv__", "__rmod__", "__rmul__",
        "__rpow__", "__rsub__", "__rtruediv__", "__setattr__", "__sizeof__", "__slots__", "__str__", "__sub__",
        "__subclasshook__", "__truediv__", "_fail_with_undefined_error", "_undefined_exception", "_undefined_hint",
        "_undefined_message", "_undefined_name", "_undefined_obj",
    ]

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
        case .range(let r):
            if let i = key.integer {
                let j = i < 0 ? i + r.count : i
                if j >= 0 && j < r.count, let x = r.item(j) { return .int(x) }
                return .undefined(.item(key, of: v))
            }
        case .bytes(let b):
            if let i = key.integer {
                let j = i < 0 ? i + b.count : i
                if j >= 0 && j < b.count { return .int(Int(b[j])) }
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
        // Python's `slice.indices(n)`: the step, then start and stop clamped to the sequence
        // (checked only once the value is known to slice: `1[::0]` is a TypeError).
        func bounds(_ n: Int) throws(JinjaError) -> (Int, Int, step: Int) {
            let st = try bound(step) ?? 1
            guard st != 0 else { throw fail(.value, "slice step cannot be zero") }
            func clamp(_ x: Int?, _ def: Int) -> Int {
                guard var x else { return def }
                if x < 0 { x += n }
                if st > 0 { return min(max(x, 0), n) }
                return min(max(x, -1), n - 1)
            }
            return (clamp(try bound(start), st > 0 ? 0 : n - 1), clamp(try bound(stop), st > 0 ? n : -1), st)
        }
        func indices(_ n: Int) throws(JinjaError) -> [Int] {
            let (a, b, st) = try bounds(n)
            var out: [Int] = []
            var k = a
            while st > 0 ? k < b : k > b {
                out.append(k)
                let (next, overflow) = k.addingReportingOverflow(st)
                if overflow { break }
                k = next
            }
            return out
        }
        switch v {
        case .undefined(let u): throw undefinedError(u)
        case .list(let a): return .list(try indices(a.count).map { a[$0] })
        case .tuple(let a): return .tuple(try indices(a.count).map { a[$0] })
        case .bytes(let a): return .bytes(try indices(a.count).map { a[$0] })
        case .range(let r):
            // Python slices a range into a range.
            let (a, b, st) = try bounds(r.count)
            guard let first = r.item(a), let end = r.item(b), case (let step, false) = r.step.multipliedReportingOverflow(by: st) else {
                throw fail(.limitExceeded, "integer overflow slicing \(v.repr)")
            }
            return .range(PyRange(start: first, stop: end, step: step))
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

    func call(_ fn: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws(JinjaError) -> Value {
        nesting += 1
        defer { nesting -= 1 }
        guard nesting < 2 || stack.hasRoom() else {
            throw fail(.limitExceeded, "calls nested too deeply for this thread's stack (\(nesting) calls deep; "
                + "runaway recursion?): the template cannot be rendered here")
        }
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
        // `str % x` formats before x is looked at: an undefined x is an argument like any other.
        if op == "%", case .string(let s) = a { return .string(try Builtins.percentFormat(self, s, b)) }
        if op == "%", case .markup(let s) = a {
            // Markup's `%` escapes the strings it puts in.
            func escaped(_ v: Value) -> Value { if case .string(let x) = v { return .markup(Builtins.htmlEscape(x)) }; return v }
            let args: Value
            switch b {
            case .tuple(let items): args = .tuple(items.map(escaped))
            case .dict(var d):
                for k in d.keys { d[k] = escaped(d[k]!) }
                args = .dict(d)
            default: args = escaped(b)
            }
            return .markup(try Builtins.percentFormat(self, s, args))
        }
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
            case (.bytes(let x), .bytes(let y)): return .bytes(x + y)
            default: break
            }
        case "*":
            switch (a, b) {
            case (.string(let s), _) where b.integer != nil: return try repeatString(s, b.integer!)
            case (.markup(let s), _) where b.integer != nil: return .markup(try repeatString(s, b.integer!).str)
            case (_, .string(let s)) where a.integer != nil: return try repeatString(s, a.integer!)
            case (.list(let l), _) where b.integer != nil: return .list(try repeatList(l, b.integer!))
            case (_, .list(let l)) where a.integer != nil: return .list(try repeatList(l, a.integer!))
            case (.tuple(let l), _) where b.integer != nil: return .tuple(try repeatList(l, b.integer!))
            case (_, .tuple(let l)) where a.integer != nil: return .tuple(try repeatList(l, a.integer!))
            default: break
            }
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
                if y < 0 {
                    guard x != 0 else { throw fail(.value, "0.0 cannot be raised to a negative power") }
                    return .double(pow(Double(x), Double(y)))
                }
                var result = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        guard !o else { throw fail(.limitExceeded, "integer overflow: the result of ** does not fit in 64 bits") }
                        result = r
                    }
                    e >>= 1
                    if e > 0 {
                        let (r, o) = base.multipliedReportingOverflow(by: base)
                        guard !o else { throw fail(.limitExceeded, "integer overflow: the result of ** does not fit in 64 bits") }
                        base = r
                    }
                }
                return .int(result)
            default: break
            }
            throw fail(.limitExceeded, "integer overflow: the result of \(op) does not fit in 64 bits")
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
                if r == 0 { r = copysign(0, y) }  // Python's zero takes the divisor's sign
                return .double(r)
            case "**":
                guard x != 0 || y >= 0 else { throw fail(.value, "0.0 cannot be raised to a negative power") }
                return .double(pow(x, y))
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
        case (.generator(let x), .generator(let y)): return x === y
        case (.bytes(let x), .bytes(let y)): return x == y
        case (.range(let x), .range(let y)):
            return x.count == y.count && (x.count == 0 || x.start == y.start && (x.count == 1 || x.step == y.step))
        // dict_keys and dict_items compare as sets; dict_values only by identity.
        case (.iterator(let x, let k), .iterator(let y, let l)):
            return k != "dict_values" && l != "dict_values" && x.count == y.count && isSubset(x, y)
        default:
            if let x = a.integer, let y = b.integer { return x == y }
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }

    /// Python's `<` (what `sort`, `min` and `max` use).
    func less(_ a: Value, _ b: Value) throws(JinjaError) -> Bool { try order("<", a, b) }

    /// Python's `<`, `<=`, `>`, `>=`: numbers, strings, lists and tuples item by item (the first
    /// unequal pair decides, with the same operator), dict key and item views as sets; a
    /// TypeError between anything else, an UndefinedError for an undefined operand.
    func order(_ op: String, _ a: Value, _ b: Value) throws(JinjaError) -> Bool {
        let a = a.plain, b = b.plain
        if case .undefined(let u) = a { throw undefinedError(u) }
        if case .undefined(let u) = b { throw undefinedError(u) }
        func holds<T: Comparable>(_ x: T, _ y: T) -> Bool {
            switch op {
            case "<": return x < y
            case "<=": return x <= y
            case ">": return x > y
            default: return x >= y
            }
        }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            return holds(StringOrder(x), StringOrder(y))
        case (.bytes(let x), .bytes(let y)):
            for (p, q) in zip(x, y) where p != q { return holds(p, q) }
            return holds(x.count, y.count)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !equal(p, q) { return try order(op, p, q) }
            return holds(x.count, y.count)
        case (.iterator(let x, let k), .iterator(let y, let l)) where k != "dict_values" && l != "dict_values":
            switch op {
            case "<": return x.count < y.count && isSubset(x, y)
            case "<=": return x.count <= y.count && isSubset(x, y)
            case ">": return x.count > y.count && isSubset(y, x)
            default: return x.count >= y.count && isSubset(y, x)
            }
        default:
            if let x = a.integer, let y = b.integer { return holds(x, y) }
            if let x = a.number, let y = b.number { return holds(x, y) }
            throw fail(.type, "'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    /// Whether every item of `x` is in `y` (set semantics of dict views).
    func isSubset(_ x: [Value], _ y: [Value]) -> Bool {
        x.allSatisfy { p in y.contains { equal(p, $0) } }
    }

    func contains(_ container: Value, _ item: Value) throws(JinjaError) -> Bool {
        switch container.plain {
        case .iterator(let items, _): return items.contains { equal($0, item) }
        case .generator(let g):
            // `in` takes items up to the first equal one.
            while let x = try g.next() { if equal(x, item) { return true } }
            return false
        case .range(let r): return r.values.contains { equal($0, item) }
        case .bytes(let b):
            switch item.plain {
            case .bytes(let sub): return sub.isEmpty || (0...max(0, b.count - sub.count)).contains { b.count >= sub.count && Array(b[$0..<$0 + sub.count]) == sub }
            case let x where x.integer != nil:
                guard (0...255).contains(x.integer!) else { throw fail(.value, "byte must be in range(0, 256)") }
                return b.contains(UInt8(x.integer!))
            default: throw fail(.type, "a bytes-like object is required, not '\(item.typeName)'")
            }
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
        case .undefined:
            return false
        case .namespace: throw fail(.type, "argument of type 'Namespace' is not iterable")
        default: throw fail(.type, "argument of type '\(container.typeName)' is not iterable")
        }
    }

    func compare(_ op: String, _ a: Value, _ b: Value) throws(JinjaError) -> Bool {
        switch op {
        case "==": return equal(a, b)
        case "!=": return !equal(a, b)
        case "<", "<=", ">", ">=": return try order(op, a, b)
        case "in": return try contains(b, a)
        case "notin": return !(try contains(b, a))
        default: throw fail(.syntax, "unknown comparison \(op)")
        }
    }

    /// A string ordered as Python orders `str`: by code point.
    struct StringOrder: Comparable {
        let s: String
        init(_ s: String) { self.s = s }
        static func < (l: StringOrder, r: StringOrder) -> Bool { l.s.unicodeScalars.lexicographicallyPrecedes(r.s.unicodeScalars) }
        static func == (l: StringOrder, r: StringOrder) -> Bool { l.s.unicodeScalars.elementsEqual(r.s.unicodeScalars) }
    }
}
