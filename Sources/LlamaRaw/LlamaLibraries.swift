// The minimal loader: opens the llama.cpp libraries of one folder (the layout of an official
// release archive), resolves the generated symbol table against them, loads the ggml backends
// and initializes llama.cpp.
import CLlama
public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the llama.cpp libraries could not be loaded: a code to switch on, the folder or file
/// concerned, and the facts of the case as values (the library, the missing symbols, the tag
/// found), from which ``description`` writes the message.
public struct LlamaLoadError: Error, Sendable, CustomStringConvertible {
    /// What went wrong. Open: new codes may be added.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The folder does not exist.
        public static let directoryNotFound = Code(rawValue: "directoryNotFound")
        /// A required library file is not in the folder (``LlamaLoadError/library``).
        public static let libraryNotFound = Code(rawValue: "libraryNotFound")
        /// The dynamic loader refused a library (not a library, wrong architecture, missing
        /// dependency): ``LlamaLoadError/library``, and dlerror's text in ``LlamaLoadError/underlying``.
        public static let libraryUnloadable = Code(rawValue: "libraryUnloadable")
        /// Required functions are missing (``LlamaLoadError/missingSymbols``): the libraries are
        /// another llama.cpp version.
        public static let missingSymbols = Code(rawValue: "missingSymbols")
        /// ggml registered no backend from the folder (no usable `libggml-cpu-*`).
        public static let noBackend = Code(rawValue: "noBackend")
        /// The libraries are another llama.cpp version than the bindings
        /// (``LlamaLoadError/foundTag``; nil: the version is unknown).
        public static let versionMismatch = Code(rawValue: "versionMismatch")
    }

    /// What went wrong, to switch on.
    public let code: Code
    /// The folder or file concerned.
    public let path: String
    /// The library concerned (`.libraryNotFound`, `.libraryUnloadable`).
    public let library: LlamaLibraryID?
    /// The required functions the libraries lack (`.missingSymbols`).
    public let missingSymbols: [LlamaSymbolSpec]
    /// The llama.cpp tag of the folder, from its `llama-<tag>` path component (`.versionMismatch`;
    /// nil when the path names none).
    public let foundTag: String?
    /// What the system said, when it said something (dlerror's text).
    public let underlying: String?

    /// A load error; every parameter is the property of the same name.
    public init(code: Code, path: String, library: LlamaLibraryID? = nil, missingSymbols: [LlamaSymbolSpec] = [],
                foundTag: String? = nil, underlying: String? = nil) {
        self.code = code
        self.path = path
        self.library = library
        self.missingSymbols = missingSymbols
        self.foundTag = foundTag
        self.underlying = underlying
    }

    public var description: String {
        let name = library.map { "lib\($0.rawValue)" } ?? "a library"
        switch code {
        case .directoryNotFound:
            return "no llama.cpp libraries at \(path): the folder does not exist. "
                + "Point to the folder of an unpacked llama.cpp \(LlamaPin.tag) release (run `make llama` to build one)."
        case .libraryNotFound:
            return "\(name) is missing from \(path): the folder is not a complete llama.cpp \(LlamaPin.tag) release."
        case .libraryUnloadable:
            return "\(name) at \(path) could not be loaded: \(underlying ?? "unknown error"). "
                + "Reinstall the llama.cpp \(LlamaPin.tag) release for this platform."
        case .missingSymbols:
            let names = missingSymbols.map { "\($0.name) (lib\($0.library.rawValue))" }
            return "the libraries at \(path) lack \(names.count) required function(s) (\(names.prefix(8).joined(separator: ", "))"
                + "\(names.count > 8 ? ", ..." : "")): they are not llama.cpp \(LlamaPin.tag). "
                + "Load the \(LlamaPin.tag) release, or regenerate the bindings for your version (make bump TAG=...)."
        case .versionMismatch:
            let what = foundTag.map { "llama.cpp \($0)" } ?? "of an unknown llama.cpp version (no llama-bN folder in the path)"
            let compatible = LlamaPin.compatibleTags.isEmpty ? "" : " or \(LlamaPin.compatibleTags.joined(separator: ", "))"
            return "the libraries at \(path) are \(what), but the bindings were generated from \(LlamaPin.tag)\(compatible). "
                + "Load the \(LlamaPin.tag) release, or regenerate the bindings for your version (make bump TAG=...). "
                + "To load them anyway, at the risk of memory corruption where structs changed, set "
                + "\(LlamaLibraries.allowMismatchVariable)=1 or pass allowVersionMismatch: true."
        case .noBackend:
            return "ggml loaded no backend from \(path): no usable libggml-cpu-*.\(LlamaLibraries.libraryExtension) "
                + "for this CPU. Reinstall the llama.cpp \(LlamaPin.tag) release."
        default:
            return "the llama.cpp libraries at \(path) could not be loaded (\(code))\(underlying.map { ": \($0)" } ?? "")."
        }
    }
}

/// The llama.cpp libraries of one folder, loaded, with their resolved functions.
///
/// Libraries are never unloaded: llama.cpp keeps global state (backend registry, logging hooks)
/// that must outlive every model and context, so the handles live for the process.
public final class LlamaLibraries: Sendable {
    /// The folder the libraries were loaded from.
    public let directory: URL
    /// Every bound llama.cpp function.
    public let symbols: LlamaSymbols
    /// The CPU backend variant ggml chose for this machine (`libggml-cpu-haswell`, ...), if found.
    public let cpuVariant: String?
    /// Optional libraries that were not in the folder.
    public let absentLibraries: [LlamaLibraryID]
    /// The open libraries (handles from dlopen).
    nonisolated(unsafe) private let handles: [LlamaLibraryID: UnsafeMutableRawPointer]

    #if os(macOS)
    /// The file extension of shared libraries on this system (`dylib`; `so` on Linux).
    public static let libraryExtension = "dylib"
    #else
    /// The file extension of shared libraries on this system (`so`; `dylib` on macOS).
    public static let libraryExtension = "so"
    #endif

    /// The environment variable that lets libraries of another version load.
    public static let allowMismatchVariable = "LLAMA_SWIFT_ALLOW_VERSION_MISMATCH"

    /// Opens the libraries in `directory`, resolves every symbol, loads the ggml backends found
    /// there and calls `llama_backend_init`.
    ///
    /// The folder must hold llama.cpp ``LlamaPin/tag`` (or a tag of ``LlamaPin/compatibleTags``),
    /// as its official release layout tells: the archive's top folder is `llama-<tag>`. Other
    /// versions are refused, since a struct that changed layout corrupts memory instead of
    /// failing, unless `allowVersionMismatch` (default: the environment variable
    /// ``allowMismatchVariable`` set to 1) says to load them anyway.
    ///
    /// Loading is process-wide (the dynamic loader and ggml's backend registry are global), so
    /// loading the same folder again returns the libraries already loaded.
    ///
    /// `log`, when given, receives ggml's log from the start (loading the backends logs), as
    /// `ggml_log_set` would install it; without it ggml writes to stderr.
    public static func load(from directory: URL, allowVersionMismatch: Bool? = nil,
                            log: ggml_log_callback? = nil) throws(LlamaLoadError) -> LlamaLibraries {
        let allow = allowVersionMismatch ?? (ProcessInfo.processInfo.environment[allowMismatchVariable] == "1")
        let key = directory.standardizedFileURL.resolvingSymlinksInPath().path
        loaded.lock.lock()
        defer { loaded.lock.unlock() }
        if let existing = loaded.byPath[key] { return existing }
        let libraries = try LlamaLibraries(directory: directory, allowVersionMismatch: allow, log: log)
        loaded.byPath[key] = libraries
        return libraries
    }

    /// The folders loaded so far in this process.
    private final class Registry: @unchecked Sendable {
        let lock = NSLock()
        var byPath: [String: LlamaLibraries] = [:]
    }
    private static let loaded = Registry()

    /// The llama.cpp tag of a release folder: the nearest `llama-<tag>` folder of its path.
    public static func releaseTag(of directory: URL) -> String? {
        for component in directory.standardizedFileURL.pathComponents.reversed() where component.hasPrefix("llama-") {
            let tag = String(component.dropFirst("llama-".count))
            if isTag(tag) { return tag }
        }
        return nil
    }

    /// Whether libraries of `tag` may be loaded with bindings generated from `pinned`.
    public static func accepts(tag: String?, pinned: String = LlamaPin.tag,
                               compatible: [String] = LlamaPin.compatibleTags) -> Bool {
        guard let tag else { return false }
        return tag == pinned || compatible.contains(tag)
    }

    static func isTag(_ s: String) -> Bool {
        if s.hasPrefix("b") { return s.count > 1 && s.dropFirst().allSatisfy(\.isNumber) }
        guard s.hasPrefix("v") else { return false }
        let parts = s.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }

    private init(directory: URL, allowVersionMismatch: Bool, log: ggml_log_callback?) throws(LlamaLoadError) {
        let dir = directory.standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw LlamaLoadError(code: .directoryNotFound, path: dir.path)
        }
        let found = Self.releaseTag(of: dir)
        guard allowVersionMismatch || Self.accepts(tag: found) else {
            throw LlamaLoadError(code: .versionMismatch, path: dir.path, foundTag: found)
        }
        var handles: [LlamaLibraryID: UnsafeMutableRawPointer] = [:]
        var absent: [LlamaLibraryID] = []
        for (name, file, required) in LlamaPin.libraries.map({ ($0.name, $0.file, $0.isRequired) }) where !file.hasSuffix("*") {
            guard let id = LlamaLibraryID(rawValue: name) else { continue }
            let path = dir.appendingPathComponent("\(file).\(Self.libraryExtension)").path
            guard FileManager.default.fileExists(atPath: path) else {
                if required { throw LlamaLoadError(code: .libraryNotFound, path: dir.path, library: id) }
                absent.append(id)
                continue
            }
            guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
                throw LlamaLoadError(code: .libraryUnloadable, path: path, library: id, underlying: Self.dlerrorText())
            }
            handles[id] = handle
        }

        if let log, let base = handles[.ggmlBase], let setLog = dlsym(base, "ggml_log_set") {
            unsafeBitCast(setLog, to: ggml_log_set_fn.self)(log, nil)
        }
        // ggml loads its CPU backend itself; the backends must be loaded before its functions
        // can be found.
        guard let ggml = handles[.ggml], let load = dlsym(ggml, "ggml_backend_load_all_from_path") else {
            throw LlamaLoadError(code: .missingSymbols, path: dir.path,
                                 missingSymbols: [Self.spec(named: "ggml_backend_load_all_from_path", library: .ggml)])
        }
        dir.path.withCString { unsafeBitCast(load, to: ggml_backend_load_all_from_path_fn.self)($0) }
        let cpu = Self.loadedCPUVariant(in: dir)
        if let cpu { handles[.ggmlCpu] = cpu.handle } else { absent.append(.ggmlCpu) }

        do {
            symbols = try Self.resolve(handles)
        } catch {
            switch error {
            case .missingRequired(let specs):
                throw LlamaLoadError(code: .missingSymbols, path: dir.path, missingSymbols: specs)
            case .unavailable(let name, let library):
                throw LlamaLoadError(code: .missingSymbols, path: dir.path, missingSymbols: [Self.spec(named: name, library: library)])
            }
        }
        guard symbols.ggml_backend_dev_count() > 0 else {
            throw LlamaLoadError(code: .noBackend, path: dir.path)
        }
        symbols.llama_backend_init()
        self.directory = dir
        self.handles = handles
        self.cpuVariant = cpu?.name
        self.absentLibraries = absent
    }

    /// The spec of a bound function (one outside the table is described as required).
    static func spec(named name: String, library: LlamaLibraryID) -> LlamaSymbolSpec {
        LlamaSymbols.specs.first { $0.name == name }
            ?? LlamaSymbolSpec(name: name, library: library, isRequired: true, isDeprecated: false, declaration: "")
    }

    private static func resolve(_ handles: [LlamaLibraryID: UnsafeMutableRawPointer]) throws(LlamaSymbolError) -> LlamaSymbols {
        try LlamaSymbols { spec in handles[spec.library].flatMap { dlsym($0, spec.name) } }
    }

    /// Resolves the whole symbol table again against the loaded libraries (what loading does;
    /// the benchmark times it).
    public func resolveSymbolTable() throws(LlamaSymbolError) -> LlamaSymbols {
        try Self.resolve(handles)
    }

    /// The `libggml-cpu-*` that ggml loaded, found by asking the dynamic loader which one is
    /// already open (RTLD_NOLOAD opens nothing new).
    private static func loadedCPUVariant(in dir: URL) -> (name: String, handle: UnsafeMutableRawPointer)? {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { $0.hasPrefix("libggml-cpu") && $0.hasSuffix("." + libraryExtension) }
            .sorted()
        for name in names {
            if let handle = dlopen(dir.appendingPathComponent(name).path, RTLD_NOW | RTLD_NOLOAD) {
                return (String(name.dropLast(libraryExtension.count + 1)), handle)
            }
        }
        return nil
    }

    private static func dlerrorText() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dynamic loader error"
    }
}
