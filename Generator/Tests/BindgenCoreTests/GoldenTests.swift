import BindgenCore
import Foundation
import LlamaProcess
import Testing

/// Golden tests: each folder under Fixtures/ holds a small header of our own (`input.h`, and
/// `optional.h` for an optional library) and, in `expected/`, the generator's outputs for it.
/// Set BINDGEN_BLESS=1 to rewrite the expectations. Every expectation is also compiled: the C
/// header (whose layout assertions then run) by cc, the Swift files by swiftc against it.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let names = ["records", "enums", "functions", "macros", "qualifiers", "system"]
    static let layout = OutputLayout(cHeader: "include/generated/types.h", swiftFolder: "generated", cModule: "CLlama")

    static func read(_ name: String) -> (APIModule, Diagnostics) {
        let dir = root.appendingPathComponent(name)
        var headers = [(path: "input.h", library: "fixture")]
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent("optional.h").path) {
            headers.append((path: "optional.h", library: "fixture-opt"))
        }
        return readHeaders(ReaderInput(root: dir, headers: headers, includeDirectories: ["."], defines: []))
    }

    static func generate(_ name: String) -> (module: APIModule, files: [String: String], diagnostics: Diagnostics) {
        let (module, readDiagnostics) = read(name)
        let libraries = LibrarySet([(name: "fixture", required: true), (name: "fixture-opt", required: false)])
        let (files, emitDiagnostics) = emitAll(module, tag: "fixture", libraries: libraries, layout: layout, pinSwift: nil)
        var diagnostics = readDiagnostics
        emitDiagnostics.items.forEach { diagnostics.add($0) }
        var byName: [String: String] = [:]
        for f in files { byName[(f.path as NSString).lastPathComponent] = f.contents }
        return (module, byName, diagnostics)
    }
}

/// Runs a compiler to its end (bounded: a hung compiler fails the test instead of blocking it).
func run(_ arguments: [String]) async throws -> (succeeded: Bool, output: String) {
    let result = try await ChildProcess.run(arguments[0], Array(arguments.dropFirst()), standardError: .mergeIntoOutput,
                                            timeout: .seconds(600))
    return (result.succeeded, "\(result): \(result.outputText)")
}

@Suite("Golden outputs", .serialized)
struct GoldenTests {
    @Test("outputs match the expectations", arguments: Fixtures.names)
    func golden(name: String) throws {
        let (_, files, diagnostics) = Fixtures.generate(name)
        #expect(!diagnostics.hasErrors, "\(diagnostics.items)")
        let expected = Fixtures.root.appendingPathComponent(name).appendingPathComponent("expected")
        if ProcessInfo.processInfo.environment["BINDGEN_BLESS"] == "1" {
            try FileManager.default.createDirectory(at: expected, withIntermediateDirectories: true)
            for (file, contents) in files {
                try Data(contents.utf8).write(to: expected.appendingPathComponent(file))
            }
        }
        let existing = try FileManager.default.contentsOfDirectory(atPath: expected.path).sorted()
        #expect(existing == files.keys.sorted(), "expected files of \(name)")
        for (file, contents) in files {
            let want = try String(contentsOf: expected.appendingPathComponent(file), encoding: .utf8)
            #expect(contents == want, "\(name)/expected/\(file) differs; run with BINDGEN_BLESS=1 to accept")
        }
    }

    @Test("the expected C header compiles and its layout assertions hold", arguments: Fixtures.names)
    func expectedCCompiles(name: String) async throws {
        let header = Fixtures.root.appendingPathComponent("\(name)/expected/types.h").path
        let result = try await run(["cc", "-std=c11", "-Wall", "-Werror", "-fsyntax-only", "-x", "c", header])
        #expect(result.succeeded, "\(result.output)")
    }

    @Test("the expected Swift compiles against the expected C header", arguments: Fixtures.names)
    func expectedSwiftCompiles(name: String) async throws {
        let expected = Fixtures.root.appendingPathComponent("\(name)/expected")
        let module = FileManager.default.temporaryDirectory.appendingPathComponent("bindgen-golden-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: module, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: module) }
        let map = "module CLlama {\n    header \"\(expected.appendingPathComponent("types.h").path)\"\n    export *\n}\n"
        try Data(map.utf8).write(to: module.appendingPathComponent("module.modulemap"))
        // The handwritten half of the symbol table comes from the package itself.
        let support = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/LlamaRaw/LlamaSymbolSupport.swift")
        let result = try await run(["swiftc", "-typecheck", "-swift-version", "6", "-warnings-as-errors",
                              "-module-name", "Fixture", "-I", module.path, support.path,
                              expected.appendingPathComponent("LlamaSymbols.swift").path,
                              expected.appendingPathComponent("LlamaRecordLayout.swift").path])
        #expect(result.succeeded, "\(result.output)")
    }
}

@Suite("What the reader understands")
struct ReaderTests {
    func record(_ module: APIModule, _ name: String) throws -> Record {
        try #require(module.records.first { $0.name == name })
    }

    @Test func records() throws {
        let (module, diagnostics) = Fixtures.read("records")
        #expect(!diagnostics.hasErrors)
        let flags = try record(module, "fix_flags")
        #expect(flags.fields.map(\.bitWidth) == [1, 3, nil])
        let tensor = try record(module, "fix_tensor")
        #expect(tensor.size == 152)
        let anonymous = try #require(tensor.fields.first { $0.name == nil })
        #expect(anonymous.offsetBits == 88 * 8)
        guard case .anonymousRecord(let union) = anonymous.type else {
            Issue.record("the anonymous member is not a record")
            return
        }
        #expect(union.kind == .union)
        #expect(union.fields.count == 3)
        // The tagged struct declared inside fix_tensor is a file-scope record of its own.
        #expect(module.records.contains { $0.name == "fix_inner" })
        let buffer = try record(module, "fix_buffer")
        #expect(buffer.fields.last?.type == .array(.typedef("uint8_t", canonical: .builtin("unsigned char")), count: nil))
        #expect(module.declarations.contains { if case .opaqueRecord(.struct, "fix_opaque", _) = $0 { true } else { false } })
    }

    @Test func enums() throws {
        let (module, _) = Fixtures.read("enums")
        let enums = module.declarations.compactMap { if case .enumeration(let e) = $0 { e } else { nil } }
        let values = Dictionary(uniqueKeysWithValues: enums.flatMap(\.constants).map { ($0.name, $0.value) })
        #expect(values["FIX_LEVEL_NONE"] == "-1")
        #expect(values["FIX_LEVEL_ALIAS"] == "10")
        #expect(values["FIX_MASK_ALL"] == "4294967295")
        #expect(values["FIX_WIDE_BIG"] == "1099511627776")
        #expect(values["FIX_ANONYMOUS_B"] == "-7")
        // The tagless enum named by a typedef is not also emitted on its own.
        #expect(enums.filter { $0.name == nil }.count == 1)
    }

    @Test func functions() throws {
        let (module, _) = Fixtures.read("functions")
        let names = Set(module.functions.map(\.name))
        #expect(names.contains("fix_load"))
        #expect(module.functions.first { $0.name == "fix_extra_feature" }?.library == "fixture-opt")
        #expect(module.functions.first { $0.name == "fix_old" }?.deprecation == "use fix_tokenize instead")
        #expect(module.functions.first { $0.name == "fix_older" }?.deprecation == "")
        let skipped = Dictionary(uniqueKeysWithValues: module.skipped.map { ($0.name, $0.reason) })
        #expect(skipped["fix_printf"]?.hasPrefix("variadic") == true)
        #expect(skipped["fix_helper"]?.hasPrefix("static inline") == true)
        #expect(skipped["fix_internal"]?.contains("API macro") == true)
        #expect(module.skipped.allSatisfy { $0.location.header == "input.h" && $0.location.line > 0 })
    }

    @Test func macros() throws {
        let (module, _) = Fixtures.read("macros")
        let constants = Dictionary(uniqueKeysWithValues: module.declarations.compactMap {
            if case .constant(let c) = $0 { (c.name, c.value) } else { nil }
        })
        #expect(constants["FIX_VERSION"] == .integer("3", type: "int"))
        #expect(constants["FIX_NEGATIVE"] == .integer("-1", type: "int"))
        #expect(constants["FIX_SEED"] == .integer("4294967295", type: "unsigned int"))
        #expect(constants["FIX_BIG"] == .integer("4294967296", type: "unsigned long long"))
        #expect(constants["FIX_SHIFTED"] == .integer("32", type: "int"))
        #expect(constants["FIX_ALIAS"] == .integer("3", type: "int"))
        #expect(constants["FIX_NAME"] == .string("fixture"))
        #expect(constants["FIX_ESCAPED"] == .string("tab\there \"quoted\""))
        #expect(constants["FIX_SCALE"] == .float(0.5))
        #expect(constants["FIX_ADD"] == nil)
        #expect(constants["FIX_EXPORT"] == nil)
        #expect(module.skipped.map(\.name) == ["FIX_RESTRICT"])
    }

    @Test("an unknown construct is an error with its location")
    func unsupported() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bindgen-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("struct bad { _Atomic int flag; };\n__attribute__((visibility(\"default\"))) void f(struct bad b);\n".utf8)
            .write(to: dir.appendingPathComponent("bad.h"))
        let (_, diagnostics) = readHeaders(ReaderInput(root: dir, headers: [("bad.h", "bad")], includeDirectories: [],
                                                       defines: []))
        let error = try #require(diagnostics.items.first { $0.severity == .error })
        #expect(error.location == SourceLocation(header: "bad.h", line: 1))
        #expect(error.message.contains("_Atomic"))
    }
}
