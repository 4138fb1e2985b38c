import BindgenCore
import Foundation
import Testing

@Suite("Qualifiers and system types")
struct QualifierTests {
    func field(_ module: APIModule, _ record: String, _ name: String) throws -> CType {
        let r = try #require(module.records.first { $0.name == record })
        return try #require(r.fields.first { $0.name == name }).type
    }

    @Test("volatile and restrict are carried through, const outermost")
    func qualifiers() throws {
        let (module, diagnostics) = Fixtures.read("qualifiers")
        #expect(!diagnostics.hasErrors, "\(diagnostics.items)")
        let u32 = CType.typedef("uint32_t", canonical: .builtin("unsigned int"))
        let i64 = CType.typedef("int64_t", canonical: .builtin("long"))
        #expect(try field(module, "fix_mutex", "locked") == .volatile(.builtin("int")))
        #expect(try field(module, "fix_mutex", "waiters") == .volatile(.pointer(.volatile(u32))))
        #expect(try field(module, "fix_mutex", "generation") == .const(.volatile(i64)))
        #expect(try field(module, "fix_mutex", "slot") == .volatile(.pointer(.builtin("int"))))
        #expect(try field(module, "fix_mutex", "name") == .const(.volatile(.pointer(.const(.builtin("char"))))))
        let spin = try #require(module.functions.first { $0.name == "fix_spin" })
        #expect(spin.type.parameters.map(\.type) == [
            .pointer(.volatile(.builtin("int"))),
            .pointer(.const(.volatile(.record(.struct, "fix_mutex", complete: true)))),
        ])
        let copy = try #require(module.functions.first { $0.name == "fix_copy" })
        #expect(copy.type.parameters.map(\.type) == [
            .restrict(.pointer(.const(.void))), .restrict(.pointer(.void)), .volatile(i64),
        ])
        // A volatile typedef keeps its qualifier in the typedef, not at each use.
        let flag = try field(module, "fix_signal", "raised")
        #expect(flag == .typedef("fix_flag_t", canonical: .volatile(.builtin("int"))))
    }

    @Test("the C declarations spell every qualifier where C puts it")
    func spelled() throws {
        let (_, files, diagnostics) = Fixtures.generate("qualifiers")
        #expect(!diagnostics.hasErrors, "\(diagnostics.items)")
        let c = try #require(files["types.h"])
        #expect(c.contains("    volatile uint32_t * volatile waiters;"))
        #expect(c.contains("const volatile int64_t generation;"))
        #expect(c.contains("const char * const volatile name;"))
        #expect(c.contains("typedef int (*fix_copy_fn)(const void * restrict src, void * restrict dst, volatile int64_t n);"))
    }

    @Test("the generated C includes the system headers of the types it uses")
    func systemIncludes() throws {
        let (_, files, diagnostics) = Fixtures.generate("system")
        #expect(!diagnostics.hasErrors, "\(diagnostics.items)")
        let c = try #require(files["types.h"])
        let includes = c.split(separator: "\n").filter { $0.hasPrefix("#include") }
        #expect(includes == ["#include <stdarg.h>", "#include <stdbool.h>", "#include <stddef.h>", "#include <stdint.h>",
                             "#include <stdio.h>", "#include <sys/types.h>", "#include <time.h>"])
        // Only what is used: the qualifiers fixture needs no stdio.h.
        let plain = try #require(Fixtures.generate("qualifiers").files["types.h"])
        #expect(!plain.contains("#include <stdio.h>"))
    }

    @Test("a type from an unbound header that no system header declares is an error at its use")
    func unknownExternalType() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bindgen-external-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("typedef unsigned int other_word;\n".utf8).write(to: dir.appendingPathComponent("other.h"))
        try Data("#include \"other.h\"\nstruct uses { other_word w; };\n__attribute__((visibility(\"default\"))) void g(struct uses u);\n".utf8)
            .write(to: dir.appendingPathComponent("main.h"))
        let (module, readDiagnostics) = readHeaders(ReaderInput(root: dir, headers: [("main.h", "main")], includeDirectories: ["."],
                                                                defines: []))
        #expect(!readDiagnostics.hasErrors, "\(readDiagnostics.items)")
        var diagnostics = Diagnostics()
        _ = emitC(module, options: CEmitterOptions(banner: "//", guardName: "G"), diagnostics: &diagnostics)
        let error = try #require(diagnostics.items.first { $0.severity == .error })
        #expect(error.location == SourceLocation(header: "main.h", line: 2))
        #expect(error.message.contains("other_word"))
    }
}
