// The intermediate representation: plain values that the reader produces and the emitters
// consume. Nothing from libclang appears here.

/// Where a declaration was found: a header path relative to the source tree and a line.
public struct SourceLocation: Codable, Hashable, Sendable, CustomStringConvertible {
    public var header: String
    public var line: Int
    public init(header: String, line: Int) {
        self.header = header
        self.line = line
    }
    public var description: String { "\(header):\(line)" }
}

public enum RecordKind: String, Codable, Hashable, Sendable {
    case `struct`, union
}

/// A C type, as written in a declaration (typedef names are kept, not resolved).
public indirect enum CType: Codable, Hashable, Sendable {
    case void
    /// A builtin arithmetic type, by its C spelling (`int`, `unsigned long`, `float`, `bool`, `char`...).
    case builtin(String)
    /// A typedef name; `canonical` is what it finally stands for.
    case typedef(String, canonical: CType)
    /// A tagged struct or union; `complete` tells whether a definition is visible.
    case record(RecordKind, String, complete: Bool)
    /// A struct or union without a tag, defined in place.
    case anonymousRecord(Record)
    case enumeration(String)
    case anonymousEnum(EnumDecl)
    case pointer(CType)
    case array(CType, count: Int?)
    case function(FunctionType)
    /// Qualified types. Several qualifiers nest as `const(volatile(restrict(T)))`, `const` outermost.
    case const(CType)
    case volatile(CType)
    case restrict(CType)

    /// The type with qualifiers and typedefs peeled off.
    public var canonical: CType {
        switch self {
        case .typedef(_, let c): return c.canonical
        case .const(let t), .volatile(let t), .restrict(let t): return t.canonical
        default: return self
        }
    }

    public var isConst: Bool {
        switch self {
        case .const: return true
        case .typedef(_, let c), .volatile(let c), .restrict(let c): return c.isConst
        default: return false
        }
    }

    /// The qualifiers of the outermost layers, outermost first, and the type under them.
    public var qualifiers: (names: [String], base: CType) {
        switch self {
        case .const(let t): let (n, b) = t.qualifiers; return (["const"] + n, b)
        case .volatile(let t): let (n, b) = t.qualifiers; return (["volatile"] + n, b)
        case .restrict(let t): let (n, b) = t.qualifiers; return (["restrict"] + n, b)
        default: return ([], self)
        }
    }
}

public struct FunctionType: Codable, Hashable, Sendable {
    public var result: CType
    public var parameters: [Parameter]
    public var isVariadic: Bool
    public init(result: CType, parameters: [Parameter], isVariadic: Bool) {
        self.result = result
        self.parameters = parameters
        self.isVariadic = isVariadic
    }
}

public struct Parameter: Codable, Hashable, Sendable {
    public var name: String?
    public var type: CType
    public init(name: String?, type: CType) {
        self.name = name
        self.type = type
    }
}

public struct Field: Codable, Hashable, Sendable {
    /// nil for an anonymous member (`union { ... };` inside a struct).
    public var name: String?
    public var type: CType
    public var offsetBits: Int
    public var bitWidth: Int?
    public init(name: String?, type: CType, offsetBits: Int, bitWidth: Int?) {
        self.name = name
        self.type = type
        self.offsetBits = offsetBits
        self.bitWidth = bitWidth
    }
}

public struct Record: Codable, Hashable, Sendable {
    public var kind: RecordKind
    /// nil for a record without a tag.
    public var name: String?
    public var size: Int
    public var alignment: Int
    public var fields: [Field]
    public var location: SourceLocation
    public init(kind: RecordKind, name: String?, size: Int, alignment: Int, fields: [Field], location: SourceLocation) {
        self.kind = kind
        self.name = name
        self.size = size
        self.alignment = alignment
        self.fields = fields
        self.location = location
    }
}

public struct EnumConstant: Codable, Hashable, Sendable {
    public var name: String
    /// The value as C sees it; stored as text so that the full 64-bit range of both signs fits.
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

public struct EnumDecl: Codable, Hashable, Sendable {
    public var name: String?
    public var constants: [EnumConstant]
    public var location: SourceLocation
    public init(name: String?, constants: [EnumConstant], location: SourceLocation) {
        self.name = name
        self.constants = constants
        self.location = location
    }
}

public struct Typedef: Codable, Hashable, Sendable {
    public var name: String
    public var underlying: CType
    public var location: SourceLocation
    public init(name: String, underlying: CType, location: SourceLocation) {
        self.name = name
        self.underlying = underlying
        self.location = location
    }
}

public struct Function: Codable, Hashable, Sendable {
    public var name: String
    public var type: FunctionType
    /// The library that exports it (a name from the manifest's libraries).
    public var library: String
    /// The deprecation message, "" when deprecated without one, nil when not deprecated.
    public var deprecation: String?
    public var location: SourceLocation
    public init(name: String, type: FunctionType, library: String, deprecation: String?, location: SourceLocation) {
        self.name = name
        self.type = type
        self.library = library
        self.deprecation = deprecation
        self.location = location
    }
}

public enum ConstantValue: Codable, Hashable, Sendable {
    /// An integer with the C type the expression has (`int`, `unsigned int`, `long long`...).
    case integer(String, type: String)
    case float(Double)
    case string(String)
}

public struct Constant: Codable, Hashable, Sendable {
    public var name: String
    public var value: ConstantValue
    public var location: SourceLocation
    public init(name: String, value: ConstantValue, location: SourceLocation) {
        self.name = name
        self.value = value
        self.location = location
    }
}

/// A declaration of the listed headers that is not bound, and why.
public struct Skipped: Codable, Hashable, Sendable {
    public var name: String
    public var reason: String
    public var location: SourceLocation
    public init(name: String, reason: String, location: SourceLocation) {
        self.name = name
        self.reason = reason
        self.location = location
    }
}

public enum Declaration: Codable, Hashable, Sendable {
    case record(Record)
    /// A tagged struct or union that the headers declare but never define.
    case opaqueRecord(RecordKind, String, SourceLocation)
    case enumeration(EnumDecl)
    case typedef(Typedef)
    case function(Function)
    case constant(Constant)

    public var name: String? {
        switch self {
        case .record(let r): return r.name
        case .opaqueRecord(_, let n, _): return n
        case .enumeration(let e): return e.name
        case .typedef(let t): return t.name
        case .function(let f): return f.name
        case .constant(let c): return c.name
        }
    }
}

/// Everything read from a set of headers, in translation-unit order.
public struct APIModule: Codable, Hashable, Sendable {
    public var declarations: [Declaration]
    public var skipped: [Skipped]
    public init(declarations: [Declaration], skipped: [Skipped]) {
        self.declarations = declarations
        self.skipped = skipped
    }

    public var functions: [Function] {
        declarations.compactMap { if case .function(let f) = $0 { return f } else { return nil } }
    }
    public var records: [Record] {
        declarations.compactMap { if case .record(let r) = $0 { return r } else { return nil } }
    }
}
