import Foundation
import LlamaTestSupport
import LlamaRaw
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Loading and the symbol table")
struct LoaderTests {
    /// Functions a header declares that no library of the pinned build exports.
    static let knownAbsent: Set<String> = [
        "ggml_threadpool_get_n_threads",  // declared in ggml-cpu.h; no library of b11434 defines it
    ]

    func handles(in dir: URL) -> [LlamaLibraryID: UnsafeMutableRawPointer] {
        var result: [LlamaLibraryID: UnsafeMutableRawPointer] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        for id in LlamaLibraryID.allCases {
            let matches = names.filter { id == .ggmlCpu ? $0.hasPrefix("libggml-cpu") : $0 == "lib\(id.rawValue).so" }
            for name in matches.sorted() {
                if let h = dlopen(dir.appendingPathComponent(name).path, RTLD_NOW | RTLD_NOLOAD) {
                    result[id] = h
                    break
                }
            }
        }
        return result
    }

    /// The file-backed mappings of this process: address range and file name.
    func memoryMaps() throws -> [(range: Range<UInt>, file: String)] {
        try String(contentsOfFile: "/proc/self/maps", encoding: .utf8).split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 6, parts[5].hasPrefix("/") else { return nil }
            let bounds = parts[0].split(separator: "-").compactMap { UInt($0, radix: 16) }
            guard bounds.count == 2 else { return nil }
            return (bounds[0]..<bounds[1], URL(fileURLWithPath: String(parts[5])).lastPathComponent)
        }
    }

    /// The library file whose mapping holds the address: what `dladdr` tells, read from /proc.
    func mappedFile(containing p: UnsafeMutableRawPointer, in maps: [(range: Range<UInt>, file: String)]) -> String? {
        let address = UInt(bitPattern: p)
        return maps.first { $0.range.contains(address) }?.file
    }

    @Test("every bound function resolves, from the library the manifest names")
    func symbolsComeFromTheirLibrary() throws {
        let libraries = try TestEnvironment.libraries.get()
        let handles = handles(in: libraries.directory)
        #expect(handles.count == LlamaLibraryID.allCases.count, "every library of the release is loaded")
        let maps = try memoryMaps()
        var absent: Set<String> = []
        var wrongLibrary: [String] = []
        _ = try LlamaSymbols { spec in
            guard let h = handles[spec.library], let p = dlsym(h, spec.name) else {
                absent.insert(spec.name)
                return nil
            }
            if let base = mappedFile(containing: p, in: maps) {
                let expected = spec.library == .ggmlCpu ? "libggml-cpu" : "lib\(spec.library.rawValue).so"
                if !base.hasPrefix(expected) { wrongLibrary.append("\(spec.name): in \(base), expected \(expected)") }
            }
            return p
        }
        #expect(LlamaSymbols.specs.count > 1000)
        #expect(absent == Self.knownAbsent)
        #expect(wrongLibrary.isEmpty, "\(wrongLibrary)")
        #expect(libraries.cpuVariant?.hasPrefix("libggml-cpu-") == true)
        #expect(libraries.absentLibraries.isEmpty)
    }

    @Test("missing required symbols are reported together, by name")
    func missingRequiredSymbols() throws {
        let libraries = try TestEnvironment.libraries.get()
        let handles = handles(in: libraries.directory)
        let dropped: Set<String> = ["llama_decode", "ggml_init", "llama_model_load_from_file"]
        do {
            _ = try LlamaSymbols { spec in
                dropped.contains(spec.name) ? nil : handles[spec.library].flatMap { dlsym($0, spec.name) }
            }
            Issue.record("the table was built without required symbols")
        } catch {
            guard case .missingRequired(let specs) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(Set(specs.map(\.name)) == dropped)
            #expect(error.description.contains("llama_decode (libllama)"))
            #expect(error.description.contains(LlamaPin.tag))
        }
    }

    @Test("an optional function that is not loaded throws when called")
    func optionalSymbolUnavailable() throws {
        let libraries = try TestEnvironment.libraries.get()
        let handles = handles(in: libraries.directory)
        let symbols = try LlamaSymbols { spec in
            spec.library == .mtmd ? nil : handles[spec.library].flatMap { dlsym($0, spec.name) }
        }
        #expect(throws: LlamaSymbolError.unavailable(name: "mtmd_default_marker", library: .mtmd)) {
            _ = try symbols.mtmd_default_marker()
        }
        let marker = try #require(try libraries.symbols.mtmd_default_marker())
        #expect(!String(cString: marker).isEmpty)
    }

    @Test("a folder that does not exist")
    func directoryNotFound() {
        #expect {
            _ = try LlamaLibraries.load(from: URL(fileURLWithPath: "/nonexistent/llama"))
        } throws: { error in
            (error as? LlamaLoadError)?.code == .directoryNotFound
                && "\(error)".contains("/nonexistent/llama")
        }
    }

    @Test("a folder without the libraries")
    func librariesMissing() throws {
        let dir = try TestEnvironment.releaseFolder()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        #expect {
            _ = try LlamaLibraries.load(from: dir)
        } throws: { error in
            (error as? LlamaLoadError)?.code == .libraryNotFound && (error as? LlamaLoadError)?.library == .ggmlBase
        }
    }

    @Test("a file that is not a library")
    func corruptLibrary() throws {
        let dir = try TestEnvironment.releaseFolder()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        try Data("this is not an ELF file".utf8).write(to: dir.appendingPathComponent("libggml-base.so"))
        #expect {
            _ = try LlamaLibraries.load(from: dir)
        } throws: { error in
            guard let e = error as? LlamaLoadError, e.code == .libraryUnloadable, e.library == .ggmlBase else { return false }
            return e.underlying?.isEmpty == false && e.description.contains("libggml-base.so")
        }
    }

    @Test("record layouts agree with what Swift imported")
    func layouts() {
        #expect(LlamaRecordLayout.all.count > 50)
        for layout in LlamaRecordLayout.all {
            #expect(layout.swiftStride == layout.size, "\(layout.name) size")
            #expect(layout.swiftAlignment == layout.alignment, "\(layout.name) alignment")
            for field in layout.fields {
                #expect(field.swiftOffset == field.offset, "\(layout.name).\(field.name)")
            }
        }
    }

    @Test("constants agree with the original headers")
    func constants() async throws {
        let result = try await runProcess(try buildNativeReference(), ["--constants"])
        try #require(result.status == 0)
        var native: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            native[String(parts[0])] = String(parts[1])
        }
        let swift: [String: String] = [
            "LLAMA_DEFAULT_SEED": "\(LLAMA_DEFAULT_SEED)",
            "LLAMA_TOKEN_NULL": "\(LLAMA_TOKEN_NULL)",
            "LLAMA_SESSION_MAGIC": "\(LLAMA_SESSION_MAGIC)",
            "LLAMA_STATE_SEQ_VERSION": "\(LLAMA_STATE_SEQ_VERSION)",
            "GGML_MAX_DIMS": "\(GGML_MAX_DIMS)",
            "GGML_MAX_NAME": "\(GGML_MAX_NAME)",
            "GGML_ROPE_TYPE_NEOX": "\(GGML_ROPE_TYPE_NEOX)",
            "GGUF_MAGIC": GGUF_MAGIC,
            "GGUF_KEY_GENERAL_ALIGNMENT": GGUF_KEY_GENERAL_ALIGNMENT,
            "LLAMA_VOCAB_TYPE_BPE": "\(LLAMA_VOCAB_TYPE_BPE.rawValue)",
            "GGML_TYPE_Q4_1": "\(GGML_TYPE_Q4_1.rawValue)",
        ]
        #expect(native == swift)
    }
}
