// The parts of the symbol table that do not depend on the headers: what describes a symbol,
// and what goes wrong when resolving one. The generated LlamaSymbols.swift uses both.

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
