/// jinja2's optimizer, applied to the parsed template once: every constant subexpression (no
/// names, no calls, no filter that reads the context, as far as evaluation goes: `0 and x` is
/// constant) is evaluated when the template is compiled, and replaced by its value when that
/// value is one Python can write as a literal
/// (`has_safe_repr`: None, booleans, numbers, strings, ranges, and lists, tuples and dicts of
/// them). It matters where the evaluation differs from the one at render time: the compile-time
/// one goes through the sandbox's `getitem`, which turns `1[::-1]` into an undefined value, so
/// `{% set x = 1[::-1]|sum %}` is 0 where `{% set x = 1[::-1] %}` raises.
enum Folding {
    /// Filters jinja2 marks `pass_context`: never folded.
    static let contextFilters: Set<String> = ["map", "select", "reject", "selectattr", "rejectattr", "random"]

    static func fold(_ nodes: [Node], _ interpreter: Interpreter) -> [Node] {
        nodes.map { node($0, interpreter) }
    }

    static func node(_ n: Node, _ i: Interpreter) -> Node {
        func e(_ x: Expr) -> Expr { expr(x, i).0 }
        func filters(_ fs: [FilterCall]) -> [FilterCall] {
            fs.map { FilterCall(name: $0.name, args: $0.args.map(e), kwargs: $0.kwargs.map { ($0.0, e($0.1)) }, offset: $0.offset) }
        }
        func body(_ b: [Node]) -> [Node] { fold(b, i) }
        func macro(_ m: Macro) -> Macro {
            Macro(name: m.name, parameters: m.parameters.map { ($0.name, $0.defaultValue.map(e)) }, body: body(m.body),
                  offset: m.offset, usesVarargs: m.usesVarargs, usesKwargs: m.usesKwargs, usesCaller: m.usesCaller)
        }
        switch n {
        case .output, .breakLoop, .continueLoop, .declare: return n
        case .expression(let x):
            // A constant output is text from then on, whatever its value (`{{ 1[::-1] }}` is empty).
            let folded = e(x)
            if let v = constant(folded, i) { return .output(v.str) }
            return .expression(folded)
        case .ifNode(let branches, let orElse): return .ifNode(branches: branches.map { (e($0.test), body($0.body)) }, orElse: body(orElse))
        case .forNode(let target, let iter, let filter, let b, let orElse, let recursive, let offset):
            return .forNode(target: target, iter: e(iter), filter: filter.map(e), body: body(b), orElse: body(orElse), recursive: recursive, offset: offset)
        case .set(let target, let value, let offset): return .set(target: target, value: e(value), offset: offset)
        case .setBlock(let target, let fs, let b, let offset): return .setBlock(target: target, filters: filters(fs), body: body(b), offset: offset)
        case .macro(let m): return .macro(macro(m))
        case .callBlock(let c, let caller, let offset): return .callBlock(call: e(c), caller: macro(caller), offset: offset)
        case .filterBlock(let fs, let b): return .filterBlock(filters: filters(fs), body: body(b))
        case .with(let assignments, let b): return .with(assignments: assignments.map { ($0.0, e($0.1)) }, body: body(b))
        }
    }


    /// The expression's value as jinja2's `as_const` computes it, nil when it is not constant.
    static func constant(_ x: Expr, _ i: Interpreter) -> Value? {
        if case .literal(let v) = x { return v }
        i.foldingConstant = true
        defer { i.foldingConstant = false }
        return try? i.eval(x, Scope(parent: nil))
    }

    /// The expression with its constant parts folded (jinja2 tries every node, children first),
    /// and whether it is constant itself.
    static func expr(_ x: Expr, _ i: Interpreter) -> (Expr, Bool) {
        var rebuilt = children(x) { expr($0, i).0 }
        if case .literal = rebuilt { return (rebuilt, true) }
        guard let v = constant(rebuilt, i) else {
            // jinja2 writes a folded negative number into the Python it generates without
            // parentheses, so `-0.5 ** x` runs as Python's `-(0.5 ** x)`.
            if case .binary("**", .literal(let base), let exponent, let off) = rebuilt, let b = base.number, b.sign == .minus,
               case .literal(let magnitude) = (try? i.unary("-", base)).map(Expr.literal) ?? .literal(base) {
                rebuilt = .unary("-", .binary("**", .literal(magnitude), exponent, offset: off), offset: off)
            }
            return (rebuilt, false)
        }
        return hasSafeRepr(v) ? (.literal(v), true) : (rebuilt, true)
    }

    /// The expression with `f` applied to each direct subexpression.
    static func children(_ x: Expr, _ f: (Expr) -> Expr) -> Expr {
        func g(_ c: FilterCall) -> FilterCall {
            FilterCall(name: c.name, args: c.args.map(f), kwargs: c.kwargs.map { ($0.0, f($0.1)) }, offset: c.offset)
        }
        switch x {
        case .literal, .name: return x
        case .call(let fn, var args, let off):
            args.positional = args.positional.map(f)
            args.keywords = args.keywords.map { ($0.0, f($0.1)) }
            args.star = args.star.map(f)
            args.doubleStar = args.doubleStar.map(f)
            return .call(f(fn), args, offset: off)
        case .list(let items): return .list(items.map(f))
        case .tuple(let items): return .tuple(items.map(f))
        case .concat(let items): return .concat(items.map(f))
        case .dict(let pairs): return .dict(pairs.map { (f($0.0), f($0.1)) })
        case .attribute(let a, let name, let off): return .attribute(f(a), name, offset: off)
        case .item(let a, let key, let off): return .item(f(a), f(key), offset: off)
        case .slice(let a, let start, let stop, let step, let off):
            return .slice(f(a), start: start.map(f), stop: stop.map(f), step: step.map(f), offset: off)
        case .filter(let a, let c): return .filter(a.map(f), g(c))
        case .test(let a, let name, let args, let kwargs, let negated, let off):
            return .test(f(a), name: name, args: args.map(f), kwargs: kwargs.map { ($0.0, f($0.1)) }, negated: negated, offset: off)
        case .unary(let op, let a, let off): return .unary(op, f(a), offset: off)
        case .not(let a): return .not(f(a))
        case .binary(let op, let a, let b, let off): return .binary(op, f(a), f(b), offset: off)
        case .and(let a, let b): return .and(f(a), f(b))
        case .or(let a, let b): return .or(f(a), f(b))
        case .compare(let a, let rest, let off): return .compare(f(a), rest.map { ($0.0, f($0.1)) }, offset: off)
        case .conditional(let test, let then, let orElse): return .conditional(test: f(test), then: f(then), orElse: orElse.map(f))
        }
    }

    /// jinja2's `has_safe_repr`.
    static func hasSafeRepr(_ v: Value) -> Bool {
        switch v {
        case .none, .bool, .int, .bigInt, .double, .string, .markup, .range: return true
        case .list(let items), .tuple(let items): return items.allSatisfy(hasSafeRepr)
        case .dict(let d): return d.allSatisfy { hasSafeRepr($0.0) && hasSafeRepr($0.1) }
        default: return false
        }
    }
}
