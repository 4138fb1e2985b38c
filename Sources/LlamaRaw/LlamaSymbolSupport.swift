// The parts of the generated code that do not depend on the headers: what describes a symbol,
// what goes wrong when resolving one, and what a record layout is.

/// One entry per bound C function: where it comes from and whether loading requires it.
public struct LlamaSymbolSpec: Sendable, Hashable {
    public let name: String
    public let library: LlamaLibraryID
    public let isRequired: Bool
    public let isDeprecated: Bool
    /// The declaring header and line in the pinned llama.cpp source tree.
    public let declaration: String

    public init(name: String, library: LlamaLibraryID, isRequired: Bool, isDeprecated: Bool, declaration: String) {
        self.name = name
        self.library = library
        self.isRequired = isRequired
        self.isDeprecated = isDeprecated
        self.declaration = declaration
    }
}

/// A symbol the loaded libraries do not provide.
public enum LlamaSymbolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Required symbols are missing: the libraries are not the version the bindings were generated from.
    case missingRequired([LlamaSymbolSpec])
    /// An optional symbol (from an optional library) was called but is not loaded.
    case unavailable(name: String, library: LlamaLibraryID)

    public var description: String {
        switch self {
        case .missingRequired(let specs):
            let names = specs.map { "\($0.name) (lib\($0.library.rawValue))" }.joined(separator: ", ")
            return "the llama.cpp libraries lack \(specs.count) required symbol(s): \(names). "
                + "The bindings were generated from llama.cpp \(LlamaSymbols.tag): load libraries of that version, "
                + "or regenerate the bindings for yours (make bump TAG=...)."
        case .unavailable(let name, let library):
            return "\(name) is not available: lib\(library.rawValue) is not loaded or does not export it. "
                + "Install a llama.cpp build that includes lib\(library.rawValue)."
        }
    }
}

/// A record's layout as libclang computed it from the original headers (LP64), beside the
/// layout Swift's importer gave the generated C declaration. The generated `all` lists them.
public struct LlamaRecordLayout: Sendable {
    public let name: String
    public let size: Int
    public let alignment: Int
    public let swiftStride: Int
    public let swiftAlignment: Int
    /// Directly stored fields: name, C offset, and the offset Swift reports.
    public let fields: [Field]

    public struct Field: Sendable {
        public let name: String
        public let offset: Int
        public let swiftOffset: Int?

        public init(name: String, offset: Int, swiftOffset: Int?) {
            self.name = name
            self.offset = offset
            self.swiftOffset = swiftOffset
        }
    }

    public init(name: String, size: Int, alignment: Int, swiftStride: Int, swiftAlignment: Int, fields: [Field]) {
        self.name = name
        self.size = size
        self.alignment = alignment
        self.swiftStride = swiftStride
        self.swiftAlignment = swiftAlignment
        self.fields = fields
    }
}
