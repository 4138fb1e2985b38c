/// jinja2's rule for the names a frame assigns (its `idtracking`), applied to the parsed
/// template once.
///
/// A frame is the template's top level, a for-loop body (and its `else`), a macro or call-block
/// body, a `with`, `filter` or block-`set` body; `if` branches belong to the frame around them.
/// jinja2 compiles each name a frame assigns (`set`, `macro`) to one local variable of that
/// frame. Its start value depends on what the frame does first with the name: when it reads it
/// first (or assigns it inside an `if`), the variable starts as the value outside;
/// when it assigns it first, and no enclosing frame knows the name, the variable starts
/// undefined. Frames nested inside read that variable, so a loop that runs before the
/// template's top level assigns `x` sees `x` undefined, even when the caller passed an `x`:
///
///     {% for m in messages %}{{ x }}{% endfor %}{% set x = 1 %}   → x is undefined in the loop
///
/// `annotate` puts a `declare` node with those names at the start of each frame's body.
enum Scoping {
    /// What a frame knows about a name: read first (its value comes from outside) or assigned
    /// first (it starts undefined, unless an enclosing frame knows the name).
    enum Start { case outside, undefined }

    struct Symbols {
        var starts: [String: Start] = [:]
        var stores: Set<String> = []
        /// Names the enclosing frames know (read or assign anywhere).
        let outer: Set<String>

        mutating func load(_ name: String) {
            if starts[name] == nil && !outer.contains(name) { starts[name] = .outside }
        }
        mutating func store(_ name: String) {
            stores.insert(name)
            if starts[name] == nil { starts[name] = outer.contains(name) ? .outside : .undefined }
        }
    }

    static func annotate(_ nodes: [Node]) -> [Node] {
        frame(nodes, parameters: [], outer: [])
    }

    /// One frame's body with its `declare` node, and its nested frames annotated.
    static func frame(_ body: [Node], parameters: [String], outer: Set<String>) -> [Node] {
        var symbols = Symbols(outer: outer)
        for p in parameters { symbols.starts[p] = .outside }
        visit(body, &symbols)
        let known = outer.union(symbols.starts.keys)
        let annotated = body.map { nested($0, known) }
        let undefined = symbols.starts.filter { $0.value == .undefined }.keys.sorted()
        return undefined.isEmpty ? annotated : [.declare(undefined)] + annotated
    }

    /// The names a frame's own level reads and assigns, in order (nested frames are not its level).
    static func visit(_ nodes: [Node], _ s: inout Symbols) {
        for node in nodes {
            switch node {
            case .output, .breakLoop, .continueLoop, .declare: break
            case .expression(let e): loads(e, &s)
            case .ifNode(let branches, let orElse):
                // jinja2 visits the first test, then each branch (an `elif` is an `if` inside
                // the branch list) in a copy of the symbols, and merges them.
                loads(branches[0].test, &s)
                let original = s
                var first = original, elifs = original, last = original
                visit(branches[0].body, &first)
                for branch in branches.dropFirst() { visit([.ifNode(branches: [branch], orElse: [])], &elifs) }
                visit(orElse, &last)
                let copies = [first, elifs, last]
                for c in copies {
                    for (name, start) in c.starts where original.starts[name] == nil { s.starts[name] = start }
                    s.stores.formUnion(c.stores)
                }
                // A name the branches assign (and the frame had not) starts as the value outside.
                for c in copies { for name in c.stores where !original.stores.contains(name) { s.starts[name] = .outside } }
            case .forNode(_, let iter, _, _, _, _, _): loads(iter, &s)
            case .set(let target, let value, _):
                loads(value, &s)
                store(target, &s)
            case .setBlock(let target, _, _, _): store(target, &s)
            case .macro(let m): s.store(m.name)
            case .callBlock(let call, _, _): loads(call, &s)
            case .filterBlock(let filters, _): for f in filters { filterLoads(f, &s) }
            case .with(let assignments, _): for (_, e) in assignments { loads(e, &s) }
            }
        }
    }

    static func store(_ target: Target, _ s: inout Symbols) {
        switch target {
        case .name(let n): s.store(n)
        case .tuple(let items): for t in items { store(t, &s) }
        case .attribute(let object, _): s.load(object)  // `set ns.x`: reads ns
        }
    }

    static func names(_ target: Target) -> [String] {
        switch target {
        case .name(let n): return [n]
        case .tuple(let items): return items.flatMap(names)
        case .attribute: return []
        }
    }

    /// The node with the frames inside it annotated (`outer`: the names this frame and the ones
    /// around it know).
    static func nested(_ node: Node, _ outer: Set<String>) -> Node {
        func macro(_ m: Macro, _ extra: [String]) -> Macro {
            var parameters = m.parameters.map(\.name) + extra
            if m.usesCaller { parameters.append("caller") }
            if m.usesVarargs { parameters.append("varargs") }
            if m.usesKwargs { parameters.append("kwargs") }
            return Macro(name: m.name, parameters: m.parameters, body: frame(m.body, parameters: parameters, outer: outer),
                         offset: m.offset, usesVarargs: m.usesVarargs, usesKwargs: m.usesKwargs, usesCaller: m.usesCaller)
        }
        switch node {
        case .output, .expression, .set, .breakLoop, .continueLoop, .declare: return node
        case .ifNode(let branches, let orElse):
            return .ifNode(branches: branches.map { ($0.test, $0.body.map { nested($0, outer) }) }, orElse: orElse.map { nested($0, outer) })
        case .forNode(let target, let iter, let filter, let body, let orElse, let recursive, let offset):
            return .forNode(target: target, iter: iter, filter: filter, body: frame(body, parameters: names(target) + ["loop"], outer: outer),
                            orElse: frame(orElse, parameters: [], outer: outer), recursive: recursive, offset: offset)
        case .setBlock(let target, let filters, let body, let offset):
            return .setBlock(target: target, filters: filters, body: frame(body, parameters: [], outer: outer), offset: offset)
        case .macro(let m): return .macro(macro(m, []))
        case .callBlock(let call, let caller, let offset): return .callBlock(call: call, caller: macro(caller, []), offset: offset)
        case .filterBlock(let filters, let body): return .filterBlock(filters: filters, body: frame(body, parameters: [], outer: outer))
        case .with(let assignments, let body):
            return .with(assignments: assignments, body: frame(body, parameters: assignments.flatMap { names($0.0) }, outer: outer))
        }
    }

    // MARK: names read by expressions

    static func loads(_ e: Expr, _ s: inout Symbols) {
        switch e {
        case .literal: break
        case .name(let n, _): s.load(n)
        case .list(let items), .tuple(let items), .concat(let items): for x in items { loads(x, &s) }
        case .dict(let pairs): for (k, v) in pairs { loads(k, &s); loads(v, &s) }
        case .attribute(let x, _, _), .unary(_, let x, _), .not(let x): loads(x, &s)
        case .item(let x, let key, _): loads(x, &s); loads(key, &s)
        case .slice(let x, let a, let b, let c, _): for y in [x, a, b, c] { if let y { loads(y, &s) } }
        case .call(let fn, let args, _):
            loads(fn, &s)
            for a in args.positional { loads(a, &s) }
            for (_, a) in args.keywords { loads(a, &s) }
            if let star = args.star { loads(star, &s) }
            if let ds = args.doubleStar { loads(ds, &s) }
        case .filter(let x, let f):
            if let x { loads(x, &s) }
            filterLoads(f, &s)
        case .test(let x, _, let args, let kwargs, _, _):
            loads(x, &s)
            for a in args { loads(a, &s) }
            for (_, a) in kwargs { loads(a, &s) }
        case .binary(_, let x, let y, _), .and(let x, let y), .or(let x, let y): loads(x, &s); loads(y, &s)
        case .compare(let x, let rest, _): loads(x, &s); for (_, y) in rest { loads(y, &s) }
        case .conditional(let test, let then, let orElse):
            loads(test, &s)
            loads(then, &s)
            if let orElse { loads(orElse, &s) }
        }
    }

    static func filterLoads(_ f: FilterCall, _ s: inout Symbols) {
        for a in f.args { loads(a, &s) }
        for (_, a) in f.kwargs { loads(a, &s) }
    }
}
