/// A problem found while reading headers or emitting code. Errors make the tool exit non-zero.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible, Error {
    public enum Severity: String, Hashable, Sendable { case warning, error }
    public var severity: Severity
    public var location: SourceLocation?
    public var message: String

    public init(_ severity: Severity, _ message: String, at location: SourceLocation? = nil) {
        self.severity = severity
        self.message = message
        self.location = location
    }

    public var description: String {
        "\(location.map { "\($0): " } ?? "")\(severity.rawValue): \(message)"
    }
}

/// Collects diagnostics; the generator fails when any of them is an error.
public struct Diagnostics: Sendable {
    public private(set) var items: [Diagnostic] = []
    public init() {}
    public mutating func add(_ d: Diagnostic) { items.append(d) }
    public mutating func error(_ message: String, at location: SourceLocation? = nil) {
        add(Diagnostic(.error, message, at: location))
    }
    public mutating func warning(_ message: String, at location: SourceLocation? = nil) {
        add(Diagnostic(.warning, message, at: location))
    }
    public var hasErrors: Bool { items.contains { $0.severity == .error } }
}
