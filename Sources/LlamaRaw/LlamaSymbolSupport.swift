// The parts of the generated code that do not depend on the headers: what describes a symbol,
// what goes wrong when resolving one, and what a record layout is.

/// One entry per bound C function: where it comes from and whether loading requires it.
public struct LlamaSymbolSpec: Sendable, Hashable {
    /// The C function's name.
    public let name: String
    /// The library that exports it.
    public let library: LlamaLibraryID
    /// Whether loading fails without it (false for functions of optional libraries).
    public let isRequired: Bool
    /// Whether the header marks it deprecated.
    public let isDeprecated: Bool
    /// The declaring header and line in the pinned llama.cpp source tree.
    public let declaration: String

    /// A symbol's description; every parameter is the property of the same name.
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
    /// The C struct or union.
    public let name: String
    /// Its size in bytes, as libclang computed it.
    public let size: Int
    /// Its alignment in bytes, as libclang computed it.
    public let alignment: Int
    /// `MemoryLayout.stride` of the imported type.
    public let swiftStride: Int
    /// `MemoryLayout.alignment` of the imported type.
    public let swiftAlignment: Int
    /// Directly stored fields: name, C offset, and the offset Swift reports.
    public let fields: [Field]

    /// A directly stored field of a record.
    public struct Field: Sendable {
        /// The field's name.
        public let name: String
        /// Its offset in bytes, as libclang computed it.
        public let offset: Int
        /// `MemoryLayout.offset(of:)` of the imported field (nil for a field Swift cannot address, a bitfield).
        public let swiftOffset: Int?

        /// A field's layout.
        public init(name: String, offset: Int, swiftOffset: Int?) {
            self.name = name
            self.offset = offset
            self.swiftOffset = swiftOffset
        }
    }

    /// A record's layout; every parameter is the property of the same name.
    public init(name: String, size: Int, alignment: Int, swiftStride: Int, swiftAlignment: Int, fields: [Field]) {
        self.name = name
        self.size = size
        self.alignment = alignment
        self.swiftStride = swiftStride
        self.swiftAlignment = swiftAlignment
        self.fields = fields
    }
}
