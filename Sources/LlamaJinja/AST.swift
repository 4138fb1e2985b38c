/// The parsed template: statements and expressions, each with its source offset.
indirect enum Node {
    case output(String)
    case expression(Expr)
    case ifNode(branches: [(test: Expr, body: [Node])], orElse: [Node])
    case forNode(target: Target, iter: Expr, filter: Expr?, body: [Node], orElse: [Node], recursive: Bool, offset: Int)
    case set(target: Target, value: Expr, offset: Int)
    case setBlock(target: Target, filters: [FilterCall], body: [Node], offset: Int)
    case macro(Macro)
    case callBlock(call: Expr, caller: Macro, offset: Int)
    case filterBlock(filters: [FilterCall], body: [Node])
    case with(assignments: [(Target, Expr)], body: [Node])
    case breakLoop(offset: Int)
    case continueLoop(offset: Int)
    /// Names that start undefined in this frame (see `Scoping`).
    case declare([String])
}

/// The left side of `set` and `for`: a name, names to unpack, or a namespace attribute.
indirect enum Target {
    case name(String)
    case tuple([Target])
    case attribute(object: String, name: String)
}

final class Macro: @unchecked Sendable {
    let name: String
    let parameters: [(name: String, defaultValue: Expr?)]
    let body: [Node]
    let offset: Int
    /// Whether the body reads `caller`, `varargs` or `kwargs` (jinja2 accepts extra arguments then).
    let usesVarargs: Bool
    let usesKwargs: Bool
    let usesCaller: Bool
    init(name: String, parameters: [(name: String, defaultValue: Expr?)], body: [Node], offset: Int,
         usesVarargs: Bool, usesKwargs: Bool, usesCaller: Bool) {
        self.name = name
        self.parameters = parameters
        self.body = body
        self.offset = offset
        self.usesVarargs = usesVarargs
        self.usesKwargs = usesKwargs
        self.usesCaller = usesCaller
    }
}

struct FilterCall {
    let name: String
    let args: [Expr]
    let kwargs: [(String, Expr)]
    /// Known at parse time to exist; otherwise it fails when evaluated (jinja2 defers unknown
    /// names inside `if` to run time).
    let offset: Int
}

struct Arguments {
    var positional: [Expr] = []
    var keywords: [(String, Expr)] = []
    var star: Expr? = nil
    var doubleStar: Expr? = nil
}

indirect enum Expr {
    case literal(Value)
    case name(String, offset: Int)
    case list([Expr])
    case tuple([Expr])
    case dict([(Expr, Expr)])
    case attribute(Expr, String, offset: Int)
    case item(Expr, Expr, offset: Int)
    case slice(Expr, start: Expr?, stop: Expr?, step: Expr?, offset: Int)
    case call(Expr, Arguments, offset: Int)
    case filter(Expr?, FilterCall)
    case test(Expr, name: String, args: [Expr], kwargs: [(String, Expr)], negated: Bool, offset: Int)
    case unary(String, Expr, offset: Int)
    case binary(String, Expr, Expr, offset: Int)
    case and(Expr, Expr)
    case or(Expr, Expr)
    case not(Expr)
    case compare(Expr, [(String, Expr)], offset: Int)
    case concat([Expr])
    case conditional(test: Expr, then: Expr, orElse: Expr?)
}
