public import Foundation

/// A Jinja template, parsed once and rendered many times, with the semantics of Python's
/// jinja2 as Hugging Face transformers sets it up for chat templates: a sandboxed
/// environment with `trim_blocks` and `lstrip_blocks`, loop controls, transformers' `tojson`,
/// `raise_exception` and `strftime_now`.
public struct JinjaTemplate: @unchecked Sendable {
    /// How the template is parsed and rendered.
    public struct Options: Sendable {
        /// Remove the first newline after a block tag (`{% ... %}`).
        public var trimBlocks = true
        /// Strip spaces and tabs from the start of a line up to a block tag.
        public var lstripBlocks = true
        /// Keep a single trailing newline of the template (jinja2's `keep_trailing_newline`).
        public var keepTrailingNewline = false
        /// The clock `strftime_now` reads.
        public var now: @Sendable () -> Date = { Date() }
        /// The time zone `strftime_now` formats in (transformers uses the local time).
        public var timeZone: TimeZone = .current
        /// Bounds that keep a hostile template from running away.
        public var limits = Limits()
        /// The options transformers uses for chat templates.
        public init() {}
    }

    /// What a render may use before it stops with `JinjaError.Code.limitExceeded`.
    public struct Limits: Sendable {
        /// Nested macro calls and includes.
        public var maxCallDepth = 256
        /// Length of one `range(...)` and of any list built by the template.
        public var maxSequenceLength = 1_000_000
        /// Bytes of output, and of any one string the template builds.
        public var maxOutputBytes = 16 << 20
        /// Loop iterations over the whole render.
        public var maxIterations = 1_000_000
        /// Nesting of brackets, operators, filters and blocks in the source (deeper templates
        /// are a syntax error rather than a stack overflow).
        public var maxNesting = 128
        /// Limits no real chat template comes near.
        public init() {}
    }

    let root: [Node]
    let lexer: Lexer
    let options: Options
    /// The template's source text.
    public let source: String

    /// Parses a template; a syntax error is a `JinjaError` with the line and column.
    public init(_ source: String, options: Options = Options()) throws(JinjaError) {
        self.source = source
        self.options = options
        let (nodes, lexer) = try Parser.parse(source, options: options)
        self.root = Folding.fold(Scoping.annotate(nodes), Interpreter(options: options, lexer: lexer))
        self.lexer = lexer
    }

    /// Renders with these variables (JSON values; objects keep their key order).
    public func render(_ variables: [String: JSONValue] = [:]) throws(JinjaError) -> String {
        try Interpreter(options: options, lexer: lexer).render(root, variables: variables)
    }

    /// Renders with `strftime_now` reading `now` (the options' clock when nil).
    public func render(_ variables: [String: JSONValue], now: Date?) throws(JinjaError) -> String {
        var o = options
        if let now { o.now = { now } }
        return try Interpreter(options: o, lexer: lexer).render(root, variables: variables)
    }
}

/// A template that failed to parse or render: a code to switch on, the message, and where.
public struct JinjaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong. Open: new codes may be added.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The template does not parse (unclosed block, unexpected token, bad literal).
        public static let syntax = Code(rawValue: "syntax")
        /// A filter, test or function that does not exist.
        public static let unknownName = Code(rawValue: "unknownName")
        /// An operation on values of the wrong type, or an undefined value used where jinja2 raises.
        public static let type = Code(rawValue: "type")
        /// An undefined variable or attribute used where jinja2 raises (`UndefinedError`).
        public static let undefined = Code(rawValue: "undefined")
        /// The template called `raise_exception(message)`; the message is the template's.
        public static let raised = Code(rawValue: "raised")
        /// A value out of range: index, division by zero, bad argument.
        public static let value = Code(rawValue: "value")
        /// Recursion, output size, sequence length or iteration count over `Limits`.
        public static let limitExceeded = Code(rawValue: "limitExceeded")
        /// Something jinja2's sandbox refuses (private attributes, unsafe calls).
        public static let security = Code(rawValue: "security")
    }

    /// What went wrong, to switch on.
    public let code: Code
    /// What went wrong (a template's own `raise_exception` message for `.raised`).
    public let message: String
    /// 1-based line and column in the template, when known.
    public let line: Int
    /// The 1-based column (0 when unknown).
    public let column: Int

    /// An error with its code, message and place in the template.
    public init(_ code: Code, _ message: String, line: Int = 0, column: Int = 0) {
        self.code = code
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        line > 0 ? "template error at \(line):\(column): \(message)" : "template error: \(message)"
    }
}
